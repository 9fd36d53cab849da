// `edgepress compare REF MODEL --data D`: which layer broke it. Runs a reference model and
// a model derived from it (quantized, pruned, hand-edited) on the same samples and
// compares every intermediate value the two graphs share by name, layer by layer.
//
// Both models are loaded as given, without the default fusion pipeline: quantization
// passes keep the float output name of each quantized op (QDQ form), so the values line
// up; fused nodes would rename or hide them. Values are read through
// SessionOptions::observer as each node runs. Memory is bounded by one sample's
// activations of the reference (held while the model runs that sample) plus a few sums
// per value: statistics stream over the samples instead of storing tensors.
//
// Per value: SNR in dB (10 log10 of sum ref^2 over sum (model - ref)^2, over all samples
// and elements), cosine similarity of the flattened tensors (over all samples), max
// absolute error, and the SNR drop from the layer's worst compared input to its output —
// the error a layer introduces itself rather than inherits, which points at the layer
// that broke the model. Graph outputs also get their argmax agreement (top-1 for
// classifiers) along the last axis.
//
// The drop is a heuristic: an input whose energy is dominated by an exact term (e.g.
// attention scores plus a -10000 padding mask) has a high SNR, so the op after it (the
// Softmax) shows a large drop although the error came with the scores. Read the list
// together with the table.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "calibrate/dataset.h"
#include "ir/error.h"
#include "runtime/session.h"
#include "tools/cli.h"
#include "tools/model_io.h"

namespace edgepress::tools {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct ValueStats {
  std::string name, node, op;
  std::vector<std::string> inputs;  // the reference node's input value names
  bool is_output = false;
  // Per sample: the reference's values (float), held until the model produced its own.
  std::vector<float> ref;
  std::vector<int64_t> ref_shape;
  bool held = false;
  // Sums over all samples.
  double sum_ref2 = 0, sum_model2 = 0, sum_dot = 0, sum_err2 = 0, max_abs = 0;
  uint64_t elements = 0, nonfinite = 0, samples = 0;
  uint64_t rows = 0, argmax_agree = 0;  // graph outputs of rank >= 1 with last dim > 1
  std::string mismatch;                 // first shape/dtype mismatch, if any

  double Snr() const {
    if (sum_err2 == 0) return kInf;
    if (sum_ref2 == 0) return -kInf;
    return 10 * std::log10(sum_ref2 / sum_err2);
  }
  double Cosine() const {
    if (sum_ref2 == 0 && sum_model2 == 0) return 1;
    if (sum_ref2 == 0 || sum_model2 == 0) return 0;
    return sum_dot / std::sqrt(sum_ref2 * sum_model2);
  }
  bool compared() const { return samples > 0; }
};

std::vector<float> ToFloats(const ir::Tensor& t) {
  std::vector<float> out(t.numel());
  if (t.dtype() == ir::DType::kFloat32) {
    if (t.numel()) std::memcpy(out.data(), t.raw(), t.numel() * sizeof(float));
    return out;
  }
  std::vector<double> d = t.ToDouble();
  for (size_t i = 0; i < d.size(); ++i) out[i] = static_cast<float>(d[i]);
  return out;
}

void Accumulate(ValueStats& s, const ir::Tensor& t, const std::string& model_path) {
  if (!ir::IsFloat(t.dtype())) {
    if (s.mismatch.empty())
      s.mismatch = fmt::format("{} in {}, float in the reference", ir::DTypeName(t.dtype()),
                               model_path);
    return;
  }
  if (t.shape() != s.ref_shape) {
    if (s.mismatch.empty())
      s.mismatch = fmt::format("shape {} in {}, {} in the reference",
                               ir::ShapeToString(ir::MakeShape(t.shape())), model_path,
                               ir::ShapeToString(ir::MakeShape(s.ref_shape)));
    return;
  }
  std::vector<double> converted;
  const float* m32 = t.dtype() == ir::DType::kFloat32 ? t.data<float>() : nullptr;
  if (!m32) converted = t.ToDouble();
  const float* r = s.ref.data();
  size_t n = s.ref.size();
  double ref2 = 0, model2 = 0, dot = 0, err2 = 0, max_abs = s.max_abs;
  for (size_t i = 0; i < n; ++i) {
    double a = r[i], b = m32 ? m32[i] : converted[i];
    if (!std::isfinite(a) || !std::isfinite(b)) {
      // Equal infinities agree; anything else non-finite is counted, not summed.
      if (!(a == b)) ++s.nonfinite;
      continue;
    }
    double e = b - a;
    ref2 += a * a;
    model2 += b * b;
    dot += a * b;
    err2 += e * e;
    max_abs = std::max(max_abs, std::fabs(e));
  }
  s.sum_ref2 += ref2;
  s.sum_model2 += model2;
  s.sum_dot += dot;
  s.sum_err2 += err2;
  s.max_abs = max_abs;
  s.elements += n;
  s.samples += 1;
  if (s.is_output && !s.ref_shape.empty() && s.ref_shape.back() > 1) {
    size_t cols = static_cast<size_t>(s.ref_shape.back());
    for (size_t row = 0; row + cols <= n; row += cols) {
      size_t ra = row, ma = row;
      for (size_t j = row; j < row + cols; ++j) {
        if (r[j] > r[ra]) ra = j;
        double mj = m32 ? m32[j] : converted[j], mb = m32 ? m32[ma] : converted[ma];
        if (mj > mb) ma = j;
      }
      ++s.rows;
      s.argmax_agree += ra == ma;
    }
  }
}

std::string InputsSignature(const ir::Graph& g, std::map<std::string, std::string>* out) {
  std::string sig;
  for (const ir::Value* v : g.inputs()) {
    if (v->is_initializer()) continue;
    (*out)[v->name()] = v->type.is_tensor() ? ir::DTypeName(v->type.dtype) : "?";
    sig += (sig.empty() ? "" : ", ") + v->name() + ": " + v->type.ToString();
  }
  return sig;
}

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
  cmd->add_option("--data", o->data, "input samples (.npz/.npy; first axis = sample)")
      ->required();
  cmd->add_option("--max-samples", o->max_samples, "compare at most this many samples")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000000}));
  cmd->add_option("--threads", o->threads, "worker threads per model (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--top", o->top, "list this many worst layers")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  cmd->add_flag("--json", o->json, "print the comparison as JSON");
  cmd->callback([o, &action] {
    action = [o] {
      std::shared_ptr<const ir::Model> ref(LoadModel(o->ref));
      std::shared_ptr<const ir::Model> model(LoadModel(o->model));

      std::map<std::string, std::string> ref_inputs, model_inputs;
      std::string ref_sig = InputsSignature(*ref->graph, &ref_inputs);
      std::string model_sig = InputsSignature(*model->graph, &model_inputs);
      if (ref_inputs != model_inputs)
        ThrowInvalid("models have different inputs: " + o->ref + " takes (" + ref_sig +
                     "), " + o->model + " takes (" + model_sig + ")");

      // The values both graphs compute, in the reference's graph order.
      std::set<std::string> model_values;
      for (const ir::Node* n : model->graph->nodes())
        for (const ir::Value* v : n->outputs())
          if (v) model_values.insert(v->name());
      std::set<std::string> ref_outputs;
      for (const ir::Value* v : ref->graph->outputs()) ref_outputs.insert(v->name());
      std::vector<ValueStats> stats;
      std::unordered_map<std::string, size_t> slot;
      for (const ir::Node* n : ref->graph->nodes()) {
        for (const ir::Value* v : n->outputs()) {
          if (!v || !model_values.count(v->name())) continue;
          if (v->type.is_tensor() && v->type.dtype != ir::DType::kUndefined &&
              !ir::IsFloat(v->type.dtype))
            continue;  // shapes, indices, masks: not what a layer's accuracy is about
          ValueStats s;
          s.name = v->name();
          s.node = n->name;
          s.op = n->qualified_op();
          for (const ir::Value* in : n->inputs())
            if (in) s.inputs.push_back(in->name());
          s.is_output = ref_outputs.count(v->name()) > 0;
          slot[s.name] = stats.size();
          stats.push_back(std::move(s));
        }
      }
      if (stats.empty())
        ThrowInvalid("no common values: no float value computed by a node of " + o->ref +
                     " has a namesake in " + o->model +
                     "; compare matches layers by value name (is MODEL derived from REF_MODEL?)");

      calibrate::DataSet data = calibrate::DataSet::Open(o->data, *ref->graph);
      int64_t samples = data.size();
      if (o->max_samples > 0) samples = std::min(samples, o->max_samples);
      if (samples <= 0) ThrowInvalid("the data set has no samples");

      runtime::SessionOptions ref_opts;
      ref_opts.threads = o->threads;
      ref_opts.observer = [&](const ir::Node& n, const std::vector<const ir::Tensor*>& outs) {
        for (size_t i = 0; i < outs.size() && i < n.num_outputs(); ++i) {
          if (!outs[i] || !n.output(i)) continue;
          auto it = slot.find(n.output(i)->name());
          if (it == slot.end() || !ir::IsFloat(outs[i]->dtype())) continue;
          ValueStats& s = stats[it->second];
          s.ref = ToFloats(*outs[i]);
          s.ref_shape = outs[i]->shape();
          s.held = true;
        }
      };
      runtime::SessionOptions model_opts;
      model_opts.threads = o->threads;
      model_opts.observer = [&](const ir::Node& n, const std::vector<const ir::Tensor*>& outs) {
        for (size_t i = 0; i < outs.size() && i < n.num_outputs(); ++i) {
          if (!outs[i] || !n.output(i)) continue;
          auto it = slot.find(n.output(i)->name());
          if (it == slot.end() || !stats[it->second].held) continue;
          Accumulate(stats[it->second], *outs[i], o->model);
        }
      };
      auto ref_session = runtime::Session::Create(ref, ref_opts);
      auto model_session = runtime::Session::Create(model, model_opts);
      for (int64_t i = 0; i < samples; ++i) {
        calibrate::NamedTensors feeds = data.Batch(i, 1);
        for (ValueStats& s : stats) s.held = false;
        try {
          ref_session->Run(feeds);
        } catch (const Error& e) {
          throw Error(e.code(), o->ref + ": sample " + std::to_string(i) + ": " + e.what());
        }
        try {
          model_session->Run(feeds);
        } catch (const Error& e) {
          throw Error(e.code(), o->model + ": sample " + std::to_string(i) + ": " + e.what());
        }
      }
      for (ValueStats& s : stats) {
        s.ref.clear();
        s.ref.shrink_to_fit();
      }

      // The SNR each value had at its inputs (the worst compared one; exact when none is
      // compared, e.g. graph inputs and weights) and the drop across its node.
      std::vector<const ValueStats*> compared;
      std::vector<double> drop(stats.size(), 0);
      for (size_t k = 0; k < stats.size(); ++k) {
        const ValueStats& s = stats[k];
        if (!s.compared()) continue;
        double in_snr = kInf;
        for (const std::string& in : s.inputs) {
          auto it = slot.find(in);
          if (it != slot.end() && stats[it->second].compared())
            in_snr = std::min(in_snr, stats[it->second].Snr());
        }
        double out_snr = s.Snr();
        if (std::isinf(out_snr) && out_snr > 0) drop[k] = 0;
        else if (std::isinf(in_snr)) drop[k] = kInf;
        else drop[k] = std::max(0.0, in_snr - out_snr);
        compared.push_back(&s);
      }
      if (compared.empty())
        ThrowInvalid("no common values were computed at run time: the shared names of " +
                     o->ref + " and " + o->model + " are all constants folded at planning");
      auto drop_of = [&](const ValueStats* s) { return drop[s - stats.data()]; };
      std::vector<const ValueStats*> worst = compared;
      std::stable_sort(worst.begin(), worst.end(), [](const ValueStats* a, const ValueStats* b) {
        return a->Snr() < b->Snr();
      });
      std::vector<const ValueStats*> origin = compared;
      std::stable_sort(origin.begin(), origin.end(), [&](const ValueStats* a, const ValueStats* b) {
        return drop_of(a) > drop_of(b);
      });
      size_t top = std::min<size_t>(static_cast<size_t>(o->top), compared.size());
      // Only layers that lose accuracy belong in the lists.
      auto degraded = [](const ValueStats* s) { return !std::isinf(s->Snr()); };
      worst.erase(std::remove_if(worst.begin(), worst.end(),
                                 [&](const ValueStats* s) { return !degraded(s); }),
                  worst.end());
      origin.erase(std::remove_if(origin.begin(), origin.end(),
                                  [&](const ValueStats* s) { return drop_of(s) <= 0; }),
                   origin.end());
      if (worst.size() > top) worst.resize(top);
      if (origin.size() > top) origin.resize(top);

      if (o->json) {
        auto entry = [&](const ValueStats& s) {
          nlohmann::json j = {{"value", s.name},
                              {"node", s.node},
                              {"op", s.op},
                              {"snr_db", DbJson(s.Snr())},
                              {"snr_drop_db", DbJson(drop[&s - stats.data()])},
                              {"cosine", s.Cosine()},
                              {"max_abs_error", s.max_abs},
                              {"nmse", s.sum_ref2 > 0 ? s.sum_err2 / s.sum_ref2 : 0.0},
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
        for (const ValueStats& s : stats) {
          if (s.compared()) j["values"].push_back(entry(s));
          else if (!s.mismatch.empty())
            j["not_compared"].push_back({{"value", s.name}, {"reason", s.mismatch}});
        }
        j["worst_by_snr"] = nlohmann::json::array();
        for (const ValueStats* s : worst) j["worst_by_snr"].push_back(s->name);
        j["largest_snr_drop"] = nlohmann::json::array();
        for (const ValueStats* s : origin) j["largest_snr_drop"].push_back(s->name);
        j["outputs"] = nlohmann::json::array();
        for (const ValueStats* s : compared)
          if (s->is_output) j["outputs"].push_back(entry(*s));
        std::fputs((j.dump(1) + "\n").c_str(), stdout);
        return 0;
      }

      size_t wv = 5, wn = 4, wo = 2;
      for (const ValueStats* s : compared) {
        wv = std::max(wv, s->name.size());
        wn = std::max(wn, s->node.size());
        wo = std::max(wo, s->op.size());
      }
      wv = std::min<size_t>(wv, 48);
      wn = std::min<size_t>(wn, 40);
      std::string out = fmt::format("{} vs {}: {} value(s) compared over {} sample(s)\n\n",
                                    o->ref, o->model, compared.size(), samples);
      auto row = [&](const ValueStats& s) {
        return fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>8}  {:>8}  {:>10.6f}  {:>10.4g}\n", s.name,
                           wv, s.node, wn, s.op, wo, FormatDb(s.Snr()),
                           FormatDb(drop[&s - stats.data()]), s.Cosine(), s.max_abs);
      };
      std::string header = fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>8}  {:>8}  {:>10}  {:>10}\n",
                                       "value", wv, "node", wn, "op", wo, "SNR dB", "drop dB",
                                       "cosine", "max abs");
      out += header;
      for (const ValueStats* s : compared) out += row(*s);
      for (const ValueStats& s : stats)
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
      for (const ValueStats* s : compared) {
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
