// pack-ternary: MatMul and Gemm whose constant weight is ternary per output channel (every
// non-zero value of channel n is +a_n or -a_n, bit-exact, as `distill --fake-quant ternary`
// writes them) become edgepress::TernaryMatMul, and such Conv edgepress::TernaryConv
// (docs/ops.md): the weight stored as 2-bit codes (ir::DType::kTernary, 4 per byte, rows padded to
// 16 codes) plus one float scale per output channel, 16x smaller than fp32 and 4x smaller than the
// int8 codes that quantize-weights {bits: 8} stores for the same values. The runtime's kernel adds
// and subtracts activations instead of multiplying (runtime/kernels/lowbit/ternary_matmul.h).
//
// ternarize=true first applies TWN's rule per output channel (passes/quant/ternary.h: threshold
// 0.7 * mean|w|, a = mean |w| above it) to every matched weight: post-training ternary,
// which costs accuracy that distillation-aware training (docs/distill.md) wins back.
//
// MatMul: a constant float32 2-D B [K, N] (A of any rank). Gemm: transA = 0, B 2-D
// (transB either way), alpha folded into the scales, C absent or a constant of N elements
// ([N] or [1, N]; beta folded in) that becomes the op's bias. Conv: a constant float32
// weight [M, C/group, k...] (1-3 spatial dims), ternary per output channel m; its
// attributes carry over, plus w_shape; its bias input carries over as is.
//
// Does not fire on: weights that are not ternary per channel (unless ternarize=true),
// non-constant or non-float32 weights, batched (N-D) MatMul weights, Gemm with transA = 1
// or another C, nodes matching an `exclude` glob, op types outside `op-types`. ONNX has no
// ternary type: a model after this pass saves as .epk only (the ONNX writer refuses it,
// naming the tensor).
// A weight shared by several nodes is packed once per graph; the float weight is removed
// when nothing uses it anymore. Outputs keep their value names.
#include <cmath>
#include <map>
#include <set>

#include "ir/error.h"
#include "passes/all_passes.h"
#include "passes/quant/quant_util.h"
#include "passes/rewrite_util.h"
#include "passes/quant/ternary.h"
#include "runtime/kernels/lowbit/ternary_matmul.h"

namespace edgepress::passes {
namespace {

struct Target {
  ir::Graph* g = nullptr;
  ir::Node* node = nullptr;
  ir::Value* weight = nullptr;
  bool gemm = false, conv = false, transposed = false;
  int64_t K = 0, N = 0;
  float alpha = 1.f;
  const ir::Tensor* bias = nullptr;  // Gemm's constant C
  float beta = 1.f;
};

struct Packed {
  ir::Value* codes = nullptr;
  ir::Value* scales = nullptr;
};

class PackTernary : public Pass {
 public:
  explicit PackTernary(const PassOptions& o)
      : ternarize_(o.GetBool("ternarize")), exclude_(o.GetStringList("exclude")) {
    for (const std::string& op : o.GetStringList("op-types")) {
      if (op != "MatMul" && op != "Gemm" && op != "Conv")
        ThrowInvalid("pass 'pack-ternary': option 'op-types' names '" + op +
                     "'; ternary packing handles MatMul, Gemm and Conv");
      op_types_.insert(op);
    }
  }
  const PassInfo& info() const override { return PackTernaryPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    Count("bytes-before", static_cast<int64_t>(ConstantBytes(model)));
    std::vector<Target> targets;
    model.graph->Walk([&](ir::Graph& g) {
      for (ir::Node* n : g.nodes()) {
        Target t;
        if (Match(g, n, &t)) targets.push_back(t);
      }
    });
    std::set<ir::Value*> weights;
    for (const Target& t : targets) {
      if (!Rewrite(t)) continue;
      weights.insert(t.weight);
    }
    for (ir::Value* w : weights) {
      if (!w->uses().empty() || w->is_graph_output()) continue;
      if (w->is_initializer()) {
        w->graph()->RemoveInitializer(w);
      } else if (ir::Node* p = w->producer()) {
        w->graph()->RemoveNode(p);
      }
    }
    if (!weights.empty() && model.OpsetVersion("edgepress") == 0)
      model.SetOpsetVersion("edgepress", 1);
    Count("bytes-after", static_cast<int64_t>(ConstantBytes(model)));
    return !weights.empty();
  }

 private:
  bool Match(ir::Graph& g, ir::Node* n, Target* t) {
    if (!n->domain().empty() || !op_types_.count(n->op_type())) return false;
    if (quant::MatchAnyGlob(exclude_, n->name)) {
      Count("skipped-excluded");
      return false;
    }
    const ir::Tensor* w = n->num_inputs() > 1 ? ConstantOf(n->input(1)) : nullptr;
    if (!w || w->dtype() != ir::DType::kFloat32 || !n->input(0) || n->num_outputs() != 1) {
      Count("skipped-not-constant");
      return false;
    }
    t->g = &g;
    t->node = n;
    t->weight = n->input(1);
    t->gemm = n->op_type() == "Gemm";
    t->conv = n->op_type() == "Conv";
    if (t->conv) {
      if (w->rank() < 3 || w->rank() > 5 || w->numel() == 0) {
        Count("skipped-unsupported");
        return false;
      }
      // Channel m is row m of [M, K]: the layout Pack reads as "transposed".
      t->transposed = true;
      t->N = w->shape()[0];
      t->K = static_cast<int64_t>(w->numel()) / t->N;
      return true;
    }
    if (w->rank() != 2 || w->numel() == 0) {
      Count("skipped-unsupported");
      return false;
    }
    if (t->gemm) {
      t->transposed = n->attr_int("transB", 0) != 0;
      t->alpha = n->attr_float("alpha", 1.f);
      t->beta = n->attr_float("beta", 1.f);
      bool ok = n->attr_int("transA", 0) == 0 && std::isfinite(t->alpha);
      if (ir::Value* c = n->num_inputs() > 2 ? n->input(2) : nullptr) {
        t->bias = ConstantOf(c);
        const int64_t cols = t->transposed ? w->shape()[0] : w->shape()[1];
        ok = ok && t->bias && t->bias->dtype() == ir::DType::kFloat32 &&
             t->bias->numel() == static_cast<uint64_t>(cols) && t->bias->rank() >= 1 &&
             t->bias->shape().back() == cols && std::isfinite(t->beta);
      }
      if (!ok) {
        Count("skipped-unsupported");
        return false;
      }
    }
    t->K = t->transposed ? w->shape()[1] : w->shape()[0];
    t->N = t->transposed ? w->shape()[0] : w->shape()[1];
    return true;
  }

  // The packed codes and scales of the target's weight (alpha folded in), shared per graph
  // and layout; nullptr codes when the weight is not ternary.
  Packed Pack(const Target& t) {
    auto key = std::make_tuple(t.g, t.weight, t.transposed, t.alpha);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    const ir::Tensor& w = *ConstantOf(t.weight);
    // Channel n of the logical [K, N] weight: stride 1 over n and N over k for [K, N]
    // storage; K over n and 1 over k for Gemm's transposed [N, K].
    const int64_t stride_c = t.transposed ? t.K : 1, stride_i = t.transposed ? 1 : t.N;
    std::vector<float> values(w.data<float>(), w.data<float>() + w.numel());
    if (ternarize_) ternary::TernarizeTwn(values.data(), t.N, t.K, stride_c, stride_i);
    std::vector<int8_t> codes;
    std::vector<float> scales;
    Packed p;
    if (ternary::SplitTernary(values.data(), t.N, t.K, stride_c, stride_i, &codes, &scales)) {
      for (float& s : scales) s *= t.alpha;
      const std::string& name = t.weight->name();
      p.codes = AddConstant(*t.g, name + "_ternary", runtime::PackTernary(codes.data(), t.N, t.K));
      p.scales = AddConstant(*t.g, name + "_scale",
                             ir::Tensor::FromVector(ir::DType::kFloat32, {t.N}, scales));
    }
    cache_[key] = p;
    return p;
  }

  bool Rewrite(const Target& t) {
    const Packed p = Pack(t);
    if (!p.codes) {
      Count("skipped-not-ternary");
      return false;
    }
    ir::Graph& g = *t.g;
    ir::Node* n = t.node;
    std::vector<ir::Value*> ins = {n->input(0), p.codes, p.scales};
    if (t.conv && n->num_inputs() > 2 && n->input(2)) ins.push_back(n->input(2));
    if (t.bias) {
      ir::Tensor b(ir::DType::kFloat32, {t.N});
      for (int64_t c = 0; c < t.N; ++c)
        b.mutable_data<float>()[c] = t.bias->data<float>()[c] * t.beta;
      ins.push_back(t.beta == 1.f && t.bias->rank() == 1
                        ? n->input(2)
                        : AddConstant(g, n->input(2)->name() + "_bias", std::move(b)));
    }
    ir::Value* out = n->output(0);
    const std::string out_name = out->name(), node_name = n->name;
    const ir::ValueType type = out->type;
    g.RenameValue(out, g.UniqueName(out_name + "_float"));
    const std::string op = t.conv ? "TernaryConv" : "TernaryMatMul";
    ir::Node* tm = g.InsertNode(n, op, ins, {out_name},
                                g.UniqueName((node_name.empty() ? out_name : node_name) + "_" + op),
                                "edgepress");
    if (t.conv) {
      for (const ir::Attribute& a : n->attributes()) tm->set_attr(a);
      tm->set_attr(ir::Attribute::Ints("w_shape", ConstantOf(t.weight)->shape()));
    } else {
      tm->set_attr(ir::Attribute::Int("K", t.K));
      tm->set_attr(ir::Attribute::Int("N", t.N));
    }
    tm->output(0)->type = type;
    g.ReplaceAllUsesWith(out, tm->output(0));
    g.RemoveNode(n);
    if (!node_name.empty() && !g.FindNode(node_name)) tm->name = node_name;
    Count(t.conv ? "conv-ternary" : t.gemm ? "gemm-ternary" : "matmul-ternary");
    if (ternarize_) Count("ternarized");
    return true;
  }

  bool ternarize_;
  std::vector<std::string> exclude_;
  std::set<std::string> op_types_;
  std::map<std::tuple<ir::Graph*, ir::Value*, bool, float>, Packed> cache_;
};

}  // namespace

const PassEntry& PackTernaryPass() {
  using T = OptionInfo::Type;
  static const PassEntry entry = {
      {"pack-ternary",
       "Stores MatMul/Gemm/Conv weights that are {-a, 0, +a} per output channel (distill "
       "--fake-quant ternary) as 2-bit codes in edgepress TernaryMatMul/TernaryConv; .epk only",
       {
           {"ternarize",
            T::kBool,
            "false",
            "first ternarize every matched weight by TWN's rule (post-training ternary)",
            {}},
           {"exclude", T::kStringList, "", "node-name globs to leave in float (* and ?)", {}},
           {"op-types", T::kStringList, "MatMul,Gemm,Conv", "op types whose weights to pack", {}},
       },
       {"matmul-ternary", "gemm-ternary", "conv-ternary", "ternarized", "skipped-not-ternary",
        "skipped-not-constant", "skipped-unsupported", "skipped-excluded", "bytes-before",
        "bytes-after"}},
      [](const PassOptions& o) -> std::unique_ptr<Pass> {
        return std::make_unique<PackTernary>(o);
      }};
  return entry;
}

}  // namespace edgepress::passes
