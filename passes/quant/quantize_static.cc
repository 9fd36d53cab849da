// quantize-static: post-training static int8 quantization in QDQ form, the way
// onnxruntime's QDQ quantizer writes CNNs and transformers. The pass calibrates the model
// it is given on PassContext::data_files (calibrate::Calibrate with `method`, over at most
// `calib-samples` samples), then inserts QuantizeLinear/DequantizeLinear pairs:
//
// - activations: uint8 asymmetric (activation-type=int8: int8 symmetric, [-127, 127]);
//   weights: int8 symmetric, per output channel (per-channel=false: per tensor); the bias
//   of Conv/Gemm: int32 through DequantizeLinear with scale s_x * s_w and zero point 0.
// - Which ops run integer (the rest stays float):
//   * Conv, ConvTranspose (group 1; weights per channel on axis 1), MatMul, Gemm
//     (constant float weights, or MatMul/Gemm of two activations) get
//     Q/DQ on their activation inputs and quantized weights; their output is quantized
//     where an integer op reads it.
//   * Add and Mul with two activation inputs (no constant operand) get Q/DQ on both
//     inputs, whatever produced them, and on their output, as onnxruntime's QDQ quantizer
//     does: the residual Add of a ResNet block reads the (int8) Conv output and the skip
//     value, and the Add [+ Relu] output feeds the next Convs int8, so the whole block
//     runs integer (fuse-qdq: QLinearConv + QLinearAdd) instead of Conv writing float.
//   * A Relu or Clip that is the only reader of a Conv/MatMul/Gemm/Add/Mul output is fused
//     into the producer's output range: it stays in place and its output carries the
//     Q/DQ, so DQ -> Conv -> Relu -> Q is one integer pattern (no Q/DQ between Conv and
//     Relu), and so is DQ, DQ -> Add -> Relu -> Q.
//   * Data-movement ops (Reshape, Transpose, Flatten, Squeeze, Unsqueeze, MaxPool, Concat,
//     and Resize in nearest mode, a gather) run integer when their inputs are quantized, and share their inputs' scale and zero
//     point (one set per connected group, from the union of the group's ranges), so
//     DQ -> Reshape -> Q never requantizes.
//   * AveragePool, GlobalAveragePool run integer only when their data input is a
//     quantized output of an integer op.
//   * Element-wise functions (Sigmoid, Tanh, HardSigmoid, HardSwish, LeakyRelu by default;
//     Elu, Selu, Softplus, Gelu, Mish when listed in op-types) likewise, with their own
//     output range: fuse-qdq turns DQ -> f -> Q into a 256-entry table lookup, so a
//     MobileNetV3 block (Conv -> HardSwish -> depthwise Conv) stays integer throughout.
//   * Everything else (Softmax, LayerNormalization, Gelu, ...) stays float.
//   * A pass-through op (all but Conv/MatMul/Gemm, so Add/Mul too: a transformer's
//     residual Add feeding LayerNormalization stays float) whose output no integer op
//     reads is demoted to float, and no Q -> DQ is inserted on a value that no integer
//     op reads: graph outputs stay float, as do values read only by float ops. Float
//     readers of a quantized value keep reading the float value.
// - Names: a quantized op's float output keeps its name; an activation `v` gets `v_q`
//   (QuantizeLinear), `v_dq` (DequantizeLinear), `v_scale`, `v_zero_point`; a weight or
//   bias initializer W becomes `W_quantized`, `W_scale`, `W_zero_point` read by `W_dq`.
//   `compare` therefore matches every layer of the QDQ model to the float one by name.
// - The ai.onnx opset is raised to 13 when lower (per-axis DequantizeLinear).
// - Mixed precision: `exclude` globs (node names) keep nodes float. keep-float=K and
//   min-cosine measure each quantized layer's sensitivity: quantize everything, run the
//   float and the QDQ model over the calibration samples with the Session observer, and
//   compute the SNR and cosine of each layer's output (matched by name). keep-float keeps
//   the K layers with the lowest SNR float; min-cosine then keeps adding the next most
//   sensitive layer until the mean cosine of the model outputs to the float model is at
//   least the target (if it is never reached, statistic min-cosine-unmet is 1; not an
//   error). Details() returns the per-layer sensitivities as JSON for reports.
// - smoothquant=true first applies SmoothQuant (passes/quant/smooth_quant.h) to MatMul/Gemm.
//
// Only the main graph is quantized (the observer does not see If/Loop/Scan bodies). A
// model with no eligible Conv/MatMul/Gemm is left unchanged (no data is read then).
#include <algorithm>
#include <cctype>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <set>

#include <nlohmann/json.hpp>

#include "calibrate/calibrate.h"
#include "ir/error.h"
#include "passes/all_passes.h"
#include "passes/quant/quant_util.h"
#include "passes/rewrite_util.h"
#include "passes/quant/smooth_quant.h"
#include "runtime/session.h"

namespace edgepress::passes {
namespace {

using json = nlohmann::json;
using Ranges = std::map<std::string, calibrate::TensorRange>;

enum class Role { kFloat, kCompute, kElementwise, kPool, kShare, kLookup };

// Element-wise functions of one activation that fuse-qdq turns into a 256-entry table
// (edgepress QLinearLookup) when they sit between a DQ and a Q.
bool IsLookupOp(const std::string& op) {
  return op == "Sigmoid" || op == "Tanh" || op == "HardSigmoid" || op == "HardSwish" ||
         op == "LeakyRelu" || op == "Elu" || op == "Selu" || op == "Softplus" || op == "Gelu" ||
         op == "Mish";
}

// A nearest Resize is a gather: it commutes exactly with per-tensor (de)quantization, so
// it shares its input's parameters like the data-movement ops. Linear/cubic modes would
// requantize; tf_crop_and_resize writes an extrapolation value that is no input element.
bool IsNearestResize(const ir::Node* n) {
  return n->op_type() == "Resize" && n->attr_string("mode", "nearest") == "nearest" &&
         n->attr_string("coordinate_transformation_mode", "half_pixel") != "tf_crop_and_resize";
}

Role RoleOf(const ir::Node* n) {
  if (!n->domain().empty()) return Role::kFloat;
  const std::string& op = n->op_type();
  if (IsLookupOp(op)) return Role::kLookup;
  if (op == "Conv" || op == "MatMul" || op == "Gemm" || op == "ConvTranspose")
    return Role::kCompute;
  if (op == "Add" || op == "Mul") return Role::kElementwise;
  if (op == "AveragePool" || op == "GlobalAveragePool") return Role::kPool;
  if (op == "Reshape" || op == "Transpose" || op == "Flatten" || op == "Squeeze" ||
      op == "Unsqueeze" || op == "MaxPool" || op == "Concat")
    return Role::kShare;
  if (op == "Resize" && IsNearestResize(n)) return Role::kShare;
  return Role::kFloat;
}

bool IsFloatConst(const ir::Value* v) {
  const ir::Tensor* t = v ? ConstantOf(v) : nullptr;
  return t && t->dtype() == ir::DType::kFloat32;
}

// Input slots that carry activations (the ones that get Q/DQ) of a candidate node.
std::vector<size_t> DataSlots(const ir::Node* n) {
  switch (RoleOf(n)) {
    case Role::kElementwise: return {0, 1};
    case Role::kCompute:
      if (n->op_type() != "Conv" && !IsFloatConst(n->input(1))) return {0, 1};
      return {0};
    case Role::kShare:
      if (n->op_type() == "Concat") {
        std::vector<size_t> all(n->num_inputs());
        std::iota(all.begin(), all.end(), 0);
        return all;
      }
      return {0};
    default: return {0};
  }
}

bool IsDataSlot(const ir::Node* n, int slot) {
  for (size_t s : DataSlots(n))
    if (static_cast<int>(s) == slot) return true;
  return false;
}

// Stable identity of a node across clones: its name, or its first output's name.
std::string LayerName(const ir::Node* n) {
  if (!n->name.empty()) return n->name;
  return n->output(0) ? n->output(0)->name() : n->op_type();
}

// Structural conditions of a Conv/MatMul/Gemm (independent of calibration).
bool ComputeEligible(const ir::Node* n) {
  if (n->num_outputs() != 1 || !n->output(0)) return false;
  const ir::Value* x = n->input(0);
  if (!x || ConstantOf(x) || !n->input(1)) return false;
  const ir::Tensor* w = ConstantOf(n->input(1));
  const std::string& op = n->op_type();
  if (op == "Conv") return w && w->dtype() == ir::DType::kFloat32 && w->rank() >= 3;
  // ConvTranspose: per-channel scales on weight axis 1 are the output channels only
  // for group 1 (fuse-qdq's QLinearConvTranspose has the same condition).
  if (op == "ConvTranspose")
    return w && w->dtype() == ir::DType::kFloat32 && w->rank() >= 3 && n->attr_int("group", 1) == 1;
  if (w) {
    if (w->dtype() != ir::DType::kFloat32) return false;
    if (op == "Gemm") return w->rank() == 2;
    return w->rank() >= 1;
  }
  return true;  // two activations
}

struct Config {
  calibrate::Method method = calibrate::Method::kMinMax;
  double percentile = 99.99;
  bool per_channel = true;
  ir::DType act_type = ir::DType::kUInt8;
  std::vector<std::string> exclude;
  std::set<std::string> op_types;
  int64_t keep_float = 0;
  double min_cosine = 0;
  bool smoothquant = false;
  double alpha = 0.5;
  int64_t samples = 256;
  std::string ranges_file;      // `ranges`: given activation ranges (ranges.json)
  std::set<std::string> given;  // the values whose range the file gave
  bool symmetric() const { return act_type == ir::DType::kInt8; }
};

// One integer layer of a quantized model (for sensitivity).
struct Layer {
  std::string name, op, value;  // node identity, op type, output compared by name
};

struct QuantizeOutcome {
  std::vector<Layer> layers;  // integer non-data-movement nodes
  int64_t integer_nodes = 0, qdq_pairs = 0, weights = 0, biases = 0, relu_fused = 0;
  int64_t kept_float = 0;  // eligible Conv/MatMul/Gemm left float
  std::map<std::string, int64_t> per_op;
};

class Quantizer {
 public:
  Quantizer(const Config& cfg, const Ranges& ranges, const std::set<std::string>& keep)
      : cfg_(cfg), ranges_(ranges), keep_(keep) {}

  QuantizeOutcome Run(ir::Model& model) {
    ir::Graph& g = *model.graph;
    Plan(g);
    QuantizeOutcome out;
    for (ir::Node* n : g.nodes())
      if (RoleOf(n) == Role::kCompute && cfg_.op_types.count(n->op_type()) &&
          ComputeEligible(n) && !integer_.count(n))
        ++out.kept_float;
    if (integer_.empty()) return out;
    quant::EnsureOpset(model, 13);
    Rewrite(g, out);
    return out;
  }

 private:
  bool Excluded(const ir::Node* n) const {
    return !cfg_.op_types.count(n->op_type()) || keep_.count(LayerName(n)) ||
           quant::MatchAnyGlob(cfg_.exclude, n->name) ||
           (n->name.empty() && quant::MatchAnyGlob(cfg_.exclude, LayerName(n)));
  }
  bool HasRange(const ir::Value* v) const { return v && ranges_.count(v->name()); }

  // A Relu/Clip that alone reads the output of `n`, to be fused into its range.
  static ir::Node* FusableActivation(const ir::Node* n) {
    ir::Node* user = SingleUser(n->output(0));
    if (!user || !user->domain().empty() || !user->output(0)) return nullptr;
    if (user->op_type() == "Relu") return user;
    if (user->op_type() == "Clip") {
      for (size_t i = 1; i < user->num_inputs(); ++i)
        if (user->input(i) && !ConstantOf(user->input(i))) return nullptr;
      return user;
    }
    return nullptr;
  }

  void Plan(ir::Graph& g) {
    std::vector<ir::Node*> nodes = g.nodes();
    for (ir::Node* n : nodes) {
      Role r = RoleOf(n);
      if (r == Role::kFloat || Excluded(n)) continue;
      bool extra_outputs = false;
      for (size_t i = 1; i < n->num_outputs(); ++i)
        if (n->output(i) && (!n->output(i)->uses().empty() || n->output(i)->is_graph_output()))
          extra_outputs = true;
      if (extra_outputs || !n->output(0)) continue;
      bool ok = true;
      if (r == Role::kCompute) {
        ok = ComputeEligible(n);
        for (size_t s : DataSlots(n)) ok = ok && HasRange(n->input(s));
      } else if (r == Role::kElementwise) {
        // Two activation inputs (no constant operand), each with a calibrated range: both
        // get Q/DQ whatever produced them (the residual skip of a CNN is a float Relu
        // output before this rule), like onnxruntime's QDQ quantizer.
        for (size_t s : DataSlots(n))
          ok = ok && n->input(s) && !ConstantOf(n->input(s)) && HasRange(n->input(s));
      } else {
        for (size_t s : DataSlots(n)) ok = ok && n->input(s) && qavail_.count(n->input(s));
      }
      if (!ok) continue;
      integer_.insert(n);
      ir::Value* q = n->output(0);
      if (r == Role::kCompute || r == Role::kElementwise) {
        if (ir::Node* act = FusableActivation(n)) {
          fused_[n] = act;
          q = act->output(0);
        }
      }
      if (HasRange(q)) {
        qout_[n] = q;
        qavail_.insert(q);
      }
    }
    // Demote pass-through ops whose quantized output no integer op reads (reverse order:
    // every reader's final status is known before its producer is looked at).
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
      ir::Node* n = *it;
      if (!integer_.count(n) || RoleOf(n) == Role::kCompute) continue;
      auto q = qout_.find(n);
      bool read = false;
      if (q != qout_.end())
        for (const ir::Use& u : q->second->uses())
          read = read || (integer_.count(u.user) && IsDataSlot(u.user, u.index));
      if (!read) {
        integer_.erase(n);
        fused_.erase(n);
        if (q != qout_.end()) {
          qavail_.erase(q->second);
          qout_.erase(q);
        }
      }
    }
    // Data-movement groups share one scale and zero point.
    for (ir::Node* n : nodes) {
      if (!integer_.count(n) || RoleOf(n) != Role::kShare) continue;
      for (size_t s : DataSlots(n)) Union(n->input(s), n->output(0));
    }
  }

  const ir::Value* Find(const ir::Value* v) {
    auto it = parent_.find(v);
    if (it == parent_.end() || it->second == v) return v;
    const ir::Value* root = Find(it->second);
    parent_[v] = root;
    return root;
  }
  void Union(const ir::Value* a, const ir::Value* b) {
    const ir::Value* ra = Find(a);
    const ir::Value* rb = Find(b);
    parent_[ra] = ra;
    parent_[rb] = ra;
    if (!parent_.count(a)) parent_[a] = ra;
    if (!parent_.count(b)) parent_[b] = ra;
  }

  quant::QParams ActivationParams(const ir::Value* v) {
    float lo, hi;
    const calibrate::TensorRange* own = HasRange(v) ? &ranges_.at(v->name()) : nullptr;
    if (parent_.count(v)) {
      const ir::Value* root = Find(v);
      // A group with a given range takes the union of the given ones only: a learned
      // range (distill) is exported as trained, not widened by a calibrated neighbour.
      bool given = false;
      for (const auto& [member, p] : parent_)
        given = given || (Find(member) == root && cfg_.given.count(member->name()));
      bool any = false;
      lo = hi = 0;
      for (const auto& [member, p] : parent_) {
        if (Find(member) != root || !HasRange(member)) continue;
        if (given && !cfg_.given.count(member->name())) continue;
        const auto& r = ranges_.at(member->name());
        lo = any ? std::min(lo, r.min) : r.min;
        hi = any ? std::max(hi, r.max) : r.max;
        any = true;
      }
    } else {
      lo = own->min;
      hi = own->max;
    }
    return quant::ChooseQParams(lo, hi, cfg_.act_type, cfg_.symmetric());
  }

  static ir::Tensor Scalar(float v) {
    ir::Tensor t(ir::DType::kFloat32, {});
    t.mutable_data<float>()[0] = v;
    return t;
  }
  ir::Tensor ZeroPoint(int32_t zp) const {
    ir::Tensor t(cfg_.act_type, {});
    if (cfg_.act_type == ir::DType::kInt8) t.mutable_data<int8_t>()[0] = static_cast<int8_t>(zp);
    else t.mutable_data<uint8_t>()[0] = static_cast<uint8_t>(zp);
    return t;
  }

  // The DequantizeLinear output that integer readers of `v` use (created before `pos`).
  ir::Value* ActivationDq(ir::Graph& g, ir::Value* v, ir::Node* pos, QuantizeOutcome& out) {
    auto it = dq_.find(v);
    if (it != dq_.end()) return it->second;
    quant::QParams p = ActivationParams(v);
    act_params_[v] = p;
    ir::Value* scale = AddConstant(g, v->name() + "_scale", Scalar(p.scale));
    ir::Value* zp = AddConstant(g, v->name() + "_zero_point", ZeroPoint(p.zero_point));
    ir::Node* q = g.InsertNode(pos, "QuantizeLinear", {v, scale, zp},
                               {g.UniqueName(v->name() + "_q")},
                               g.UniqueName(v->name() + "_QuantizeLinear"));
    q->output(0)->type = ir::ValueType::Tensor(cfg_.act_type, v->type.shape);
    ir::Node* dq = g.InsertNode(pos, "DequantizeLinear", {q->output(0), scale, zp},
                                {g.UniqueName(v->name() + "_dq")},
                                g.UniqueName(v->name() + "_DequantizeLinear"));
    dq->output(0)->type = ir::ValueType::Tensor(ir::DType::kFloat32, v->type.shape);
    ++out.qdq_pairs;
    dq_[v] = dq->output(0);
    return dq->output(0);
  }

  // Weight DequantizeLinear, shared by every node reading the same weight at the same axis.
  ir::Value* WeightDq(ir::Graph& g, ir::Value* w, int axis, ir::Node* pos,
                      std::vector<float>* scales, QuantizeOutcome& out) {
    std::string key = w->name() + "#" + std::to_string(cfg_.per_channel ? axis : -1);
    auto it = wdq_.find(key);
    if (it == wdq_.end()) {
      const ir::Tensor& t = *ConstantOf(w);
      quant::QuantizedTensor q =
          cfg_.per_channel && t.rank() >= 2
              ? quant::QuantizeWeightPerChannel(t, axis, /*symmetric=*/true, w->name())
              : quant::QuantizePerTensor(t, ir::DType::kInt8, /*symmetric=*/true, w->name());
      std::vector<float> s(q.scale.data<float>(), q.scale.data<float>() + q.scale.numel());
      ir::Value* dq = quant::AddWeightDequantize(g, pos, w->name(), std::move(q));
      it = wdq_.emplace(key, std::make_pair(dq, s)).first;
      replaced_.insert(w);
      ++out.weights;
    }
    *scales = it->second.second;
    return it->second.first;
  }

  void QuantizeBias(ir::Graph& g, ir::Node* n, size_t slot, int64_t channels, float sx,
                    const std::vector<float>& sw, QuantizeOutcome& out) {
    ir::Value* b = n->input(slot);
    const ir::Tensor* t = b ? ConstantOf(b) : nullptr;
    if (!t || t->dtype() != ir::DType::kFloat32 || t->rank() != 1 ||
        t->shape()[0] != channels)
      return;
    bool per_channel = sw.size() > 1;
    if (per_channel && static_cast<int64_t>(sw.size()) != channels) return;
    quant::QuantizedTensor q;
    q.axis = per_channel ? 0 : -1;
    std::vector<int64_t> sshape = per_channel ? std::vector<int64_t>{channels} : std::vector<int64_t>{};
    q.scale = ir::Tensor(ir::DType::kFloat32, sshape);
    q.zero_point = ir::Tensor(ir::DType::kInt32, sshape);
    q.data = ir::Tensor(ir::DType::kInt32, {channels});
    for (size_t c = 0; c < sw.size(); ++c) {
      float s = sx * sw[c];
      if (!(s >= FLT_MIN) || !std::isfinite(s)) return;  // keep the float bias
      q.scale.mutable_data<float>()[c] = s;
    }
    for (int64_t c = 0; c < channels; ++c) {
      float s = q.scale.data<float>()[per_channel ? c : 0];
      double v = std::nearbyint(static_cast<double>(t->data<float>()[c]) / s);
      v = std::clamp<double>(v, std::numeric_limits<int32_t>::min(),
                             std::numeric_limits<int32_t>::max());
      q.data.mutable_data<int32_t>()[c] = static_cast<int32_t>(v);
    }
    ir::Value* dq = quant::AddWeightDequantize(g, n, b->name(), std::move(q));
    n->set_input(slot, dq);
    replaced_.insert(b);
    ++out.biases;
  }

  void QuantizeCompute(ir::Graph& g, ir::Node* n, QuantizeOutcome& out) {
    const std::string& op = n->op_type();
    ir::Value* w = n->input(1);
    if (!IsFloatConst(w)) return;  // two activations: both have Q/DQ already
    const ir::Tensor& wt = *ConstantOf(w);
    int axis;
    int64_t channels;
    if (op == "Conv") {
      axis = 0;
      channels = wt.shape()[0];
    } else if (op == "ConvTranspose") {
      axis = 1;
      channels = wt.shape()[1];
    } else if (op == "Gemm") {
      axis = n->attr_int("transB", 0) ? 0 : 1;
      channels = wt.shape()[axis];
    } else {
      axis = wt.rank() - 1;
      channels = wt.shape()[axis];
    }
    std::vector<float> sw;
    n->set_input(1, WeightDq(g, w, axis, n, &sw, out));
    bool bias_ok = op == "Conv" || op == "ConvTranspose" || (op == "Gemm" && n->attr_float("alpha", 1.f) == 1.f &&
                                    n->attr_float("beta", 1.f) == 1.f);
    if (bias_ok && n->num_inputs() > 2 && n->input(2)) {
      auto p = act_params_.find(n->input(0) ? dq_source_.at(n->input(0)) : nullptr);
      if (p != act_params_.end()) QuantizeBias(g, n, 2, channels, p->second.scale, sw, out);
    }
  }

  void Rewrite(ir::Graph& g, QuantizeOutcome& out) {
    for (ir::Node* n : g.nodes()) {
      if (!integer_.count(n)) continue;
      for (size_t s : DataSlots(n)) {
        ir::Value* v = n->input(s);
        ir::Value* dq = ActivationDq(g, v, n, out);
        dq_source_[dq] = v;
        n->set_input(s, dq);
      }
      if (RoleOf(n) == Role::kCompute) QuantizeCompute(g, n, out);
      ++out.integer_nodes;
      ++out.per_op[n->op_type()];
      if (fused_.count(n)) ++out.relu_fused;
      if (RoleOf(n) != Role::kShare)
        out.layers.push_back({LayerName(n), n->op_type(), n->output(0)->name()});
    }
    for (ir::Value* v : replaced_) {
      if (!v->uses().empty() || v->is_graph_output()) continue;
      if (v->is_initializer()) {
        if (!v->is_graph_input()) g.RemoveInitializer(v);
      } else if (ir::Node* p = ProducerOf(v, "Constant")) {
        g.RemoveNode(p);
      }
    }
  }

  const Config& cfg_;
  const Ranges& ranges_;
  const std::set<std::string>& keep_;
  std::set<const ir::Node*> integer_;
  std::map<const ir::Node*, ir::Node*> fused_;
  std::map<const ir::Node*, ir::Value*> qout_;
  std::set<const ir::Value*> qavail_;
  std::map<const ir::Value*, const ir::Value*> parent_;
  std::map<const ir::Value*, ir::Value*> dq_;
  std::map<const ir::Value*, const ir::Value*> dq_source_;
  std::map<const ir::Value*, quant::QParams> act_params_;
  std::map<std::string, std::pair<ir::Value*, std::vector<float>>> wdq_;
  std::set<ir::Value*> replaced_;
};

// ---- sensitivity ---------------------------------------------------------------------

ir::Tensor DeepCopy(const ir::Tensor& t) {
  ir::Tensor c(t.dtype(), t.shape());
  if (t.nbytes()) std::memcpy(c.mutable_raw(), t.raw(), t.nbytes());
  return c;
}

struct ErrorStats {
  double ref2 = 0, err2 = 0, dot = 0, q2 = 0;
  void Add(const ir::Tensor& ref, const ir::Tensor& q) {
    if (ref.dtype() != ir::DType::kFloat32 || q.dtype() != ir::DType::kFloat32 ||
        ref.numel() != q.numel())
      return;
    const float* a = ref.data<float>();
    const float* b = q.data<float>();
    for (uint64_t i = 0; i < ref.numel(); ++i) {
      double x = a[i], y = b[i];
      ref2 += x * x;
      q2 += y * y;
      dot += x * y;
      err2 += (x - y) * (x - y);
    }
  }
  double SnrDb() const {
    if (err2 == 0) return 200.0;
    return 10.0 * std::log10(std::max(ref2, 1e-300) / err2);
  }
  double Cosine() const {
    if (ref2 == 0 && q2 == 0) return 1.0;
    if (ref2 == 0 || q2 == 0) return 0.0;
    return dot / std::sqrt(ref2 * q2);
  }
};

std::unique_ptr<runtime::Session> MakeSession(const ir::Model& m, int threads,
                                              runtime::SessionOptions opts = {}) {
  opts.threads = threads;
  return runtime::Session::Create(std::shared_ptr<const ir::Model>(m.Clone()), opts);
}

// Mean over samples and outputs of the cosine between the float and quantized outputs.
double OutputCosine(const std::vector<runtime::NamedTensors>& ref, runtime::Session& s,
                    calibrate::DataSet& data) {
  double sum = 0;
  int64_t count = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    runtime::NamedTensors out = s.Run(data.Batch(static_cast<int64_t>(i), 1));
    for (size_t k = 0; k < out.size() && k < ref[i].size(); ++k) {
      ErrorStats e;
      e.Add(ref[i][k].second, out[k].second);
      sum += e.Cosine();
      ++count;
    }
  }
  return count ? sum / count : 1.0;
}

class QuantizeStatic : public Pass {
 public:
  explicit QuantizeStatic(const PassOptions& o) {
    cfg_.method = calibrate::ParseMethod(o.GetString("method"));
    cfg_.percentile = o.GetFloat("percentile");
    cfg_.per_channel = o.GetBool("per-channel");
    cfg_.act_type = o.GetString("activation-type") == "int8" ? ir::DType::kInt8 : ir::DType::kUInt8;
    cfg_.exclude = o.GetStringList("exclude");
    for (const auto& t : o.GetStringList("op-types")) cfg_.op_types.insert(t);
    cfg_.keep_float = o.GetInt("keep-float");
    cfg_.min_cosine = o.GetFloat("min-cosine");
    cfg_.smoothquant = o.GetBool("smoothquant");
    cfg_.alpha = o.GetFloat("smoothquant-alpha");
    cfg_.samples = o.GetInt("calib-samples");
    cfg_.ranges_file = o.GetString("ranges");
  }
  const PassInfo& info() const override { return QuantizeStaticPass().info; }
  std::string Details() const override { return details_.empty() ? "" : details_.dump(); }

  bool Run(ir::Model& model, PassContext& ctx) override {
    if (ctx.data_files.empty())
      throw Error(ErrorCode::kUsage,
                  "pass 'quantize-static' needs calibration data: give --data FILE.npz "
                  "(no data files were passed to the pass)");
    bool any = false;
    for (ir::Node* n : model.graph->nodes())
      any = any || (RoleOf(n) == Role::kCompute && cfg_.op_types.count(n->op_type()) &&
                    ComputeEligible(n) && !quant::MatchAnyGlob(cfg_.exclude, n->name));
    if (!any) return false;  // nothing to quantize: the data is not even read

    calibrate::DataSet data = calibrate::DataSet::Open(
        ctx.data_files, *model.graph, calibrate::ParseDataLayout(ctx.data_layout, "--layout"));
    int64_t samples = std::min<int64_t>(cfg_.samples, data.size());
    if (samples <= 0)
      ThrowInvalid("pass 'quantize-static': the calibration data has no samples");
    if (cfg_.smoothquant) {
      SmoothQuantOptions so;
      so.alpha = cfg_.alpha;
      so.max_samples = samples;
      so.threads = ctx.threads;
      so.exclude = cfg_.exclude;
      SmoothQuantResult sq = ApplySmoothQuant(model, data, so);
      Count("smoothed-layers", sq.layers);
      Count("smoothed-layernorm-folds", sq.layernorm_folds);
      Count("smoothed-mul-inserted", sq.muls_inserted);
      details_["smoothquant"] = json::parse(sq.json.empty() ? "[]" : sq.json);
    }

    calibrate::CalibrationOptions co;
    co.observer.method = cfg_.method;
    co.observer.percentile = cfg_.percentile;
    co.observer.symmetric = cfg_.symmetric();
    co.max_samples = samples;
    co.threads = ctx.threads;
    if (ctx.log) ctx.log("quantize-static: calibrating on " + std::to_string(samples) + " samples");
    calibrate::CalibrationResult cal = calibrate::Calibrate(model, data, co);
    details_["calibration"] = {{"method", cal.method},
                               {"samples", cal.samples},
                               {"data_sha256", cal.data_sha256}};
    Count("calib-samples", cal.samples);
    Count("calibration-fallbacks", cal.fallbacks);
    if (cal.fallbacks > 0) {
      json fb = json::object();
      std::string first;
      for (const auto& [name, t] : cal.ranges)
        if (!t.fallback.empty()) {
          fb[name] = t.fallback;
          if (first.empty()) first = "'" + name + "': " + t.fallback;
        }
      details_["calibration"]["fallbacks"] = std::move(fb);
      if (ctx.log)
        ctx.log("quantize-static: warning: " + std::to_string(cal.fallbacks) +
                " tensor range(s) fell back to min/max because the calibration statistics "
                "were too thin for " + cal.method + " (first: " + first + ")");
    }

    if (!cfg_.ranges_file.empty()) {
      // Given ranges replace the calibrated ones of the values they name (per tensor).
      // Names the model does not have (a file for another model, or values a later pass
      // renamed) are reported: none matching is an error, some a warning.
      cfg_.given.clear();
      std::vector<std::string> unknown;
      for (const auto& [name, t] : calibrate::LoadRanges(cfg_.ranges_file).ranges) {
        if (!model.graph->FindValue(name)) {
          unknown.push_back(name);
          continue;
        }
        calibrate::TensorRange& r = cal.ranges[name];
        r.min = t.min;
        r.max = t.max;
        cfg_.given.insert(name);
      }
      if (cfg_.given.empty() && !unknown.empty())
        ThrowInvalid("quantize-static: ranges file '" + cfg_.ranges_file +
                                                  "' names no value of this model (first: '" + unknown[0] + "')");
      if (!unknown.empty() && ctx.log)
        ctx.log("quantize-static: warning: " + std::to_string(unknown.size()) + " range(s) in '" +
                cfg_.ranges_file + "' name no value of this model (first: '" + unknown[0] + "'); ignored");
      Count("given-ranges", static_cast<int64_t>(cfg_.given.size()));
      Count("given-ranges-unused", static_cast<int64_t>(unknown.size()));
    }

    std::set<std::string> keep;
    if (cfg_.keep_float > 0 || cfg_.min_cosine > 0) keep = ChooseFloatLayers(model, cal.ranges, data, samples, ctx);

    QuantizeOutcome r = Quantizer(cfg_, cal.ranges, keep).Run(model);
    Count("nodes-quantized", r.integer_nodes);
    for (const auto& [op, n] : r.per_op) Count(StatName(op), n);
    Count("qdq-pairs", r.qdq_pairs);
    Count("weights-quantized", r.weights);
    Count("biases-quantized", r.biases);
    Count("relu-fused", r.relu_fused);
    Count("kept-float", r.kept_float);
    Count("kept-float-by-sensitivity", static_cast<int64_t>(keep.size()));
    return r.integer_nodes > 0;
  }

 private:
  static std::string StatName(const std::string& op) {
    if (op == "AveragePool" || op == "GlobalAveragePool") return "pool-quantized";
    if (RoleOf_(op) == Role::kShare) return "data-movement-quantized";
    if (IsLookupOp(op)) return "lookup-quantized";
    std::string s;
    for (char c : op) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s + "-quantized";  // conv, matmul, gemm, add, mul
  }
  static Role RoleOf_(const std::string& op) {
    return op == "Reshape" || op == "Transpose" || op == "Flatten" || op == "Squeeze" ||
                   op == "Unsqueeze" || op == "MaxPool" || op == "Concat" || op == "Resize"
               ? Role::kShare
               : Role::kFloat;
  }

  std::set<std::string> ChooseFloatLayers(const ir::Model& model, const Ranges& ranges,
                                          calibrate::DataSet& data, int64_t samples,
                                          PassContext& ctx) {
    std::set<std::string> keep;
    auto full = model.Clone();
    QuantizeOutcome all = Quantizer(cfg_, ranges, keep).Run(*full);
    if (all.layers.empty()) return keep;

    // Float outputs and per-layer error of the fully quantized model, sample by sample.
    std::map<std::string, size_t> watched;  // value name -> layer index
    for (size_t i = 0; i < all.layers.size(); ++i) watched[all.layers[i].value] = i;
    std::map<std::string, ir::Tensor> ref_layer;
    std::vector<ErrorStats> layer_err(all.layers.size());
    runtime::SessionOptions fo, qo;
    fo.observer = [&](const ir::Node& n, const std::vector<const ir::Tensor*>& outs) {
      for (size_t i = 0; i < outs.size(); ++i)
        if (outs[i] && n.output(i) && watched.count(n.output(i)->name()))
          ref_layer[n.output(i)->name()] = DeepCopy(*outs[i]);
    };
    qo.observer = [&](const ir::Node& n, const std::vector<const ir::Tensor*>& outs) {
      for (size_t i = 0; i < outs.size(); ++i) {
        if (!outs[i] || !n.output(i)) continue;
        auto w = watched.find(n.output(i)->name());
        auto r = ref_layer.find(n.output(i)->name());
        if (w != watched.end() && r != ref_layer.end()) layer_err[w->second].Add(r->second, *outs[i]);
      }
    };
    auto fs = MakeSession(model, ctx.threads, fo);
    auto qs = MakeSession(*full, ctx.threads, qo);
    std::vector<runtime::NamedTensors> ref_out;
    double cos_sum = 0;
    int64_t cos_n = 0;
    for (int64_t i = 0; i < samples; ++i) {
      runtime::NamedTensors feed = data.Batch(i, 1);
      ref_layer.clear();
      runtime::NamedTensors fout = fs->Run(feed);
      for (auto& [name, t] : fout) t = DeepCopy(t);
      runtime::NamedTensors qout = qs->Run(feed);
      for (size_t k = 0; k < qout.size() && k < fout.size(); ++k) {
        ErrorStats e;
        e.Add(fout[k].second, qout[k].second);
        cos_sum += e.Cosine();
        ++cos_n;
      }
      ref_out.push_back(std::move(fout));
    }
    double cosine = cos_n ? cos_sum / cos_n : 1.0;

    std::vector<size_t> order(all.layers.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      double sa = layer_err[a].SnrDb(), sb = layer_err[b].SnrDb();
      if (sa != sb) return sa < sb;
      return all.layers[a].name < all.layers[b].name;
    });
    size_t next = 0;
    while (next < order.size() && static_cast<int64_t>(next) < cfg_.keep_float)
      keep.insert(all.layers[order[next++]].name);

    json steps = json::array();
    steps.push_back({{"kept_float", 0}, {"output_cosine", cosine}});
    bool reached = true;
    if (cfg_.min_cosine > 0) {
      reached = false;
      for (;;) {
        if (!keep.empty()) {
          auto trial = model.Clone();
          Quantizer(cfg_, ranges, keep).Run(*trial);
          auto ts = MakeSession(*trial, ctx.threads);
          cosine = OutputCosine(ref_out, *ts, data);
          steps.push_back({{"kept_float", keep.size()}, {"output_cosine", cosine}});
        }
        if (cosine >= cfg_.min_cosine) {
          reached = true;
          break;
        }
        if (next >= order.size()) break;
        keep.insert(all.layers[order[next++]].name);
      }
      Count("min-cosine-unmet", reached ? 0 : 1);
      if (ctx.log && !reached)
        ctx.log("quantize-static: min-cosine " + std::to_string(cfg_.min_cosine) +
                " not reached with every layer float; best output cosine " + std::to_string(cosine));
    }

    json layers = json::array();
    for (size_t rank = 0; rank < order.size(); ++rank) {
      size_t i = order[rank];
      layers.push_back({{"name", all.layers[i].name},
                        {"op", all.layers[i].op},
                        {"output", all.layers[i].value},
                        {"snr_db", layer_err[i].SnrDb()},
                        {"cosine", layer_err[i].Cosine()},
                        {"sensitivity_rank", rank},
                        {"float", keep.count(all.layers[i].name) > 0}});
    }
    details_["layers"] = layers;
    details_["output_cosine_steps"] = steps;
    if (cfg_.min_cosine > 0) {
      details_["min_cosine"] = cfg_.min_cosine;
      details_["min_cosine_reached"] = reached;
    }
    return keep;
  }

  Config cfg_;
  json details_;
};

}  // namespace

const PassEntry& QuantizeStaticPass() {
  using T = OptionInfo::Type;
  static const PassEntry entry = {
      {"quantize-static",
       "Static int8 quantization in QDQ form from calibration data (per-channel weights, "
       "SmoothQuant, mixed precision)",
       {
           Opt("method", T::kEnum, "minmax", "activation range estimator",
                {"minmax", "percentile", "entropy", "mse"}),
           Opt("percentile", T::kFloat, "99.99", "percentile method: share of |x| kept", {}, 50, 100),
           Opt("per-channel", T::kBool, "true", "weights: one scale per output channel"),
           Opt("activation-type", T::kEnum, "uint8",
                "uint8 asymmetric or int8 symmetric activations", {"uint8", "int8"}),
           Opt("exclude", T::kStringList, "", "node-name globs kept float"),
           Opt("op-types", T::kStringList,
                "Conv,ConvTranspose,MatMul,Gemm,Add,Mul,Concat,MaxPool,AveragePool,GlobalAveragePool,"
                "Reshape,"
                "Transpose,Flatten,Squeeze,Unsqueeze,Resize,Sigmoid,Tanh,HardSigmoid,HardSwish,"
                "LeakyRelu",
                "op types that may run integer"),
           Opt("keep-float", T::kInt, "0", "keep the K most sensitive layers float", {}, 0, 1e9),
           Opt("min-cosine", T::kFloat, "0",
                "keep the most sensitive layers float until the outputs' mean cosine to fp32 "
                "reaches this (0 = off)", {}, 0, 1),
           Opt("smoothquant", T::kBool, "false", "apply SmoothQuant to MatMul/Gemm first"),
           Opt("smoothquant-alpha", T::kFloat, "0.5", "SmoothQuant migration strength", {}, 0, 1),
           Opt("calib-samples", T::kInt, "256", "calibration samples used at most", {}, 1, 1e9),
           Opt("ranges", T::kString, "",
                "ranges.json whose per-tensor ranges replace the calibrated ones (e.g. "
                "learned by distill --learn-activation-ranges)"),
       },
       {"nodes-quantized", "conv-quantized", "matmul-quantized", "gemm-quantized",
        "add-quantized", "mul-quantized", "pool-quantized", "lookup-quantized", "data-movement-quantized", "qdq-pairs", "weights-quantized", "biases-quantized",
        "relu-fused", "kept-float", "kept-float-by-sensitivity", "min-cosine-unmet", "given-ranges", "given-ranges-unused",
        "smoothed-layers", "smoothed-layernorm-folds", "smoothed-mul-inserted", "calib-samples", "calibration-fallbacks"},
       /*needs_data=*/true},
      [](const PassOptions& o) -> std::unique_ptr<Pass> {
        return std::make_unique<QuantizeStatic>(o);
      }};
  return entry;
}

}  // namespace edgepress::passes
