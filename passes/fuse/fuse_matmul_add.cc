// fuse-matmul-add: MatMul(A, B) followed by Add(., bias) becomes Gemm(A, B, bias), one
// kernel call with the bias in its epilogue instead of a second pass over the output.
// Applies when A is known to be rank 2, B is a rank-2 constant [K, N], the bias is a
// constant broadcastable to [M, N] along rows ([N] or [1, N]), and the MatMul output feeds
// only the Add. Rank-3 activations (transformers) are left alone: Gemm is 2-D only.
//
// com.microsoft DynamicQuantizeMatMul without a bias followed by Add(., bias [N]) takes the
// bias as its own (input 4), at any rank: how dynamic int8 transformers (ours and
// onnxruntime's quantize_dynamic) come out, where the separate Add was 7% of BERT's time.
#include "passes/all_passes.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

class FuseMatMulAdd : public Pass {
 public:
  explicit FuseMatMulAdd(const PassOptions&) {}
  const PassInfo& info() const override { return FuseMatMulAddPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    int64_t dynamic = 0;
    int64_t fused = RewriteAll(*model.graph, [&](ir::Graph& g, ir::Node* mm) {
      const bool dq = mm->op_type() == "DynamicQuantizeMatMul" && mm->domain() == "com.microsoft";
      if (!dq && (mm->op_type() != "MatMul" || !mm->domain().empty())) return false;
      ir::Node* add = SingleUser(mm->output(0));
      if (!add || add->op_type() != "Add" || !add->domain().empty()) return false;
      if (!dq) return Fuse(g, mm, add);
      return FuseDynamic(g, mm, add) && ++dynamic;
    });
    Count("fused", fused);
    Count("fused-dynamic-quantize", dynamic);
    return fused > 0;
  }

 private:
  // The bias of `add` when it is a float32 constant of N elements ([N] or [1, N]) and the
  // other operand is `mm`'s output; else null.
  static ir::Value* RowBias(ir::Node* mm, ir::Node* add, int64_t n) {
    ir::Value* bias = add->input(0) == mm->output(0) ? add->input(1) : add->input(0);
    const ir::Tensor* c = ConstantOf(bias);
    if (!c || c->dtype() != ir::DType::kFloat32) return nullptr;
    const bool row = (c->rank() == 1 && c->shape()[0] == n) ||
                     (c->rank() == 2 && c->shape()[0] == 1 && c->shape()[1] == n);
    return row ? bias : nullptr;
  }

  bool FuseDynamic(ir::Graph& g, ir::Node* mm, ir::Node* add) {
    const ir::Tensor* b = mm->num_inputs() > 1 ? ConstantOf(mm->input(1)) : nullptr;
    if (!b || b->rank() != 2 || (mm->num_inputs() > 4 && mm->input(4))) return false;
    ir::Value* bias = RowBias(mm, add, b->shape()[1]);
    if (!bias || add->output(0)->type.dtype != mm->output(0)->type.dtype) return false;
    // The Add's output (kept by name) now comes from the MatMul; its result is unchanged
    // but for the order of the float additions.
    ir::Value* out = add->output(0);
    ir::Node* fused = g.InsertNode(mm, "DynamicQuantizeMatMul", {}, {g.UniqueName(out->name() + "_dynq")},
                                   mm->name, "com.microsoft");
    for (size_t i = 0; i < 4; ++i) fused->add_input(i < mm->num_inputs() ? mm->input(i) : nullptr);
    fused->add_input(bias);
    fused->output(0)->type = out->type;
    if (!ReplaceValue(out, fused->output(0))) {
      for (size_t i = 0; i < fused->num_inputs(); ++i) fused->set_input(i, nullptr);
      g.RemoveNode(fused);
      return false;
    }
    g.RemoveNode(add);
    g.RemoveNode(mm);
    return true;
  }

  bool Fuse(ir::Graph& g, ir::Node* mm, ir::Node* add) {
    ir::Value* a = mm->input(0);
    const ir::Tensor* b = ConstantOf(mm->input(1));
    if (!a || !b || b->rank() != 2 || b->dtype() != ir::DType::kFloat32) return false;
    if (!a->type.shape || a->type.shape->size() != 2 || a->type.dtype != ir::DType::kFloat32)
      return false;
    ir::Value* bias = RowBias(mm, add, b->shape()[1]);
    if (!bias) return false;
    ir::Value* out = add->output(0);
    ir::Node* gemm = g.InsertNode(mm, "Gemm", {a, mm->input(1), bias},
                                  {g.UniqueName(out->name() + "_gemm")}, mm->name);
    gemm->output(0)->type = out->type;
    if (!ReplaceValue(out, gemm->output(0))) {
      for (size_t i = 0; i < 3; ++i) gemm->set_input(i, nullptr);
      g.RemoveNode(gemm);
      return false;
    }
    g.RemoveNode(add);
    g.RemoveNode(mm);
    return true;
  }
};

}  // namespace

const PassEntry& FuseMatMulAddPass() {
  static const PassEntry entry = {{"fuse-matmul-add", "Fuse 2-D MatMul + constant bias Add into Gemm, and a bias Add into DynamicQuantizeMatMul", {}, {"fused", "fused-dynamic-quantize"}},
          [](const PassOptions& o) -> std::unique_ptr<Pass> {
            return std::make_unique<FuseMatMulAdd>(o);
          }};
  return entry;
}

}  // namespace edgepress::passes
