// Applying one recipe file's sections on top of the values of its base (recipe_reader.h):
// maps merge key by key, lists (pipeline, tuning.steps) replace; each value is checked as
// it is read and its location kept for the whole-recipe checks in recipe.cc.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "ir/error.h"
#include "passes/registry.h"
#include "tools/compress/compress_distill.h"
#include "tools/compress/recipe_reader.h"

namespace edgepress::tools::recipe_detail {

namespace {
const std::vector<std::string> kArchs = {"x86_64", "arm64"};
const std::vector<std::string> kBackends = {"native", "torch"};
const std::vector<std::string> kIsas = {"auto",        "scalar", "avx2", "avx512",
                                        "avx512-vnni", "amx",    "neon"};
const std::vector<std::string> kCalibMethods = {"minmax", "percentile", "entropy", "mse"};
const std::vector<std::string> kMetrics = {"top1", "topk", "cosine", "nmse", "perplexity"};
const std::vector<std::string> kObjectives = {"size", "latency"};
}  // namespace

void FileReader::Apply(const YAML::Node& root, Recipe* r, Locations* loc) const {
  if (YAML::Node n = root["seed"]) ApplySeed(n, r);
  YAML::Node sec;
  if (Section(root, "target", &sec)) ApplyTarget(sec, r, loc);
  if (Section(root, "budgets", &sec)) ApplyBudgets(sec, r);
  if (YAML::Node n = root["pipeline"]) {
    EraseUnder(loc, "pipeline[");
    r->pipeline = Pipeline(n, loc);
  }
  if (Section(root, "calibration", &sec)) ApplyCalibration(sec, r);
  if (Section(root, "evaluation", &sec)) ApplyEvaluation(sec, r, loc);
  if (Section(root, "export", &sec)) {
    auto& x = r->exports;
    if (YAML::Node n = sec["epk"]) x.epk = Bool(n, "export.epk");
    if (YAML::Node n = sec["onnx"]) x.onnx = Bool(n, "export.onnx");
    if (YAML::Node n = sec["pt"]) x.pt = Bool(n, "export.pt");
    (*loc)["export"] = Where(root["export"]);
  }
  if (Section(root, "tuning", &sec)) ApplyTuning(sec, r, loc);
}

void FileReader::ApplySeed(const YAML::Node& n, Recipe* r) const {
  std::string s = Scalar(n, "seed", "an integer");
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || s[0] == '-' || errno || *end)
    Fail(n, "'seed' must be an integer >= 0, got '" + s + "'");
  r->seed = v;
}

void FileReader::ApplyTarget(const YAML::Node& sec, Recipe* r, Locations* loc) const {
  auto& t = r->target;
  if (YAML::Node n = sec["name"]) t.name = String(n, "target.name");
  if (YAML::Node n = sec["arch"]) {
    t.arch = Enum(n, "target.arch", kArchs,
                  {{"aarch64", "arm64"},
                   {"arm", "arm64"},
                   {"amd64", "x86_64"},
                   {"x86-64", "x86_64"},
                   {"x64", "x86_64"}});
    (*loc)["target.arch"] = Where(n);
  }
  if (YAML::Node n = sec["backend"]) t.backend = Enum(n, "target.backend", kBackends);
  if (YAML::Node n = sec["device"]) t.device = Enum(n, "target.device", {"cpu", "cuda"});
  if (YAML::Node n = sec["isa"]) {
    t.isa = Enum(n, "target.isa", kIsas);
    (*loc)["target.isa"] = Where(n);
  }
  if (YAML::Node n = sec["threads"]) t.threads = Int(n, "target.threads", 1, 1024);
  if (YAML::Node n = sec["memory_mb"]) t.memory_mb = Int(n, "target.memory_mb", 0);
}

void FileReader::ApplyBudgets(const YAML::Node& sec, Recipe* r) const {
  auto& b = r->budgets;
  // A null value removes a budget the base recipe set.
  auto opt = [&](const char* key, std::optional<double>* out, double min, bool exclusive,
                 double max = 1e300) {
    YAML::Node n = sec[key];
    if (!n) return;
    if (n.IsNull())
      out->reset();
    else
      *out = Float(n, std::string("budgets.") + key, min, exclusive, max);
  };
  opt("max_accuracy_drop", &b.max_accuracy_drop, 0, false);
  opt("max_accuracy_drop_relative", &b.max_accuracy_drop_relative, 0, false, 1);
  opt("max_latency_p50_ms", &b.max_latency_p50_ms, 0, true);
  opt("max_latency_p99_ms", &b.max_latency_p99_ms, 0, true);
  opt("max_size_ratio", &b.max_size_ratio, 0, true);
  opt("min_speedup", &b.min_speedup, 0, true);
  if (YAML::Node n = sec["max_size_bytes"]) {
    if (n.IsNull())
      b.max_size_bytes.reset();
    else
      b.max_size_bytes = Size(n, "budgets.max_size_bytes");
  }
}

void FileReader::ApplyCalibration(const YAML::Node& sec, Recipe* r) const {
  auto& c = r->calibration;
  if (YAML::Node n = sec["data"]) c.data = String(n, "calibration.data");
  if (YAML::Node n = sec["method"]) c.method = Enum(n, "calibration.method", kCalibMethods);
  if (YAML::Node n = sec["max_samples"]) c.max_samples = Samples(n, "calibration.max_samples");
  if (YAML::Node n = sec["layout"]) c.layout = Layout(n, "calibration.layout");
}

void FileReader::ApplyEvaluation(const YAML::Node& sec, Recipe* r, Locations* loc) const {
  auto& e = r->evaluation;
  if (YAML::Node n = sec["metric"]) {
    e.metric = Enum(n, "evaluation.metric", kMetrics,
                    {{"top-1", "top1"},
                     {"top_1", "top1"},
                     {"accuracy", "top1"},
                     {"top-k", "topk"},
                     {"top5", "topk"},
                     {"top-5", "topk"}});
    (*loc)["evaluation.metric"] = Where(n);
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

void FileReader::ApplyTuning(const YAML::Node& sec, Recipe* r, Locations* loc) const {
  auto& t = r->tuning;
  if (YAML::Node n = sec["max_trials"])
    t.max_trials = static_cast<int>(Int(n, "tuning.max_trials", 1, 10000));
  if (YAML::Node n = sec["max_minutes"]) t.max_minutes = Float(n, "tuning.max_minutes", 0, true);
  if (YAML::Node n = sec["objective"]) {
    t.objective = Enum(n, "tuning.objective", kObjectives);
    (*loc)["tuning.objective"] = Where(n);
  }
  if (YAML::Node n = sec["allow_slower"]) {
    t.allow_slower = Bool(n, "tuning.allow_slower");
    (*loc)["tuning.allow_slower"] = Where(n);
  }
  if (YAML::Node n = sec["steps"]) {
    EraseUnder(loc, "tuning.steps[");
    t.steps = Steps(n, loc);
  }
}

int64_t FileReader::Samples(const YAML::Node& n, const std::string& path) const {
  if (n.IsScalar() && (Lower(n.Scalar()) == "all" || n.Scalar() == "-1")) return -1;
  std::string s = Scalar(n, path, "a count or 'all'");
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || errno || *end || v < 1)
    Fail(n, "'" + path + "' must be a count >= 1 or 'all', got '" + s + "'");
  return v;
}

std::vector<RecipeStep> FileReader::Pipeline(const YAML::Node& seq, Locations* loc) const {
  std::vector<RecipeStep> steps;
  if (seq.IsNull()) return steps;
  if (!seq.IsSequence())
    Fail(seq,
         "'pipeline' must be a list of passes ('- pass-name' or "
         "'- pass-name: {option: value}'), got " +
             Kind(seq));
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
        Fail(item,
             "a pipeline step is '- pass-name' or '- pass-name: {option: value}'; this "
             "one has " +
                 std::to_string(item.size()) + " keys (" + Join(keys) +
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
      Fail(item,
           "a pipeline step is '- pass-name' or '- pass-name: {option: value}', got " + Kind(item));
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

std::vector<TuningStep> FileReader::Steps(const YAML::Node& seq, Locations* loc) const {
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
    if (!set)
      Fail(item, "tuning step " + std::to_string(steps.size() + 1) +
                     " has no 'set' (the options it changes, e.g. "
                     "'set: {quantize-static.keep-float: 1}')");
    if (!set.IsMap() || set.size() == 0)
      Fail(set,
           "'" + path + ".set' must be a non-empty map of pass.option: value, got " + Kind(set));
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
        Fail(kv.first, "'" + key + "' in '" + path +
                           ".set' must be pass.option (e.g. "
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

}  // namespace edgepress::tools::recipe_detail
