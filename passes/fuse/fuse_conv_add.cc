// fuse-conv-add: folds the residual Add that reads a Conv's output into one com.microsoft
// FusedConv with the other Add operand as its fourth input Z, the form onnxruntime's
// Conv+Add(+activation) fusion writes: Y = activation(conv(X, W) + B + Z), Z added before
// the activation. The native kernel adds Z in the output tile's epilogue, so a ResNet
// block's conv2 + Add (+ Relu, which fuse-activation folds in afterwards) is one pass over
// memory instead of three.
// Applies when the Conv (ai.onnx) output feeds only the Add and is not a graph output,
// and Z has the Conv output's shape exactly (every dim known or the same symbol: FusedConv
// does not broadcast Z). Does not apply to a Conv whose X or W is a DequantizeLinear
// output (a QDQ pattern that fuse-qdq turns into an integer op) nor when Z is the Conv's
// own output. Preserves the Add output's name and the function (the sum is the same
// float additions in another order: within rounding).
#include "ir/error.h"
#include "ir/shape_inference.h"
#include "passes/all_passes.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

// Same shape at run time: equal rank and each dim the same known value or symbol.
bool SameStaticShape(const ir::Value* a, const ir::Value* b) {
  if (!a->type.shape || !b->type.shape) return false;
  const ir::Shape& sa = *a->type.shape;
  const ir::Shape& sb = *b->type.shape;
  if (sa.size() != sb.size()) return false;
  for (size_t i = 0; i < sa.size(); ++i) {
    if (!sa[i].known() && sa[i].symbol.empty()) return false;
    if (sa[i] != sb[i]) return false;
  }
  return true;
}

class FuseConvAdd : public Pass {
 public:
  explicit FuseConvAdd(const PassOptions&) {}
  const PassInfo& info() const override { return FuseConvAddPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    // The rule needs both Add operands' shapes; fill what the graph does not declare.
    // Best effort: a graph shape inference cannot follow keeps its unfused Adds.
    if (HasCandidate(*model.graph)) {
      try {
        ir::InferShapes(model);
      } catch (const Error&) {
      }
    }
    int64_t fused = RewriteAll(*model.graph, [&](ir::Graph& g, ir::Node* n) {
      if (!Matches(n)) return false;
      return Rewrite(g, n, SingleUser(n->output(0)));
    });
    if (fused && model.OpsetVersion("com.microsoft") == 0) model.SetOpsetVersion("com.microsoft", 1);
    Count("fused", fused);
    return fused > 0;
  }

 private:
  static bool FromDequantize(const ir::Value* v) {
    return v && v->producer() && v->producer()->op_type() == "DequantizeLinear";
  }

  static bool HasCandidate(ir::Graph& g) {
    for (ir::Node* n : AllNodes(g))
      if (IsOnnxOp(n, "Conv") && n->num_outputs() == 1 && IsOnnxOp(SingleUser(n->output(0)), "Add"))
        return true;
    return false;
  }

  static ir::Value* OtherOperand(const ir::Node* add, const ir::Value* conv_out) {
    if (add->num_inputs() != 2) return nullptr;
    if (add->input(0) == conv_out && add->input(1) != conv_out) return add->input(1);
    if (add->input(1) == conv_out && add->input(0) != conv_out) return add->input(0);
    return nullptr;
  }

  static bool Matches(ir::Node* conv) {
    if (!IsOnnxOp(conv, "Conv") || conv->num_outputs() != 1 || conv->num_inputs() < 2) return false;
    if (FromDequantize(conv->input(0)) || FromDequantize(conv->input(1))) return false;
    ir::Node* add = SingleUser(conv->output(0));
    if (!IsOnnxOp(add, "Add") || add->num_outputs() != 1) return false;
    const ir::Value* z = OtherOperand(add, conv->output(0));
    return z && z->type.dtype == ir::DType::kFloat32 && SameStaticShape(conv->output(0), z) &&
           SameStaticShape(add->output(0), z);
  }

  bool Rewrite(ir::Graph& g, ir::Node* conv, ir::Node* add) {
    ir::Value* z = OtherOperand(add, conv->output(0));
    std::vector<ir::Value*> ins = conv->inputs();
    ins.resize(4, nullptr);  // B stays absent when the Conv has none
    ins[3] = z;
    ir::Value* out = add->output(0);
    // Inserted at the Add: Z may be computed after the Conv (a projection shortcut).
    ir::Node* fused = g.InsertNode(add, "FusedConv", ins, {g.UniqueName(out->name() + "_fused")},
                                   conv->name, "com.microsoft");
    for (const ir::Attribute& a : conv->attributes()) fused->set_attr(a);
    fused->output(0)->type = out->type;
    if (!ReplaceValue(out, fused->output(0))) {
      for (size_t i = 0; i < fused->num_inputs(); ++i) fused->set_input(i, nullptr);
      g.RemoveNode(fused);
      return false;
    }
    g.RemoveNode(add);
    g.RemoveNode(conv);
    return true;
  }
};

}  // namespace

const PassEntry& FuseConvAddPass() {
  static const PassEntry entry = {
      {"fuse-conv-add",
       "Fuse a residual Add after Conv into com.microsoft FusedConv's sum input Z",
       {},
       {"fused"}},
      [](const PassOptions& o) -> std::unique_ptr<Pass> {
        return std::make_unique<FuseConvAdd>(o);
      }};
  return entry;
}

}  // namespace edgepress::passes
