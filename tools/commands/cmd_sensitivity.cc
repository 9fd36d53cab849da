// `edgepress sensitivity MODEL --data D`: how much each prunable layer can lose. Every
// layer that prune-magnitude would prune is pruned alone (magnitude, the same pass with
// include=<layer>) at each sparsity of a ladder, and the pruned model is compared with the
// original on the same samples through eval::CompareLayers (what `compare` runs): the
// model outputs' NMSE and cosine, and the pruned layer's own output NMSE. With labels in
// the data (--label, as compress's evaluation.label), top-1 is measured too.
//
// Each result carries `error`, the degradation in the chosen metric's units (positive =
// worse): nmse → the output NMSE; cosine → 1 - cosine; top1 → the top-1 drop as a
// fraction (0.01 = one point, as compress's max_accuracy_drop). prune-magnitude's
// sensitivity-file=FILE with max-error=E prunes each layer to the largest sparsity whose
// error is at most E. Cost: layers × sparsities × two model runs per sample.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "calibrate/dataset.h"
#include "eval/layer_compare.h"
#include "eval/metrics.h"
#include "ir/error.h"
#include "ir/file_util.h"
#include "passes/prune/prune_util.h"
#include "passes/registry.h"
#include "runtime/session.h"
#include "tools/cli.h"
#include "tools/model_io.h"

namespace edgepress::tools {

namespace {

struct Result {
  double sparsity = 0, error = 0, nmse = 0, cosine = 1, layer_nmse = 0;
  std::optional<double> top1;
};

std::vector<double> ParseLadder(const std::string& text) {
  std::vector<double> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(v > 0 && v < 1))
      throw Error(ErrorCode::kUsage, "--sparsities: '" + item +
                                         "' is not a sparsity in (0, 1); e.g. 0.3,0.5,0.7,0.9");
    out.push_back(v);
  }
  if (out.empty()) throw Error(ErrorCode::kUsage, "--sparsities: empty list");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// Top-1 of `model` on samples [0, samples) against the label array.
double Top1(std::shared_ptr<const ir::Model> model, const calibrate::DataSet& data,
            const std::string& label, int64_t samples, int threads) {
  runtime::SessionOptions so;
  so.threads = threads;
  auto session = runtime::Session::Create(std::move(model), so);
  eval::MetricAccumulator acc(eval::Metric::kTop1);
  const std::string out = session->outputs().at(0)->name();
  acc.set_name("output '" + out + "'");
  const int64_t batch = 32;
  for (int64_t b = 0; b < samples; b += batch) {
    int64_t n = std::min(batch, samples - b);
    runtime::NamedTensors outs = session->Run(data.Batch(b, n));
    for (const auto& [name, t] : outs)
      if (name == out) acc.AddLabels(t, data.Extra(label, b, n));
  }
  return acc.Value();
}

struct Options {
  std::string model, metric = "nmse", sparsities = "0.3,0.5,0.7,0.9", label = "label", out;
  std::vector<std::string> data;
  int64_t max_samples = 64, min_params = 0;
  int threads = 1;
  bool json = false;
};

// What every layer's measurement shares: the model, its data, the ladder, the baseline.
struct Study {
  const Options& o;
  std::shared_ptr<const ir::Model> model;
  calibrate::DataSet data;
  std::vector<double> ladder;
  int64_t samples = 0;
  bool labels = false;
  std::optional<double> base_top1;
};

// `layer` pruned alone at each sparsity of the ladder, compared with the original.
std::vector<Result> MeasureLayer(const Study& st, const passes::prune::PrunableWeight& layer) {
  const Options& o = st.o;
  std::vector<Result> row;
  const std::string value = layer.users[0]->num_outputs() ? layer.users[0]->output(0)->name() : "";
  for (double s : st.ladder) {
    std::shared_ptr<ir::Model> pruned(st.model->Clone());
    passes::PassContext ctx;
    const std::vector<passes::PipelineStep> spec = {
        {"prune-magnitude", {{"sparsity", fmt::format("{}", s)}, {"include", layer.layer}}}};
    passes::RunPipeline(*pruned, spec, ctx);
    std::vector<eval::LayerStats> stats = eval::CompareLayers(
        st.model, pruned, st.samples, [&](int64_t i) { return st.data.Batch(i, 1); }, o.threads,
        o.model, o.model + " (" + layer.layer + " pruned)");
    Result r;
    r.sparsity = s;
    bool any_output = false;
    for (const eval::LayerStats& ls : stats) {
      if (!ls.compared()) continue;
      if (ls.is_output) {
        r.nmse = any_output ? std::max(r.nmse, ls.Nmse()) : ls.Nmse();
        r.cosine = any_output ? std::min(r.cosine, ls.Cosine()) : ls.Cosine();
        any_output = true;
      }
      if (ls.name == value) r.layer_nmse = ls.Nmse();
    }
    if (st.labels) r.top1 = Top1(pruned, st.data, o.label, st.samples, o.threads);
    r.error = o.metric == "nmse"     ? r.nmse
              : o.metric == "cosine" ? 1.0 - r.cosine
                                     : *st.base_top1 - *r.top1;
    row.push_back(r);
  }
  return row;
}

nlohmann::json LayerJson(const passes::prune::PrunableWeight& layer,
                         const std::vector<Result>& row) {
  nlohmann::json lj = {{"layer", layer.layer},
                       {"op", layer.op},
                       {"weight", layer.weight->name()},
                       {"params", static_cast<int64_t>(layer.weight->initializer()->numel())},
                       {"results", nlohmann::json::array()}};
  for (const Result& r : row) {
    nlohmann::json rj = {{"sparsity", r.sparsity}, {"error", r.error},
                         {"output_nmse", r.nmse},  {"output_cosine", r.cosine},
                         {"layer_nmse", r.layer_nmse}};
    if (r.top1) rj["top1"] = *r.top1;
    lj["results"].push_back(rj);
  }
  return lj;
}

void PrintTable(const Study& st, const std::vector<passes::prune::PrunableWeight>& layers,
                const std::vector<std::vector<Result>>& table) {
  const std::string& metric = st.o.metric;
  size_t w = 5;
  for (const auto& l : layers) w = std::max(w, l.layer.size());
  std::string head = fmt::format("{:<{}}  {:<9} {:>9}", "layer", w, "op", "params");
  for (double s : st.ladder) head += fmt::format("  {:>10}", fmt::format("@{:.2f}", s));
  std::printf("%s error per sparsity (%s), %lld samples%s\n%s\n", metric.c_str(),
              metric == "top1"     ? "top-1 drop, 0.01 = 1 point"
              : metric == "cosine" ? "1 - cosine of the outputs"
                                   : "NMSE of the outputs",
              static_cast<long long>(st.samples),
              st.base_top1 ? fmt::format(", baseline top-1 {:.4f}", *st.base_top1).c_str() : "",
              head.c_str());
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string line = fmt::format("{:<{}}  {:<9} {:>9}", layers[i].layer, w, layers[i].op,
                                   layers[i].weight->initializer()->numel());
    for (const Result& r : table[i]) line += fmt::format("  {:>10.4g}", r.error);
    std::printf("%s\n", line.c_str());
  }
}

int RunSensitivity(const Options& o) {
  std::vector<double> ladder = ParseLadder(o.sparsities);  // usage errors before any I/O
  std::shared_ptr<const ir::Model> model(LoadModel(o.model));
  Study st{o,     model, calibrate::DataSet::Open(o.data, *model->graph), std::move(ladder), 0,
           false, std::nullopt};
  st.samples = std::min<int64_t>(st.data.size(), o.max_samples);
  if (st.samples <= 0) ThrowInvalid("the data set has no samples");
  st.labels = st.data.HasArray(o.label);
  if (o.metric == "top1" && !st.labels)
    throw Error(ErrorCode::kUsage, "--metric top1 needs the label array '" + o.label +
                                       "' in the data (--label NAME)");
  std::unique_ptr<ir::Model> probe = model->Clone();
  passes::prune::FindOptions fo;
  fo.min_params = o.min_params;
  std::vector<passes::prune::PrunableWeight> layers = passes::prune::FindPrunable(*probe, fo);
  if (layers.empty())
    ThrowInvalid(o.model + ": no prunable weights (constant float weights of Conv, "
                           "ConvTranspose, Gemm, MatMul, FusedConv, FusedGemm)");
  if (st.labels) st.base_top1 = Top1(model, st.data, o.label, st.samples, o.threads);

  nlohmann::json j;
  j["model"] = o.model;
  j["metric"] = o.metric;
  j["samples"] = st.samples;
  j["data_sha256"] = st.data.Sha256();
  j["sparsities"] = st.ladder;
  if (st.base_top1) j["baseline_top1"] = *st.base_top1;
  j["layers"] = nlohmann::json::array();
  std::vector<std::vector<Result>> table;
  for (const auto& layer : layers) {
    table.push_back(MeasureLayer(st, layer));
    j["layers"].push_back(LayerJson(layer, table.back()));
  }
  if (!o.out.empty()) WriteFileAtomic(o.out, j.dump(1) + "\n");
  if (o.json) {
    std::fputs((j.dump(1) + "\n").c_str(), stdout);
    return 0;
  }
  PrintTable(st, layers, table);
  if (!o.out.empty()) std::printf("wrote %s\n", o.out.c_str());
  return 0;
}

}  // namespace

void AddSensitivityCommand(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "sensitivity",
      "Prune one layer at a time over a ladder of sparsities and report the output error "
      "(and top-1 with labels) per layer, as a table or JSON for prune-magnitude");
  cmd->footer(
      "Each layer prune-magnitude would prune is pruned alone by magnitude and compared "
      "with the original on the same samples (as `compare` does). 'error' is the "
      "degradation in --metric units: the output NMSE, 1 - cosine, or the top-1 drop "
      "(0.01 = one point). Feed the JSON to "
      "prune-magnitude{sensitivity-file=FILE,max-error=E}.");
  cmd->add_option("MODEL", o->model, "model (.onnx, .epk)")->required();
  cmd->add_option("--data", o->data, "input samples (.npz/.npy; first axis = sample)")->required();
  cmd->add_option("--metric", o->metric, "error measure: nmse, cosine or top1 (needs labels)")
      ->capture_default_str()
      ->check(CLI::IsMember({"nmse", "cosine", "top1"}));
  cmd->add_option("--sparsities", o->sparsities, "comma-separated ladder in (0, 1)")
      ->capture_default_str();
  cmd->add_option("--label", o->label, "label array in the data (top-1 when present)")
      ->capture_default_str();
  cmd->add_option("--max-samples", o->max_samples, "use at most this many samples")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1000000000}));
  cmd->add_option("--min-params", o->min_params, "skip weights with fewer elements")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1000000000000}));
  cmd->add_option("--threads", o->threads, "worker threads (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  AddMaxMemoryOption(cmd);
  AddInputShapeOption(cmd);
  cmd->add_option("-o,--output", o->out, "write the JSON to this file");
  cmd->add_flag("--json", o->json, "print JSON instead of the table");
  cmd->callback([o, &action] {
    action = [o] { return RunSensitivity(*o); };
  });
}

}  // namespace edgepress::tools
