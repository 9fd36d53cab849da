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

namespace edgepress::tools {

namespace {

namespace fs = std::filesystem;

// The schema: the keys of each map. "" is the top level.
const std::vector<std::pair<std::string, std::vector<std::string>>>& Schema() {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> schema = {
      {"", {"name", "description", "extends", "seed", "target", "budgets", "pipeline",
            "calibration", "evaluation", "export", "tuning"}},
      {"target", {"name", "arch", "backend", "device", "isa", "threads", "memory_mb"}},
      {"budgets", {"max_accuracy_drop", "max_accuracy_drop_relative", "max_latency_p50_ms",
                   "max_latency_p99_ms", "max_size_bytes", "max_size_ratio", "min_speedup"}},
      {"calibration", {"data", "method", "max_samples", "layout"}},
      {"evaluation", {"metric", "k", "data", "input", "label", "output", "max_samples",
                      "latency_runs", "warmup_runs", "layout"}},
      {"export", {"epk", "onnx", "pt"}},
      {"tuning", {"max_trials", "max_minutes", "objective", "allow_slower", "steps"}},
      {"tuning.steps[]", {"name", "set"}},
  };
  return schema;
}
const std::vector<std::string>& KeysOf(const std::string& section) {
  for (const auto& [name, keys] : Schema())
    if (name == section) return keys;
  throw std::logic_error("recipe schema has no section '" + section + "'");
}

const std::vector<std::string> kArchs = {"x86_64", "arm64"};
const std::vector<std::string> kBackends = {"native", "torch"};
const std::vector<std::string> kIsas = {"auto", "scalar", "avx2", "avx512", "avx512-vnni",
                                        "amx", "neon"};
const std::vector<std::string> kCalibMethods = {"minmax", "percentile", "entropy", "mse"};
const std::vector<std::string> kMetrics = {"top1", "topk", "cosine", "nmse", "perplexity"};
const std::vector<std::string> kObjectives = {"size", "latency"};

// Passes the roadmap names that this version does not have yet; a recipe naming one gets
// "does not exist yet (planned)" instead of a guess at a similar name. Only consulted for
// names the pass registry lacks, so a pass that lands there is valid at once.
bool IsPlannedPass(const std::string& name) {
  auto starts = [&](const char* p) { return name.rfind(p, 0) == 0; };
  return name == "prune-structured" || starts("distill") || starts("sparsify") ||
         name == "qat" || name == "quantize-aware-training";
}

std::string Join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "1500000", "1.5MB", "2 MiB", "500kB", "64k": decimal units are powers of 1000, *iB of 1024.
bool ParseSize(const std::string& text, int64_t* out) {
  std::string s = Trim(text);
  if (s.empty() || s[0] == '-' || s[0] == '+') return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (errno || end == s.c_str() || !std::isfinite(v) || v < 0) return false;
  std::string unit = Lower(Trim(end));
  static const std::vector<std::pair<std::string, double>> units = {
      {"", 1},           {"b", 1},
      {"k", 1e3},        {"kb", 1e3},          {"ki", 1024.0},   {"kib", 1024.0},
      {"m", 1e6},        {"mb", 1e6},          {"mi", 1048576.0}, {"mib", 1048576.0},
      {"g", 1e9},        {"gb", 1e9},          {"gi", 1073741824.0}, {"gib", 1073741824.0},
  };
  for (const auto& [name, mult] : units) {
    if (unit != name) continue;
    double bytes = std::round(v * mult);
    if (bytes > 4.0e18) return false;
    *out = static_cast<int64_t>(bytes);
    return true;
  }
  return false;
}

// Where each applied value came from ("file:line:col"), by key path ("target.isa",
// "pipeline[2]", "tuning.steps[0].set[1]"), for the checks that run after extends.
using Locations = std::map<std::string, std::string>;

void EraseUnder(Locations* loc, const std::string& prefix) {
  for (auto it = loc->lower_bound(prefix); it != loc->end() && it->first.rfind(prefix, 0) == 0;)
    it = loc->erase(it);
}

class FileReader {
 public:
  explicit FileReader(std::string file) : file_(std::move(file)) {}

  std::string Where(const YAML::Node& n) const {
    YAML::Mark m = n.Mark();
    if (m.is_null()) return file_;
    return fmt::format("{}:{}:{}", file_, m.line + 1, m.column + 1);
  }
  [[noreturn]] void Fail(const YAML::Node& n, const std::string& msg) const {
    ThrowInvalid(Where(n) + ": " + msg);
  }

  // Every key of `map` must be in the schema's section; no key twice.
  void CheckKeys(const YAML::Node& map, const std::string& section) const {
    const std::vector<std::string>& keys = KeysOf(section);
    std::set<std::string> seen;
    std::string in = section.empty() ? "" : " in '" + section + "'";
    for (const auto& kv : map) {
      if (!kv.first.IsScalar()) Fail(kv.first, "a key" + in + " must be a plain name");
      std::string k = kv.first.Scalar();
      if (!seen.insert(k).second) Fail(kv.first, "key '" + k + "'" + in + " given twice");
      if (std::find(keys.begin(), keys.end(), k) != keys.end()) continue;
      std::string hint;
      std::string near = passes::Nearest(k, keys);
      if (!near.empty()) hint = " (did you mean '" + near + "'?)";
      for (const auto& [other, other_keys] : Schema()) {  // a key at the wrong level
        if (!hint.empty() || other == section || other.find('[') != std::string::npos) continue;
        if (std::find(other_keys.begin(), other_keys.end(), k) != other_keys.end())
          hint = " (did you mean '" + (other.empty() ? k : other + "." + k) + "'? '" + k +
                 "' belongs " + (other.empty() ? "at the top level" : "in '" + other + "'") +
                 ")";
      }
      if (hint.empty()) hint = "; valid keys: " + Join(keys);
      Fail(kv.first, "unknown key '" + k + "'" + in + hint);
    }
  }

  // A section map; null (an empty `budgets:`) counts as empty.
  bool Section(const YAML::Node& root, const std::string& key, YAML::Node* out) const {
    YAML::Node n = root[key];
    if (!n || n.IsNull()) return false;
    if (!n.IsMap()) Fail(n, "'" + key + "' must be a map of keys, got " + Kind(n));
    CheckKeys(n, key);
    *out = n;
    return true;
  }

  static std::string Kind(const YAML::Node& n) {
    if (n.IsMap()) return "a map";
    if (n.IsSequence()) return "a list";
    if (n.IsNull()) return "nothing";
    return "'" + n.Scalar() + "'";
  }

  std::string Scalar(const YAML::Node& n, const std::string& path, const char* what) const {
    if (!n.IsScalar()) Fail(n, "'" + path + "' must be " + what + ", got " + Kind(n));
    // YAML allows only printable characters (plus tab and line breaks); yaml-cpp passes
    // others through, and a NUL would cut RecipeToYaml's output short. A carriage return
    // only reaches a scalar alone (CR LF is a line break, also inside block scalars) or
    // escaped, and yaml-cpp's emitter writes it raw, where it reads back as a line end.
    for (unsigned char c : n.Scalar()) {
      if (c == '\r')
        Fail(n, "'" + path + "' contains a carriage return (0x0d) that is not part of a "
                    "CR LF line break");
      if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
        Fail(n, "'" + path + "' contains the control character " + fmt::format("0x{:02x}", c) +
                    " (not allowed in YAML)");
    }
    return n.Scalar();
  }
  std::string String(const YAML::Node& n, const std::string& path) const {
    if (n.IsNull()) return "";
    return Scalar(n, path, "a string");
  }
  bool Bool(const YAML::Node& n, const std::string& path) const {
    std::string s = Lower(Scalar(n, path, "true or false"));
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
    Fail(n, "'" + path + "' must be true or false, got '" + n.Scalar() + "'");
  }
  int64_t Int(const YAML::Node& n, const std::string& path, int64_t min,
              int64_t max = INT64_MAX) const {
    std::string s = Scalar(n, path, "an integer");
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || errno || *end)
      Fail(n, "'" + path + "' must be an integer, got '" + s + "'");
    if (v < min || v > max)
      Fail(n, "'" + path + "' must be " +
                  (max == INT64_MAX ? ">= " + std::to_string(min)
                                    : "in [" + std::to_string(min) + ", " +
                                          std::to_string(max) + "]") +
                  ", got " + s);
    return v;
  }
  // A number in (min, max] when min_exclusive, else [min, max].
  double Float(const YAML::Node& n, const std::string& path, double min, bool min_exclusive,
               double max = 1e300) const {
    std::string s = Scalar(n, path, "a number");
    errno = 0;
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || errno || *end || !std::isfinite(v))
      Fail(n, "'" + path + "' must be a number, got '" + s + "'");
    if (min_exclusive ? v <= min : v < min)
      Fail(n, fmt::format("'{}' must be {} {}, got {}", path, min_exclusive ? ">" : ">=", min,
                          s));
    if (v > max) Fail(n, fmt::format("'{}' must be <= {}, got {}", path, max, s));
    return v;
  }
  std::string Enum(const YAML::Node& n, const std::string& path,
                   const std::vector<std::string>& choices,
                   const std::map<std::string, std::string>& aliases = {}) const {
    std::string s = Scalar(n, path, "a name");
    if (std::find(choices.begin(), choices.end(), s) != choices.end()) return s;
    std::string near = passes::Nearest(s, choices);
    auto alias = aliases.find(Lower(s));
    if (alias != aliases.end()) near = alias->second;
    Fail(n, "'" + path + "' must be one of " + Join(choices) + ", got '" + s + "'" +
                (near.empty() ? "" : " (did you mean '" + near + "'?)"));
  }
  // `layout: {input_name: batched|stacked|constant|auto}` as "name=kind" specs.
  std::vector<std::string> Layout(const YAML::Node& n, const std::string& path) const {
    if (!n.IsMap()) Fail(n, "'" + path + "' must be a map of input name to batched, stacked, constant or auto, got " + Kind(n));
    std::vector<std::string> specs;
    for (const auto& kv : n) {
      std::string name = Scalar(kv.first, path, "an input name");
      specs.push_back(name + "=" + Enum(kv.second, path + "." + name,
                                        {"batched", "stacked", "constant", "auto"}));
    }
    return specs;
  }
  int64_t Size(const YAML::Node& n, const std::string& path) const {
    std::string s = Scalar(n, path, "a size");
    int64_t v = 0;
    if (!ParseSize(s, &v))
      Fail(n, "'" + path + "' must be a size in bytes (1500000, \"1.5MB\", \"2 MiB\", "
                           "\"500kB\"), got '" + s + "'");
    if (v <= 0) Fail(n, "'" + path + "' must be > 0 bytes, got '" + s + "'");
    return v;
  }

  // The text form of an option value: scalars as written, lists joined with ','.
  std::string OptionText(const YAML::Node& n, const std::string& what) const {
    if (n.IsScalar()) return n.Scalar();
    if (n.IsSequence()) {
      std::vector<std::string> items;
      for (const auto& item : n) {
        if (!item.IsScalar()) Fail(item, what + ": list items must be plain values");
        items.push_back(item.Scalar());
      }
      return Join(items, ",");
    }
    Fail(n, what + " needs a value (a number, name, true/false or a list), got " + Kind(n));
  }

  // The pass named by `n`, or an error that says why there is none.
  const passes::PassEntry& Pass(const YAML::Node& n, const std::string& name) const {
    if (const passes::PassEntry* e = FindCompressStep(name)) return *e;
    if (IsPlannedPass(name))
      Fail(n, "pass '" + name + "' does not exist yet (planned); `edgepress passes` lists the "
              "passes this version has");
    std::vector<std::string> names;
    for (const auto& e : passes::AllPasses()) names.push_back(e.info.name);
    names.push_back("distill");  // the compress step (tools/compress/compress_distill.h)
    std::string near = passes::Nearest(name, names);
    Fail(n, "unknown pass '" + name + "'" + (near.empty() ? "" : " (did you mean '" + near + "'?)") +
                "; `edgepress passes` lists the passes this version has");
  }

  // Checks one option of a pass: its name (key node) and its value (value node).
  void CheckOption(const passes::PassEntry& e, const YAML::Node& key, const std::string& option,
                   const YAML::Node& value, const std::string& text) const {
    std::vector<std::string> names;
    for (const auto& o : e.info.options) names.push_back(o.name);
    if (std::find(names.begin(), names.end(), option) == names.end()) {
      std::string near = passes::Nearest(option, names);
      Fail(key, "pass '" + e.info.name + "' has no option '" + option + "'" +
                    (near.empty() ? (names.empty() ? " (it has no options)"
                                                   : "; its options: " + Join(names))
                                  : " (did you mean '" + near + "'?)"));
    }
    try {
      passes::ParseOptions(e.info, {{option, text}});
    } catch (const Error& err) {
      Fail(value, err.what());
    }
  }

  void Apply(const YAML::Node& root, Recipe* r, Locations* loc) const {
    auto note = [&](const std::string& path, const YAML::Node& n) { (*loc)[path] = Where(n); };
    if (YAML::Node n = root["seed"]) {
      std::string s = Scalar(n, "seed", "an integer");
      errno = 0;
      char* end = nullptr;
      unsigned long long v = std::strtoull(s.c_str(), &end, 10);
      if (s.empty() || s[0] == '-' || errno || *end)
        Fail(n, "'seed' must be an integer >= 0, got '" + s + "'");
      r->seed = v;
    }
    YAML::Node sec;
    if (Section(root, "target", &sec)) {
      auto& t = r->target;
      if (YAML::Node n = sec["name"]) t.name = String(n, "target.name");
      if (YAML::Node n = sec["arch"]) {
        t.arch = Enum(n, "target.arch", kArchs,
                      {{"aarch64", "arm64"}, {"arm", "arm64"}, {"amd64", "x86_64"},
                       {"x86-64", "x86_64"}, {"x64", "x86_64"}});
        note("target.arch", n);
      }
      if (YAML::Node n = sec["backend"]) t.backend = Enum(n, "target.backend", kBackends);
      if (YAML::Node n = sec["device"]) t.device = Enum(n, "target.device", {"cpu", "cuda"});
      if (YAML::Node n = sec["isa"]) {
        t.isa = Enum(n, "target.isa", kIsas);
        note("target.isa", n);
      }
      if (YAML::Node n = sec["threads"]) t.threads = Int(n, "target.threads", 1, 1024);
      if (YAML::Node n = sec["memory_mb"]) t.memory_mb = Int(n, "target.memory_mb", 0);
    }
    if (Section(root, "budgets", &sec)) {
      auto& b = r->budgets;
      // A null value removes a budget the base recipe set.
      auto opt = [&](const char* key, std::optional<double>* out, double min, bool exclusive,
                     double max = 1e300) {
        YAML::Node n = sec[key];
        if (!n) return;
        if (n.IsNull()) out->reset();
        else *out = Float(n, std::string("budgets.") + key, min, exclusive, max);
      };
      opt("max_accuracy_drop", &b.max_accuracy_drop, 0, false);
      opt("max_accuracy_drop_relative", &b.max_accuracy_drop_relative, 0, false, 1);
      opt("max_latency_p50_ms", &b.max_latency_p50_ms, 0, true);
      opt("max_latency_p99_ms", &b.max_latency_p99_ms, 0, true);
      opt("max_size_ratio", &b.max_size_ratio, 0, true);
      opt("min_speedup", &b.min_speedup, 0, true);
      if (YAML::Node n = sec["max_size_bytes"]) {
        if (n.IsNull()) b.max_size_bytes.reset();
        else b.max_size_bytes = Size(n, "budgets.max_size_bytes");
      }
    }
    if (YAML::Node n = root["pipeline"]) {
      EraseUnder(loc, "pipeline[");
      r->pipeline = Pipeline(n, loc);
    }
    if (Section(root, "calibration", &sec)) {
      auto& c = r->calibration;
      if (YAML::Node n = sec["data"]) c.data = String(n, "calibration.data");
      if (YAML::Node n = sec["method"]) c.method = Enum(n, "calibration.method", kCalibMethods);
      if (YAML::Node n = sec["max_samples"]) c.max_samples = Samples(n, "calibration.max_samples");
      if (YAML::Node n = sec["layout"]) c.layout = Layout(n, "calibration.layout");
    }
    if (Section(root, "evaluation", &sec)) {
      auto& e = r->evaluation;
      if (YAML::Node n = sec["metric"]) {
        e.metric = Enum(n, "evaluation.metric", kMetrics,
                        {{"top-1", "top1"}, {"top_1", "top1"}, {"accuracy", "top1"},
                         {"top-k", "topk"}, {"top5", "topk"}, {"top-5", "topk"}});
        note("evaluation.metric", n);
      }
      if (YAML::Node n = sec["k"]) e.k = static_cast<int>(Int(n, "evaluation.k", 1, 1000000));
      if (YAML::Node n = sec["data"]) e.data = String(n, "evaluation.data");
      if (YAML::Node n = sec["input"]) e.input = String(n, "evaluation.input");
      if (YAML::Node n = sec["label"]) e.label = String(n, "evaluation.label");
      if (YAML::Node n = sec["output"]) e.output = String(n, "evaluation.output");
      if (YAML::Node n = sec["max_samples"]) e.max_samples = Samples(n, "evaluation.max_samples");
      if (YAML::Node n = sec["layout"]) e.layout = Layout(n, "evaluation.layout");
      if (YAML::Node n = sec["latency_runs"])
        e.latency_runs = static_cast<int>(Int(n, "evaluation.latency_runs", 1, 1000000));
      if (YAML::Node n = sec["warmup_runs"])
        e.warmup_runs = static_cast<int>(Int(n, "evaluation.warmup_runs", 0, 1000000));
    }
    if (Section(root, "export", &sec)) {
      auto& x = r->exports;
      if (YAML::Node n = sec["epk"]) x.epk = Bool(n, "export.epk");
      if (YAML::Node n = sec["onnx"]) x.onnx = Bool(n, "export.onnx");
      if (YAML::Node n = sec["pt"]) x.pt = Bool(n, "export.pt");
      note("export", root["export"]);
    }
    if (Section(root, "tuning", &sec)) {
      auto& t = r->tuning;
      if (YAML::Node n = sec["max_trials"])
        t.max_trials = static_cast<int>(Int(n, "tuning.max_trials", 1, 10000));
      if (YAML::Node n = sec["max_minutes"]) t.max_minutes = Float(n, "tuning.max_minutes", 0, true);
      if (YAML::Node n = sec["objective"]) {
        t.objective = Enum(n, "tuning.objective", kObjectives);
        note("tuning.objective", n);
      }
      if (YAML::Node n = sec["allow_slower"]) {
        t.allow_slower = Bool(n, "tuning.allow_slower");
        note("tuning.allow_slower", n);
      }
      if (YAML::Node n = sec["steps"]) {
        EraseUnder(loc, "tuning.steps[");
        t.steps = Steps(n, loc);
      }
    }
  }

 private:
  int64_t Samples(const YAML::Node& n, const std::string& path) const {
    if (n.IsScalar() && (Lower(n.Scalar()) == "all" || n.Scalar() == "-1")) return -1;
    std::string s = Scalar(n, path, "a count or 'all'");
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || errno || *end || v < 1)
      Fail(n, "'" + path + "' must be a count >= 1 or 'all', got '" + s + "'");
    return v;
  }

  std::vector<RecipeStep> Pipeline(const YAML::Node& seq, Locations* loc) const {
    std::vector<RecipeStep> steps;
    if (seq.IsNull()) return steps;
    if (!seq.IsSequence())
      Fail(seq, "'pipeline' must be a list of passes ('- pass-name' or "
                "'- pass-name: {option: value}'), got " + Kind(seq));
    for (const auto& item : seq) {
      RecipeStep step;
      YAML::Node name_node = item;
      YAML::Node options;
      if (item.IsScalar()) {
        step.pass = item.Scalar();
      } else if (item.IsMap()) {
        if (item.size() == 0) Fail(item, "an empty map is not a pipeline step; write '- pass-name'");
        if (item.size() != 1) {
          std::vector<std::string> keys;
          for (const auto& kv : item) keys.push_back("'" + kv.first.as<std::string>("?") + "'");
          Fail(item, "a pipeline step is '- pass-name' or '- pass-name: {option: value}'; this "
                     "one has " + std::to_string(item.size()) + " keys (" + Join(keys) +
                     "): indent the options below the pass name");
        }
        auto kv = *item.begin();
        name_node = kv.first;
        if (!name_node.IsScalar()) Fail(name_node, "a pass name must be a plain name");
        step.pass = name_node.Scalar();
        options = kv.second;
        if (options && !options.IsNull() && !options.IsMap())
          Fail(options, "the options of pass '" + step.pass +
                            "' must be a map of option: value, got " + Kind(options));
      } else {
        Fail(item, "a pipeline step is '- pass-name' or '- pass-name: {option: value}', got " +
                       Kind(item));
      }
      const passes::PassEntry& e = Pass(name_node, step.pass);
      if (options && options.IsMap()) {
        std::set<std::string> seen;
        for (const auto& kv : options) {
          if (!kv.first.IsScalar()) Fail(kv.first, "an option name must be a plain name");
          std::string k = kv.first.Scalar();
          if (!seen.insert(k).second)
            Fail(kv.first, "option '" + k + "' of pass '" + step.pass + "' given twice");
          std::string v = OptionText(kv.second, "option '" + k + "' of pass '" + step.pass + "'");
          CheckOption(e, kv.first, k, kv.second, v);
          step.options.emplace_back(k, v);
        }
      }
      (*loc)["pipeline[" + std::to_string(steps.size()) + "]"] = Where(name_node);
      steps.push_back(std::move(step));
    }
    return steps;
  }

  // steps:
  //   - name: keep the most sensitive layer in float
  //     set: {quantize-static.keep-float: 1}          # pass.option: value
  //   - set: {quantize-static: {method: entropy}}      # or pass: {option: value}
  std::vector<TuningStep> Steps(const YAML::Node& seq, Locations* loc) const {
    std::vector<TuningStep> steps;
    if (seq.IsNull()) return steps;
    if (!seq.IsSequence()) Fail(seq, "'tuning.steps' must be a list, got " + Kind(seq));
    for (const auto& item : seq) {
      std::string path = "tuning.steps[" + std::to_string(steps.size()) + "]";
      if (!item.IsMap())
        Fail(item, "a tuning step is a map with 'set' (and optionally 'name'), got " + Kind(item));
      CheckKeys(item, "tuning.steps[]");
      TuningStep step;
      YAML::Node set = item["set"];
      if (!set) Fail(item, "tuning step " + std::to_string(steps.size() + 1) +
                               " has no 'set' (the options it changes, e.g. "
                               "'set: {quantize-static.keep-float: 1}')");
      if (!set.IsMap() || set.size() == 0)
        Fail(set, "'" + path + ".set' must be a non-empty map of pass.option: value, got " +
                      Kind(set));
      auto add = [&](const YAML::Node& where, const std::string& pass, const YAML::Node& opt_key,
                     const std::string& option, const YAML::Node& value) {
        const passes::PassEntry& e = Pass(where, pass);
        std::string text = OptionText(value, "'" + pass + "." + option + "'");
        CheckOption(e, opt_key, option, value, text);
        for (const auto& o : step.overrides)
          if (o.pass == pass && o.option == option)
            Fail(opt_key, "tuning step sets '" + pass + "." + option + "' twice");
        (*loc)[path + ".set[" + std::to_string(step.overrides.size()) + "]"] = Where(where);
        step.overrides.push_back({pass, option, text});
      };
      for (const auto& kv : set) {
        if (!kv.first.IsScalar()) Fail(kv.first, "a key of 'set' must be pass.option");
        std::string key = kv.first.Scalar();
        size_t dot = key.find('.');
        if (dot != std::string::npos) {
          add(kv.first, key.substr(0, dot), kv.first, key.substr(dot + 1), kv.second);
        } else if (kv.second.IsMap()) {
          for (const auto& ov : kv.second) {
            if (!ov.first.IsScalar()) Fail(ov.first, "an option name must be a plain name");
            add(kv.first, key, ov.first, ov.first.Scalar(), ov.second);
          }
        } else {
          Fail(kv.first, "'" + key + "' in '" + path + ".set' must be pass.option (e.g. "
                         "'quantize-static.keep-float: 1') or pass: {option: value}");
        }
      }
      if (YAML::Node n = item["name"]) step.name = String(n, path + ".name");
      if (step.name.empty()) {
        for (const auto& o : step.overrides)
          step.name += (step.name.empty() ? "" : ", ") + o.pass + "." + o.option + "=" + o.value;
      }
      (*loc)[path] = Where(item);
      steps.push_back(std::move(step));
    }
    return steps;
  }

  std::string file_;
};

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
  std::string shipped = names.empty()
                            ? "no shipped recipes were found (set EDGEPRESS_RECIPES_DIR)"
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
    ThrowInvalid(fmt::format("{}:{}:{}: invalid YAML: {}", path, e.mark.line + 1,
                             e.mark.column + 1, e.msg));
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
      if (!fs::is_regular_file(p, ec)) reader.Fail(ext, "cannot find base recipe '" + p.string() + "'");
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
    ThrowInvalid(where("tuning.allow_slower") + ": 'tuning.allow_slower: true' keeps trials slower "
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
      if (std::find(in_pipeline.begin(), in_pipeline.end(), o.pass) != in_pipeline.end())
        continue;
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

std::string Num(double v) { return fmt::format("{}", v); }
std::string Samples(int64_t n) { return n < 0 ? "all" : std::to_string(n); }

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

namespace {
void EmitLayout(YAML::Emitter& out, const std::vector<std::string>& specs) {
  if (specs.empty()) return;
  out << YAML::Key << "layout" << YAML::Value << YAML::BeginMap;
  for (const std::string& spec : specs) {
    size_t eq = spec.find('=');
    out << YAML::Key << spec.substr(0, eq) << YAML::Value << spec.substr(eq + 1);
  }
  out << YAML::EndMap;
}
}  // namespace

std::string RecipeToYaml(const Recipe& r) {
  YAML::Emitter out;
  out.SetIndent(2);
  // Lists of a pass's list-typed options are written as YAML lists again.
  auto option_value = [&](const std::string& pass, const std::string& option,
                          const std::string& value) {
    const passes::PassEntry* e = FindCompressStep(pass);
    bool is_list = false;
    if (e)
      for (const auto& o : e->info.options)
        is_list |= o.name == option && o.type == passes::OptionInfo::Type::kStringList;
    if (!is_list) {
      out << value;
      return;
    }
    out << YAML::Flow << YAML::BeginSeq;
    std::string cur;
    for (char c : value + ",") {
      if (c == ',' || c == '|') {
        if (!cur.empty()) out << cur;
        cur.clear();
      } else {
        cur += c;
      }
    }
    out << YAML::EndSeq;
  };
  std::string header = "edgepress recipe '" + r.name + "', resolved";
  if (!r.extends_chain.empty()) header += " (extends " + Join(r.extends_chain, " <- ") + ")";
  out << YAML::Comment(header);
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << r.name;
  out << YAML::Key << "description" << YAML::Value << r.description;
  out << YAML::Key << "seed" << YAML::Value << r.seed;

  out << YAML::Key << "target" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << r.target.name;
  out << YAML::Key << "arch" << YAML::Value << r.target.arch;
  out << YAML::Key << "backend" << YAML::Value << r.target.backend;
  out << YAML::Key << "device" << YAML::Value << r.target.device;
  out << YAML::Key << "isa" << YAML::Value << r.target.isa;
  out << YAML::Key << "threads" << YAML::Value << r.target.threads;
  out << YAML::Key << "memory_mb" << YAML::Value << r.target.memory_mb;
  out << YAML::EndMap;

  out << YAML::Key << "budgets" << YAML::Value << YAML::BeginMap;
  const auto& b = r.budgets;
  auto budget = [&](const char* key, const std::optional<double>& v) {
    if (v) out << YAML::Key << key << YAML::Value << Num(*v);
  };
  budget("max_accuracy_drop", b.max_accuracy_drop);
  budget("max_accuracy_drop_relative", b.max_accuracy_drop_relative);
  budget("max_latency_p50_ms", b.max_latency_p50_ms);
  budget("max_latency_p99_ms", b.max_latency_p99_ms);
  if (b.max_size_bytes) out << YAML::Key << "max_size_bytes" << YAML::Value << *b.max_size_bytes;
  budget("max_size_ratio", b.max_size_ratio);
  budget("min_speedup", b.min_speedup);
  out << YAML::EndMap;

  out << YAML::Key << "pipeline" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : r.pipeline) {
    if (s.options.empty()) {
      out << s.pass;
      continue;
    }
    out << YAML::BeginMap << YAML::Key << s.pass << YAML::Value << YAML::Flow << YAML::BeginMap;
    for (const auto& [k, v] : s.options) {
      out << YAML::Key << k << YAML::Value;
      option_value(s.pass, k, v);
    }
    out << YAML::EndMap << YAML::EndMap;
  }
  out << YAML::EndSeq;

  out << YAML::Key << "calibration" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "data" << YAML::Value << r.calibration.data;
  out << YAML::Key << "method" << YAML::Value << r.calibration.method;
  out << YAML::Key << "max_samples" << YAML::Value << Samples(r.calibration.max_samples);
  EmitLayout(out, r.calibration.layout);
  out << YAML::EndMap;

  const auto& e = r.evaluation;
  out << YAML::Key << "evaluation" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "metric" << YAML::Value << e.metric;
  out << YAML::Key << "k" << YAML::Value << e.k;
  out << YAML::Key << "data" << YAML::Value << e.data;
  out << YAML::Key << "input" << YAML::Value << e.input;
  out << YAML::Key << "label" << YAML::Value << e.label;
  out << YAML::Key << "output" << YAML::Value << e.output;
  out << YAML::Key << "max_samples" << YAML::Value << Samples(e.max_samples);
  out << YAML::Key << "latency_runs" << YAML::Value << e.latency_runs;
  out << YAML::Key << "warmup_runs" << YAML::Value << e.warmup_runs;
  EmitLayout(out, e.layout);
  out << YAML::EndMap;

  out << YAML::Key << "export" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "epk" << YAML::Value << r.exports.epk;
  out << YAML::Key << "onnx" << YAML::Value << r.exports.onnx;
  out << YAML::Key << "pt" << YAML::Value << r.exports.pt;
  out << YAML::EndMap;

  const auto& t = r.tuning;
  out << YAML::Key << "tuning" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "max_trials" << YAML::Value << t.max_trials;
  out << YAML::Key << "max_minutes" << YAML::Value << Num(t.max_minutes);
  out << YAML::Key << "objective" << YAML::Value << t.objective;
  out << YAML::Key << "allow_slower" << YAML::Value << t.allow_slower;
  out << YAML::Key << "steps" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : t.steps) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << s.name;
    out << YAML::Key << "set" << YAML::Value << YAML::Flow << YAML::BeginMap;
    for (const auto& o : s.overrides) {
      out << YAML::Key << o.pass + "." + o.option << YAML::Value;
      option_value(o.pass, o.option, o.value);
    }
    out << YAML::EndMap << YAML::EndMap;
  }
  out << YAML::EndSeq;
  out << YAML::EndMap;

  out << YAML::EndMap;
  // The emitter stops at the first value it cannot write; never hand out half a recipe.
  if (!out.good())
    throw Error(ErrorCode::kInternal, "recipe '" + r.name + "' cannot be written as YAML: " +
                                          out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

uint64_t ParseMaxMemoryOption(const std::string& text) {
  if (text.empty()) return 0;
  int64_t v = 0;
  if (!ParseSize(text, &v) || v <= 0)
    throw Error(ErrorCode::kUsage, "--max-memory expects a size > 0 (\"4GiB\", \"512MB\", "
                                   "bytes), got '" + text + "'");
  return static_cast<uint64_t>(v);
}

}  // namespace edgepress::tools
