// fuse-qdq: rewrites the QDQ patterns that quantize-static writes into integer ops, so a
// QDQ model runs as integer instead of as float plus extra Q/DQ work:
//
//   DQ(x) + DQ(w, per-axis) [+ DQ(bias int32)] -> Conv/FusedConv [-> Relu|Clip] -> Q(y)
//       => QLinearConv (edgepress QLinearConv when an activation is fused)
//   the same with ConvTranspose (group 1, weight axis 1) => com.microsoft
//       QLinearConvTranspose (edgepress QLinearConvTranspose with an activation)
//   DQ(a) + DQ(w) -> MatMul [-> Relu|Clip] -> Q(y)      => QLinearMatMul (edgepress QGemm)
//   DQ(a) + DQ(w) [+ DQ(bias)] -> Gemm/FusedGemm [-> act] -> Q(y)
//       => com.microsoft QGemm (edgepress QGemm with an activation)
//   the same without a trailing Q (float output)     => edgepress QLinearConv / QGemm with
//       float output: the product still runs integer, only the epilogue writes float
//   DQ -> MaxPool|Reshape|Flatten|Transpose|Squeeze|Unsqueeze|Concat|Resize(nearest) -> Q,
//       equal qparams => the op on the uint8/int8 tensor itself (these commute with DQ
//       exactly)
//   DQ(a), DQ(b) -> Add [-> Relu|Clip] -> Q           => com.microsoft QLinearAdd
//       (edgepress QLinearAdd with an activation)
//   DQ -> GlobalAveragePool -> Q                      => com.microsoft QLinearGlobalAveragePool
//   DQ(a), DQ(b) -> Mul -> Q                          => com.microsoft QLinearMul
//   DQ -> Sigmoid|Tanh|HardSigmoid|HardSwish|LeakyRelu|Elu|Gelu|... -> Q (per tensor)
//       => edgepress QLinearLookup: the 256-entry table Q(f(DQ(q))) for every q, computed
//          by running the DQ node, the float op and the Q node themselves on all 256 codes,
//          so it is exactly the QDQ graph's value (no rounding difference at all)
//
// Numerics: the integer ops compute the exact integer product and requantize once with
// round-half-to-even, so outputs equal the float QDQ graph's within 1 LSB of the output
// scale (the float graph itself rounds its accumulation). A fused Relu/Clip is exact
// (quantization is monotonic). Q -> DQ pairs are never cancelled: that would change
// numerics.
// Does not fire when: scales or zero points are not constants; activations are not
// per-tensor; the weight is not a constant 2-D (MatMul/Gemm) or per-output-channel
// quantized tensor; a bias is not DQ(int32, zero point 0) with scale = s_x * s_w; the op's
// float output also feeds other readers (then the float-output form is used, and the Q
// stays); Gemm has transA, alpha != 1 or beta != 1; a data-movement op's Q has different
// parameters than its DQ, or its output has other readers. DQ nodes that still have float
// readers stay. Runs on the main graph and subgraphs.
#include <cmath>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ir/error.h"
#include "passes/all_passes.h"
#include "passes/rewrite_util.h"
#include "runtime/eager.h"
#include "runtime/thread_pool.h"

namespace edgepress::passes {
namespace {

// A constant quantization parameter set read from a Q or DQ node.
struct QInfo {
  ir::Node* node = nullptr;
  ir::Value* data = nullptr;   // DQ: quantized input; Q: float input
  ir::Value* scale = nullptr;
  ir::Value* zp = nullptr;     // may be nullptr (then 0, uint8)
  std::vector<double> scales;
  std::vector<int64_t> zps;
  ir::DType qtype = ir::DType::kUndefined;
  int64_t axis = 1;
  bool per_tensor() const { return scales.size() == 1; }
  bool SameParams(const QInfo& o) const {
    return scales == o.scales && zps == o.zps && qtype == o.qtype && per_tensor() &&
           o.per_tensor();
  }
};

bool IsOp(const ir::Node* n, const char* op) {
  return n && n->domain().empty() && n->op_type() == op;
}

// Nearest Resize gathers elements, so it commutes exactly with DQ (the 8-bit Resize
// kernel, runtime/kernels/quant/qresize.cc); tf_crop_and_resize may write a value that
// is no input element, and linear/cubic would need requantization.
bool IsNearestResize(const ir::Node* n) {
  return IsOp(n, "Resize") && n->attr_string("mode", "nearest") == "nearest" &&
         n->attr_string("coordinate_transformation_mode", "half_pixel") != "tf_crop_and_resize";
}

std::optional<QInfo> ReadQdq(ir::Node* n, bool is_q) {
  if (!IsOp(n, is_q ? "QuantizeLinear" : "DequantizeLinear")) return std::nullopt;
  if (n->attr_int("block_size", 0) != 0) return std::nullopt;
  QInfo q;
  q.node = n;
  q.data = n->input(0);
  q.scale = n->input(1);
  q.zp = n->input(2);
  q.axis = n->attr_int("axis", 1);
  const ir::Tensor* s = ConstantOf(q.scale);
  if (!q.data || !s || s->dtype() != ir::DType::kFloat32 || s->numel() == 0 || s->rank() > 1)
    return std::nullopt;
  q.scales = s->ToDouble();
  for (double v : q.scales)
    if (!(v > 0) || !std::isfinite(v)) return std::nullopt;
  if (q.zp) {
    const ir::Tensor* z = ConstantOf(q.zp);
    if (!z || z->numel() != s->numel()) return std::nullopt;
    q.zps = z->ToInt64();
    q.qtype = z->dtype();
  } else {
    q.zps.assign(q.scales.size(), 0);
    if (is_q) {
      q.qtype = n->attr_int("output_dtype", 0) ? ir::DTypeFromOnnx(n->attr_int("output_dtype", 0))
                                              : ir::DType::kUInt8;
    } else {
      const ir::Tensor* c = ConstantOf(q.data);
      q.qtype = c ? c->dtype() : q.data->type.dtype;
    }
  }
  return q;
}

std::optional<QInfo> DqOf(ir::Value* v) {
  if (!v || !v->producer()) return std::nullopt;
  return ReadQdq(v->producer(), false);
}

bool Is8Bit(ir::DType t) { return t == ir::DType::kUInt8 || t == ir::DType::kInt8; }

// The value's only reader when that is a per-tensor 8-bit QuantizeLinear.
std::optional<QInfo> SingleQ(ir::Value* v) {
  ir::Node* u = SingleUser(v);
  auto q = ReadQdq(u, true);
  if (!q || !q->per_tensor() || !Is8Bit(q->qtype)) return std::nullopt;
  return q;
}

struct Act {
  ir::Node* node = nullptr;  // a separate Relu/Clip node, or nullptr
  std::string kind;          // "", "Relu", "Clip"
  std::vector<float> params;
};

// A Relu/Clip (constant bounds) that is the only reader of `v`.
std::optional<Act> TrailingAct(ir::Value* v) {
  ir::Node* u = SingleUser(v);
  if (!u || !u->domain().empty()) return std::nullopt;
  Act a;
  if (u->op_type() == "Relu") {
    a.kind = "Relu";
  } else if (u->op_type() == "Clip") {
    float lo = -INFINITY, hi = INFINITY;
    if (u->input(1)) {
      auto c = ScalarConstant(u->input(1));
      if (!c) return std::nullopt;
      lo = *c;
    }
    if (u->input(2)) {
      auto c = ScalarConstant(u->input(2));
      if (!c) return std::nullopt;
      hi = *c;
    }
    a.kind = "Clip";
    a.params = {lo, hi};
  } else {
    return std::nullopt;
  }
  a.node = u;
  return a;
}

class FuseQdq : public Pass {
 public:
  explicit FuseQdq(const PassOptions&) {}
  const PassInfo& info() const override { return FuseQdqPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    int64_t n = RewriteAll(*model.graph, [&](ir::Graph& g, ir::Node* node) {
      if (node->domain().empty() || node->domain() == "com.microsoft") {
        const std::string& op = node->op_type();
        if (op == "Conv" || op == "MatMul" || op == "Gemm" || op == "FusedConv" ||
            op == "FusedGemm" || op == "ConvTranspose")
          return FuseLinear(g, node);
        if (!node->domain().empty()) return false;
        if (op == "MaxPool" || op == "Reshape" || op == "Flatten" || op == "Transpose" ||
            op == "Squeeze" || op == "Unsqueeze" || op == "Concat" || IsNearestResize(node))
          return FuseMove(g, node);
        if (op == "Add") return FuseAdd(g, node);
        if (op == "Mul") return FuseMul(g, node);
        if (op == "GlobalAveragePool") return FuseGap(g, node);
      }
      if (IsLookupOp(node)) return FuseLookup(g, node);
      return false;
    });
    if (used_ms_ && model.OpsetVersion("com.microsoft") == 0) model.SetOpsetVersion("com.microsoft", 1);
    if (used_ep_ && model.OpsetVersion("edgepress") == 0) model.SetOpsetVersion("edgepress", 1);
    return n > 0;
  }

 private:
  // Value `v`, or a new zero scalar of `type` when v is nullptr (QLinear* ops want zero
  // points even where Q/DQ omitted them).
  ir::Value* ZpOrZero(ir::Graph& g, ir::Value* v, ir::DType type, const std::string& base) {
    if (v) return v;
    ir::Tensor t(type, {});
    return AddConstant(g, base + "_zero_point", t);
  }

  // Moves `to_replace`'s readers to `out` of the new node, removes `dead` (in order) and
  // any DQ in `dqs` left without readers, then gives `out` the old name.
  bool Commit(ir::Graph& g, ir::Node* fused, ir::Value* to_replace,
              const std::vector<ir::Node*>& dead, const std::vector<ir::Node*>& dqs) {
    ir::Value* out = fused->output(0);
    out->type = to_replace->type;
    const std::string name = to_replace->name();
    if (!ReplaceValue(to_replace, out)) {
      for (size_t i = 0; i < fused->num_inputs(); ++i) fused->set_input(i, nullptr);
      g.RemoveNode(fused);
      return false;
    }
    for (ir::Node* d : dead)
      if (d) g.RemoveNode(d);
    for (ir::Node* d : dqs) {
      if (!d) continue;
      bool used = false;
      for (ir::Value* o : d->outputs()) used |= o && (!o->uses().empty() || o->is_graph_output());
      if (!used) g.RemoveNode(d);
    }
    if (out->name() != name && !g.FindValue(name)) g.RenameValue(out, name);
    return true;
  }

  // A Conv/ConvTranspose/MatMul/Gemm (or com.microsoft FusedConv/FusedGemm) whose data
  // and weight come from per-tensor / per-output-channel DQs.
  struct LinearMatch {
    bool conv = false, convt = false, gemm = false, trans_b = false;
    QInfo x, w;
    int64_t channels = 0;  // output channels (the weight's quantization axis)
    std::optional<QInfo> b;
    Act act;
  };

  static std::optional<LinearMatch> MatchLinearInputs(ir::Node* n) {
    const std::string& op = n->op_type();
    LinearMatch m;
    m.convt = op == "ConvTranspose";
    m.conv = op == "Conv" || op == "FusedConv" || m.convt;
    m.gemm = op == "Gemm" || op == "FusedGemm";
    if ((op == "Conv" || op == "MatMul" || op == "Gemm" || m.convt) && !n->domain().empty())
      return std::nullopt;
    // ConvTranspose weights [C, M/group, k...] are quantized on axis 1, whose channels are
    // those of one group: only group 1 maps them onto the M output channels one to one.
    if (m.convt && n->attr_int("group", 1) != 1) return std::nullopt;
    if ((op == "FusedConv" || op == "FusedGemm") && n->domain() != "com.microsoft")
      return std::nullopt;
    if (op == "FusedConv" && n->num_inputs() > 3 && n->input(3))
      return std::nullopt;  // Z: no int8 form
    auto x = DqOf(n->input(0));
    auto w = DqOf(n->input(1));
    if (!x || !w || !x->per_tensor() || !Is8Bit(x->qtype) || !Is8Bit(w->qtype))
      return std::nullopt;
    const ir::Tensor* wt = ConstantOf(w->data);
    if (!wt || wt->dtype() != w->qtype) return std::nullopt;
    // The weight's quantization axis must be the output channel.
    int64_t out_axis;
    if (m.conv) {
      if (wt->rank() < 3) return std::nullopt;
      out_axis = m.convt ? 1 : 0;
    } else {
      if (wt->rank() != 2) return std::nullopt;
      m.trans_b = m.gemm && n->attr_int("transB", 0) != 0;
      out_axis = m.trans_b ? 0 : 1;
      if (m.gemm && (n->attr_int("transA", 0) != 0 || n->attr_float("alpha", 1.f) != 1.f))
        return std::nullopt;
    }
    if (!w->per_tensor()) {
      const int64_t ax = w->axis < 0 ? w->axis + wt->rank() : w->axis;
      if (ax != out_axis ||
          static_cast<int64_t>(w->scales.size()) != wt->shape()[static_cast<size_t>(out_axis)])
        return std::nullopt;
    }
    if (!m.conv && n->input(0)->type.shape && n->input(0)->type.shape->size() < 2)
      return std::nullopt;
    m.channels = wt->shape()[static_cast<size_t>(out_axis)];
    m.x = *std::move(x);
    m.w = *std::move(w);
    return m;
  }

  // Bias: DQ(int32, zero point 0) with scale s_x * s_w (per channel). False when a bias is
  // present but not of that form.
  static bool MatchLinearBias(ir::Node* n, LinearMatch& m) {
    ir::Value* bias_in = (m.conv || m.gemm) ? n->input(2) : nullptr;
    if (!bias_in) return true;
    m.b = DqOf(bias_in);
    if (!m.b) return false;
    const ir::Tensor* bt = ConstantOf(m.b->data);
    if (!bt || bt->dtype() != ir::DType::kInt32 ||
        bt->numel() != static_cast<uint64_t>(m.channels) ||
        (bt->rank() == 2 && bt->shape()[0] != 1) || bt->rank() > 2)
      return false;
    if (m.gemm && n->attr_float("beta", 1.f) != 1.f) return false;
    for (int64_t z : m.b->zps)
      if (z != 0) return false;
    for (int64_t c = 0; c < m.channels; ++c) {
      const double want = m.x.scales[0] * m.w.scales[m.w.per_tensor() ? 0 : c];
      const double got = m.b->scales[m.b->per_tensor() ? 0 : c];
      if (std::fabs(got - want) > 1e-5 * want) return false;
    }
    return true;
  }

  // Activation: fused into the node already (FusedConv/FusedGemm), or a trailing Relu/Clip.
  static bool MatchLinearAct(ir::Node* n, LinearMatch& m) {
    const std::string& op = n->op_type();
    if (op == "FusedConv" || op == "FusedGemm") {
      m.act.kind = n->attr_string("activation", "");
      m.act.params = n->attr_floats("activation_params", {});
      return m.act.kind == "Relu" || m.act.kind == "Clip";
    }
    if (auto a = TrailingAct(n->output(0))) m.act = *a;
    return true;
  }

  bool FuseLinear(ir::Graph& g, ir::Node* n) {
    std::optional<LinearMatch> found = MatchLinearInputs(n);
    if (!found || !MatchLinearBias(n, *found) || !MatchLinearAct(n, *found)) return false;
    const LinearMatch& m = *found;
    ir::Value* fout = m.act.node ? m.act.node->output(0) : n->output(0);
    std::optional<QInfo> y = SingleQ(fout);
    if (y && y->qtype != m.x.qtype && !m.act.kind.empty()) y.reset();
    // A float-output MatMul's bias Add (transformers) goes into the epilogue as a float C.
    ir::Node* bias_add = !y && m.act.kind.empty() && n->op_type() == "MatMul"
                             ? FloatBiasAdd(n, m.channels)
                             : nullptr;
    if (bias_add) fout = bias_add->output(0);

    // The integer op; the edgepress forms where an activation or a float output is needed.
    const bool ep = !m.act.kind.empty() || !y;
    ir::Value* zx = ZpOrZero(g, m.x.zp, m.x.qtype, m.x.data->name());
    ir::Value* zw = ZpOrZero(g, m.w.zp, m.w.qtype, m.w.data->name());
    ir::Value* zy = y ? ZpOrZero(g, y->zp, y->qtype, y->node->output(0)->name()) : nullptr;
    ir::Value* bq = m.b ? m.b->data : nullptr;
    if (bias_add)
      bq = bias_add->input(0) == n->output(0) ? bias_add->input(1) : bias_add->input(0);
    ir::Value* ys = y ? y->scale : nullptr;
    std::string new_op, domain;
    std::vector<ir::Value*> ins;
    if (m.convt) {
      new_op = "QLinearConvTranspose";
      domain = ep ? "edgepress" : "com.microsoft";
      ins = {m.x.data, m.x.scale, zx, m.w.data, m.w.scale, zw, ys, zy, bq};
    } else if (m.conv) {
      new_op = "QLinearConv";
      domain = ep ? "edgepress" : "";
      ins = {m.x.data, m.x.scale, zx, m.w.data, m.w.scale, zw, ys, zy, bq};
    } else if (n->op_type() == "MatMul" && !ep) {
      new_op = "QLinearMatMul";
      ins = {m.x.data, m.x.scale, zx, m.w.data, m.w.scale, zw, ys, zy};
    } else {
      new_op = "QGemm";
      const bool two_d = n->input(0)->type.shape && n->input(0)->type.shape->size() == 2;
      domain = (!ep && m.gemm && two_d) ? "com.microsoft" : "edgepress";
      ins = {m.x.data, m.x.scale, zx, m.w.data, m.w.scale, zw, bq, ys, zy};
    }
    while (!ins.empty() && !ins.back()) ins.pop_back();

    ir::Node* last = y ? y->node : (m.act.node ? m.act.node : (bias_add ? bias_add : n));
    ir::Value* replaced = y ? y->node->output(0) : fout;
    ir::Node* f = g.InsertNode(last, new_op, ins, {g.UniqueName(replaced->name() + "_int")},
                               n->name.empty() ? "" : n->name + "_int", domain);
    if (m.conv) {
      for (const ir::Attribute& a : n->attributes())
        if (a.name != "activation" && a.name != "activation_params") f->set_attr(a);
    } else if (m.trans_b) {
      f->set_attr(ir::Attribute::Int("transB", 1));
    }
    if (!m.act.kind.empty()) {
      f->set_attr(ir::Attribute::String("activation", m.act.kind));
      if (!m.act.params.empty())
        f->set_attr(ir::Attribute::Floats("activation_params", m.act.params));
    }
    std::vector<ir::Node*> dead;
    if (y) dead.push_back(y->node);
    if (m.act.node) dead.push_back(m.act.node);
    if (bias_add) dead.push_back(bias_add);
    dead.push_back(n);
    if (!Commit(g, f, replaced, dead, {m.x.node, m.w.node, m.b ? m.b->node : nullptr}))
      return false;
    used_ep_ |= domain == "edgepress";
    used_ms_ |= domain == "com.microsoft";
    Count(y ? "fused-quantized" : "fused-float-output");
    if (bias_add) Count("fused-float-bias");
    return true;
  }

  // The Add(mm, bias) that is the only reader of MatMul `mm`'s output, where bias is a
  // float32 constant of `n` values ([N] or [1, N]) that broadcasts along the rows and the
  // Add's output has the MatMul's type; else null. (fuse-matmul-add leaves rank-3
  // transformer MatMuls alone, so after quantize-static their bias Adds follow the DQ
  // MatMul, a second pass over every output.)
  static ir::Node* FloatBiasAdd(ir::Node* mm, int64_t n) {
    ir::Value* y = mm->output(0);
    ir::Node* add = SingleUser(y);
    if (!add || add->op_type() != "Add" || !add->domain().empty() || y->is_graph_output())
      return nullptr;
    if (add->num_inputs() != 2 || (add->input(0) == y) == (add->input(1) == y)) return nullptr;
    const ir::Tensor* c = ConstantOf(add->input(0) == y ? add->input(1) : add->input(0));
    if (!c || c->dtype() != ir::DType::kFloat32) return nullptr;
    const bool row = (c->rank() == 1 && c->shape()[0] == n) ||
                     (c->rank() == 2 && c->shape()[0] == 1 && c->shape()[1] == n);
    if (!row || add->output(0)->type.dtype != y->type.dtype) return nullptr;
    return add;
  }

  bool FuseMove(ir::Graph& g, ir::Node* n) {
    if (n->op_type() == "MaxPool" && n->output(1) && !n->output(1)->uses().empty()) return false;
    auto y = SingleQ(n->output(0));
    if (!y) return false;
    std::vector<QInfo> dqs;
    const size_t data_inputs = n->op_type() == "Concat" ? n->num_inputs() : 1;
    for (size_t i = 0; i < data_inputs; ++i) {
      auto d = DqOf(n->input(i));
      if (!d || !d->SameParams(*y)) return false;
      dqs.push_back(*d);
    }
    std::vector<ir::Value*> ins = n->inputs();
    for (size_t i = 0; i < data_inputs; ++i) ins[i] = dqs[i].data;
    std::vector<std::string> outs = {g.UniqueName(y->node->output(0)->name() + "_int")};
    ir::Node* f = g.InsertNode(y->node, n->op_type(), ins, outs, n->name, "");
    for (const ir::Attribute& a : n->attributes()) f->set_attr(a);
    std::vector<ir::Node*> dq_nodes;
    for (const QInfo& d : dqs) dq_nodes.push_back(d.node);
    if (!Commit(g, f, y->node->output(0), {y->node, n}, dq_nodes)) return false;
    Count("fused-data-movement");
    return true;
  }

  bool FuseAdd(ir::Graph& g, ir::Node* n) {
    auto a = DqOf(n->input(0));
    auto b = DqOf(n->input(1));
    if (!a || !b || !a->per_tensor() || !b->per_tensor() || !Is8Bit(a->qtype) ||
        a->qtype != b->qtype)
      return false;
    // Both operands must be activations: a constant operand stays float (a Q'd constant
    // would be folded by nobody and its rounding is the quantizer's business).
    if (ConstantOf(a->data) || ConstantOf(b->data)) return false;
    Act act;
    if (auto t = TrailingAct(n->output(0))) act = *t;
    ir::Value* fout = act.node ? act.node->output(0) : n->output(0);
    auto y = SingleQ(fout);
    if (!y || y->qtype != a->qtype) return false;
    std::vector<ir::Value*> ins = {a->data, a->scale, ZpOrZero(g, a->zp, a->qtype, a->data->name()),
                                   b->data, b->scale, ZpOrZero(g, b->zp, b->qtype, b->data->name()),
                                   y->scale, ZpOrZero(g, y->zp, y->qtype, y->node->output(0)->name())};
    const std::string domain = act.kind.empty() ? "com.microsoft" : "edgepress";
    ir::Node* f = g.InsertNode(y->node, "QLinearAdd", ins,
                               {g.UniqueName(y->node->output(0)->name() + "_int")}, n->name, domain);
    if (!act.kind.empty()) {
      f->set_attr(ir::Attribute::String("activation", act.kind));
      if (!act.params.empty()) f->set_attr(ir::Attribute::Floats("activation_params", act.params));
    }
    std::vector<ir::Node*> dead = {y->node};
    if (act.node) dead.push_back(act.node);
    dead.push_back(n);
    if (!Commit(g, f, y->node->output(0), dead, {a->node, b->node})) return false;
    used_ep_ |= domain == "edgepress";
    used_ms_ |= domain == "com.microsoft";
    Count("fused-add");
    return true;
  }

  bool FuseGap(ir::Graph& g, ir::Node* n) {
    auto x = DqOf(n->input(0));
    auto y = SingleQ(n->output(0));
    if (!x || !y || !x->per_tensor() || !Is8Bit(x->qtype) || y->qtype != x->qtype) return false;
    std::vector<ir::Value*> ins = {x->data, x->scale, ZpOrZero(g, x->zp, x->qtype, x->data->name()),
                                   y->scale, ZpOrZero(g, y->zp, y->qtype, y->node->output(0)->name())};
    ir::Node* f = g.InsertNode(y->node, "QLinearGlobalAveragePool", ins,
                               {g.UniqueName(y->node->output(0)->name() + "_int")}, n->name,
                               "com.microsoft");
    f->set_attr(ir::Attribute::Int("channels_last", 0));
    if (!Commit(g, f, y->node->output(0), {y->node, n}, {x->node})) return false;
    used_ms_ = true;
    Count("fused-global-average-pool");
    return true;
  }

  bool FuseMul(ir::Graph& g, ir::Node* n) {
    auto a = DqOf(n->input(0));
    auto b = DqOf(n->input(1));
    if (!a || !b || !a->per_tensor() || !b->per_tensor() || !Is8Bit(a->qtype) ||
        a->qtype != b->qtype || ConstantOf(a->data) || ConstantOf(b->data))
      return false;
    auto y = SingleQ(n->output(0));
    if (!y || y->qtype != a->qtype) return false;
    std::vector<ir::Value*> ins = {a->data, a->scale, ZpOrZero(g, a->zp, a->qtype, a->data->name()),
                                   b->data, b->scale, ZpOrZero(g, b->zp, b->qtype, b->data->name()),
                                   y->scale, ZpOrZero(g, y->zp, y->qtype, y->node->output(0)->name())};
    ir::Node* f = g.InsertNode(y->node, "QLinearMul", ins,
                               {g.UniqueName(y->node->output(0)->name() + "_int")}, n->name,
                               "com.microsoft");
    if (!Commit(g, f, y->node->output(0), {y->node, n}, {a->node, b->node})) return false;
    used_ms_ = true;
    Count("fused-mul");
    return true;
  }

  // Element-wise functions of one tensor (other inputs constant) that a table can replace.
  static bool IsLookupOp(const ir::Node* n) {
    static const std::set<std::string> kOnnx = {
        "Sigmoid", "Tanh",     "HardSigmoid", "HardSwish", "LeakyRelu", "Elu",  "Selu",
        "Celu",    "Softplus", "Softsign",    "Gelu",      "Erf",       "Exp",  "Mish",
        "Relu",    "Clip",     "Abs",         "Neg",       "ThresholdedRelu"};
    static const std::set<std::string> kMs = {"Gelu", "FastGelu", "QuickGelu"};
    if (n->num_outputs() != 1 || !n->output(0) || n->num_inputs() < 1) return false;
    if (n->domain().empty()) return kOnnx.count(n->op_type()) > 0;
    return n->domain() == "com.microsoft" && kMs.count(n->op_type()) > 0;
  }

  bool FuseLookup(ir::Graph& g, ir::Node* n) {
    auto x = DqOf(n->input(0));
    if (!x || !x->per_tensor() || !Is8Bit(x->qtype) || ConstantOf(x->data)) return false;
    for (size_t i = 1; i < n->num_inputs(); ++i)
      if (n->input(i) && !ConstantOf(n->input(i))) return false;
    auto y = SingleQ(n->output(0));
    if (!y) return false;
    std::optional<ir::Tensor> table = LookupTable(*x, *n, *y);
    if (!table) return false;
    ir::Value* t = AddConstant(g, n->output(0)->name() + "_table", std::move(*table));
    ir::Node* f = g.InsertNode(y->node, "QLinearLookup", {x->data, t},
                               {g.UniqueName(y->node->output(0)->name() + "_int")},
                               n->name.empty() ? "" : n->name + "_lookup", "edgepress");
    f->set_attr(ir::Attribute::String("function", n->op_type()));
    if (!Commit(g, f, y->node->output(0), {y->node, n}, {x->node})) return false;
    used_ep_ = true;
    Count("fused-lookup");
    return true;
  }

  // table[k] = Q(f(DQ(code k))), where code k is the 8-bit value whose bit pattern is k,
  // computed by the runtime's own DQ, f and Q kernels. nullopt when a kernel refuses.
  std::optional<ir::Tensor> LookupTable(const QInfo& x, const ir::Node& f, const QInfo& y) {
    ir::Tensor codes(x.qtype, {256});
    auto* c = static_cast<uint8_t*>(codes.mutable_raw());
    for (int k = 0; k < 256; ++k) c[k] = static_cast<uint8_t>(k);
    auto inputs_of = [](const ir::Node& node, const ir::Tensor* first) {
      std::vector<const ir::Tensor*> ins = {first};
      for (size_t i = 1; i < node.num_inputs(); ++i)
        ins.push_back(node.input(i) ? ConstantOf(node.input(i)) : nullptr);
      return ins;
    };
    try {
      runtime::ThreadPool pool(1);
      std::vector<ir::Tensor> xf = runtime::RunNode(*x.node, inputs_of(*x.node, &codes), pool);
      if (xf.empty() || xf[0].numel() != 256) return std::nullopt;
      std::vector<ir::Tensor> yf = runtime::RunNode(f, inputs_of(f, &xf[0]), pool);
      if (yf.empty() || yf[0].numel() != 256 || yf[0].dtype() != ir::DType::kFloat32)
        return std::nullopt;
      std::vector<ir::Tensor> yq = runtime::RunNode(*y.node, inputs_of(*y.node, &yf[0]), pool);
      if (yq.empty() || yq[0].numel() != 256 || yq[0].dtype() != y.qtype) return std::nullopt;
      return std::move(yq[0]);
    } catch (const edgepress::Error&) {
      return std::nullopt;
    }
  }

  bool used_ms_ = false, used_ep_ = false;
};

}  // namespace

const PassEntry& FuseQdqPass() {
  static const PassEntry entry = {
      {"fuse-qdq",
       "Rewrite QuantizeLinear/DequantizeLinear patterns into integer ops (QLinearConv, "
       "QLinearMatMul, QGemm, QLinearAdd, ...) so QDQ models run as int8",
       {},
       {"fused-quantized", "fused-float-output", "fused-data-movement", "fused-add",
        "fused-mul", "fused-lookup", "fused-global-average-pool"}},
      [](const PassOptions& o) -> std::unique_ptr<Pass> { return std::make_unique<FuseQdq>(o); }};
  return entry;
}

}  // namespace edgepress::passes
