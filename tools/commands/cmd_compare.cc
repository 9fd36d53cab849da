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

}  // namespace

void AddCompareCommand(CLI::App& app, Action& action) {
  struct Options {
    std::string ref, model;
    std::vector<std::string> data;
    std::vector<std::string> layout;
    int64_t max_samples = -1;
    int threads = 1;
    int top = 5;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
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
  cmd->add_option("--layout", o->layout, "how an array feeds an input: NAME=batched|stacked|constant (repeatable; default inferred from the model's input shapes)");
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
  cmd->callback([o, &action] {
    action = [o] {
      std::shared_ptr<const ir::Model> ref(LoadModel(o->ref));
      std::shared_ptr<const ir::Model> model(LoadModel(o->model));

      calibrate::DataSet data = calibrate::DataSet::Open(
          o->data, *ref->graph, calibrate::ParseDataLayout(o->layout, "--layout"));
      int64_t samples = data.size();
      if (o->max_samples > 0) samples = std::min(samples, o->max_samples);
      if (samples <= 0) ThrowInvalid("the data set has no samples");
      std::vector<eval::LayerStats> stats = eval::CompareLayers(
          ref, model, samples, [&](int64_t i) { return data.Batch(i, 1); }, o->threads, o->ref,
          o->model);
      std::vector<const eval::LayerStats*> compared;
      for (const eval::LayerStats& s : stats)
        if (s.compared()) compared.push_back(&s);
      auto drop_of = [](const eval::LayerStats* s) { return s->drop_db; };
      std::vector<const eval::LayerStats*> worst = compared;
      std::stable_sort(worst.begin(), worst.end(), [](const eval::LayerStats* a, const eval::LayerStats* b) {
        return a->Snr() < b->Snr();
      });
      std::vector<const eval::LayerStats*> origin = compared;
      std::stable_sort(origin.begin(), origin.end(), [&](const eval::LayerStats* a, const eval::LayerStats* b) {
        return drop_of(a) > drop_of(b);
      });
      size_t top = std::min<size_t>(static_cast<size_t>(o->top), compared.size());
      // Only layers that lose accuracy belong in the lists.
      auto degraded = [](const eval::LayerStats* s) { return !std::isinf(s->Snr()); };
      worst.erase(std::remove_if(worst.begin(), worst.end(),
                                 [&](const eval::LayerStats* s) { return !degraded(s); }),
                  worst.end());
      origin.erase(std::remove_if(origin.begin(), origin.end(),
                                  [&](const eval::LayerStats* s) { return drop_of(s) <= 0; }),
                   origin.end());
      if (worst.size() > top) worst.resize(top);
      if (origin.size() > top) origin.resize(top);

      if (o->json) {
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
        j["reference"] = o->ref;
        j["model"] = o->model;
        j["samples"] = samples;
        j["data_sha256"] = data.Sha256();
        j["values"] = nlohmann::json::array();
        j["not_compared"] = nlohmann::json::array();
        for (const eval::LayerStats& s : stats) {
          if (s.compared()) j["values"].push_back(entry(s));
          else if (!s.mismatch.empty())
            j["not_compared"].push_back({{"value", s.name}, {"reason", s.mismatch}});
        }
        j["worst_by_snr"] = nlohmann::json::array();
        for (const eval::LayerStats* s : worst) j["worst_by_snr"].push_back(s->name);
        j["largest_snr_drop"] = nlohmann::json::array();
        for (const eval::LayerStats* s : origin) j["largest_snr_drop"].push_back(s->name);
        j["outputs"] = nlohmann::json::array();
        for (const eval::LayerStats* s : compared)
          if (s->is_output) j["outputs"].push_back(entry(*s));
        std::fputs((j.dump(1) + "\n").c_str(), stdout);
        return 0;
      }

      size_t wv = 5, wn = 4, wo = 2;
      for (const eval::LayerStats* s : compared) {
        wv = std::max(wv, s->name.size());
        wn = std::max(wn, s->node.size());
        wo = std::max(wo, s->op.size());
      }
      wv = std::min<size_t>(wv, 48);
      wn = std::min<size_t>(wn, 40);
      std::string out = fmt::format("{} vs {}: {} value(s) compared over {} sample(s)\n\n",
                                    o->ref, o->model, compared.size(), samples);
      auto row = [&](const eval::LayerStats& s) {
        return fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>8}  {:>8}  {:>10.6f}  {:>10.4g}\n", s.name,
                           wv, s.node, wn, s.op, wo, FormatDb(s.Snr()),
                           FormatDb(s.drop_db), s.Cosine(), s.max_abs);
      };
      std::string header = fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>8}  {:>8}  {:>10}  {:>10}\n",
                                       "value", wv, "node", wn, "op", wo, "SNR dB", "drop dB",
                                       "cosine", "max abs");
      out += header;
      for (const eval::LayerStats* s : compared) out += row(*s);
      for (const eval::LayerStats& s : stats)
        if (!s.compared() && !s.mismatch.empty())
          out += fmt::format("{}: not compared: {}\n", s.name, s.mismatch);
      out += fmt::format("\nworst {} by SNR:\n", top);
      if (worst.empty()) out += "  (none: every compared value is identical)\n";
      for (size_t k = 0; k < worst.size(); ++k)
        out += fmt::format("  {}. {} ({} {}): SNR {} dB, cosine {:.6f}\n", k + 1, worst[k]->name,
                           worst[k]->node, worst[k]->op, FormatDb(worst[k]->Snr()),
                           worst[k]->Cosine());
      out += fmt::format("\nlargest SNR drop (where the error enters):\n");
      if (origin.empty()) out += "  (none)\n";
      for (size_t k = 0; k < origin.size(); ++k)
        out += fmt::format("  {}. {} ({} {}): drop {} dB, SNR {} dB\n", k + 1, origin[k]->name,
                           origin[k]->node, origin[k]->op, FormatDb(drop_of(origin[k])),
                           FormatDb(origin[k]->Snr()));
      out += "\nmodel outputs:\n";
      for (const eval::LayerStats* s : compared) {
        if (!s->is_output) continue;
        out += fmt::format("  {}: SNR {} dB, cosine {:.6f}, max abs {:.4g}", s->name,
                           FormatDb(s->Snr()), s->Cosine(), s->max_abs);
        if (s->rows)
          out += fmt::format(", argmax agreement {:.2f}% ({}/{})",
                             100.0 * double(s->argmax_agree) / double(s->rows), s->argmax_agree,
                             s->rows);
        out += "\n";
      }
      std::fputs(out.c_str(), stdout);
      return 0;
    };
  });
}

}  // namespace edgepress::tools
