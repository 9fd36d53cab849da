// fuse-hardswish: replaces the decompositions of HardSwish and HardSigmoid that exporters
// write (older torch.onnx, paddle2onnx, TF converters: Add/Clip/Div/Mul) with the ONNX ops,
//   HardSigmoid(x) = Clip(x + 3, 0, 6) / 6        (or * 1/6)
//                  -> HardSigmoid(alpha = 1/6, beta = 0.5)
//   HardSwish(x)   = x * (Clip(x + 3, 0, 6) / 6)  (or x * HardSigmoid(x) with alpha 1/6,
//                                                 beta 0.5, or (x * Clip(x + 3, 0, 6)) / 6)
//                  -> HardSwish
// so that the runtime runs one kernel instead of four, and so that quantize-static sees one
// element-wise function it can run as a 256-entry table (fuse-qdq's QLinearLookup) instead
// of four float ops between Q/DQ pairs. Operands of Add/Mul may come in either order;
// constants must match to 1e-5 relative; intermediate values must feed only the pattern.
// The result equals the decomposition within float rounding (x/6 + 0.5 vs (x + 3) / 6).
// The fused value keeps the name of the pattern's output. HardSwish exists from opset 14:
// in an older model the HardSwish patterns become Mul(x, HardSigmoid(x)) (both ops exist
// there, and both run integer after quantize-static: a table and a QLinearMul).
#include <cmath>

#include "passes/all_passes.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

// Constants must match to 1e-5 relative (plus 1e-7 so that 0 matches 0).
bool Near(const ir::Value* v, double want) { return ScalarNear(v, want, 1e-5, 1e-7); }
bool IsOp(const ir::Node* n, const char* op) { return IsOnnxOp(n, op); }
ir::Value* OtherThanScalar(ir::Node* n, double want) {
  return passes::OtherThanScalar(n, want, 1e-5, 1e-7);
}
// The operand of binary `n` other than `v` (nullptr when `v` is not an operand).
ir::Value* OtherOperand(ir::Node* n, const ir::Value* v) {
  if (n->num_inputs() != 2) return nullptr;
  if (n->input(0) == v) return n->input(1);
  if (n->input(1) == v) return n->input(0);
  return nullptr;
}
// `v` divided by 6 (Div v, 6 or Mul v, 1/6) by its only reader: that reader, else nullptr.
ir::Node* DivBySix(const ir::Value* v) {
  ir::Node* u = SingleUser(v);
  if (IsOp(u, "Div") && u->input(0) == v && Near(u->input(1), 6.0)) return u;
  if (IsOp(u, "Mul") && OtherThanScalar(u, 1.0 / 6.0) == v) return u;
  return nullptr;
}

class FuseHardSwish : public Pass {
 public:
  explicit FuseHardSwish(const PassOptions&) {}
  const PassInfo& info() const override { return FuseHardSwishPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    hardswish_op_ = model.OpsetVersion("") >= 14;
    int64_t fused = RewriteAll(*model.graph, [&](ir::Graph& g, ir::Node* n) {
      if (IsOp(n, "Clip")) return FromClip(g, n);
      if (IsOp(n, "HardSigmoid")) return FromHardSigmoid(g, n);
      return false;
    });
    return fused > 0;
  }

 private:
  // Clip(x + 3, 0, 6) and what reads it.
  bool FromClip(ir::Graph& g, ir::Node* clip) {
    if (clip->num_inputs() != 3 || !Near(clip->input(1), 0.0) ||
        !Near(clip->input(2), 6.0) || !HasSingleUse(clip->output(0)))
      return false;
    ir::Node* add = clip->input(0) ? clip->input(0)->producer() : nullptr;
    if (!IsOp(add, "Add") || !HasSingleUse(add->output(0))) return false;
    ir::Value* x = OtherThanScalar(add, 3.0);
    if (!x) return false;
    if (ir::Node* div = DivBySix(clip->output(0))) {
      // HardSigmoid, and HardSwish when x multiplies it.
      ir::Node* mul = SingleUser(div->output(0));
      if (IsOp(mul, "Mul") && HasSingleUse(div->output(0)) &&
          OtherOperand(mul, div->output(0)) == x)
        return Replace(g, add, "HardSwish", x, mul->output(0), {mul, div, clip, add});
      return Replace(g, add, "HardSigmoid", x, div->output(0), {div, clip, add});
    }
    // (x * Clip(x + 3, 0, 6)) / 6
    ir::Node* mul = SingleUser(clip->output(0));
    if (!IsOp(mul, "Mul") || OtherOperand(mul, clip->output(0)) != x ||
        !HasSingleUse(mul->output(0)))
      return false;
    ir::Node* div = DivBySix(mul->output(0));
    if (!div) return false;
    return Replace(g, add, "HardSwish", x, div->output(0), {div, mul, clip, add});
  }

  // x * HardSigmoid(x) with torch's parameters (alpha 1/6, beta 0.5).
  bool FromHardSigmoid(ir::Graph& g, ir::Node* hs) {
    if (!hardswish_op_ ||std::fabs(hs->attr_float("alpha", 0.2f) - 1.0 / 6.0) > 1e-6 ||
        std::fabs(hs->attr_float("beta", 0.5f) - 0.5) > 1e-6 || !HasSingleUse(hs->output(0)))
      return false;
    ir::Value* x = hs->input(0);
    ir::Node* mul = SingleUser(hs->output(0));
    if (!x || !IsOp(mul, "Mul") || OtherOperand(mul, hs->output(0)) != x) return false;
    return Replace(g, hs, "HardSwish", x, mul->output(0), {mul, hs});
  }

  // Inserts `op`(x) before `pos`, moves `out`'s readers to it, removes `dead` (readers
  // first) and gives the new value `out`'s name.
  bool Replace(ir::Graph& g, ir::Node* pos, const char* op, ir::Value* x, ir::Value* out,
               const std::vector<ir::Node*>& dead) {
    if (out->is_graph_input()) return false;
    const std::string name = out->name();
    const bool swish = std::string(op) == "HardSwish";
    const std::string base = pos->name.empty() ? "" : pos->name + "_";
    ir::Node* f;
    if (swish && hardswish_op_) {
      f = g.InsertNode(pos, "HardSwish", {x}, {g.UniqueName(name + "_HardSwish")},
                       base.empty() ? "" : base + "HardSwish", "");
    } else {
      f = g.InsertNode(pos, "HardSigmoid", {x}, {g.UniqueName(name + "_HardSigmoid")},
                       base.empty() ? "" : base + "HardSigmoid", "");
      f->set_attr(ir::Attribute::Float("alpha", 1.f / 6.f));
      f->set_attr(ir::Attribute::Float("beta", 0.5f));
      if (swish) {
        f->output(0)->type = out->type;
        f = g.InsertNode(pos, "Mul", {x, f->output(0)}, {g.UniqueName(name + "_Mul")},
                         base.empty() ? "" : base + "Mul", "");
      }
    }
    f->output(0)->type = out->type;
    if (!ReplaceValue(out, f->output(0))) {
      while (f) {  // the new nodes, last first
        ir::Node* prev = f->num_inputs() > 1 ? f->input(1)->producer() : nullptr;
        for (size_t i = 0; i < f->num_inputs(); ++i) f->set_input(i, nullptr);
        g.RemoveNode(f);
        f = prev;
      }
      return false;
    }
    for (ir::Node* n : dead) g.RemoveNode(n);
    if (!g.FindValue(name)) g.RenameValue(f->output(0), name);
    Count(swish ? "hardswish-fused" : "hardsigmoid-fused");
    return true;
  }

  bool hardswish_op_ = false;  // the model's ai.onnx opset has HardSwish (>= 14)
};

}  // namespace

const PassEntry& FuseHardSwishPass() {
  static const PassEntry entry = {
      {"fuse-hardswish",
       "Fuse the Add/Clip/Div/Mul decompositions of HardSwish and HardSigmoid into the ONNX ops",
       {},
       {"hardswish-fused", "hardsigmoid-fused"}},
      [](const PassOptions& o) -> std::unique_ptr<Pass> {
        return std::make_unique<FuseHardSwish>(o);
      }};
  return entry;
}

}  // namespace edgepress::passes
