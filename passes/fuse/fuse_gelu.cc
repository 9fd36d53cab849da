// fuse-gelu: replaces the two decompositions of GELU that exporters write,
//   erf form:  y = (x * (erf(x / sqrt(2)) + 1)) * 0.5     (also x * 0.7071.. instead of
//                                                           x / 1.4142..)
//   tanh form: y = (x * (tanh(sqrt(2/pi) * (x + 0.044715 * x^3)) + 1)) * 0.5
//              (x^3 as x * (x * x), (x * x) * x or Pow(x, 3); GPT-2 and
//              nn.GELU(approximate='tanh') export this)
// (either with the 0.5 applied to x first) with one com.microsoft Gelu (erf) or FastGelu
// (tanh) node, both of which onnxruntime also runs. Each is exactly the function its
// decomposition computes, so the two forms are never exchanged. Operands of Add/Mul may
// come in either order. Intermediate values must feed only the pattern. Constants must
// match to 1e-3 relative.
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
    int64_t erf = 0, tanh = 0;
    RewriteAll(*model.graph, [&](ir::Graph& g, ir::Node* n) {
      std::vector<ir::Node*> head;
      if (IsOp(n, "Erf")) {
        ir::Value* x = ErfHead(n, &head);
        return x && Fuse(g, n, x, head, "Gelu") && ++erf;
      }
      if (IsOp(n, "Tanh")) {
        ir::Value* x = TanhHead(n, &head);
        return x && Fuse(g, n, x, head, "FastGelu") && ++tanh;
      }
      return false;
    });
    if (erf + tanh && model.OpsetVersion("com.microsoft") == 0) model.SetOpsetVersion("com.microsoft", 1);
    Count("fused", erf + tanh);
    Count("fused-tanh", tanh);
    return erf + tanh > 0;
  }

 private:
  // The x of erf(x / sqrt(2)) or erf(x * (1 / sqrt(2))), with the scaling node in *head.
  static ir::Value* ErfHead(ir::Node* erf, std::vector<ir::Node*>* head) {
    ir::Node* scale = erf->input(0) ? erf->input(0)->producer() : nullptr;
    if (!scale || !HasSingleUse(scale->output(0))) return nullptr;
    ir::Value* x = nullptr;
    if (IsOp(scale, "Div") && ScalarNear(scale->input(1), std::sqrt(2.0), kRtol))
      x = scale->input(0);
    else if (IsOp(scale, "Mul"))
      x = OtherThanScalar(scale, 1.0 / std::sqrt(2.0));
    if (x) head->push_back(scale);
    return x;
  }

  // The node producing `v` when it is used once (by the pattern), else null.
  static ir::Node* OnlyProducer(ir::Value* v) {
    return v && HasSingleUse(v) ? v->producer() : nullptr;
  }

  // The x of tanh(sqrt(2/pi) * (x + 0.044715 * x^3)), with the nodes computing the argument
  // in *head (consumers first).
  static ir::Value* TanhHead(ir::Node* tanh, std::vector<ir::Node*>* head) {
    ir::Node* scale = OnlyProducer(tanh->input(0));
    if (!IsOp(scale, "Mul")) return nullptr;
    ir::Value* inner = OtherThanScalar(scale, std::sqrt(2.0 / M_PI));
    ir::Node* sum = OnlyProducer(inner);
    if (!IsOp(sum, "Add")) return nullptr;
    for (int side = 0; side < 2; ++side) {
      ir::Value* x = sum->input(side);
      ir::Node* cubic = OnlyProducer(sum->input(1 - side));
      if (!IsOp(cubic, "Mul")) continue;
      ir::Node* cube = OnlyProducer(OtherThanScalar(cubic, 0.044715));
      std::vector<ir::Node*> cube_nodes;
      if (!cube || !IsCube(cube, x, &cube_nodes)) continue;
      *head = {scale, sum, cubic};
      head->insert(head->end(), cube_nodes.begin(), cube_nodes.end());
      return x;
    }
    return nullptr;
  }

  // n computes x^3 as Pow(x, 3), x * (x * x) or (x * x) * x; its nodes go to *nodes.
  static bool IsCube(ir::Node* n, ir::Value* x, std::vector<ir::Node*>* nodes) {
    if (IsOp(n, "Pow") && n->input(0) == x && ScalarNear(n->input(1), 3.0, kRtol)) {
      nodes->push_back(n);
      return true;
    }
    if (!IsOp(n, "Mul")) return false;
    for (int side = 0; side < 2; ++side) {
      ir::Node* square = OnlyProducer(n->input(1 - side));
      if (n->input(side) == x && IsOp(square, "Mul") && square->input(0) == x &&
          square->input(1) == x) {
        *nodes = {n, square};
        return true;
      }
    }
    return false;
  }

  // The common tail (f(x) + 1) * x * 0.5 after `act` (Erf or Tanh) whose argument nodes are
  // `head`, replaced by one com.microsoft `op` on x.
  bool Fuse(ir::Graph& g, ir::Node* erf, ir::Value* x, const std::vector<ir::Node*>& head,
            const char* op) {
    ir::Node* add = SingleUser(erf->output(0));
    if (!IsOp(add, "Add") || OtherThanScalar(add, 1.0) != erf->output(0)) return false;
    ir::Node* mul1 = SingleUser(add->output(0));
    if (!IsOp(mul1, "Mul")) return false;
    ir::Value* other = mul1->input(0) == add->output(0) ? mul1->input(1) : mul1->input(0);
    std::vector<ir::Node*> dead = {mul1, add, erf};
    dead.insert(dead.end(), head.begin(), head.end());
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
    ir::Node* gelu = g.InsertNode(erf, op, {x}, {g.UniqueName(out->name() + "_gelu")},
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
  static const PassEntry entry = {{"fuse-gelu", "Fuse the erf and tanh decompositions of GELU into one com.microsoft Gelu / FastGelu", {},
           {"fused", "fused-tanh"}},
          [](const PassOptions& o) -> std::unique_ptr<Pass> {
            return std::make_unique<FuseGelu>(o);
          }};
  return entry;
}

}  // namespace edgepress::passes
