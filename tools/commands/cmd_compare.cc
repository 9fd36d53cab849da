// `edgepress compare REF MODEL --data D`: which layer broke it. Runs a reference model and
// a model derived from it (quantized, pruned, hand-edited) on the same samples and
// compares every intermediate value the two graphs share by name, layer by layer.
//
// The comparison itself (matching by name, streaming statistics, the SNR drop) is
// eval::CompareLayers (eval/layer_compare.h); this file is its command line and printing.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "calibrate/dataset.h"
#include "eval/layer_compare.h"
#include "ir/error.h"
#include "runtime/session.h"
#include "tools/cli.h"
#include "tools/model_io.h"

namespace edgepress::tools {

namespace {

std::string FormatDb(double db) {
  if (std::isinf(db)) return db > 0 ? "inf" : "-inf";
  return fmt::format("{:.2f}", db);
}

nlohmann::json DbJson(double db) {
  if (std::isinf(db)) return db > 0 ? nlohmann::json("inf") : nlohmann::json("-inf");
  return db;
}

// The compared values, the worst by SNR and those with the largest SNR drop (where the
// error enters), each list cut to `top` and to layers that lose accuracy at all.
struct Ranked {
  std::vector<const eval::LayerStats*> compared, worst, origin;
  size_t top = 0;
};

Ranked RankLayers(const std::vector<eval::LayerStats>& stats, int top) {
  Ranked r;
  for (const eval::LayerStats& s : stats)
    if (s.compared()) r.compared.push_back(&s);
  r.worst = r.compared;
  std::stable_sort(
      r.worst.begin(), r.worst.end(),
      [](const eval::LayerStats* a, const eval::LayerStats* b) { return a->Snr() < b->Snr(); });
  r.origin = r.compared;
  std::stable_sort(
      r.origin.begin(), r.origin.end(),
      [](const eval::LayerStats* a, const eval::LayerStats* b) { return a->drop_db > b->drop_db; });
  r.top = std::min<size_t>(static_cast<size_t>(top), r.compared.size());
  // Only layers that lose accuracy belong in the lists.
  r.worst.erase(std::remove_if(r.worst.begin(), r.worst.end(),
                               [](const eval::LayerStats* s) { return std::isinf(s->Snr()); }),
                r.worst.end());
  r.origin.erase(std::remove_if(r.origin.begin(), r.origin.end(),
                                [](const eval::LayerStats* s) { return s->drop_db <= 0; }),
                 r.origin.end());
  if (r.worst.size() > r.top) r.worst.resize(r.top);
  if (r.origin.size() > r.top) r.origin.resize(r.top);
  return r;
}

// The command line of `compare`.
struct CompareCli {
  std::string ref, model;
  std::vector<std::string> data;
  std::vector<std::string> layout;
  int64_t max_samples = -1;
  int threads = 1;
  int top = 5;
  bool json = false;
};

std::string CompareJson(const CompareCli& o, int64_t samples, const std::string& data_sha256,
                        const std::vector<eval::LayerStats>& stats, const Ranked& r) {
  auto entry = [&](const eval::LayerStats& s) {
    nlohmann::json j = {{"value", s.name},
                        {"node", s.node},
                        {"op", s.op},
                        {"snr_db", DbJson(s.Snr())},
                        {"snr_drop_db", DbJson(s.drop_db)},
                        {"cosine", s.Cosine()},
                        {"max_abs_error", s.max_abs},
                        {"nmse", s.Nmse()},
                        {"elements", s.elements},
                        {"nonfinite", s.nonfinite},
                        {"is_output", s.is_output}};
    if (s.rows) j["argmax_agreement"] = double(s.argmax_agree) / double(s.rows);
    return j;
  };
  nlohmann::json j;
  j["reference"] = o.ref;
  j["model"] = o.model;
  j["samples"] = samples;
  j["data_sha256"] = data_sha256;
  j["values"] = nlohmann::json::array();
  j["not_compared"] = nlohmann::json::array();
  for (const eval::LayerStats& s : stats) {
    if (s.compared())
      j["values"].push_back(entry(s));
    else if (!s.mismatch.empty())
      j["not_compared"].push_back({{"value", s.name}, {"reason", s.mismatch}});
  }
  j["worst_by_snr"] = nlohmann::json::array();
  for (const eval::LayerStats* s : r.worst) j["worst_by_snr"].push_back(s->name);
  j["largest_snr_drop"] = nlohmann::json::array();
  for (const eval::LayerStats* s : r.origin) j["largest_snr_drop"].push_back(s->name);
  j["outputs"] = nlohmann::json::array();
  for (const eval::LayerStats* s : r.compared)
    if (s->is_output) j["outputs"].push_back(entry(*s));
  return j.dump(1) + "\n";
}

std::string CompareText(const CompareCli& o, int64_t samples,
                        const std::vector<eval::LayerStats>& stats, const Ranked& r) {
  size_t wv = 5, wn = 4, wo = 2;
  for (const eval::LayerStats* s : r.compared) {
    wv = std::max(wv, s->name.size());
    wn = std::max(wn, s->node.size());
    wo = std::max(wo, s->op.size());
  }
  wv = std::min<size_t>(wv, 48);
  wn = std::min<size_t>(wn, 40);
  std::string out = fmt::format("{} vs {}: {} value(s) compared over {} sample(s)\n\n", o.ref,
                                o.model, r.compared.size(), samples);
  auto row = [&](const eval::LayerStats& s) {
    return fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>8}  {:>8}  {:>10.6f}  {:>10.4g}\n", s.name, wv,
                       s.node, wn, s.op, wo, FormatDb(s.Snr()), FormatDb(s.drop_db), s.Cosine(),
                       s.max_abs);
  };
  std::string header =
      fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>8}  {:>8}  {:>10}  {:>10}\n", "value", wv, "node", wn,
                  "op", wo, "SNR dB", "drop dB", "cosine", "max abs");
  out += header;
  for (const eval::LayerStats* s : r.compared) out += row(*s);
  for (const eval::LayerStats& s : stats)
    if (!s.compared() && !s.mismatch.empty())
      out += fmt::format("{}: not compared: {}\n", s.name, s.mismatch);
  out += fmt::format("\nworst {} by SNR:\n", r.top);
  if (r.worst.empty()) out += "  (none: every compared value is identical)\n";
  for (size_t k = 0; k < r.worst.size(); ++k)
    out += fmt::format("  {}. {} ({} {}): SNR {} dB, cosine {:.6f}\n", k + 1, r.worst[k]->name,
                       r.worst[k]->node, r.worst[k]->op, FormatDb(r.worst[k]->Snr()),
                       r.worst[k]->Cosine());
  out += fmt::format("\nlargest SNR drop (where the error enters):\n");
  if (r.origin.empty()) out += "  (none)\n";
  for (size_t k = 0; k < r.origin.size(); ++k)
    out += fmt::format("  {}. {} ({} {}): drop {} dB, SNR {} dB\n", k + 1, r.origin[k]->name,
                       r.origin[k]->node, r.origin[k]->op, FormatDb(r.origin[k]->drop_db),
                       FormatDb(r.origin[k]->Snr()));
  out += "\nmodel outputs:\n";
  for (const eval::LayerStats* s : r.compared) {
    if (!s->is_output) continue;
    out += fmt::format("  {}: SNR {} dB, cosine {:.6f}, max abs {:.4g}", s->name,
                       FormatDb(s->Snr()), s->Cosine(), s->max_abs);
    if (s->rows)
      out +=
          fmt::format(", argmax agreement {:.2f}% ({}/{})",
                      100.0 * double(s->argmax_agree) / double(s->rows), s->argmax_agree, s->rows);
    out += "\n";
  }
  return out;
}

int RunCompare(const CompareCli& o) {
  std::shared_ptr<const ir::Model> ref(LoadModel(o.ref));
  std::shared_ptr<const ir::Model> model(LoadModel(o.model));
  calibrate::DataSet data = calibrate::DataSet::Open(
      o.data, *ref->graph, calibrate::ParseDataLayout(o.layout, "--layout"));
  int64_t samples = data.size();
  if (o.max_samples > 0) samples = std::min(samples, o.max_samples);
  if (samples <= 0) ThrowInvalid("the data set has no samples");
  std::vector<eval::LayerStats> stats = eval::CompareLayers(
      ref, model, samples, [&](int64_t i) { return data.Batch(i, 1); }, o.threads, o.ref, o.model);
  const Ranked r = RankLayers(stats, o.top);
  const std::string out =
      o.json ? CompareJson(o, samples, data.Sha256(), stats, r) : CompareText(o, samples, stats, r);
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace

void AddCompareCommand(CLI::App& app, Action& action) {
  auto o = std::make_shared<CompareCli>();
  CLI::App* cmd = app.add_subcommand(
      "compare",
      "Compare a model with its reference layer by layer (SNR, cosine, max error) to find "
      "the layer that broke it");
  cmd->footer(
      "Both models run as given (no fusion passes), so a quantized model in QDQ form keeps "
      "the float output names of its layers and is matched to the reference by value name. "
      "SNR is 10*log10(sum ref^2 / sum (model-ref)^2) over all samples; 'drop' is the SNR "
      "a layer loses relative to its worst compared input (the error it introduces; a "
      "heuristic: an input dominated by an exact term, such as an attention mask, inflates "
      "it).");
  cmd->add_option("REF_MODEL", o->ref, "reference model (.onnx, .epk), e.g. the fp32 one")
      ->required();
  cmd->add_option("MODEL", o->model, "model to check against it (.onnx, .epk)")->required();
  cmd->add_option("--data", o->data, "input samples (.npz/.npy or a folder; first axis = sample)")
      ->required();
  cmd->add_option("--layout", o->layout,
                  "how an array feeds an input: NAME=batched|stacked|constant (repeatable; default "
                  "inferred from the model's input shapes)");
  cmd->add_option("--max-samples", o->max_samples, "compare at most this many samples")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000000}));
  cmd->add_option("--threads", o->threads, "worker threads per model (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  AddMaxMemoryOption(cmd);
  AddInputShapeOption(cmd);
  cmd->add_option("--top", o->top, "list this many worst layers")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  cmd->add_flag("--json", o->json, "print the comparison as JSON");
  cmd->callback([o, &action] { action = [o] { return RunCompare(*o); }; });
}

}  // namespace edgepress::tools
