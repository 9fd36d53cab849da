// Channel dependency analysis for structured pruning, in the style of Torch-Pruning's
// DepGraph: one forward sweep over the main graph assigns every activation whose channels
// can shrink a *layout* (its channel axis and which pruning groups its channels belong
// to), by one propagation rule per op. A pruning group is one channel choice: every
// (tensor, axis) coupled to it — the producing Conv/Gemm/MatMul weight and bias, the
// BatchNorm parameters after it, the consumers' input channels, both sides of a residual
// Add, a Concat's slice at its offset, a depthwise conv's channels, the Q/K/V columns and
// output-projection rows of an attention head — is a member of the group.
//
// Layouts are lists of segments; a segment says "the next units*block elements of this
// axis are `units` units of group g, each `block` contiguous elements". Three operations
// keep layouts consistent everywhere at once: union (a residual Add couples two groups),
// coarsen (a head Reshape makes 64 channels one unit) and split (a Split cuts a group in
// two). An op the rules do not know, a graph output, a value read by a subgraph or a shape
// the analysis cannot follow *freezes* the groups involved: they are reported as not
// prunable, with the reason, and nothing of them changes. That is the safety argument: a
// group is pruned only when every place its channels appear was handled by a rule.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgepress::passes::prune {

struct Segment {
  int group = -1;     // resolve with DependencyGraph::Root
  int64_t units = 0;  // pruning units of the group in this segment
  int64_t block = 1;  // contiguous elements (or conv groups, shape entries) per unit
};
using Layout = std::vector<Segment>;
int64_t LayoutSize(const Layout& l);

// Where a group's channel choice lands in the model.
struct Member {
  enum class Kind : uint8_t {
    kParam,       // constant input `slot` of `node`, sliced along `axis`
    kGroupAttr,   // Conv's `group` attribute becomes the layout's kept size
    kShapeEntry,  // element `index` of the constant input `slot` (a Reshape/Split size)
    kShapePiece,  // input `slot` of a shape-building Concat: a one-element run-time value
                  // replaced by a constant of the kept size
  };
  // What a kParam is, for importance criteria: weights (L1/L2), a BatchNorm scale
  // (bn-gamma), or anything else (biases, statistics, per-channel constants).
  enum class Role : uint8_t { kWeight, kNormScale, kOther };
  Kind kind = Kind::kParam;
  Role role = Role::kOther;
  ir::Node* node = nullptr;
  int slot = -1;
  int axis = 0;
  int64_t index = 0;
  Layout layout;
  std::string why;  // "output channels of Conv 'c1'", ...
};

struct Group {
  std::string kind;  // "conv", "linear", "ffn", "heads" (final after Build)
  int64_t units = 0;
  bool prunable = true;
  bool heads = false;                   // coarsened by an attention-head Reshape
  std::vector<std::string> reasons;     // why not prunable
  std::vector<std::string> coupled_by;  // unions and coarsenings, in the order found
  std::vector<ir::Node*> anchors;       // the Conv/Gemm/MatMul nodes that produce it
};

struct ValueLayout {
  int axis = 0;
  Layout layout;
};

class DependencyGraph {
 public:
  // Analyses the main graph of `model` (runs shape inference first, best effort).
  static DependencyGraph Build(ir::Model& model);

  int Root(int g) const;
  // Root group ids in creation order.
  std::vector<int> Roots() const;
  const Group& group(int g) const { return groups_[Root(g)]; }
  const std::vector<Member>& members() const { return members_; }
  const std::map<ir::Value*, ValueLayout>& values() const { return values_; }
  // Members whose layout holds group `root`.
  std::vector<const Member*> MembersOf(int root) const;
  // Elements of `l` removed when the units `removed[root]` (sorted) of each group go.
  static std::vector<int64_t> KeptIndices(const DependencyGraph& dg, const Layout& l,
                                          const std::map<int, std::vector<int64_t>>& removed);
  // Size of `l` after removal.
  int64_t KeptSize(const Layout& l, const std::map<int, std::vector<int64_t>>& removed) const;

 private:
  friend class Builder;
  int NewGroup(const std::string& kind, int64_t units, ir::Node* anchor);
  void Freeze(int g, const std::string& reason);
  void Freeze(const Layout& l, const std::string& reason);
  // Couples two layouts element for element; freezes both when their segment structure
  // differs. Returns false when it froze.
  bool Unite(const Layout& a, const Layout& b, const std::string& why);
  bool UniteGroups(int a, int b, int64_t elems, const std::string& why);
  bool Coarsen(int g, int64_t factor, const std::string& why);
  // Splits group g after `units_first` units; returns the two new group ids.
  std::pair<int, int> SplitGroup(int g, int64_t units_first);
  template <typename F>
  void ForEachLayout(F&& f);

  std::vector<Group> groups_;
  std::vector<int> parent_;
  std::vector<Member> members_;
  std::map<ir::Value*, ValueLayout> values_;
};

}  // namespace edgepress::passes::prune

namespace edgepress::passes::prune {

// A residual branch y = skip + branch(skip) whose removal leaves y = skip: the nodes that
// descend from `skip` and lead to `branch`, none of which is read outside that set. A
// downsampling block (both Add inputs computed from the block input) is not one; nor is
// an Add whose output shape differs from the skip's.
struct ResidualBlock {
  ir::Node* add = nullptr;
  ir::Value* skip = nullptr;
  ir::Value* branch = nullptr;
  std::vector<ir::Node*> nodes;  // the branch, in graph order
  int64_t params = 0;            // float constant elements only the branch reads
};
// Shape inference that also follows the com.microsoft FusedConv/FusedGemm/Gelu nodes the
// optimize pipeline makes (through standard stand-ins on a clone). Best effort; returns
// false when ai.onnx inference itself failed.
bool InferShapesWithFusedOps(ir::Model& model);

// Blocks of the main graph in node order (the index is what `remove-blocks` names).
std::vector<ResidualBlock> FindResidualBlocks(ir::Graph& g);

}  // namespace edgepress::passes::prune
