// fuse-gelu: replaces the erf form of GELU that exporters write,
//   y = (x * (erf(x / sqrt(2)) + 1)) * 0.5     (also x * 0.7071.. instead of x / 1.4142..,
//                                                and the 0.5 applied to x first)
// with one com.microsoft Gelu node, which onnxruntime also runs. Operands of Add/Mul may
// come in either order. Intermediate values must feed only the pattern. Constants must
// match to 1e-3 relative. The tanh approximation is not matched (different function).
#include <cmath>

#include "passes/all_passes.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

constexpr double kRtol = 1e-3;  // constants must match to 1e-3 relative
bool IsOp(const ir::Node* n, const char* op) { return IsOnnxOp(n, op); }
ir::Value* OtherThanScalar(ir::Node* n, double want) {
  return passes::OtherThanScalar(n, want, kRtol);
}

class FuseGelu : public Pass {
 public:
  explicit FuseGelu(const PassOptions&) {}
  const PassInfo& info() const override { return FuseGeluPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    int64_t fused = RewriteAll(*model.graph, [&](ir::Graph& g, ir::Node* n) {
      return IsOp(n, "Erf") && TryFuse(g, n);
    });
    if (fused && model.OpsetVersion("com.microsoft") == 0) model.SetOpsetVersion("com.microsoft", 1);
    Count("fused", fused);
    return fused > 0;
  }

 private:
  bool TryFuse(ir::Graph& g, ir::Node* erf) {
    // x / sqrt(2) or x * (1 / sqrt(2))
    ir::Node* scale = erf->input(0) ? erf->input(0)->producer() : nullptr;
    if (!scale || !HasSingleUse(scale->output(0))) return false;
    ir::Value* x = nullptr;
    if (IsOp(scale, "Div") && ScalarNear(scale->input(1), std::sqrt(2.0), kRtol))
      x = scale->input(0);
    else if (IsOp(scale, "Mul"))
      x = OtherThanScalar(scale, 1.0 / std::sqrt(2.0));
    if (!x) return false;
    ir::Node* add = SingleUser(erf->output(0));
    if (!IsOp(add, "Add") || OtherThanScalar(add, 1.0) != erf->output(0)) return false;
    ir::Node* mul1 = SingleUser(add->output(0));
    if (!IsOp(mul1, "Mul")) return false;
    ir::Value* other = mul1->input(0) == add->output(0) ? mul1->input(1) : mul1->input(0);
    std::vector<ir::Node*> dead = {mul1, add, erf, scale};
    ir::Value* out;
    if (other == x) {
      // (x * (1 + erf)) * 0.5
      ir::Node* mul2 = SingleUser(mul1->output(0));
      if (!IsOp(mul2, "Mul") || OtherThanScalar(mul2, 0.5) != mul1->output(0)) return false;
      out = mul2->output(0);
      dead.insert(dead.begin(), mul2);
    } else {
      // (x * 0.5) * (1 + erf)
      ir::Node* half = other->producer();
      if (!IsOp(half, "Mul") || !HasSingleUse(other) || OtherThanScalar(half, 0.5) != x)
        return false;
      out = mul1->output(0);
      dead.push_back(half);
    }
    ir::Node* gelu = g.InsertNode(erf, "Gelu", {x}, {g.UniqueName(out->name() + "_gelu")},
                                  erf->name + "_gelu", "com.microsoft");
    gelu->output(0)->type = out->type;
    if (!ReplaceValue(out, gelu->output(0))) {
      gelu->set_input(0, nullptr);
      g.RemoveNode(gelu);
      return false;
    }
    for (ir::Node* n : dead) g.RemoveNode(n);  // consumers first, so each is unused
    return true;
  }
};

}  // namespace

const PassEntry& FuseGeluPass() {
  static const PassEntry entry = {{"fuse-gelu", "Fuse the erf decomposition of GELU into one com.microsoft Gelu", {},
           {"fused"}},
          [](const PassOptions& o) -> std::unique_ptr<Pass> {
            return std::make_unique<FuseGelu>(o);
          }};
  return entry;
}

}  // namespace edgepress::passes
