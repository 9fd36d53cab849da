// Layer-by-layer comparison; see layer_compare.h.
#include "eval/layer_compare.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include "ir/error.h"

namespace edgepress::eval {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

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

// One sample's reference values of a value, held until the model produced its own.
struct Held {
  std::vector<float> values;
  std::vector<int64_t> shape;
  bool held = false;
};

void Accumulate(LayerStats& s, const Held& h, const ir::Tensor& t, const std::string& model_path) {
  if (!ir::IsFloat(t.dtype())) {
    if (s.mismatch.empty())
      s.mismatch = std::string(ir::DTypeName(t.dtype())) + " in " + model_path +
                   ", float in the reference";
    return;
  }
  if (t.shape() != h.shape) {
    if (s.mismatch.empty())
      s.mismatch = "shape " + ir::ShapeToString(ir::MakeShape(t.shape())) + " in " +
                   model_path + ", " + ir::ShapeToString(ir::MakeShape(h.shape)) +
                   " in the reference";
    return;
  }
  std::vector<double> converted;
  const float* m32 = t.dtype() == ir::DType::kFloat32 ? t.data<float>() : nullptr;
  if (!m32) converted = t.ToDouble();
  const float* r = h.values.data();
  size_t n = h.values.size();
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
  if (s.is_output && !h.shape.empty() && h.shape.back() > 1) {
    size_t cols = static_cast<size_t>(h.shape.back());
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

}  // namespace

double LayerStats::Snr() const {
  if (sum_err2 == 0) return kInf;
  if (sum_ref2 == 0) return -kInf;
  return 10 * std::log10(sum_ref2 / sum_err2);
}

double LayerStats::Cosine() const {
  if (sum_ref2 == 0 && sum_model2 == 0) return 1;
  if (sum_ref2 == 0 || sum_model2 == 0) return 0;
  return sum_dot / std::sqrt(sum_ref2 * sum_model2);
}

std::vector<LayerStats> CompareLayers(std::shared_ptr<const ir::Model> ref,
                                      std::shared_ptr<const ir::Model> model, int64_t samples,
                                      const std::function<runtime::NamedTensors(int64_t)>& feed,
                                      int threads, const std::string& ref_name,
                                      const std::string& model_name) {
  std::map<std::string, std::string> ref_inputs, model_inputs;
  std::string ref_sig = InputsSignature(*ref->graph, &ref_inputs);
  std::string model_sig = InputsSignature(*model->graph, &model_inputs);
  if (ref_inputs != model_inputs)
    ThrowInvalid("models have different inputs: " + ref_name + " takes (" + ref_sig + "), " +
                 model_name + " takes (" + model_sig + ")");

  // The values both graphs compute, in the reference's graph order.
  std::set<std::string> model_values;
  for (const ir::Node* n : model->graph->nodes())
    for (const ir::Value* v : n->outputs())
      if (v) model_values.insert(v->name());
  std::set<std::string> ref_outputs;
  for (const ir::Value* v : ref->graph->outputs()) ref_outputs.insert(v->name());
  std::vector<LayerStats> stats;
  std::unordered_map<std::string, size_t> slot;
  for (const ir::Node* n : ref->graph->nodes()) {
    for (const ir::Value* v : n->outputs()) {
      if (!v || !model_values.count(v->name())) continue;
      if (v->type.is_tensor() && v->type.dtype != ir::DType::kUndefined &&
          !ir::IsFloat(v->type.dtype))
        continue;  // shapes, indices, masks: not what a layer's accuracy is about
      LayerStats s;
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
    ThrowInvalid("no common values: no float value computed by a node of " + ref_name +
                 " has a namesake in " + model_name +
                 "; layers are matched by value name (is the model derived from the reference?)");

  std::vector<Held> held(stats.size());
  runtime::SessionOptions ref_opts;
  ref_opts.threads = threads;
  ref_opts.observer = [&](const ir::Node& n, const std::vector<const ir::Tensor*>& outs) {
    for (size_t i = 0; i < outs.size() && i < n.num_outputs(); ++i) {
      if (!outs[i] || !n.output(i)) continue;
      auto it = slot.find(n.output(i)->name());
      if (it == slot.end() || !ir::IsFloat(outs[i]->dtype())) continue;
      Held& h = held[it->second];
      h.values = ToFloats(*outs[i]);
      h.shape = outs[i]->shape();
      h.held = true;
    }
  };
  runtime::SessionOptions model_opts;
  model_opts.threads = threads;
  model_opts.observer = [&](const ir::Node& n, const std::vector<const ir::Tensor*>& outs) {
    for (size_t i = 0; i < outs.size() && i < n.num_outputs(); ++i) {
      if (!outs[i] || !n.output(i)) continue;
      auto it = slot.find(n.output(i)->name());
      if (it == slot.end() || !held[it->second].held) continue;
      Accumulate(stats[it->second], held[it->second], *outs[i], model_name);
    }
  };
  auto ref_session = runtime::Session::Create(ref, ref_opts);
  auto model_session = runtime::Session::Create(model, model_opts);
  for (int64_t i = 0; i < samples; ++i) {
    runtime::NamedTensors feeds = feed(i);
    for (Held& h : held) h.held = false;
    try {
      ref_session->Run(feeds);
    } catch (const Error& e) {
      throw Error(e.code(), ref_name + ": sample " + std::to_string(i) + ": " + e.what());
    }
    try {
      model_session->Run(feeds);
    } catch (const Error& e) {
      throw Error(e.code(), model_name + ": sample " + std::to_string(i) + ": " + e.what());
    }
  }

  // The SNR each value had at its inputs (the worst compared one; exact when none is
  // compared, e.g. graph inputs and weights) and the drop across its node.
  bool any = false;
  for (LayerStats& s : stats) {
    if (!s.compared()) continue;
    any = true;
    double in_snr = kInf;
    for (const std::string& in : s.inputs) {
      auto it = slot.find(in);
      if (it != slot.end() && stats[it->second].compared())
        in_snr = std::min(in_snr, stats[it->second].Snr());
    }
    double out_snr = s.Snr();
    if (std::isinf(out_snr) && out_snr > 0) s.drop_db = 0;
    else if (std::isinf(in_snr)) s.drop_db = kInf;
    else s.drop_db = std::max(0.0, in_snr - out_snr);
  }
  if (!any)
    ThrowInvalid("no common values were computed at run time: the shared names of " + ref_name +
                 " and " + model_name + " are all constants folded at planning");
  return stats;
}

}  // namespace edgepress::eval
