// The compress engine. Trials: trial 0 runs the recipe's pipeline as written; each
// tuning step then adds its option overrides to those of the steps before it, and a
// trial runs only when its resolved pipeline differs from every trial run so far and no
// trial has met every budget yet (steps are fallbacks; with objective latency every step
// runs). Every trial is exported, evaluated and checked against the budgets, and its
// latency is measured interleaved with the original's: unless the recipe sets
// tuning.allow_slower, a trial slower than the original beyond that measurement's noise
// misses the implicit budget not_slower_than_original. The smallest (objective size) or
// fastest (objective latency) trial that meets every budget is kept, or, when none does,
// the one with the fewest misses (then the smallest relative miss), with exit 3.
//
// Determinism: passes get the seed and the thread count; the .epk metadata and
// manifest.json hold no timings, so the same inputs give byte-identical artifacts.
#include "tools/compress.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "calibrate/dataset.h"
#include "eval/latency.h"
#include "eval/latency_compare.h"
#include "eval/layer_compare.h"
#include "eval/metrics.h"
#include "formats/npy/npy.h"
#include "ir/error.h"
#include "ir/file_util.h"
#include "ir/sha256.h"
#include "passes/prune_util.h"
#include "passes/registry.h"
#include "runtime/session.h"
#include "tools/backend.h"
#include "tools/compress_choice.h"
#include "tools/compress_distill.h"
#include "tools/model_io.h"
#include "tools/progress.h"
#include "tools/recipe.h"

namespace edgepress::tools {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;
using Steps = std::vector<passes::PipelineStep>;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// Bytes of an ONNX model including its external data files: the "location" entries of
// TensorProto.external_data (StringStringEntryProto{key=1:"location", value=2}) are found
// in the serialized bytes, and each distinct file next to the model is counted once.
int64_t ModelBytes(const std::string& path) {
  int64_t total = static_cast<int64_t>(FileSize(path));
  if (ModelFormatName(path) != "ONNX") return total;
  const std::string bytes = ReadFileToString(path);
  const std::string key("\x0a\x08location\x12", 11);
  const std::string dir = fs::path(path).parent_path().string();
  std::set<std::string> seen;
  for (size_t at = bytes.find(key); at != std::string::npos; at = bytes.find(key, at + 1)) {
    size_t p = at + key.size();
    uint64_t len = 0;
    int shift = 0;
    while (p < bytes.size() && shift < 35) {
      uint8_t b = static_cast<uint8_t>(bytes[p++]);
      len |= static_cast<uint64_t>(b & 0x7f) << shift;
      shift += 7;
      if (!(b & 0x80)) break;
    }
    if (len == 0 || len > 4096 || p + len > bytes.size()) continue;
    std::string loc = bytes.substr(p, len);
    if (!seen.insert(loc).second) continue;
    std::string file = (dir.empty() ? fs::path(loc) : fs::path(dir) / loc).string();
    if (FileExists(file)) total += static_cast<int64_t>(FileSize(file));
  }
  return total;
}

std::string StepsText(const Steps& steps) {
  std::string s;
  for (const auto& st : steps) {
    s += (s.empty() ? "" : ",") + st.pass;
    if (st.options.empty()) continue;
    s += "{";
    for (size_t i = 0; i < st.options.size(); ++i)
      s += (i ? "," : "") + st.options[i].first + "=" + st.options[i].second;
    s += "}";
  }
  return s;
}

// Options as resolved by the pass (defaults filled in), to tell whether two pipelines
// differ.
std::vector<std::vector<std::pair<std::string, std::string>>> Resolved(const Steps& steps) {
  std::vector<std::vector<std::pair<std::string, std::string>>> out;
  for (const auto& st : steps) {
    const passes::PassEntry* e = FindCompressStep(st.pass);
    if (!e) passes::CreatePass(st.pass, {});  // throws "unknown pass ... did you mean"
    out.push_back(passes::ParseOptions(e->info, st.options).values());
  }
  return out;
}

Steps ApplyOverrides(Steps steps, const std::vector<eval::Override>& overrides) {
  for (const auto& o : overrides) {
    bool found = false;
    for (auto& st : steps) {
      if (st.pass != o.pass) continue;
      found = true;
      bool set = false;
      for (auto& kv : st.options)
        if (kv.first == o.option) kv.second = o.value, set = true;
      if (!set) st.options.emplace_back(o.option, o.value);
    }
    if (!found)
      ThrowInvalid("tuning override " + o.pass + "." + o.option + ": the pipeline has no pass '" +
                   o.pass + "'");
  }
  return steps;
}

// Everything the evaluation of one model needs, shared by the baseline and the trials.
struct EvalSetup {
  std::unique_ptr<calibrate::DataSet> data;  // null: no evaluation data
  std::optional<eval::Metric> metric;
  int k = 5;
  std::string label, output;
  int64_t samples = 0, batch = 1;
  std::vector<ir::Tensor> reference;  // original outputs per batch (cosine/nmse)
  runtime::NamedTensors latency_inputs;  // batch 1
  eval::LatencyOptions latency;
  runtime::SessionOptions session;
  BackendChoice backend;  // where the metric and the latency are measured
  // The original model's runner, kept after its measurement: every trial's latency is
  // measured interleaved with it (CompareWithOriginal).
  std::unique_ptr<Runner> original;
};

std::string OutputName(const Runner& s, const std::string& wanted) {
  if (wanted.empty()) return s.outputs().at(0)->name();
  for (const ir::Value* v : s.outputs())
    if (v->name() == wanted) return wanted;
  std::string names;
  for (const ir::Value* v : s.outputs()) names += (names.empty() ? "'" : ", '") + v->name() + "'";
  ThrowInvalid("evaluation.output '" + wanted + "' is not an output of the model (outputs: " +
               names + ")");
}

const ir::Tensor& Find(const runtime::NamedTensors& t, const std::string& name) {
  for (const auto& [n, v] : t)
    if (n == name) return v;
  ThrowInvalid("the model produced no output '" + name + "'");
}

void SetLatency(const eval::LatencyStats& st, eval::ModelMeasurement* m) {
  m->latency_p50_ms = st.p50_ms;
  m->latency_p90_ms = st.p90_ms;
  m->latency_p99_ms = st.p99_ms;
  m->latency_mean_ms = st.mean_ms;
  m->latency_runs = st.runs;
}

// The original model's latency on its own (the report's baseline).
void MeasureAlone(Runner& session, const std::string& path, EvalSetup& ev, Progress& progress,
                  const std::string& what, eval::ModelMeasurement* m) {
  progress.Start("benchmarking " + what, ev.latency.runs);
  eval::LatencyOptions lo = ev.latency;
  lo.progress = [&](int64_t done, int64_t total) { progress.Update(done, total); };
  eval::LatencyStats st;
  try {
    st = eval::MeasureLatencyOf([&] { session.Run(ev.latency_inputs); }, session.threads(), lo);
  } catch (const Error& e) {
    throw Error(e.code(), path + ": " + e.what());
  }
  SetLatency(st, m);
  progress.Finish(fmt::format("p50 {:.3f} ms, p99 {:.3f} ms", st.p50_ms, st.p99_ms));
}

// A trial's latency, measured interleaved with the original's on the same inputs and
// threads (eval/latency_compare.h), so both see the same machine load: the trial's
// latency fields come from its own runs there, and the comparison is the "not slower"
// check's evidence.
eval::VsOriginal CompareWithOriginal(Runner& trial, const std::string& path, EvalSetup& ev,
                                     Progress& progress, const std::string& what,
                                     eval::ModelMeasurement* m) {
  eval::CompareOptions co = eval::CompareOptions::ForRuns(ev.latency.runs, ev.latency.warmup);
  co.progress = [&](int64_t done, int64_t total) { progress.Update(done, total); };
  progress.Start("benchmarking " + what + " against the original",
                 2 * static_cast<int64_t>(co.rounds) * co.runs_per_round);
  eval::LatencyComparison c;
  try {
    c = eval::CompareLatency([&] { ev.original->Run(ev.latency_inputs); },
                             [&] { trial.Run(ev.latency_inputs); }, trial.threads(), co);
  } catch (const Error& e) {
    throw Error(e.code(), path + ": " + e.what());
  }
  SetLatency(c.candidate, m);
  progress.Finish(fmt::format("p50 {:.3f} ms vs original {:.3f} ms ({:.2f}x, interval {:.2f}-{:.2f}x)",
                              c.candidate.p50_ms, c.reference.p50_ms, c.ratio, c.ratio_low, c.ratio_high));
  eval::VsOriginal v;
  v.original_p50_ms = c.reference.p50_ms;
  v.p50_ms = c.candidate.p50_ms;
  v.ratio = c.ratio;
  v.ratio_low = c.ratio_low;
  v.ratio_high = c.ratio_high;
  v.coverage = c.coverage;
  v.tolerance = c.tolerance;
  v.limit = c.limit;
  v.rounds = c.rounds;
  v.runs_per_round = c.runs_per_round;
  v.slower = c.slower;
  return v;
}

// Size, structure, metric and latency of one model file on the recipe's backend (native, or
// torch on cpu or cuda), optimised as `run` and `bench` execute it. The original model
// (`keep_reference`) keeps its scored outputs as the reference of cosine/nmse and its
// runner in `ev.original`; a trial's latency is measured against it into `*vs`.
eval::ModelMeasurement Measure(const std::string& path, EvalSetup& ev, Progress& progress,
                               const std::string& what, bool keep_reference,
                               eval::VsOriginal* vs = nullptr) {
  eval::ModelMeasurement m;
  m.size_bytes = ModelBytes(path);
  m.nodes = static_cast<int64_t>(LoadModelForRun(path, /*optimize=*/true)->graph->num_nodes());
  {
    // Counted on the file as written (QDQ / MatMulNBits form, standard ops whose shapes
    // inference knows), not on the fused integer graph the session runs.
    std::unique_ptr<ir::Model> as_written = LoadModel(path);
    passes::prune::ParamCounts pc = passes::prune::CountParams(*as_written);
    m.params = pc.params;
    m.nonzero_params = pc.nonzero;
    passes::prune::FlopCounts fc = passes::prune::CountMacs(*as_written);
    m.macs = fc.dense_macs;
    m.nonzero_macs = fc.sparse_macs;
  }
  auto session = MakeRunner(path, /*optimize=*/true, ev.backend, ev.session);
  if (ev.data && ev.metric) {
    const std::string out = OutputName(*session, ev.output);
    eval::MetricAccumulator acc(*ev.metric, ev.k);
    acc.set_name("output '" + out + "' of " + path);
    progress.Start("evaluating " + what, ev.samples);
    size_t batch_index = 0;
    for (int64_t begin = 0; begin < ev.samples; begin += ev.batch, ++batch_index) {
      int64_t n = std::min(ev.batch, ev.samples - begin);
      runtime::NamedTensors outs;
      try {
        outs = session->Run(ev.data->Batch(begin, n));
      } catch (const Error& e) {
        throw Error(e.code(), path + ": " + e.what());
      }
      const ir::Tensor& y = Find(outs, out);
      if (eval::NeedsLabels(*ev.metric)) {
        acc.AddLabels(y, ev.data->Extra(ev.label, begin, n));
      } else if (keep_reference) {
        ev.reference.push_back(y);
        acc.AddReference(y, y);
      } else {
        acc.AddReference(y, ev.reference.at(batch_index));
      }
      progress.Update(begin + n);
    }
    m.metric = acc.Value();
    progress.Finish(fmt::format("{} {:.6g}", eval::MetricName(*ev.metric), *m.metric));
  }
  if (keep_reference) {
    MeasureAlone(*session, path, ev, progress, what, &m);
    ev.original = std::move(session);
  } else {
    *vs = CompareWithOriginal(*session, path, ev, progress, what, &m);
  }
  return m;
}

// The recipe's budgets, then (unless tuning.allow_slower) the implicit check that the trial
// is not slower than the original beyond the measurement's noise. Timing budgets compare
// with the original's latency from the same interleaved runs when there are some.
std::vector<eval::BudgetResult> CheckBudgets(const Recipe& recipe, const eval::ModelMeasurement& base,
                                             const eval::ModelMeasurement& comp,
                                             const std::optional<eval::VsOriginal>& vs,
                                             const std::optional<eval::Metric>& metric) {
  const Recipe::Budgets& b = recipe.budgets;
  std::vector<eval::BudgetResult> out;
  auto at_most = [&](const char* name, const std::string& unit, double limit, double measured,
                     bool timing) {
    out.push_back({name, unit, "<=", limit, measured, measured <= limit, limit - measured, timing});
  };
  std::string mname = metric ? eval::MetricName(*metric) : "metric";
  if (b.max_accuracy_drop && metric && base.metric && comp.metric)
    at_most("max_accuracy_drop", mname, *b.max_accuracy_drop,
            eval::Drop(*metric, *base.metric, *comp.metric), false);
  if (b.max_accuracy_drop_relative && metric && base.metric && comp.metric) {
    double drop = eval::Drop(*metric, *base.metric, *comp.metric);
    double rel = *base.metric != 0 ? drop / std::fabs(*base.metric) : (drop > 0 ? INFINITY : 0.0);
    at_most("max_accuracy_drop_relative", "ratio", *b.max_accuracy_drop_relative, rel, false);
  }
  if (b.max_latency_p50_ms) at_most("max_latency_p50_ms", "ms", *b.max_latency_p50_ms, comp.latency_p50_ms, true);
  if (b.max_latency_p99_ms) at_most("max_latency_p99_ms", "ms", *b.max_latency_p99_ms, comp.latency_p99_ms, true);
  if (b.max_size_bytes)
    at_most("max_size_bytes", "bytes", static_cast<double>(*b.max_size_bytes),
            static_cast<double>(comp.size_bytes), false);
  if (b.max_size_ratio)
    at_most("max_size_ratio", "ratio", *b.max_size_ratio,
            base.size_bytes ? static_cast<double>(comp.size_bytes) / static_cast<double>(base.size_bytes) : 0.0,
            false);
  if (b.min_speedup) {
    const double base_p50 = vs ? vs->original_p50_ms : base.latency_p50_ms;
    double s = comp.latency_p50_ms > 0 ? base_p50 / comp.latency_p50_ms : 0.0;
    out.push_back({"min_speedup", "x", ">=", *b.min_speedup, s, s >= *b.min_speedup, s - *b.min_speedup, true});
  }
  if (vs && !recipe.tuning.allow_slower) out.push_back(NotSlowerBudget(*vs));
  return out;
}

// Per-layer error: the original and the compressed model run on the same samples; every
// float activation whose value name exists in both (QDQ rewrites keep the float output
// names) is compared. Only one model's activations of one sample are held at a time.
// Per-layer error of the compressed model on a few samples, both models loaded without the
// fusion pipeline so QDQ layers keep their float names (eval/layer_compare.h). A model whose
// values share no names with the original (nothing to match) gets an empty table.
std::vector<eval::LayerError> LayerErrors(const std::string& original, const std::string& compressed,
                                          EvalSetup& ev, int64_t samples) {
  std::vector<eval::LayerStats> stats;
  try {
    stats = eval::CompareLayers(
        std::shared_ptr<const ir::Model>(LoadModel(original)),
        std::shared_ptr<const ir::Model>(LoadModel(compressed)), samples,
        [&](int64_t s) { return ev.data ? ev.data->Batch(s, 1) : ev.latency_inputs; },
        ev.session.threads, original, compressed);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kInvalidInput) throw;
    return {};
  }
  std::vector<eval::LayerError> out;
  for (const eval::LayerStats& s : stats)
    if (s.compared()) out.push_back({s.name, s.op, s.Nmse(), s.Cosine()});
  std::stable_sort(out.begin(), out.end(), [](const auto& x, const auto& y) {
    return x.nmse > y.nmse || (x.nmse == y.nmse && x.name < y.name);
  });
  return out;
}

std::string PassStatsJson(const std::vector<passes::PassRun>& runs) {
  Json j = Json::array();
  for (const auto& r : runs) {
    Json stats = Json::object();
    for (const auto& [k, v] : r.stats) stats[k] = v;
    j.push_back({{"pass", r.pass}, {"changed", r.changed}, {"stats", stats}});
  }
  return j.dump();
}

std::string Rel(const std::string& path, const std::string& dir) {
  return fs::path(path).lexically_relative(dir).string();
}

}  // namespace

eval::Report RunCompress(const CompressOptions& o, Progress& progress) {
  const auto t_start = Clock::now();
  // ---- inputs -------------------------------------------------------------------------
  Recipe recipe = LoadRecipe(o.recipe);
  if (recipe.target.backend == "torch" && !HaveTorch())
    ThrowUnsupported(recipe.path + ": target.backend 'torch': this edgepress was built without "
                     "LibTorch (configure with -DEDGEPRESS_WITH_TORCH=ON), or use backend: native");
  if (recipe.target.backend == "native" && recipe.target.device != "cpu")
    ThrowInvalid(recipe.path + ": target.device '" + recipe.target.device +
                 "' needs target.backend: torch (the native runtime runs on the CPU)");
  if (recipe.exports.pt && !HaveTorch())
    ThrowUnsupported(recipe.path + ": export.pt: this edgepress was built without LibTorch "
                     "(configure with -DEDGEPRESS_WITH_TORCH=ON), or set pt: false");
  if (!recipe.exports.epk && !recipe.exports.onnx)
    ThrowInvalid(recipe.path + ": export: nothing to write; enable epk or onnx");
  // An empty pipeline is allowed: the float model is exported and measured against itself.
  const int threads = o.threads ? *o.threads : recipe.target.threads;
  const uint64_t seed = o.seed ? *o.seed : recipe.seed;
  const std::string calib = !o.calib.empty() ? o.calib : recipe.calibration.data;
  const std::string eval_file = !o.eval.empty() ? o.eval : recipe.evaluation.data;
  for (const std::string& f : {o.model, calib, eval_file})
    if (!f.empty() && !FileExists(f)) throw Error(ErrorCode::kIo, "cannot open '" + f + "'");
  std::optional<eval::Metric> metric;
  if (!recipe.evaluation.metric.empty()) {
    try {
      metric = eval::ParseMetric(recipe.evaluation.metric);
    } catch (const Error& e) {
      ThrowInvalid(recipe.path + ": evaluation.metric: " + e.what());
    }
  }
  Steps pipeline;
  for (const auto& st : recipe.pipeline) pipeline.push_back({st.pass, st.options});
  Resolved(pipeline);  // unknown passes and bad options fail before any work
  bool needs_data = false;
  for (const auto& st : pipeline) needs_data |= FindCompressStep(st.pass)->info.needs_data;
  CheckDistillSteps(pipeline, calib, recipe.path);
  if (needs_data && calib.empty())
    ThrowInvalid(recipe.path + ": the pipeline has a pass that needs calibration data; pass --calib or set calibration.data");
  const bool accuracy_budget = recipe.budgets.max_accuracy_drop || recipe.budgets.max_accuracy_drop_relative;
  if (accuracy_budget && eval_file.empty())
    ThrowInvalid(recipe.path + ": budgets.max_accuracy_drop needs evaluation data; pass --eval or set evaluation.data");
  if (accuracy_budget && !metric) ThrowInvalid(recipe.path + ": accuracy budgets need evaluation.metric");

  eval::Report rep;
  rep.tool_version = EDGEPRESS_VERSION;
  const std::string recipe_yaml = RecipeToYaml(recipe);
  rep.recipe_name = recipe.name;
  {
    Sha256 h;
    h.Update(recipe_yaml);
    rep.recipe = {recipe.path, h.HexDigest(), static_cast<int64_t>(recipe_yaml.size())};
  }
  rep.seed = seed;
  rep.target = {recipe.target.name, recipe.target.arch, recipe.target.backend, recipe.target.isa,
                threads, runtime::GetCpuFeatures().model_name};

  progress.Log("loading " + o.model);
  std::unique_ptr<ir::Model> original = LoadModel(o.model);
  rep.model = {o.model, Sha256File(o.model), ModelBytes(o.model)};
  if (!calib.empty()) {
    rep.calibration.push_back({calib, Sha256File(calib), static_cast<int64_t>(FileSize(calib))});
    rep.calibration_sha256 = rep.calibration.back().sha256;
  }

  // ---- evaluation setup ----------------------------------------------------------------
  EvalSetup ev;
  ev.session.threads = threads;
  ev.backend = {recipe.target.backend, recipe.target.device};
  rep.target.device = recipe.target.device;
  ev.session.force_scalar = recipe.target.isa == "scalar";
  ev.latency.warmup = recipe.evaluation.warmup_runs;
  ev.latency.runs = std::max(1, recipe.evaluation.latency_runs);
  ev.metric = metric;
  ev.k = recipe.evaluation.k;
  ev.label = recipe.evaluation.label;
  ev.output = recipe.evaluation.output;
  if (!eval_file.empty()) {
    const ir::Graph& g = *original->graph;
    if (!recipe.evaluation.input.empty()) {
      // The file names the input differently: feed that array to the model's one input.
      std::vector<const ir::Value*> fed;
      for (const ir::Value* v : g.inputs())
        if (!v->is_initializer()) fed.push_back(v);
      if (fed.size() != 1)
        ThrowInvalid(recipe.path + ": evaluation.input needs a model with exactly one input");
      calibrate::NamedTensors arrays = formats::LoadTensorFile(eval_file);
      for (auto& [name, t] : arrays)
        if (name == recipe.evaluation.input) name = fed[0]->name();
      ev.data = std::make_unique<calibrate::DataSet>(
          calibrate::DataSet::FromTensors(std::move(arrays), g, eval_file));
    } else {
      std::vector<std::string> layout = recipe.evaluation.layout;
      layout.insert(layout.end(), o.layout.begin(), o.layout.end());
      ev.data = std::make_unique<calibrate::DataSet>(calibrate::DataSet::Open(
          {eval_file}, g, calibrate::ParseDataLayout(layout, recipe.path + ": evaluation.layout")));
    }
    ev.samples = ev.data->size();
    if (recipe.evaluation.max_samples >= 0) ev.samples = std::min(ev.samples, recipe.evaluation.max_samples);
    if (ev.samples == 0) ThrowInvalid(eval_file + ": no samples");
    if (metric && eval::NeedsLabels(*metric) && !ev.data->HasArray(ev.label))
      ThrowInvalid(eval_file + ": metric " + eval::MetricName(*metric) + " needs the label array '" +
                   ev.label + "' (evaluation.label)");
    rep.evaluation = {eval_file, Sha256File(eval_file), static_cast<int64_t>(FileSize(eval_file))};
    // Batches along a symbolic leading dim; a fixed one means one sample per run.
    bool symbolic = true;
    for (const ir::Value* v : g.inputs()) {
      if (v->is_initializer()) continue;
      if (!v->type.shape || v->type.shape->empty() || (*v->type.shape)[0].known()) symbolic = false;
    }
    ev.batch = symbolic ? 32 : 1;
    ev.latency_inputs = ev.data->Batch(0, 1);
    rep.metric = metric ? eval::MetricName(*metric) : "";
    rep.metric_higher_is_better = metric ? eval::HigherIsBetter(*metric) : true;
    rep.eval_samples = ev.samples;
  } else {
    metric.reset();
    ev.metric.reset();
    rep.notes.push_back("no evaluation data: accuracy was not measured; latency used random inputs (seeded)");
    std::map<std::string, int64_t> dims;
    for (const ir::Value* v : original->graph->inputs())
      if (v->type.shape)
        for (const ir::Dim& d : *v->type.shape)
          if (!d.known()) dims[d.symbol] = 1;  // batch 1
    std::mt19937 rng(static_cast<uint32_t>(seed));
    for (const ir::Value* v : original->graph->inputs())
      if (!v->is_initializer()) ev.latency_inputs.emplace_back(v->name(), eval::RandomInput(*v, dims, rng));
  }
  if (recipe.target.arch != "x86_64")
    rep.notes.push_back("target arch " + recipe.target.arch +
                        ": latency was measured on this x86_64 host, not on the target");
  if (recipe.target.isa != "auto" && recipe.target.isa != "scalar")
    rep.notes.push_back("target isa " + recipe.target.isa +
                        ": latency used the best kernels this host has, not that ISA's");

  fs::create_directories(o.outdir);
  const std::string outdir = fs::path(o.outdir).lexically_normal().string();

  // ---- baseline --------------------------------------------------------------------------
  rep.baseline = Measure(o.model, ev, progress, "original", /*keep_reference=*/true);

  // ---- trials ----------------------------------------------------------------------------
  struct TrialPlan {
    std::string name;
    std::vector<eval::Override> overrides;
  };
  std::vector<TrialPlan> plans{{"as written", {}}};
  for (const auto& step : recipe.tuning.steps) {
    TrialPlan p{step.name, plans.back().overrides};
    for (const auto& ov : step.overrides) p.overrides.push_back({ov.pass, ov.option, ov.value});
    plans.push_back(std::move(p));
  }
  const std::string ext = recipe.exports.epk ? ".epk" : ".onnx";
  std::vector<std::vector<std::vector<std::pair<std::string, std::string>>>> run_pipelines;
  std::vector<std::string> trial_paths;
  std::vector<std::vector<passes::PassRun>> trial_runs;
  const int max_trials = std::max(1, recipe.tuning.max_trials);
  // The distill step's teacher is the model as given; it evaluates on the recipe's data
  // when that feeds the inputs by name.
  const DistillStepContext distill_ctx{original.get(), o.model, calib,
                                       recipe.evaluation.input.empty() ? eval_file : "",
                                       recipe.evaluation.label, seed, &progress};
  for (size_t pi = 0; pi < plans.size(); ++pi) {
    const TrialPlan& plan = plans[pi];
    if (pi > 0) {
      const std::string stop = TuningStop(rep, recipe, Seconds(t_start));
      if (!stop.empty()) {
        rep.notes.push_back(stop);
        break;
      }
    }
    Steps steps = ApplyOverrides(pipeline, plan.overrides);
    auto resolved = Resolved(steps);
    if (std::find(run_pipelines.begin(), run_pipelines.end(), resolved) != run_pipelines.end()) {
      rep.notes.push_back("tuning step '" + plan.name + "' changes nothing; skipped");
      continue;
    }
    run_pipelines.push_back(resolved);
    eval::Trial t;
    t.index = static_cast<int>(rep.trials.size());
    t.name = plan.name;
    t.overrides = plan.overrides;
    const auto t0 = Clock::now();
    if (plans.size() > 1) {
      // Tuning progress: trials left at most, and an ETA from the mean trial time so far.
      const size_t left = std::min(plans.size() - pi, static_cast<size_t>(max_trials) - rep.trials.size());
      std::string eta;
      if (!rep.trials.empty()) {
        double mean = 0;
        for (const auto& done : rep.trials) mean += done.seconds;
        mean /= static_cast<double>(rep.trials.size());
        eta = fmt::format(", ETA {:.0f}s for at most {} trial(s)", mean * static_cast<double>(left), left);
      }
      progress.Log(fmt::format("trial {} (tuning step {} of {}{}): {}", t.index, pi, plans.size() - 1, eta, t.name));
    }
    const std::string path = (fs::path(outdir) / fmt::format(".trial-{}{}", t.index, ext)).string();
    std::vector<passes::PassRun> runs;
    try {
      std::unique_ptr<ir::Model> m = original->Clone();
      passes::PassContext ctx;
      ctx.seed = seed;
      ctx.threads = threads;
      if (!calib.empty()) ctx.data_files = {calib};
      ctx.data_layout = recipe.calibration.layout;
      ctx.data_layout.insert(ctx.data_layout.end(), o.layout.begin(), o.layout.end());
      // RunPipeline's own "<pass>: changed" lines are replaced by the richer one below.
      ctx.log = [&](const std::string& line) {
        for (const auto& st : steps)
          if (line == st.pass + ": changed" || line == st.pass + ": unchanged") return;
        progress.Log("  " + line);
      };
      for (const auto& st : steps) {
        auto r = IsDistillStep(st.pass) ? std::vector{RunDistillStep(*m, st, steps, distill_ctx)}
                                        : passes::RunPipeline(*m, {st}, ctx, /*verify=*/true);
        runs.insert(runs.end(), r.begin(), r.end());
        const auto& last = runs.back();
        std::string stats;
        for (const auto& [k, v] : last.stats)
          if (v) stats += fmt::format(" {}={}", k, v);
        progress.Log(fmt::format("  {:<22} {:<9} {:7.1f} ms{}", last.pass,
                                 last.changed ? "changed" : "unchanged", last.seconds * 1e3, stats));
      }
      SaveModelOptions so;
      so.metadata = ProvenanceFor(o.model);
      so.metadata.emplace_back("recipe_name", recipe.name);
      so.metadata.emplace_back("recipe", recipe_yaml);
      if (!rep.calibration_sha256.empty())
        so.metadata.emplace_back("calibration_data_sha256", rep.calibration_sha256);
      so.metadata.emplace_back("seed", std::to_string(seed));
      so.metadata.emplace_back("pipeline", StepsText(steps));
      so.metadata.emplace_back("pass_statistics", PassStatsJson(runs));
      SaveModel(*m, path, so);
    } catch (const Error& e) {
      if (t.index == 0) throw;  // the recipe as written must work
      t.error = e.what();
      t.seconds = Seconds(t0);
      progress.Log("  trial failed: " + t.error);
      rep.trials.push_back(std::move(t));
      trial_paths.push_back("");
      trial_runs.push_back({});
      continue;
    }
    eval::VsOriginal vs;
    t.result = Measure(path, ev, progress, plans.size() > 1 ? fmt::format("trial {}", t.index) : "compressed",
                       false, &vs);
    t.vs_original = vs;
    t.budgets = CheckBudgets(recipe, rep.baseline, t.result, t.vs_original, metric);
    t.passed = std::all_of(t.budgets.begin(), t.budgets.end(), [](const auto& b) { return b.passed; });
    t.seconds = Seconds(t0);
    rep.trials.push_back(std::move(t));
    trial_paths.push_back(path);
    trial_runs.push_back(std::move(runs));
  }

  // ---- choose ------------------------------------------------------------------------------
  const int chosen = ChooseTrial(rep.trials, recipe.tuning.objective == "latency");
  ExplainSlower(recipe, chosen, &rep);
  eval::Trial& best = rep.trials[chosen];
  best.chosen = true;
  rep.compressed = best.result;
  rep.budgets = best.budgets;
  for (const auto& r : trial_runs[chosen])
    rep.passes.push_back({r.pass, r.options, r.changed, r.stats, r.seconds, r.details});

  // ---- artifacts -----------------------------------------------------------------------
  const std::string primary = (fs::path(outdir) / ("model" + ext)).string();
  fs::rename(trial_paths[chosen], primary);
  for (size_t i = 0; i < trial_paths.size(); ++i)
    if (static_cast<int>(i) != chosen && !trial_paths[i].empty()) fs::remove(trial_paths[i]);
  std::vector<std::string> files{primary};
  if (recipe.exports.epk && recipe.exports.onnx) {
    const std::string onnx = (fs::path(outdir) / "model.onnx").string();
    progress.Log("exporting " + onnx);
    SaveModel(*LoadModel(primary), onnx, {});
    files.push_back(onnx);
  }
  if (recipe.exports.pt) {
    const std::string pt = (fs::path(outdir) / "model.pt").string();
    progress.Log("exporting " + pt);
    SaveModel(*LoadModel(primary), pt, {});
    files.push_back(pt);
  }
  for (const auto& f : files) rep.artifacts.push_back({Rel(f, outdir), Sha256File(f), static_cast<int64_t>(FileSize(f))});

  // Per-layer error on a few samples (bounded: one model's activations of one sample).
  progress.Start("per-layer error", 0);
  rep.layers = LayerErrors(o.model, primary, ev, ev.data ? std::min<int64_t>(ev.samples, 4) : 1);
  progress.Finish(fmt::format("{} layers compared", rep.layers.size()));

  // ---- verdict -------------------------------------------------------------------------
  for (const auto& b : rep.budgets)
    if (!b.passed) rep.reasons.push_back("budget " + b.name + " missed: " + b.Message());
  if (!rep.reasons.empty() && rep.trials.size() > 1)
    rep.reasons.push_back(fmt::format("no trial of {} met every budget; kept trial {} ('{}'), the closest",
                                      rep.trials.size(), chosen, best.name));
  if (!o.baseline.empty()) {
    rep.baseline_report = o.baseline;
    eval::Report prev = eval::ReportFromJson(ReadFileToString(o.baseline, 64u << 20), o.baseline);
    rep.regressions = eval::FindRegressions(prev, rep);
  }
  const bool missed = std::any_of(rep.budgets.begin(), rep.budgets.end(), [](const auto& b) { return !b.passed; });
  const bool regressed = o.fail_on_regression && !rep.regressions.empty();
  if (regressed)
    for (const auto& g : rep.regressions) rep.reasons.push_back("regression: " + g.message);
  rep.exit_code = missed || regressed ? 3 : 0;
  rep.status = missed ? "budget_missed" : regressed ? "regressed" : "passed";

  // ---- manifest (no timings: byte-identical for the same inputs) ------------------------
  Json man;
  man["schema_version"] = 1;
  man["tool"] = {{"name", "edgepress"}, {"version", EDGEPRESS_VERSION}};
  man["model"] = {{"path", rep.model.path}, {"sha256", rep.model.sha256}, {"bytes", rep.model.bytes}};
  man["recipe"] = {{"name", recipe.name}, {"path", recipe.path}, {"sha256", rep.recipe.sha256}, {"yaml", recipe_yaml}};
  Json cal = Json::array();
  for (const auto& c : rep.calibration) cal.push_back({{"path", c.path}, {"sha256", c.sha256}, {"bytes", c.bytes}});
  man["calibration"] = {{"sha256", rep.calibration_sha256}, {"files", cal}};
  man["evaluation"] = {{"path", rep.evaluation.path}, {"sha256", rep.evaluation.sha256}};
  man["seed"] = seed;
  man["threads"] = threads;
  man["chosen_trial"] = {{"index", chosen}, {"name", best.name}};
  Json passes_j = Json::array();
  for (const auto& r : trial_runs[chosen]) {
    Json opts = Json::object(), stats = Json::object();
    for (const auto& [k, v] : r.options) opts[k] = v;
    for (const auto& [k, v] : r.stats) stats[k] = v;
    passes_j.push_back({{"pass", r.pass}, {"options", opts}, {"changed", r.changed}, {"stats", stats}});
  }
  man["passes"] = passes_j;
  Json arts = Json::array();
  for (const auto& a : rep.artifacts) arts.push_back({{"path", a.path}, {"sha256", a.sha256}, {"bytes", a.bytes}});
  man["artifacts"] = arts;

  rep.duration_s = Seconds(t_start);
  WriteFileAtomic((fs::path(outdir) / "manifest.json").string(), man.dump(2) + "\n");
  WriteFileAtomic((fs::path(outdir) / "report.json").string(), eval::ReportToJson(rep));
  WriteFileAtomic((fs::path(outdir) / "report.md").string(), eval::ReportToMarkdown(rep));
  WriteFileAtomic((fs::path(outdir) / "report.html").string(), eval::ReportToHtml(rep));
  if (!o.junit.empty()) WriteFileAtomic(o.junit, eval::ReportToJunit(rep));
  return rep;
}

}  // namespace edgepress::tools
