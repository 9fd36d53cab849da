#include "tools/compress/compress_eval.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "eval/latency_compare.h"
#include "eval/layer_compare.h"
#include "formats/npy/npy.h"
#include "ir/error.h"
#include "ir/file_util.h"
#include "ir/sha256.h"
#include "passes/prune/prune_util.h"
#include "runtime/profile.h"
#include "tools/compress/compress_choice.h"
#include "tools/model_io.h"
#include "tools/progress.h"

namespace edgepress::tools {

namespace fs = std::filesystem;

namespace {

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

}  // namespace

EvalSetup SetupEvaluation(const Recipe& recipe, int threads, uint64_t seed,
                          const std::string& eval_file, const std::vector<std::string>& cli_layout,
                          std::optional<eval::Metric> metric, const ir::Model& original,
                          eval::Report* rep) {
  EvalSetup ev;
  ev.session.threads = threads;
  ev.backend = {recipe.target.backend, recipe.target.device};
  rep->target.device = recipe.target.device;
  ev.session.force_scalar = recipe.target.isa == "scalar";
  ev.latency.warmup = recipe.evaluation.warmup_runs;
  ev.latency.runs = std::max(1, recipe.evaluation.latency_runs);
  ev.metric = metric;
  ev.k = recipe.evaluation.k;
  ev.label = recipe.evaluation.label;
  ev.output = recipe.evaluation.output;
  if (!eval_file.empty()) {
    const ir::Graph& g = *original.graph;
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
      layout.insert(layout.end(), cli_layout.begin(), cli_layout.end());
      ev.data = std::make_unique<calibrate::DataSet>(calibrate::DataSet::Open(
          {eval_file}, g, calibrate::ParseDataLayout(layout, recipe.path + ": evaluation.layout")));
    }
    ev.samples = ev.data->size();
    if (recipe.evaluation.max_samples >= 0) ev.samples = std::min(ev.samples, recipe.evaluation.max_samples);
    if (ev.samples == 0) ThrowInvalid(eval_file + ": no samples");
    if (metric && eval::NeedsLabels(*metric) && !ev.data->HasArray(ev.label))
      ThrowInvalid(eval_file + ": metric " + eval::MetricName(*metric) + " needs the label array '" +
                   ev.label + "' (evaluation.label)");
    rep->evaluation = {eval_file, Sha256File(eval_file), static_cast<int64_t>(FileSize(eval_file))};
    // Batches along a symbolic leading dim; a fixed one means one sample per run.
    bool symbolic = true;
    for (const ir::Value* v : g.inputs()) {
      if (v->is_initializer()) continue;
      if (!v->type.shape || v->type.shape->empty() || (*v->type.shape)[0].known()) symbolic = false;
    }
    ev.batch = symbolic ? 32 : 1;
    ev.latency_inputs = ev.data->Batch(0, 1);
    rep->metric = metric ? eval::MetricName(*metric) : "";
    rep->metric_higher_is_better = metric ? eval::HigherIsBetter(*metric) : true;
    rep->eval_samples = ev.samples;
  } else {
    ev.metric.reset();
    rep->notes.push_back("no evaluation data: accuracy was not measured; latency used random inputs (seeded)");
    std::map<std::string, int64_t> dims;
    for (const ir::Value* v : original.graph->inputs())
      if (v->type.shape)
        for (const ir::Dim& d : *v->type.shape)
          if (!d.known()) dims[d.symbol] = 1;  // batch 1
    std::mt19937 rng(static_cast<uint32_t>(seed));
    for (const ir::Value* v : original.graph->inputs())
      if (!v->is_initializer()) ev.latency_inputs.emplace_back(v->name(), eval::RandomInput(*v, dims, rng));
  }
  if (recipe.target.arch != "x86_64")
    rep->notes.push_back("target arch " + recipe.target.arch +
                        ": latency was measured on this x86_64 host, not on the target");
  if (recipe.target.isa != "auto" && recipe.target.isa != "scalar")
    rep->notes.push_back("target isa " + recipe.target.isa +
                        ": latency used the best kernels this host has, not that ISA's");

  return ev;
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

// Size, structure, metric and latency of one model file on the recipe's backend (native, or
// torch on cpu or cuda), optimised as `run` and `bench` execute it. The original model
// (`keep_reference`) keeps its scored outputs as the reference of cosine/nmse and its
// runner in `ev.original`; a trial's latency is measured against it into `*vs`.
eval::ModelMeasurement Measure(const std::string& path, EvalSetup& ev, Progress& progress,
                               const std::string& what, bool keep_reference,
                               eval::VsOriginal* vs) {
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

// Per-layer error of the compressed model on a few samples, both models loaded without the
// fusion pipeline so QDQ layers keep their float names (eval/layer_compare.h). A model whose
// values share no names with the original (nothing to match) gets an empty table.
eval::ModelProfile ProfileModel(const std::string& path, EvalSetup& ev, Progress& progress,
                                const std::string& what) {
  eval::ModelProfile out;
  if (ev.backend.backend != "native") return out;
  // Enough runs for stable shares, few enough to add seconds, not minutes, to compress.
  const int runs = static_cast<int>(std::clamp<int64_t>(ev.latency.runs / 4, 3, 20));
  progress.Start("profiling " + what, runs);
  runtime::SessionOptions so = ev.session;
  so.profile = true;
  try {
    auto session = runtime::Session::Create(
        std::shared_ptr<const ir::Model>(LoadModelForRun(path, /*optimize=*/true)), so);
    for (int i = 0; i < std::max(1, ev.latency.warmup); ++i) session->Run(ev.latency_inputs);
    session->ResetProfile();
    for (int i = 0; i < runs; ++i) {
      session->Run(ev.latency_inputs);
      progress.Update(i + 1);
    }
    runtime::ProfileSummary s = runtime::SummarizeProfile(session->Profile());
    out.runs = static_cast<int64_t>(s.runs);
    out.run_ms = s.run_ms;
    const double per_run = s.runs ? 1.0 / static_cast<double>(s.runs) : 0.0;
    for (const runtime::OpTypeProfile& o : s.op_types)
      out.op_types.push_back({o.op, o.nodes, o.total_ms * per_run, o.share, o.kernels});
  } catch (const Error& e) {
    throw Error(e.code(), path + ": " + e.what());
  }
  progress.Finish(fmt::format("{:.3f} ms per run", out.run_ms));
  return out;
}

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

}  // namespace edgepress::tools
