// fuse-layernorm: replaces the decomposition of layer normalisation that exporters write
// for opsets before 17,
//   m = ReduceMean(x, axes=[-1]); d = Sub(x, m); v = ReduceMean(Pow(d, 2), axes=[-1])
//   y = Add(Mul(Div(d, Sqrt(Add(v, eps))), gamma), beta)
// with one LayerNormalization(x, gamma, beta, axis=-1, epsilon=eps), raising the model's
// ai.onnx opset to 17 when it is lower (the ops of opsets 13-16 keep their meaning at 17
// with default attributes). Both reductions must be over the last axis only; gamma and
// beta must be constants of the normalised size; intermediates must feed only the pattern.
#include <cmath>

#include "passes/all_passes.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

bool IsOp(const ir::Node* n, const char* op) {
  return n && n->op_type() == op && n->domain().empty();
}

// Axes of a ReduceMean (attribute before opset 18, input after); nullopt if unknown.
std::optional<std::vector<int64_t>> ReduceAxes(const ir::Node* n) {
  if (n->has_attr("axes")) return n->attr_ints("axes");
  if (const ir::Tensor* t = ConstantOf(n->input(1))) return t->ToInt64();
  return std::nullopt;
}

bool IsLastAxis(const ir::Node* reduce, const ir::Value* x) {
  auto axes = ReduceAxes(reduce);
  if (!axes || axes->size() != 1 || reduce->attr_int("keepdims", 1) != 1) return false;
  if ((*axes)[0] == -1) return true;
  return x->type.shape && (*axes)[0] == static_cast<int64_t>(x->type.shape->size()) - 1;
}

class FuseLayerNorm : public Pass {
 public:
  explicit FuseLayerNorm(const PassOptions&) {}
  const PassInfo& info() const override { return FuseLayerNormPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    int64_t fused = RewriteAll(*model.graph, [&](ir::Graph& g, ir::Node* n) {
      return IsOp(n, "ReduceMean") && TryFuse(g, n);
    });
    if (fused && model.OpsetVersion("") < 17) {
      model.SetOpsetVersion("", 17);
      Count("opset-raised");
    }
    Count("fused", fused);
    return fused > 0;
  }

 private:
  bool TryFuse(ir::Graph& g, ir::Node* mean1) {
    ir::Value* x = mean1->input(0);
    if (!x || !IsLastAxis(mean1, x) || !HasSingleUse(mean1->output(0))) return false;
    ir::Node* sub = SingleUser(mean1->output(0));
    if (!IsOp(sub, "Sub") || sub->input(0) != x || sub->input(1) != mean1->output(0)) return false;
    ir::Value* d = sub->output(0);
    if (d->uses().size() != 2 || d->is_graph_output()) return false;
    ir::Node* pow = nullptr;
    ir::Node* div = nullptr;
    for (const ir::Use& u : d->uses()) {
      if (IsOp(u.user, "Pow") && u.index == 0) pow = u.user;
      else if (IsOp(u.user, "Div") && u.index == 0) div = u.user;
    }
    if (!pow || !div) return false;
    auto exponent = ScalarConstant(pow->input(1));
    if (!exponent || *exponent != 2.0f) return false;
    ir::Node* mean2 = SingleUser(pow->output(0));
    if (!IsOp(mean2, "ReduceMean") || !IsLastAxis(mean2, x)) return false;
    ir::Node* add_eps = SingleUser(mean2->output(0));
    if (!IsOp(add_eps, "Add")) return false;
    auto eps = ScalarConstant(add_eps->input(1));
    if (!eps || add_eps->input(0) != mean2->output(0)) return false;
    ir::Node* sqrt = SingleUser(add_eps->output(0));
    if (!IsOp(sqrt, "Sqrt") || SingleUser(sqrt->output(0)) != div || div->input(1) != sqrt->output(0))
      return false;
    ir::Node* mul = SingleUser(div->output(0));
    if (!IsOp(mul, "Mul")) return false;
    ir::Value* gamma = mul->input(0) == div->output(0) ? mul->input(1) : mul->input(0);
    ir::Node* add = SingleUser(mul->output(0));
    if (!IsOp(add, "Add")) return false;
    ir::Value* beta = add->input(0) == mul->output(0) ? add->input(1) : add->input(0);
    const ir::Tensor* gt = ConstantOf(gamma);
    const ir::Tensor* bt = ConstantOf(beta);
    if (!gt || !bt || gt->rank() != 1 || bt->shape() != gt->shape()) return false;
    if (gt->dtype() != ir::DType::kFloat32 || bt->dtype() != ir::DType::kFloat32) return false;
    if (x->type.shape && !x->type.shape->empty()) {
      const ir::Dim& last = x->type.shape->back();
      if (last.known() && last.value != gt->shape()[0]) return false;
    }
    ir::Value* out = add->output(0);
    ir::Node* ln = g.InsertNode(mean1, "LayerNormalization", {x, gamma, beta},
                                {g.UniqueName(out->name() + "_ln")}, mean1->name + "_layernorm");
    ln->set_attr(ir::Attribute::Int("axis", -1));
    ln->set_attr(ir::Attribute::Float("epsilon", *eps));
    ln->output(0)->type = out->type;
    if (!ReplaceValue(out, ln->output(0))) {
      for (size_t i = 0; i < 3; ++i) ln->set_input(i, nullptr);
      g.RemoveNode(ln);
      return false;
    }
    for (ir::Node* n : {add, mul, div, sqrt, add_eps, mean2, pow, sub, mean1}) g.RemoveNode(n);
    return true;
  }
};

}  // namespace

const PassEntry& FuseLayerNormPass() {
  static const PassEntry entry = {{"fuse-layernorm",
           "Fuse the ReduceMean/Sub/Pow/Sqrt/Div decomposition into LayerNormalization",
           {}, {"fused", "opset-raised"}},
          [](const PassOptions& o) -> std::unique_ptr<Pass> {
            return std::make_unique<FuseLayerNorm>(o);
          }};
  return entry;
}

}  // namespace edgepress::passes
