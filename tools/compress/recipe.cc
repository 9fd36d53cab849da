// Recipe loading: YAML (yaml-cpp) -> schema check -> Recipe, with `extends:` resolved.
//
// Each file is checked on its own as it is read (keys, value types and ranges, pass names
// and options), so an error names the file the mistake is in. A file's values are applied
// on top of its base's: maps merge key by key, lists (pipeline, tuning.steps) replace.
// Checks that need the whole recipe (a tuning override must name a pass of the pipeline,
// the ISA must fit the architecture) run once at the end, and point at the line of the
// value that was applied last.
#include "tools/compress/recipe.h"

#include <fmt/format.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "ir/error.h"
#include "ir/file_util.h"
#include "passes/registry.h"
#include "tools/compress/compress_distill.h"
#include "tools/compress/recipe_reader.h"

namespace edgepress::tools {

namespace {

namespace fs = std::filesystem;
using recipe_detail::FileReader;
using recipe_detail::Join;
using recipe_detail::KeysOf;
using recipe_detail::Locations;
using recipe_detail::ParseSize;

std::vector<std::string> SearchDirs() {
  std::vector<std::string> dirs;
  auto add = [&](const fs::path& d) {
    std::error_code ec;
    if (!fs::is_directory(d, ec)) return;
    std::string s = fs::weakly_canonical(d, ec).string();
    if (ec) s = d.string();
    if (std::find(dirs.begin(), dirs.end(), s) == dirs.end()) dirs.push_back(s);
  };
  if (const char* env = std::getenv("EDGEPRESS_RECIPES_DIR"); env && *env) add(env);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path d = exe.parent_path();
    for (int up = 0; up < 6 && !d.empty(); ++up, d = d.parent_path()) {
      if (fs::exists(d / "recipes" / "base.yaml", ec)) {
        add(d / "recipes");
        break;
      }
      if (fs::exists(d / "share" / "edgepress" / "recipes" / "base.yaml", ec)) {
        add(d / "share" / "edgepress" / "recipes");
        break;
      }
      if (d == d.parent_path()) break;
    }
  }
  return dirs;
}

bool HasYamlExtension(const std::string& s) {
  auto ends = [&](const char* e) {
    size_t n = std::char_traits<char>::length(e);
    return s.size() >= n && s.compare(s.size() - n, n, e) == 0;
  };
  return ends(".yaml") || ends(".yml");
}

// The file of a shipped recipe, or "" when there is none of that name.
std::string FindShipped(const std::string& name) {
  for (const auto& [n, path] : ShippedRecipes())
    if (n == name) return path;
  return "";
}

[[noreturn]] void NoSuchRecipe(const std::string& prefix, const std::string& name) {
  std::vector<std::string> names;
  for (const auto& [n, path] : ShippedRecipes()) names.push_back(n);
  std::string near = passes::Nearest(name, names);
  std::string shipped = names.empty() ? "no shipped recipes were found (set EDGEPRESS_RECIPES_DIR)"
                                      : "shipped: " + Join(names);
  ThrowInvalid(prefix + "no recipe file '" + name + "' and no shipped recipe of that name" +
               (near.empty() ? "" : " (did you mean '" + near + "'?)") + "; " + shipped);
}

Recipe LoadFile(const std::string& path, std::vector<std::string>* stack, Locations* loc) {
  std::error_code ec;
  std::string canon = fs::weakly_canonical(path, ec).string();
  if (ec) canon = path;
  std::string text = ReadFileToString(path, 16u << 20);
  FileReader reader(path);
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    ThrowInvalid(fmt::format("{}:{}:{}: invalid YAML: nested deeper than {} levels", path,
                             e.mark.line + 1, e.mark.column + 1, e.depth()));
  } catch (const YAML::ParserException& e) {
    ThrowInvalid(
        fmt::format("{}:{}:{}: invalid YAML: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const YAML::Exception& e) {
    ThrowInvalid(path + ": invalid YAML: " + e.what());
  }
  if (!root.IsMap())
    ThrowInvalid(reader.Where(root) + ": a recipe is a YAML map of keys (" + Join(KeysOf("")) +
                 "), got " + FileReader::Kind(root));
  reader.CheckKeys(root, "");
  stack->push_back(canon);

  Recipe r;
  if (YAML::Node ext = root["extends"]) {
    std::string base = reader.String(ext, "extends");
    if (base.empty()) reader.Fail(ext, "'extends' needs the name or path of a base recipe");
    // A path (with '/' or .yaml) is relative to this file; a bare name is a sibling file
    // first (user recipes extending their own base), then a shipped recipe.
    fs::path dir = fs::path(path).parent_path();
    std::string base_path;
    if (base.find('/') != std::string::npos || HasYamlExtension(base)) {
      fs::path p = fs::path(base).is_absolute() ? fs::path(base) : dir / base;
      if (!fs::is_regular_file(p, ec))
        reader.Fail(ext, "cannot find base recipe '" + p.string() + "'");
      base_path = p.string();
    } else if (fs::is_regular_file(dir / (base + ".yaml"), ec)) {
      base_path = (dir / (base + ".yaml")).string();
    } else {
      base_path = FindShipped(base);
      if (base_path.empty()) NoSuchRecipe(reader.Where(ext) + ": extends: ", base);
    }
    std::string base_canon = fs::weakly_canonical(base_path, ec).string();
    if (ec) base_canon = base_path;
    auto cycle_at = std::find(stack->begin(), stack->end(), base_canon);
    if (cycle_at != stack->end()) {
      std::vector<std::string> chain;
      for (auto it = cycle_at; it != stack->end(); ++it) chain.push_back(fs::path(*it).filename());
      chain.push_back(fs::path(base_canon).filename());
      reader.Fail(ext, "extends cycle: " + Join(chain, " -> "));
    }
    if (stack->size() >= 32) reader.Fail(ext, "extends chain deeper than 32 recipes");
    r = LoadFile(base_path, stack, loc);
    std::vector<std::string> chain = {base};
    chain.insert(chain.end(), r.extends_chain.begin(), r.extends_chain.end());
    r.extends_chain = chain;
  }
  reader.Apply(root, &r, loc);
  // name and description describe this file; they are not inherited.
  r.name = fs::path(path).stem().string();
  r.description.clear();
  if (YAML::Node n = root["name"]) r.name = reader.String(n, "name");
  if (YAML::Node n = root["description"]) r.description = reader.String(n, "description");
  if (r.name.empty()) reader.Fail(root["name"], "'name' must not be empty");
  r.path = path;
  stack->pop_back();
  return r;
}

// Checks that need the whole recipe, after every base has been applied.
void CheckWhole(const Recipe& r, const Locations& loc) {
  auto where = [&](const std::string& key) {
    auto it = loc.find(key);
    return it == loc.end() ? r.path : it->second;
  };
  const std::string& isa = r.target.isa;
  bool x86_isa = isa.rfind("avx", 0) == 0 || isa == "amx";
  if ((x86_isa && r.target.arch != "x86_64") || (isa == "neon" && r.target.arch != "arm64"))
    ThrowInvalid(where("target.isa") + ": 'target.isa' " + isa + " needs target.arch " +
                 (isa == "neon" ? "arm64" : "x86_64") + ", but the arch is " + r.target.arch +
                 " (set at " + where("target.arch") + ")");
  if (!r.exports.epk && !r.exports.onnx && !r.exports.pt)
    ThrowInvalid(where("export") + ": 'export' writes nothing: set at least one of epk, onnx, pt");
  const std::string& metric = r.evaluation.metric;
  if ((metric == "top1" || metric == "topk" || metric == "perplexity") &&
      r.evaluation.label.empty())
    ThrowInvalid(where("evaluation.metric") + ": metric " + r.evaluation.metric +
                 " needs 'evaluation.label' (the array of labels in the evaluation data)");
  // Keeping the fastest trial and accepting a slower one cannot both be meant.
  if (r.tuning.allow_slower && r.tuning.objective == "latency")
    ThrowInvalid(where("tuning.allow_slower") +
                 ": 'tuning.allow_slower: true' keeps trials slower "
                 "than the original, but 'tuning.objective' is latency (set at " +
                 where("tuning.objective") + "); remove one of them");
  std::vector<std::string> in_pipeline;
  for (const auto& s : r.pipeline)
    if (std::find(in_pipeline.begin(), in_pipeline.end(), s.pass) == in_pipeline.end())
      in_pipeline.push_back(s.pass);
  for (size_t i = 0; i < r.tuning.steps.size(); ++i) {
    const TuningStep& step = r.tuning.steps[i];
    for (size_t j = 0; j < step.overrides.size(); ++j) {
      const RecipeOverride& o = step.overrides[j];
      if (std::find(in_pipeline.begin(), in_pipeline.end(), o.pass) != in_pipeline.end()) continue;
      ThrowInvalid(where(fmt::format("tuning.steps[{}].set[{}]", i, j)) + ": tuning step " +
                   std::to_string(i + 1) + " ('" + step.name + "') sets '" + o.pass + "." +
                   o.option + "', but pass '" + o.pass + "' is not in the pipeline (" +
                   (in_pipeline.empty() ? "which is empty" : Join(in_pipeline)) + ")");
    }
  }
  // Every trial's pipeline must be valid as a whole (each override was checked alone).
  for (size_t n = 1; n <= r.tuning.steps.size(); ++n) {
    for (const auto& s : PipelineAfterTuning(r, n)) {
      try {
        passes::ParseOptions(FindCompressStep(s.pass)->info, s.options);
      } catch (const Error& err) {
        ThrowInvalid(where(fmt::format("tuning.steps[{}]", n - 1)) + ": after tuning step " +
                     std::to_string(n) + ": " + err.what());
      }
    }
  }
}

}  // namespace

std::vector<std::string> RecipeSearchDirs() { return SearchDirs(); }

std::vector<std::pair<std::string, std::string>> ShippedRecipes() {
  std::map<std::string, std::string> found;
  for (const auto& dir : SearchDirs()) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      std::string file = entry.path().filename().string();
      if (!entry.is_regular_file(ec) || !HasYamlExtension(file)) continue;
      found.emplace(entry.path().stem().string(), entry.path().string());  // first dir wins
    }
  }
  return {found.begin(), found.end()};
}

Recipe LoadRecipe(const std::string& name_or_path) {
  std::error_code ec;
  std::string path;
  if (fs::is_regular_file(name_or_path, ec)) {
    path = name_or_path;
  } else if (fs::exists(name_or_path, ec)) {
    ThrowInvalid("recipe '" + name_or_path + "' is not a file");
  } else if (name_or_path.find('/') != std::string::npos) {
    throw Error(ErrorCode::kIo, "cannot open recipe file '" + name_or_path + "'");
  } else {
    std::string name = name_or_path;
    if (HasYamlExtension(name)) name = fs::path(name).stem().string();
    path = FindShipped(name);
    if (path.empty()) NoSuchRecipe("", name_or_path);
  }
  std::vector<std::string> stack;
  Locations loc;
  Recipe r = LoadFile(path, &stack, &loc);
  CheckWhole(r, loc);
  return r;
}

std::vector<RecipeStep> PipelineAfterTuning(const Recipe& r, size_t n) {
  std::vector<RecipeStep> steps = r.pipeline;
  for (size_t i = 0; i < n && i < r.tuning.steps.size(); ++i) {
    for (const auto& o : r.tuning.steps[i].overrides) {
      for (auto& s : steps) {
        if (s.pass != o.pass) continue;
        bool set = false;
        for (auto& [k, v] : s.options)
          if (k == o.option) v = o.value, set = true;
        if (!set) s.options.emplace_back(o.option, o.value);
      }
    }
  }
  return steps;
}

uint64_t ParseMaxMemoryOption(const std::string& text) {
  if (text.empty()) return 0;
  int64_t v = 0;
  if (!ParseSize(text, &v) || v <= 0)
    throw Error(ErrorCode::kUsage,
                "--max-memory expects a size > 0 (\"4GiB\", \"512MB\", "
                "bytes), got '" +
                    text + "'");
  return static_cast<uint64_t>(v);
}

}  // namespace edgepress::tools
