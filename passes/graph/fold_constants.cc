// fold-constants: evaluates nodes whose inputs are all constant with the runtime's own
// kernels and replaces their outputs with initializers; turns Constant nodes into
// initializers; folds Shape of a value whose shape is fully known. Exporters leave many
// such chains (Shape -> Gather -> Concat -> Reshape) that would otherwise run on every
// inference.
// Does not apply to: random ops, nodes with subgraphs, QuantizeLinear/DequantizeLinear
// (folding them would undo quantization; the one exception is a DequantizeLinear whose
// readers are all Gather data inputs — an int8-stored embedding table, which no integer
// kernel consumes, so run time looks rows up in float instead of dequantizing the whole
// table per inference; put fold-constants before quantization in a pipeline that writes
// files), nodes without a kernel, and outputs larger than
// `max-bytes` (folding must not blow up the model size). Graph output names are kept.
#include <unordered_set>

#include "ir/error.h"
#include "passes/all_passes.h"
#include "passes/rewrite_util.h"
#include "runtime/eager.h"

namespace edgepress::passes {
namespace {

const std::unordered_set<std::string> kNeverFold = {
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
    "Bernoulli", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"};

class FoldConstants : public Pass {
 public:
  explicit FoldConstants(const PassOptions& o) : max_bytes_(o.GetInt("max-bytes")) {}
  const PassInfo& info() const override { return FoldConstantsPass().info; }

  bool Run(ir::Model& model, PassContext& ctx) override {
    runtime::ThreadPool pool(ctx.threads);
    bool changed = false;
    model.graph->Walk([&](ir::Graph& g) {
      for (ir::Node* n : g.nodes()) changed |= TryFold(g, n, pool);
    });
    return changed;
  }

 private:
  // Replaces output i of `n` with constant `t`; false when the output's name cannot be
  // preserved.
  bool Replace(ir::Graph& g, ir::Node* n, size_t i, ir::Tensor t) {
    ir::Value* out = n->output(i);
    if (!out) return true;
    ir::Value* c = AddConstant(g, out->name() + "_const", std::move(t));
    if (out->is_graph_output()) {
      // A constant graph output keeps its name but becomes an initializer.
      std::string name = out->name();
      g.ReplaceAllUsesWith(out, c);
      g.RenameValue(out, g.UniqueName(name + "_folded"));
      g.RenameValue(c, name);
      return true;
    }
    g.ReplaceAllUsesWith(out, c);
    return true;
  }

  static bool DequantizesATable(const ir::Node* n) {
    if (n->op_type() != "DequantizeLinear" || n->num_outputs() != 1 || !n->output(0)) return false;
    const ir::Value* out = n->output(0);
    if (out->uses().empty() || out->is_graph_output()) return false;
    for (const auto& use : out->uses())
      if (use.user->op_type() != "Gather" || !use.user->domain().empty() || use.index != 0)
        return false;
    return true;
  }

  bool TryFold(ir::Graph& g, ir::Node* n, runtime::ThreadPool& pool) {
    if (!n->domain().empty() || !n->subgraphs().empty()) return false;
    if (kNeverFold.count(n->op_type()) && !DequantizesATable(n)) return false;
    if (n->op_type() == "Constant") return FoldConstantNode(g, n);
    if (n->op_type() == "Shape") return FoldShape(g, n);
    std::vector<const ir::Tensor*> inputs;
    for (ir::Value* v : n->inputs()) {
      if (!v) {
        inputs.push_back(nullptr);
        continue;
      }
      const ir::Tensor* t = ConstantOf(v);
      if (!t) return false;
      inputs.push_back(t);
    }
    if (inputs.empty()) return false;  // generators other than Constant stay
    std::vector<ir::Tensor> outs;
    try {
      outs = runtime::RunNode(*n, inputs, pool);
    } catch (const Error& e) {
      Count("not-foldable");
      return false;  // no kernel, or the kernel rejects the values: leave it to run time
    }
    uint64_t bytes = 0;
    for (const auto& t : outs) bytes += t.nbytes();
    if (bytes > static_cast<uint64_t>(max_bytes_)) {
      Count("too-large");
      return false;
    }
    for (size_t i = 0; i < outs.size(); ++i) Replace(g, n, i, std::move(outs[i]));
    g.RemoveNode(n);
    Count("nodes-folded");
    return true;
  }

  bool FoldConstantNode(ir::Graph& g, ir::Node* n) {
    ir::Tensor t;
    for (const auto& a : n->attributes()) {
      switch (a.kind) {
        case ir::Attribute::Kind::kTensor: t = a.t; break;
        case ir::Attribute::Kind::kFloat:
          t = ir::Tensor::FromVector(ir::DType::kFloat32, {}, std::vector<float>{a.f});
          break;
        case ir::Attribute::Kind::kInt:
          t = ir::Tensor::FromVector(ir::DType::kInt64, {}, std::vector<int64_t>{a.i});
          break;
        case ir::Attribute::Kind::kFloats:
          t = ir::Tensor::FromVector(ir::DType::kFloat32,
                                     {static_cast<int64_t>(a.floats.size())}, a.floats);
          break;
        case ir::Attribute::Kind::kInts:
          t = ir::Tensor::FromVector(ir::DType::kInt64, {static_cast<int64_t>(a.ints.size())},
                                     a.ints);
          break;
        default: return false;  // strings and sparse values stay Constant nodes
      }
    }
    if (t.empty() || !n->output(0)) return false;
    Replace(g, n, 0, std::move(t));
    g.RemoveNode(n);
    Count("constant-nodes");
    return true;
  }

  bool FoldShape(ir::Graph& g, ir::Node* n) {
    const ir::Value* x = n->input(0);
    if (!x || !x->type.is_tensor() || !x->type.shape) return false;
    auto dims = ir::ConcreteDims(*x->type.shape);
    if (!dims) return false;
    int64_t rank = static_cast<int64_t>(dims->size());
    int64_t start = n->attr_int("start", 0), end = n->attr_int("end", rank);
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = std::clamp<int64_t>(start, 0, rank);
    end = std::clamp<int64_t>(end, start, rank);
    std::vector<int64_t> v(dims->begin() + start, dims->begin() + end);
    Replace(g, n, 0,
            ir::Tensor::FromVector(ir::DType::kInt64, {static_cast<int64_t>(v.size())}, v));
    g.RemoveNode(n);
    Count("shapes-folded");
    return true;
  }

  int64_t max_bytes_;
};

}  // namespace

const PassEntry& FoldConstantsPass() {
  static const PassEntry entry = {{"fold-constants",
           "Evaluate constant subexpressions, Constant nodes and static Shape ops at compile time",
           {{"max-bytes", OptionInfo::Type::kInt, "67108864",
             "largest output (bytes) a folded node may produce", {}, 0, 1e15}},
           {"nodes-folded", "constant-nodes", "shapes-folded", "not-foldable", "too-large"}},
          [](const PassOptions& o) -> std::unique_ptr<Pass> {
            return std::make_unique<FoldConstants>(o);
          }};
  return entry;
}

}  // namespace edgepress::passes
