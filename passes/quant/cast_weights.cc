// cast-weights: stores float32 weights as float16 or bfloat16 initializers followed by a
// Cast(to=FLOAT), halving their bytes while every op still computes in float32.
//
// Which initializers: every float32 initializer that is a MatMul/Gemm/Conv weight or bias
// (inputs 1 and 2), and every other float32 initializer of at least 1 KiB (embedding
// tables, positional embeddings, large constant operands) — small ones (LayerNorm gammas,
// scalars, Resize scales) gain little and are often exact parameters. Constant nodes are
// not touched (fold-constants turns them into initializers first).
// Not cast: initializers that are also graph inputs (a caller may override them) or graph
// outputs; values not finite in float16 (|x| > 65504; counted in skipped-out-of-range);
// uses by nodes matching an `exclude` glob (those keep reading the float32 original), and
// uses inside subgraphs (they keep the original too).
// Rounding: float16 and bfloat16 round to nearest even (ir::FloatToHalf/FloatToBFloat16).
// Casting from bfloat16 needs ai.onnx opset 13, which is raised to when lower.
#include <cmath>

#include "ir/error.h"
#include "passes/all_passes.h"
#include "passes/quant/quant_util.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

constexpr uint64_t kMinBytes = 1024;

bool IsWeightUse(const ir::Use& u) {
  const ir::Node* n = u.user;
  if (!n->domain().empty()) return false;
  const std::string& op = n->op_type();
  return (op == "MatMul" && u.index == 1) ||
         ((op == "Gemm" || op == "Conv") && (u.index == 1 || u.index == 2));
}

class CastWeights : public Pass {
 public:
  explicit CastWeights(const PassOptions& o)
      : bf16_(o.GetString("dtype") == "bf16"), exclude_(o.GetStringList("exclude")) {}
  const PassInfo& info() const override { return CastWeightsPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    // Candidates first: the rewrite adds initializers and must not see its own.
    std::vector<std::pair<ir::Graph*, ir::Value*>> candidates;
    int64_t before = 0;
    model.graph->Walk([&](ir::Graph& g) {
      for (ir::Value* v : g.initializers()) {
        before += static_cast<int64_t>(v->initializer()->nbytes());
        if (Eligible(v)) candidates.emplace_back(&g, v);
      }
    });
    if (bf16_ && !candidates.empty() && quant::EnsureOpset(model, 13)) Count("opset-raised");
    int64_t cast = 0;
    for (auto& [g, v] : candidates) cast += Rewrite(*g, v);
    int64_t after = 0;
    model.graph->Walk([&](ir::Graph& g) {
      for (ir::Value* v : g.initializers())
        after += static_cast<int64_t>(v->initializer()->nbytes());
    });
    Count("initializers-cast", cast);
    Count("bytes-before", before);
    Count("bytes-after", after);
    return cast > 0;
  }

 private:
  bool Eligible(ir::Value* v) {
    const ir::Tensor* t = v->initializer();
    if (!t || t->dtype() != ir::DType::kFloat32 || t->numel() == 0) return false;
    if (v->is_graph_input() || v->is_graph_output() || v->uses().empty()) return false;
    bool weight = false;
    for (const ir::Use& u : v->uses()) weight |= IsWeightUse(u);
    if (!weight && t->nbytes() < kMinBytes) return false;
    if (!bf16_) {
      const float* d = t->data<float>();
      for (uint64_t i = 0; i < t->numel(); ++i)
        if (!(std::fabs(d[i]) <= 65504.f)) {
          Count("skipped-out-of-range");
          return false;
        }
    }
    return true;
  }

  // Returns 1 when `v` was cast for at least one user.
  int Rewrite(ir::Graph& g, ir::Value* v) {
    std::vector<ir::Use> uses;
    ir::Node* first = nullptr;
    for (const ir::Use& u : v->uses()) {
      if (u.user->graph() != &g) continue;
      if (quant::MatchAnyGlob(exclude_, u.user->name)) {
        Count("skipped-excluded");
        continue;
      }
      uses.push_back(u);
    }
    if (uses.empty()) return 0;
    for (ir::Node* n : g.nodes()) {
      for (const ir::Use& u : uses)
        if (u.user == n) first = n;
      if (first) break;
    }
    const ir::Tensor& src = *v->initializer();
    ir::DType dt = bf16_ ? ir::DType::kBFloat16 : ir::DType::kFloat16;
    ir::Tensor half(dt, src.shape());
    const float* s = src.data<float>();
    uint16_t* d = half.mutable_data<uint16_t>();
    for (uint64_t i = 0; i < src.numel(); ++i)
      d[i] = bf16_ ? ir::FloatToBFloat16(s[i]) : ir::FloatToHalf(s[i]);
    ir::Value* hv = AddConstant(g, v->name() + (bf16_ ? "_bf16" : "_fp16"), std::move(half));
    ir::Node* cast = g.InsertNode(first, "Cast", {hv}, {g.UniqueName(v->name() + "_f32")},
                                  g.UniqueName(v->name() + "_Cast"));
    cast->set_attr(ir::Attribute::Int("to", ir::DTypeToOnnx(ir::DType::kFloat32)));
    cast->output(0)->type = v->type;
    for (const ir::Use& u : uses) u.user->set_input(u.index, cast->output(0));
    if (v->uses().empty()) g.RemoveInitializer(v);
    return 1;
  }

  bool bf16_;
  std::vector<std::string> exclude_;
};

}  // namespace

const PassEntry& CastWeightsPass() {
  using T = OptionInfo::Type;
  static const PassEntry entry = {
      {"cast-weights",
       "Store float32 weights (and other float initializers >= 1 KiB) as float16/bfloat16 "
       "followed by Cast to float",
       {
           {"dtype", T::kEnum, "fp16", "storage type: fp16 or bf16", {"fp16", "bf16"}},
           {"exclude", T::kStringList, "", "node-name globs whose inputs stay float32", {}},
       },
       {"initializers-cast", "skipped-excluded", "skipped-out-of-range", "opset-raised",
        "bytes-before", "bytes-after"}},
      [](const PassOptions& o) -> std::unique_ptr<Pass> {
        return std::make_unique<CastWeights>(o);
      }};
  return entry;
}

}  // namespace edgepress::passes
