// fuse-activation: folds a Relu or Clip (with constant bounds) that follows a Conv or Gemm
// into one com.microsoft FusedConv / FusedGemm node with an `activation` attribute, as
// onnxruntime's own optimizer does; the kernel applies it in the GEMM epilogue while the
// output tile is still in registers, saving a full pass over the activation tensor.
// Applies when the Conv/Gemm output feeds only the activation and is not a graph output;
// for Clip, min and max must be absent or scalar constants. HardSigmoid and HardSwish
// (MobileNetV3's, 28 nodes there) fuse into Conv only, as onnxruntime does: the native
// conv applies them to each block of Y it finishes (runtime/kernels/conv/conv_activation.h);
// not between QDQ pairs (DequantizeLinear input or QuantizeLinear reader), where
// quantize-static's table lookup and fuse-qdq's integer conv (Relu/Clip only) take them.
// Other activations (LeakyRelu, Sigmoid, ...) are not fused: the native epilogue only
// clamps. A FusedConv
// without an activation (fuse-conv-add's Conv + residual Add, Z input kept) takes the
// Relu/Clip after the Add too: FusedConv applies it after adding Z, as the graph did.
#include <limits>

#include "passes/all_passes.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

class FuseActivation : public Pass {
 public:
  explicit FuseActivation(const PassOptions&) {}
  const PassInfo& info() const override { return FuseActivationPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    int64_t fused = RewriteAll(*model.graph, [&](ir::Graph& g, ir::Node* n) {
      const bool plain = n->domain().empty() && (n->op_type() == "Conv" || n->op_type() == "Gemm");
      const bool sum_conv = n->domain() == "com.microsoft" && n->op_type() == "FusedConv" &&
                            n->attr_string("activation", "").empty();
      if (!plain && !sum_conv) return false;
      ir::Node* act = SingleUser(n->output(0));
      if (!act || !act->domain().empty()) return false;
      return TryFuse(g, n, act);
    });
    if (fused && model.OpsetVersion("com.microsoft") == 0) model.SetOpsetVersion("com.microsoft", 1);
    Count("fused", fused);
    return fused > 0;
  }

 private:
  // Whether `op` reads a dequantized input or `act` feeds a QuantizeLinear.
  static bool InQdq(const ir::Node* op, const ir::Node* act) {
    const ir::Node* x = op->input(0) ? op->input(0)->producer() : nullptr;
    if (IsOnnxOp(x, "DequantizeLinear")) return true;
    for (const ir::Use& u : act->output(0)->uses())
      if (IsOnnxOp(u.user, "QuantizeLinear")) return true;
    return false;
  }

  bool TryFuse(ir::Graph& g, ir::Node* op, ir::Node* act) {
    std::vector<float> params;
    if (act->op_type() == "Relu") {
      // no parameters
    } else if (act->op_type() == "Clip") {
      float lo = -std::numeric_limits<float>::max(), hi = std::numeric_limits<float>::max();
      if (act->input(1)) {
        auto v = ScalarConstant(act->input(1));
        if (!v) return false;
        lo = *v;
      }
      if (act->input(2)) {
        auto v = ScalarConstant(act->input(2));
        if (!v) return false;
        hi = *v;
      }
      params = {lo, hi};
    } else if (act->op_type() == "HardSigmoid" || act->op_type() == "HardSwish") {
      if (op->op_type() != "Conv" && op->op_type() != "FusedConv") return false;
      if (InQdq(op, act)) return false;
      if (act->op_type() == "HardSigmoid")
        params = {act->attr_float("alpha", 0.2f), act->attr_float("beta", 0.5f)};
    } else {
      return false;
    }
    ir::Value* out = act->output(0);
    const std::string fused_op =
        op->domain() == "com.microsoft" ? op->op_type() : "Fused" + op->op_type();
    ir::Node* fused = g.InsertNode(op, fused_op, op->inputs(),
                                   {g.UniqueName(out->name() + "_fused")}, op->name,
                                   "com.microsoft");
    for (const ir::Attribute& a : op->attributes()) fused->set_attr(a);
    fused->set_attr(ir::Attribute::String("activation", act->op_type()));
    if (!params.empty()) fused->set_attr(ir::Attribute::Floats("activation_params", params));
    fused->output(0)->type = out->type;
    if (!ReplaceValue(out, fused->output(0))) {
      for (size_t i = 0; i < fused->num_inputs(); ++i) fused->set_input(i, nullptr);
      g.RemoveNode(fused);
      return false;
    }
    g.RemoveNode(act);
    g.RemoveNode(op);
    return true;
  }
};

}  // namespace

const PassEntry& FuseActivationPass() {
  static const PassEntry entry = {
      {"fuse-activation",
       "Fuse Relu/Clip after Conv, Gemm or a FusedConv without activation (HardSigmoid/"
       "HardSwish after a float Conv) into com.microsoft FusedConv/FusedGemm",
       {},
       {"fused"}},
      [](const PassOptions& o) -> std::unique_ptr<Pass> {
        return std::make_unique<FuseActivation>(o);
      }};
  return entry;
}

}  // namespace edgepress::passes
