// The rules of the channel dependency analysis (prune_deps.h): one Visit method per op
// family records how a node carries the channel axis of its inputs to its outputs —
// producers (Conv/Gemm/MatMul start a group), channel-preserving ops (prune_deps_rules.cc),
// and ops that move, split or merge the channel axis (prune_deps_shape_rules.cc). Internal
// to passes/prune.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/shape_inference.h"
#include "passes/prune/prune_deps.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes::prune {

class Builder {
 public:
  Builder(DependencyGraph& dg, ir::Graph& g, int64_t opset) : dg_(dg), g_(g), opset_(opset) {}

  void Run();

 private:
  const ValueLayout* Get(const ir::Value* v) const {
    if (!v) return nullptr;
    auto it = dg_.values_.find(const_cast<ir::Value*>(v));
    return it == dg_.values_.end() ? nullptr : &it->second;
  }
  Layout LayoutOf(const ir::Value* v) const { return Get(v)->layout; }

  static std::optional<ir::Shape> ShapeOf(const ir::Value* v) {
    if (!v) return std::nullopt;
    if (const ir::Tensor* t = ConstantOf(v)) return ir::MakeShape(t->shape());
    if (v->type.is_tensor() && v->type.shape) return *v->type.shape;
    return std::nullopt;
  }
  static int RankOf(const ir::Value* v) {
    auto s = ShapeOf(v);
    return s ? static_cast<int>(s->size()) : -1;
  }

  void Set(ir::Value* v, int axis, const Layout& l) {
    if (!v) return;
    dg_.values_[v] = ValueLayout{axis, l};
  }
  void Consume(int slot) { consumed_.insert(slot); }
  void FreezeInputs(ir::Node* n, const std::string& why) {
    for (ir::Value* v : n->inputs())
      if (const ValueLayout* vl = Get(v)) dg_.Freeze(vl->layout, n->describe() + ": " + why);
    for (size_t i = 0; i < n->num_inputs(); ++i) Consume(static_cast<int>(i));
  }
  // True when outputs other than the first are absent or unread.
  static bool ExtraOutputsUnused(const ir::Node* n) {
    for (size_t i = 1; i < n->num_outputs(); ++i) {
      const ir::Value* o = n->output(i);
      if (o && (!o->uses().empty() || o->is_graph_output())) return false;
    }
    return true;
  }

  // Records constant input `slot` of `n` as sliced along `axis` by `l`; freezes `l` and
  // returns false when it cannot be (not a constant, size mismatch, shared, packed).
  bool AddParam(ir::Node* n, int slot, int axis, const Layout& l, const std::string& why,
                Member::Role role = Member::Role::kOther);

  std::string Name(const ir::Node* n) const { return n->op_type() + " '" + n->name + "'"; }

  void Visit(ir::Node* n);

  // --- producers: a new group per Conv/Gemm/MatMul output ---------------------------

  void VisitConv(ir::Node* n);
  void VisitGemm(ir::Node* n);
  void VisitMatMul(ir::Node* n);

  // --- channel-preserving ops -------------------------------------------------------

  void VisitUnary(ir::Node* n);
  void VisitPool(ir::Node* n);
  void VisitNorm(ir::Node* n, std::vector<int> params, const std::string& what);
  void VisitLayerNorm(ir::Node* n);
  void VisitSoftmax(ir::Node* n);
  void VisitReduce(ir::Node* n);
  void VisitTranspose(ir::Node* n);

  // Reshape, Flatten, Squeeze, Unsqueeze, read through the inferred shapes: the channel
  // axis either survives, merges with the elements after it (Flatten, heads merged back),
  // or splits into (units, elements) — an attention-head split, which makes one head one
  // pruning unit.
  void VisitReshape(ir::Node* n);

  // A Reshape's target-shape entry for the channel axis must follow the kept count.
  bool ReshapeShapeMember(ir::Node* n, int b, const Layout& l, bool zero_ok);
  void AddShapeMember(Member::Kind kind, ir::Node* n, int slot, int64_t index, const Layout& l,
                      const std::string& why);

  // Elementwise ops with numpy broadcasting: activations carrying channels on the same
  // (right-aligned) axis are coupled (a residual Add, an SE gate's Mul); a constant with
  // the channel count on that axis is sliced with them; size 1 broadcasts.
  void VisitElementwise(ir::Node* n);
  void VisitConcat(ir::Node* n);
  void VisitSplit(ir::Node* n);

  // Shape of a grouped value is harmless when only non-channel dims are read from it.
  void VisitShape(ir::Node* n);
  void VisitGather(ir::Node* n);
  void VisitSlice(ir::Node* n);
  void VisitPad(ir::Node* n);

  DependencyGraph& dg_;
  ir::Graph& g_;
  int64_t opset_;
  std::set<int> consumed_;
};

}  // namespace edgepress::passes::prune
