// fuse-matmul-add: MatMul(A, B) followed by Add(., bias) becomes Gemm(A, B, bias), one
// kernel call with the bias in its epilogue instead of a second pass over the output.
// Applies when A is known to be rank 2, B is a rank-2 constant [K, N], the bias is a
// constant broadcastable to [M, N] along rows ([N] or [1, N]), and the MatMul output feeds
// only the Add. Rank-3 activations (transformers) are left alone: Gemm is 2-D only.
#include "passes/all_passes.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

class FuseMatMulAdd : public Pass {
 public:
  explicit FuseMatMulAdd(const PassOptions&) {}
  const PassInfo& info() const override { return FuseMatMulAddPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    int64_t fused = RewriteAll(*model.graph, [&](ir::Graph& g, ir::Node* mm) {
      if (mm->op_type() != "MatMul" || !mm->domain().empty()) return false;
      ir::Node* add = SingleUser(mm->output(0));
      if (!add || add->op_type() != "Add" || !add->domain().empty()) return false;
      return Fuse(g, mm, add);
    });
    Count("fused", fused);
    return fused > 0;
  }

 private:
  bool Fuse(ir::Graph& g, ir::Node* mm, ir::Node* add) {
    ir::Value* a = mm->input(0);
    const ir::Tensor* b = ConstantOf(mm->input(1));
    if (!a || !b || b->rank() != 2 || b->dtype() != ir::DType::kFloat32) return false;
    if (!a->type.shape || a->type.shape->size() != 2 || a->type.dtype != ir::DType::kFloat32)
      return false;
    ir::Value* bias = add->input(0) == mm->output(0) ? add->input(1) : add->input(0);
    const ir::Tensor* c = ConstantOf(bias);
    int64_t n = b->shape()[1];
    if (!c || c->dtype() != ir::DType::kFloat32) return false;
    bool row = (c->rank() == 1 && c->shape()[0] == n) ||
               (c->rank() == 2 && c->shape()[0] == 1 && c->shape()[1] == n);
    if (!row) return false;
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
  static const PassEntry entry = {{"fuse-matmul-add", "Fuse 2-D MatMul + constant bias Add into Gemm", {}, {"fused"}},
          [](const PassOptions& o) -> std::unique_ptr<Pass> {
            return std::make_unique<FuseMatMulAdd>(o);
          }};
  return entry;
}

}  // namespace edgepress::passes
