#include "passes/quant/smooth_quant.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "calibrate/calibrate.h"
#include "ir/error.h"
#include "ir/shape_inference.h"
#include "passes/quant/quant_util.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

// K (the reduced dimension) of a MatMul/Gemm that SmoothQuant can rescale, or -1.
int64_t SmoothableK(const ir::Node* n, const std::vector<std::string>& exclude) {
  if (!n->domain().empty() || (n->op_type() != "MatMul" && n->op_type() != "Gemm")) return -1;
  if (quant::MatchAnyGlob(exclude, n->name)) return -1;
  const ir::Value* x = n->input(0);
  if (!x || ConstantOf(x) || n->num_outputs() != 1) return -1;
  const ir::Tensor* w = ConstantOf(n->input(1));
  if (!w || w->dtype() != ir::DType::kFloat32 || w->rank() != 2) return -1;
  if (n->op_type() == "Gemm") {
    if (n->attr_int("transA", 0) != 0) return -1;
    return n->attr_int("transB", 0) ? w->shape()[1] : w->shape()[0];
  }
  return w->shape()[0];
}

bool TransposedB(const ir::Node* n) {
  return n->op_type() == "Gemm" && n->attr_int("transB", 0) != 0;
}

// Max |W| over each input channel j (row j of [K, N], column j of a transposed [N, K]).
void AccumulateWeightMax(const ir::Tensor& w, bool transposed, std::vector<double>& out) {
  int64_t rows = w.shape()[0], cols = w.shape()[1];
  const float* d = w.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      int64_t j = transposed ? c : r;
      out[j] = std::max(out[j], std::fabs(static_cast<double>(d[r * cols + c])));
    }
}

ir::Tensor ScaleWeight(const ir::Tensor& w, bool transposed, const std::vector<double>& s) {
  ir::Tensor out(ir::DType::kFloat32, w.shape());
  int64_t rows = w.shape()[0], cols = w.shape()[1];
  const float* d = w.data<float>();
  float* o = out.mutable_data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      o[r * cols + c] = static_cast<float>(d[r * cols + c] * s[transposed ? c : r]);
  return out;
}

ir::Tensor DivideBy(const ir::Tensor& t, const std::vector<double>& s) {
  ir::Tensor out(ir::DType::kFloat32, t.shape());
  for (size_t j = 0; j < s.size(); ++j)
    out.mutable_data<float>()[j] = static_cast<float>(t.data<float>()[j] / s[j]);
  return out;
}

struct Target {
  ir::Value* x = nullptr;
  std::vector<ir::Node*> users;  // in node order
  int64_t k = 0;
  int rank = 0;
};

// The LayerNormalization producing `t.x` when 1/s can be folded into it, else nullptr.
ir::Node* FoldableLayerNorm(const Target& t) {
  ir::Node* ln = ProducerOf(t.x, "LayerNormalization");
  if (!ln || t.x->is_graph_output() || ln->output(0) != t.x) return nullptr;
  for (size_t i = 1; i < ln->num_outputs(); ++i)
    if (ln->output(i) && (!ln->output(i)->uses().empty() || ln->output(i)->is_graph_output()))
      return nullptr;
  int64_t axis = ln->attr_int("axis", -1);
  if ((axis < 0 ? axis + t.rank : axis) != t.rank - 1) return nullptr;
  for (size_t i = 1; i < 3; ++i) {
    if (i == 2 && !ln->input(2)) continue;
    const ir::Tensor* p = ConstantOf(ln->input(i));
    if (!p || p->dtype() != ir::DType::kFloat32 || p->numel() != static_cast<uint64_t>(t.k))
      return nullptr;
  }
  if (t.x->uses().size() != t.users.size()) return nullptr;  // another reader needs X as is
  return ln;
}

void DropIfUnused(ir::Graph& g, ir::Value* v) {
  if (v && v->is_initializer() && v->uses().empty() && !v->is_graph_output() &&
      !v->is_graph_input())
    g.RemoveInitializer(v);
}

// The activations SmoothQuant can rescale: inputs X of MatMul/Gemm with constant [K, N]
// weights and a known rank, with all their users of the same K. The channel axis is the
// last one, so the rank of X must be known: imported models often carry no value_info, so
// shapes are inferred first when a candidate lacks one.
std::vector<Target> FindTargets(ir::Model& model, const SmoothQuantOptions& o) {
  ir::Graph& g = *model.graph;
  bool unknown = false;
  for (ir::Node* n : g.nodes())
    unknown = unknown || (SmoothableK(n, o.exclude) > 0 && !n->input(0)->type.shape);
  if (unknown) {
    try {
      ir::InferShapes(model);
    } catch (const Error&) {
      // Best effort: candidates whose rank stays unknown are skipped below.
    }
  }
  std::vector<Target> targets;
  std::map<ir::Value*, size_t> index;
  for (ir::Node* n : g.nodes()) {
    int64_t k = SmoothableK(n, o.exclude);
    if (k <= 0) continue;
    ir::Value* x = n->input(0);
    if (!x->type.shape || x->type.shape->empty()) continue;  // rank unknown
    int rank = static_cast<int>(x->type.shape->size());
    const ir::Dim& last = x->type.shape->back();
    if (last.known() && last.value != k) continue;
    auto it = index.find(x);
    if (it == index.end()) {
      index[x] = targets.size();
      targets.push_back({x, {n}, k, rank});
    } else if (targets[it->second].k == k) {
      targets[it->second].users.push_back(n);
    }
  }
  return targets;
}

// Per-channel |X| maxima, one calibration per rank (the channel axis is the last one).
std::map<std::string, calibrate::TensorRange> ChannelRanges(ir::Model& model,
                                                            calibrate::DataSet& data,
                                                            const std::vector<Target>& targets,
                                                            const SmoothQuantOptions& o) {
  std::map<int, std::vector<std::string>> by_rank;
  for (const Target& t : targets) by_rank[t.rank].push_back(t.x->name());
  std::map<std::string, calibrate::TensorRange> ranges;
  for (const auto& [rank, names] : by_rank) {
    calibrate::CalibrationOptions co;
    co.observer.method = calibrate::Method::kMinMax;
    co.observer.per_channel_axis = rank - 1;
    co.tensors = names;
    co.max_samples = o.max_samples;
    co.threads = o.threads;
    calibrate::CalibrationResult r = calibrate::Calibrate(model, data, co);
    for (auto& [name, range] : r.ranges) ranges[name] = std::move(range);
  }
  return ranges;
}

// s_j = max|X_j|^alpha / max|W_j|^(1 - alpha), clamped to [1e-5, 1e5]; 1 where either is 0.
std::vector<double> SmoothingScales(const Target& t, const calibrate::TensorRange& r,
                                    double alpha) {
  std::vector<double> wmax(t.k, 0.0);
  for (ir::Node* u : t.users) AccumulateWeightMax(*ConstantOf(u->input(1)), TransposedB(u), wmax);
  std::vector<double> s(t.k, 1.0);
  for (int64_t j = 0; j < t.k; ++j) {
    double a = std::max(std::fabs(static_cast<double>(r.channel_min[j])),
                        std::fabs(static_cast<double>(r.channel_max[j])));
    if (a > 0 && wmax[j] > 0 && std::isfinite(a))
      s[j] = std::clamp(std::pow(a, alpha) / std::pow(wmax[j], 1.0 - alpha), 1e-5, 1e5);
  }
  return s;
}

// X / s: folded into the LayerNormalization producing X where possible (its gamma and beta
// divided by s), else a Mul by 1/s before the users. Returns what took it.
std::string DivideActivation(ir::Graph& g, const Target& t, const std::vector<double>& s,
                             SmoothQuantResult& result) {
  if (ir::Node* ln = FoldableLayerNorm(t)) {
    for (size_t i = 1; i < 3 && i < ln->num_inputs(); ++i) {
      ir::Value* p = ln->input(i);
      if (!p) continue;
      ir::Value* np = AddConstant(g, p->name() + "_smoothed", DivideBy(*ConstantOf(p), s));
      ln->set_input(i, np);
      DropIfUnused(g, p);
    }
    ++result.layernorm_folds;
    return ln->name;
  }
  ir::Tensor inv(ir::DType::kFloat32, {t.k});
  for (int64_t j = 0; j < t.k; ++j) inv.mutable_data<float>()[j] = static_cast<float>(1.0 / s[j]);
  ir::Value* iv = AddConstant(g, t.x->name() + "_smooth_scale", std::move(inv));
  ir::Node* mul = g.InsertNode(t.users.front(), "Mul", {t.x, iv},
                               {g.UniqueName(t.x->name() + "_smoothed")},
                               g.UniqueName(t.x->name() + "_SmoothMul"));
  mul->output(0)->type = t.x->type;
  for (ir::Node* u : t.users) u->set_input(0, mul->output(0));
  ++result.muls_inserted;
  return "Mul:" + mul->name;
}

// W * s on each user's input channels (weights shared by several users scaled once).
nlohmann::json ScaleWeights(ir::Graph& g, const Target& t, const std::vector<double>& s,
                            SmoothQuantResult& result) {
  std::map<ir::Value*, ir::Value*> scaled;
  nlohmann::json layers = nlohmann::json::array();
  for (ir::Node* u : t.users) {
    ir::Value* w = u->input(1);
    auto sit = scaled.find(w);
    if (sit == scaled.end()) {
      ir::Value* nw =
          AddConstant(g, w->name() + "_smoothed", ScaleWeight(*ConstantOf(w), TransposedB(u), s));
      sit = scaled.emplace(w, nw).first;
    }
    u->set_input(1, sit->second);
    DropIfUnused(g, w);
    layers.push_back(u->name);
    ++result.layers;
  }
  return layers;
}

}  // namespace

SmoothQuantResult ApplySmoothQuant(ir::Model& model, calibrate::DataSet& data,
                                   const SmoothQuantOptions& o) {
  ir::Graph& g = *model.graph;
  SmoothQuantResult result;
  const std::vector<Target> targets = FindTargets(model, o);
  if (targets.empty()) return result;
  const std::map<std::string, calibrate::TensorRange> ranges =
      ChannelRanges(model, data, targets, o);
  nlohmann::json details = nlohmann::json::array();
  for (const Target& t : targets) {
    auto rit = ranges.find(t.x->name());
    if (rit == ranges.end() || rit->second.channel_max.size() != static_cast<size_t>(t.k) ||
        rit->second.channel_min.size() != static_cast<size_t>(t.k))
      continue;
    const std::vector<double> s = SmoothingScales(t, rit->second, o.alpha);
    nlohmann::json entry;
    entry["activation"] = t.x->name();
    entry["folded_into"] = DivideActivation(g, t, s, result);
    entry["layers"] = ScaleWeights(g, t, s, result);
    entry["channels"] = t.k;
    entry["alpha"] = o.alpha;
    entry["scale_min"] = *std::min_element(s.begin(), s.end());
    entry["scale_max"] = *std::max_element(s.begin(), s.end());
    details.push_back(entry);
    ++result.activations;
  }
  result.json = details.dump();
  return result;
}

}  // namespace edgepress::passes
