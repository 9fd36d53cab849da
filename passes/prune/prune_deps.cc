#include "passes/prune/prune_deps.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "ir/error.h"
#include "ir/shape_inference.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes::prune {

int64_t LayoutSize(const Layout& l) {
  int64_t n = 0;
  for (const Segment& s : l) n += s.units * s.block;
  return n;
}

int DependencyGraph::Root(int g) const {
  while (parent_[g] != g) g = parent_[g];
  return g;
}

std::vector<int> DependencyGraph::Roots() const {
  std::vector<int> r;
  for (size_t g = 0; g < groups_.size(); ++g)
    if (parent_[g] == static_cast<int>(g) && groups_[g].units > 0) r.push_back(static_cast<int>(g));
  return r;
}

std::vector<const Member*> DependencyGraph::MembersOf(int root) const {
  std::vector<const Member*> out;
  for (const Member& m : members_)
    for (const Segment& s : m.layout)
      if (Root(s.group) == root) {
        out.push_back(&m);
        break;
      }
  return out;
}

std::vector<int64_t> DependencyGraph::KeptIndices(
    const DependencyGraph& dg, const Layout& l,
    const std::map<int, std::vector<int64_t>>& removed) {
  std::vector<int64_t> kept;
  int64_t offset = 0;
  for (const Segment& s : l) {
    auto it = removed.find(dg.Root(s.group));
    std::vector<char> gone(s.units, 0);
    if (it != removed.end())
      for (int64_t u : it->second) gone[u] = 1;
    for (int64_t u = 0; u < s.units; ++u)
      if (!gone[u])
        for (int64_t j = 0; j < s.block; ++j) kept.push_back(offset + u * s.block + j);
    offset += s.units * s.block;
  }
  return kept;
}

int64_t DependencyGraph::KeptSize(const Layout& l,
                                  const std::map<int, std::vector<int64_t>>& removed) const {
  int64_t n = 0;
  for (const Segment& s : l) {
    auto it = removed.find(Root(s.group));
    int64_t gone = it == removed.end() ? 0 : static_cast<int64_t>(it->second.size());
    n += (s.units - gone) * s.block;
  }
  return n;
}

int DependencyGraph::NewGroup(const std::string& kind, int64_t units, ir::Node* anchor) {
  Group g;
  g.kind = kind;
  g.units = units;
  if (anchor) g.anchors.push_back(anchor);
  groups_.push_back(std::move(g));
  parent_.push_back(static_cast<int>(parent_.size()));
  return static_cast<int>(groups_.size() - 1);
}

void DependencyGraph::Freeze(int g, const std::string& reason) {
  Group& gr = groups_[Root(g)];
  gr.prunable = false;
  if (std::find(gr.reasons.begin(), gr.reasons.end(), reason) == gr.reasons.end())
    gr.reasons.push_back(reason);
}

void DependencyGraph::Freeze(const Layout& l, const std::string& reason) {
  for (const Segment& s : l) Freeze(s.group, reason);
}

template <typename F>
void DependencyGraph::ForEachLayout(F&& f) {
  for (auto& [v, vl] : values_) f(vl.layout);
  for (Member& m : members_) f(m.layout);
}

bool DependencyGraph::Coarsen(int g, int64_t factor, const std::string& why) {
  int r = Root(g);
  if (factor == 1) return true;
  if (factor <= 0 || groups_[r].units % factor != 0) {
    Freeze(r, "cannot make units of " + std::to_string(factor) + " channels (" + why + ")");
    return false;
  }
  ForEachLayout([&](Layout& l) {
    for (Segment& s : l)
      if (Root(s.group) == r) {
        s.units /= factor;
        s.block *= factor;
      }
  });
  groups_[r].units /= factor;
  groups_[r].coupled_by.push_back("units of " + std::to_string(factor) + ": " + why);
  return true;
}

bool DependencyGraph::UniteGroups(int a, int b, int64_t elems, const std::string& why) {
  int ra = Root(a), rb = Root(b);
  // Blocks follow from the groups' current unit counts (a segment always holds a whole
  // group), so they are never stale after an earlier coarsening.
  int64_t block_a = elems / groups_[ra].units, block_b = elems / groups_[rb].units;
  if (ra == rb) {
    if (block_a == block_b) return true;
    Freeze(ra, "its channels meet themselves permuted (" + why + ")");
    return false;
  }
  // Both sides cover the same elements here; the finer side is coarsened first so one
  // unit means the same channels on both.
  bool ok = true;
  if (block_a < block_b)
    ok = block_b % block_a == 0 && Coarsen(ra, block_b / block_a, why);
  else if (block_b < block_a)
    ok = block_a % block_b == 0 && Coarsen(rb, block_a / block_b, why);
  if (!ok) {
    Freeze(ra, why);
    Freeze(rb, why);
    return false;
  }
  Group& ga = groups_[ra];
  Group& gb = groups_[rb];
  parent_[rb] = ra;
  ga.prunable = ga.prunable && gb.prunable;
  ga.heads = ga.heads || gb.heads;
  for (auto& r : gb.reasons)
    if (std::find(ga.reasons.begin(), ga.reasons.end(), r) == ga.reasons.end())
      ga.reasons.push_back(r);
  for (auto& c : gb.coupled_by) ga.coupled_by.push_back(c);
  ga.coupled_by.push_back(why);
  for (ir::Node* n : gb.anchors) ga.anchors.push_back(n);
  if (ga.kind.empty() || ga.kind == "fixed") ga.kind = gb.kind;
  gb.units = 0;  // merged away
  return true;
}

bool DependencyGraph::Unite(const Layout& a, const Layout& b, const std::string& why) {
  bool same = a.size() == b.size();
  for (size_t i = 0; same && i < a.size(); ++i)
    same = a[i].units * a[i].block == b[i].units * b[i].block;
  if (!same) {
    Freeze(a, why + " joins differently structured channel sets");
    Freeze(b, why + " joins differently structured channel sets");
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i)
    if (!UniteGroups(a[i].group, b[i].group, a[i].units * a[i].block, why)) return false;
  return true;
}

std::pair<int, int> DependencyGraph::SplitGroup(int g, int64_t units_first) {
  int r = Root(g);
  Group base = groups_[r];
  int a = NewGroup(base.kind, units_first, nullptr);
  int b = NewGroup(base.kind, base.units - units_first, nullptr);
  for (int x : {a, b}) {
    Group& gx = groups_[x];
    gx.prunable = base.prunable;
    gx.heads = base.heads;
    gx.reasons = base.reasons;
    gx.anchors = base.anchors;
    gx.coupled_by = base.coupled_by;
  }
  groups_[r].units = 0;
  parent_[r] = r;
  ForEachLayout([&](Layout& l) {
    Layout out;
    for (const Segment& s : l) {
      if (Root(s.group) != r) {
        out.push_back(s);
        continue;
      }
      out.push_back({a, units_first, s.block});
      out.push_back({b, s.units - units_first, s.block});
    }
    l = std::move(out);
  });
  return {a, b};
}

// ---------------------------------------------------------------------------------------

class Builder {
 public:
  Builder(DependencyGraph& dg, ir::Graph& g, int64_t opset) : dg_(dg), g_(g), opset_(opset) {}

  void Run() {
    for (ir::Node* n : g_.nodes()) {
      consumed_.clear();
      Visit(n);
      for (size_t i = 0; i < n->num_inputs(); ++i) {
        const ValueLayout* vl = Get(n->input(i));
        if (vl && !consumed_.count(static_cast<int>(i)))
          dg_.Freeze(vl->layout, "read by " + n->describe() + " (input " + std::to_string(i) +
                                     "), which no rule follows");
      }
    }
    for (auto& [v, vl] : dg_.values_) {
      if (v->is_graph_output()) dg_.Freeze(vl.layout, "reaches graph output '" + v->name() + "'");
      for (const ir::Use& u : v->uses())
        if (u.user->graph() != &g_)
          dg_.Freeze(vl.layout, "read inside the subgraph of " +
                                    (u.user->graph()->owner() ? u.user->graph()->owner()->describe()
                                                              : std::string("a node")));
    }
  }

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
                Member::Role role = Member::Role::kOther) {
    const ir::Value* v = n->input(slot);
    const ir::Tensor* t = ConstantOf(v);
    std::string fail;
    if (!t)
      fail = "input " + std::to_string(slot) + " is not a constant";
    else if (axis < 0 || axis >= t->rank() || t->shape()[axis] != LayoutSize(l))
      fail = "constant '" + v->name() + "' does not have the channel count on axis " +
             std::to_string(axis);
    else if (IsPacked(t->dtype()) || t->dtype() == ir::DType::kString || t->quant || t->sparse)
      fail = "constant '" + v->name() + "' is packed, quantized or sparse";
    // A constant shared with other nodes (exporters merge identical tensors) is fine: the
    // rewrite gives this node its own sliced copy.
    if (!fail.empty()) {
      dg_.Freeze(l, n->describe() + ": " + fail);
      return false;
    }
    Member m;
    m.kind = Member::Kind::kParam;
    m.role = role;
    m.node = n;
    m.slot = slot;
    m.axis = axis;
    m.layout = l;
    m.why = why;
    dg_.members_.push_back(std::move(m));
    return true;
  }

  std::string Name(const ir::Node* n) const { return n->op_type() + " '" + n->name + "'"; }

  void Visit(ir::Node* n) {
    const std::string& op = n->op_type();
    const std::string& d = n->domain();
    bool std_op = d.empty() || d == "ai.onnx";
    bool ms = d == "com.microsoft";
    if ((std_op && op == "Conv") || (ms && op == "FusedConv")) return VisitConv(n);
    if ((std_op && op == "Gemm") || (ms && op == "FusedGemm")) return VisitGemm(n);
    if (std_op && op == "MatMul") return VisitMatMul(n);
    static const std::set<std::string> kUnary = {
        "Relu",  "LeakyRelu", "Sigmoid", "Tanh",   "HardSigmoid", "HardSwish", "Erf",
        "Gelu",  "Elu",       "Selu",    "Celu",   "Softplus",    "Softsign",  "Neg",
        "Abs",   "Sqrt",      "Exp",     "Log",    "Reciprocal",  "Identity",  "Cast",
        "Floor", "Ceil",      "Round",   "Sin",    "Cos",         "Mish",      "ThresholdedRelu",
        "Sign",  "Not",       "Clip",    "Dropout"};
    static const std::set<std::string> kMsUnary = {"Gelu", "FastGelu", "QuickGelu"};
    if ((std_op && kUnary.count(op)) || (ms && kMsUnary.count(op))) return VisitUnary(n);
    static const std::set<std::string> kPool = {"MaxPool",       "AveragePool", "GlobalAveragePool",
                                                "GlobalMaxPool", "LpPool",      "GlobalLpPool"};
    if (std_op && kPool.count(op)) return VisitPool(n);
    static const std::set<std::string> kElementwise = {
        "Add", "Sub",   "Mul",   "Div",   "Pow",  "Max",     "Min",         "Mean",
        "Sum", "PRelu", "Where", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
        "And", "Or",    "Xor",   "Mod"};
    if (std_op && kElementwise.count(op)) return VisitElementwise(n);
    if (!std_op) return;
    if (op == "BatchNormalization") return VisitNorm(n, {1, 2, 3, 4}, "BatchNormalization");
    if (op == "InstanceNormalization") return VisitNorm(n, {1, 2}, "InstanceNormalization");
    if (op == "LayerNormalization") return VisitLayerNorm(n);
    if (op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") return VisitSoftmax(n);
    if (op.rfind("Reduce", 0) == 0) return VisitReduce(n);
    if (op == "Transpose") return VisitTranspose(n);
    if (op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze")
      return VisitReshape(n);
    if (op == "Concat") return VisitConcat(n);
    if (op == "Split") return VisitSplit(n);
    if (op == "Shape") return VisitShape(n);
    if (op == "Gather") return VisitGather(n);
    if (op == "Slice") return VisitSlice(n);
    if (op == "Pad") return VisitPad(n);
  }

  // --- producers: a new group per Conv/Gemm/MatMul output ---------------------------

  void VisitConv(ir::Node* n) {
    const ValueLayout* x = Get(n->input(0));
    const ir::Tensor* w = ConstantOf(n->input(1));
    Consume(0);
    // FusedConv's sum input Z (fuse-conv-add's residual) couples like the Add it replaced.
    ir::Value* z = n->num_inputs() > 3 ? n->input(3) : nullptr;
    const ValueLayout* zl = z ? Get(z) : nullptr;
    if (z) Consume(3);
    if (!w || w->rank() < 3 || n->num_outputs() != 1 || (n->input(2) && !ConstantOf(n->input(2))) ||
        (z && (n->attr_int("group", 1) != 1 || !zl || zl->axis != 1))) {
      if (x) dg_.Freeze(x->layout, Name(n) + " has a non-constant weight or bias, or a sum input");
      if (zl) dg_.Freeze(zl->layout, Name(n) + " reads it as a sum input no rule follows");
      return;
    }
    int64_t g = n->attr_int("group", 1);
    int64_t cout = w->shape()[0];
    if (x && x->axis != 1) {
      dg_.Freeze(x->layout, Name(n) + " reads channels on axis " + std::to_string(x->axis));
      x = nullptr;
    }
    if (g == 1) {
      if (x) AddParam(n, 1, 1, x->layout, "input channels of " + Name(n), Member::Role::kWeight);
      int grp = dg_.NewGroup("conv", cout, n);
      Layout out{{grp, cout, 1}};
      AddParam(n, 1, 0, out, "output channels of " + Name(n), Member::Role::kWeight);
      if (n->input(2)) AddParam(n, 2, 0, out, "bias of " + Name(n));
      if (zl && !dg_.Unite(out, zl->layout, "residual sum of " + Name(n))) return;
      Set(n->output(0), 1, out);
      return;
    }
    // Grouped/depthwise: one conv group's input and output channels go together, so the
    // output shares the input's groups, and `group` follows the kept count.
    if (!x) return;
    int64_t cin_g = w->shape()[1], cout_g = cout / g;
    if (LayoutSize(x->layout) != cin_g * g || cout % g != 0) {
      dg_.Freeze(x->layout, Name(n) + ": channel count does not match group=" + std::to_string(g));
      return;
    }
    std::string why = "grouped " + Name(n) + " (group=" + std::to_string(g) + ")";
    for (size_t i = 0; i < x->layout.size(); ++i) {
      Segment s = Get(n->input(0))->layout[i];
      if (s.block % cin_g == 0) continue;
      if (cin_g % s.block != 0 || !dg_.Coarsen(s.group, cin_g / s.block, why)) {
        dg_.Freeze(LayoutOf(n->input(0)), why + " does not align with the channel groups");
        return;
      }
    }
    Layout in = LayoutOf(n->input(0)), out, conv_groups;
    for (const Segment& s : in) {
      int64_t per = s.block / cin_g;  // conv groups per unit
      out.push_back({s.group, s.units, per * cout_g});
      conv_groups.push_back({s.group, s.units, per});
    }
    if (!AddParam(n, 1, 0, out, "output channels of " + why, Member::Role::kWeight)) return;
    if (n->input(2) && !AddParam(n, 2, 0, out, "bias of " + why)) return;
    Member m;
    m.kind = Member::Kind::kGroupAttr;
    m.node = n;
    m.layout = conv_groups;
    m.why = "group attribute of " + Name(n);
    dg_.members_.push_back(std::move(m));
    Set(n->output(0), 1, out);
  }

  void VisitGemm(ir::Node* n) {
    const ValueLayout* a = Get(n->input(0));
    const ir::Tensor* b = ConstantOf(n->input(1));
    Consume(0);
    bool trans_b = n->attr_int("transB", 0) != 0;
    if (!b || b->rank() != 2 || n->attr_int("transA", 0) != 0 ||
        (n->input(2) && !ConstantOf(n->input(2)))) {
      if (a) dg_.Freeze(a->layout, Name(n) + " has transA, a non-constant B or C");
      return;
    }
    if (a && a->axis != 1) {
      dg_.Freeze(a->layout, Name(n) + " reads channels on its row axis");
    } else if (a) {
      AddParam(n, 1, trans_b ? 1 : 0, a->layout, "input features of " + Name(n),
               Member::Role::kWeight);
    }
    int64_t units = trans_b ? b->shape()[0] : b->shape()[1];
    int grp = dg_.NewGroup("linear", units, n);
    Layout out{{grp, units, 1}};
    AddParam(n, 1, trans_b ? 0 : 1, out, "output features of " + Name(n), Member::Role::kWeight);
    if (const ir::Tensor* c = n->input(2) ? ConstantOf(n->input(2)) : nullptr) {
      if (c->rank() >= 1 && c->shape().back() == units)
        AddParam(n, 2, c->rank() - 1, out, "bias of " + Name(n));
      else if (c->numel() != 1 && !(c->rank() >= 1 && c->shape().back() == 1))
        dg_.Freeze(out, Name(n) + ": bias C does not broadcast per feature");
    }
    Set(n->output(0), 1, out);
  }

  void VisitMatMul(ir::Node* n) {
    const ValueLayout* a = Get(n->input(0));
    const ValueLayout* b = Get(n->input(1));
    const ir::Tensor* wb = ConstantOf(n->input(1));
    Consume(0);
    Consume(1);
    int ra = RankOf(n->input(0)), rb = RankOf(n->input(1));
    if (wb) {
      if (wb->rank() != 2 || ra < 2) {
        if (a) dg_.Freeze(a->layout, Name(n) + ": weight is not 2-D");
        return;
      }
      if (a && a->axis == ra - 1) {
        AddParam(n, 1, 0, a->layout, "input features of " + Name(n), Member::Role::kWeight);
      } else if (a) {
        dg_.Freeze(a->layout, Name(n) + " reads channels on a non-feature axis");
      }
      int64_t units = wb->shape()[1];
      int grp = dg_.NewGroup("linear", units, n);
      Layout out{{grp, units, 1}};
      AddParam(n, 1, 1, out, "output features of " + Name(n), Member::Role::kWeight);
      Set(n->output(0), ra - 1, out);
      return;
    }
    // Two activations (attention): the heads are a batch axis both sides share.
    if (!a && !b) return;
    if (ra < 3 || rb < 3) {
      FreezeInputs(n, "activation MatMul without batch axes");
      return;
    }
    int r = std::max(ra, rb);
    auto batch_axis = [&](const ValueLayout* vl, int rank) {
      return vl && vl->axis < rank - 2 ? vl->axis + (r - rank) : -1;
    };
    int oa = batch_axis(a, ra), ob = batch_axis(b, rb);
    if ((a && oa < 0) || (b && ob < 0) || (a && b && oa != ob)) {
      FreezeInputs(n, "channels on a contracted or row axis of an activation MatMul");
      return;
    }
    int out_axis = a ? oa : ob;
    // The side without a layout must broadcast (size 1 or absent) on that axis.
    const ir::Value* other = a ? n->input(1) : n->input(0);
    if (!(a && b)) {
      int orank = a ? rb : ra;
      int oax = out_axis - (r - orank);
      auto s = ShapeOf(other);
      if (oax >= 0 && !(s && (*s)[oax].known() && (*s)[oax].value == 1)) {
        FreezeInputs(n, "the other operand carries the channels without a group");
        return;
      }
      Set(n->output(0), out_axis, LayoutOf(a ? n->input(0) : n->input(1)));
      return;
    }
    Layout la = LayoutOf(n->input(0));
    if (!dg_.Unite(la, LayoutOf(n->input(1)), "attention MatMul " + Name(n))) return;
    Set(n->output(0), out_axis, LayoutOf(n->input(0)));
  }

  // --- channel-preserving ops -------------------------------------------------------

  void VisitUnary(ir::Node* n) {
    const ValueLayout* x = Get(n->input(0));
    if (!x) return;
    Consume(0);
    if (!ExtraOutputsUnused(n)) {
      dg_.Freeze(x->layout, Name(n) + ": a second output is read");
      return;
    }
    for (size_t i = 1; i < n->num_inputs(); ++i)
      if (n->input(i) && (Get(n->input(i)) || ConstantOf(n->input(i)) == nullptr ||
                          ConstantOf(n->input(i))->numel() != 1)) {
        if (n->op_type() == "Dropout" && ConstantOf(n->input(i))) continue;
        FreezeInputs(n, "a parameter input that is not a scalar constant");
        return;
      }
    Set(n->output(0), x->axis, x->layout);
  }

  void VisitPool(ir::Node* n) {
    const ValueLayout* x = Get(n->input(0));
    if (!x) return;
    Consume(0);
    if (x->axis != 1 || !ExtraOutputsUnused(n)) {
      dg_.Freeze(x->layout, Name(n) + " pools with channels off axis 1 or returns indices");
      return;
    }
    Set(n->output(0), 1, x->layout);
  }

  void VisitNorm(ir::Node* n, std::vector<int> params, const std::string& what) {
    const ValueLayout* x = Get(n->input(0));
    if (!x) return;
    Consume(0);
    Layout l = x->layout;
    if (x->axis != 1 || !ExtraOutputsUnused(n) || n->attr_int("training_mode", 0) != 0) {
      dg_.Freeze(l, Name(n) + " normalizes channels off axis 1 or in training mode");
      return;
    }
    static const char* kNames[] = {"", "scale", "bias", "mean", "var"};
    for (int p : params)
      if (!AddParam(n, p, 0, l, what + " " + kNames[p] + " of " + Name(n),
                    p == 1 ? Member::Role::kNormScale : Member::Role::kOther))
        return;
    Set(n->output(0), 1, l);
  }

  void VisitLayerNorm(ir::Node* n) {
    const ValueLayout* x = Get(n->input(0));
    if (!x) return;
    Consume(0);
    int r = RankOf(n->input(0));
    int64_t axis = n->attr_int("axis", -1);
    if (axis < 0) axis += r;
    if (r < 0 || x->axis >= axis || !ExtraOutputsUnused(n)) {
      dg_.Freeze(x->layout, "normalized over the channel axis by " + Name(n));
      return;
    }
    Set(n->output(0), x->axis, x->layout);
  }

  void VisitSoftmax(ir::Node* n) {
    const ValueLayout* x = Get(n->input(0));
    if (!x) return;
    Consume(0);
    int r = RankOf(n->input(0));
    int64_t axis = n->attr_int("axis", opset_ >= 13 ? -1 : 1);
    if (axis < 0) axis += r;
    if (r < 0 || opset_ < 13 || axis == x->axis) {
      dg_.Freeze(x->layout, Name(n) + " normalizes over the channel axis");
      return;
    }
    Set(n->output(0), x->axis, x->layout);
  }

  void VisitReduce(ir::Node* n) {
    const ValueLayout* x = Get(n->input(0));
    if (!x) return;
    Consume(0);
    int r = RankOf(n->input(0));
    std::vector<int64_t> axes = n->attr_ints("axes");
    if (n->input(1)) {
      const ir::Tensor* t = ConstantOf(n->input(1));
      if (!t) {
        dg_.Freeze(x->layout, Name(n) + " has run-time axes");
        return;
      }
      axes = t->ToInt64();
    }
    if (r < 0 || axes.empty()) {
      dg_.Freeze(x->layout, Name(n) + " reduces every axis");
      return;
    }
    int below = 0;
    for (int64_t& a : axes) {
      if (a < 0) a += r;
      if (a == x->axis) {
        dg_.Freeze(x->layout, Name(n) + " reduces over the channel axis");
        return;
      }
      below += a < x->axis;
    }
    bool keep = n->attr_int("keepdims", 1) != 0;
    Set(n->output(0), keep ? x->axis : x->axis - below, x->layout);
  }

  void VisitTranspose(ir::Node* n) {
    const ValueLayout* x = Get(n->input(0));
    if (!x) return;
    Consume(0);
    int r = RankOf(n->input(0));
    std::vector<int64_t> perm = n->attr_ints("perm");
    if (perm.empty())
      for (int i = r - 1; i >= 0; --i) perm.push_back(i);
    for (size_t j = 0; j < perm.size(); ++j)
      if (perm[j] == x->axis) return Set(n->output(0), static_cast<int>(j), x->layout);
    dg_.Freeze(x->layout, Name(n) + ": channel axis not in perm");
  }

  // Reshape, Flatten, Squeeze, Unsqueeze, read through the inferred shapes: the channel
  // axis either survives, merges with the elements after it (Flatten, heads merged back),
  // or splits into (units, elements) — an attention-head split, which makes one head one
  // pruning unit.
  void VisitReshape(ir::Node* n) {
    const ValueLayout* x = Get(n->input(0));
    if (!x) return;
    Consume(0);
    std::string why = Name(n);
    auto in = ShapeOf(n->input(0));
    auto out = ShapeOf(n->output(0));
    auto fail = [&](const std::string& r) { dg_.Freeze(LayoutOf(n->input(0)), why + ": " + r); };
    if (!in || !out) return fail("shapes unknown");
    const int a = x->axis;
    const int64_t c = LayoutSize(x->layout);
    auto known_product = [](const ir::Shape& s, size_t from, size_t to) -> int64_t {
      int64_t p = 1;
      for (size_t i = from; i < to; ++i) {
        if (!s[i].known()) return -1;
        p *= s[i].value;
      }
      return p;
    };
    int64_t inner_in = known_product(*in, a + 1, in->size());
    if (inner_in < 0 || !(*in)[a].known() || (*in)[a].value != c) return fail("inner dims unknown");
    // The output axis whose prefix holds the same dims (ignoring size-1 dims).
    auto strip = [](const ir::Shape& s, size_t to) {
      ir::Shape r;
      for (size_t i = 0; i < to; ++i)
        if (!(s[i].known() && s[i].value == 1)) r.push_back(s[i]);
      return r;
    };
    ir::Shape pre_in = strip(*in, a);
    int b = -1;
    for (size_t i = 0; i < out->size(); ++i)
      if (!((*out)[i].known() && (*out)[i].value == 1) && strip(*out, i) == pre_in) {
        b = static_cast<int>(i);
        break;
      }
    if (b < 0) return fail("the channel axis does not survive the reshape");
    int64_t inner_out = known_product(*out, b + 1, out->size());
    const ir::Dim& ob = (*out)[b];
    if (inner_out < 0 || !ob.known()) return fail("output dims unknown");
    bool same = false;
    if (ob.value == c && inner_out == inner_in) {
      same = true;
    } else if (ob.value % c == 0 && ob.value / c * inner_out == inner_in) {
      int64_t k = ob.value / c;  // the channel axis absorbs k inner elements
      Layout l = LayoutOf(n->input(0));
      for (Segment& s : l) s.block *= k;
      if (!ReshapeShapeMember(n, b, l, false)) return;
      return Set(n->output(0), b, l);
    } else if (c % ob.value == 0 && inner_out == inner_in * (c / ob.value)) {
      int64_t d = c / ob.value;  // elements of the channel axis per new index: a head
      for (size_t i = 0; i < x->layout.size(); ++i) {
        Segment s = LayoutOf(n->input(0))[i];
        if (s.block % d == 0) continue;
        if (d % s.block != 0 || !dg_.Coarsen(s.group, d / s.block, "head split by " + why))
          return fail("channel groups do not align with units of " + std::to_string(d));
      }
      Layout l = LayoutOf(n->input(0));
      for (Segment& s : l) {
        s.block /= d;
        dg_.groups_[dg_.Root(s.group)].heads = true;
      }
      if (!ReshapeShapeMember(n, b, l, false)) return;
      return Set(n->output(0), b, l);
    } else {
      return fail("the channel axis is mixed with other dims");
    }
    if (same && !ReshapeShapeMember(n, b, x->layout, b == a)) return;
    Set(n->output(0), b, LayoutOf(n->input(0)));
  }

  // A Reshape's target-shape entry for the channel axis must follow the kept count.
  bool ReshapeShapeMember(ir::Node* n, int b, const Layout& l, bool zero_ok) {
    if (n->op_type() != "Reshape") return true;
    Layout in_l = LayoutOf(n->input(0));
    auto fail = [&](const std::string& r) {
      dg_.Freeze(in_l, Name(n) + ": " + r);
      return false;
    };
    if (n->attr_int("allowzero", 0) != 0) return fail("allowzero=1");
    auto entry_ok = [&](int64_t e) { return e > 0 || e == -1 || (e == 0 && zero_ok); };
    if (const ir::Tensor* t = ConstantOf(n->input(1))) {
      std::vector<int64_t> s = t->ToInt64();
      if (b >= static_cast<int>(s.size()) || !entry_ok(s[b]))
        return fail("shape entry copies a dim");
      if (s[b] > 0)
        AddShapeMember(Member::Kind::kShapeEntry, n, 1, b, l, "head count in " + Name(n));
      return true;
    }
    // Exporters build the shape at run time: Concat(Unsqueeze(Gather(Shape(x))), ..., [12], [64]).
    ir::Node* cat = ProducerOf(n->input(1), "Concat");
    if (!cat) return fail("the target shape is computed at run time");
    int64_t pos = 0;
    for (size_t i = 0; i < cat->num_inputs(); ++i) {
      auto s = ShapeOf(cat->input(i));
      if (!s || s->size() != 1 || !(*s)[0].known())
        return fail("the target shape is not followable");
      int64_t len = (*s)[0].value;
      if (b < pos + len) {
        if (const ir::Tensor* t = ConstantOf(cat->input(i))) {
          int64_t e = t->ToInt64()[b - pos];
          if (!entry_ok(e)) return fail("shape entry copies a dim");
          if (e > 0)
            AddShapeMember(Member::Kind::kShapeEntry, cat, static_cast<int>(i), b - pos, l,
                           "channel count in the target shape of " + Name(n));
        } else if (len == 1) {
          AddShapeMember(Member::Kind::kShapePiece, cat, static_cast<int>(i), 0, l,
                         "run-time channel count in the target shape of " + Name(n));
        } else {
          return fail("the target shape is not followable");
        }
        return true;
      }
      pos += len;
    }
    return fail("the target shape is too short");
  }

  void AddShapeMember(Member::Kind kind, ir::Node* n, int slot, int64_t index, const Layout& l,
                      const std::string& why) {
    Member m;
    m.kind = kind;
    m.node = n;
    m.slot = slot;
    m.index = index;
    m.layout = l;
    m.why = why;
    dg_.members_.push_back(std::move(m));
  }

  // Elementwise ops with numpy broadcasting: activations carrying channels on the same
  // (right-aligned) axis are coupled (a residual Add, an SE gate's Mul); a constant with
  // the channel count on that axis is sliced with them; size 1 broadcasts.
  void VisitElementwise(ir::Node* n) {
    int r = RankOf(n->output(0));
    for (ir::Value* v : n->inputs()) r = std::max(r, RankOf(v));
    int first = -1, out_axis = -1;
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      const ValueLayout* vl = Get(n->input(i));
      if (!vl) continue;
      Consume(static_cast<int>(i));
      int ri = RankOf(n->input(i));
      int ax = ri < 0 ? -1 : vl->axis + (r - ri);
      if (first < 0) {
        first = static_cast<int>(i);
        out_axis = ax;
      } else if (ax != out_axis || ax < 0) {
        FreezeInputs(n, "inputs carry channels on different axes");
        return;
      }
    }
    if (first < 0) return;
    if (n->num_outputs() != 1) return FreezeInputs(n, "several outputs");
    std::string why =
        (n->op_type() == "Add" || n->op_type() == "Sub" ? "residual " : "elementwise ") + Name(n);
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      if (static_cast<int>(i) == first || !Get(n->input(i))) continue;
      Layout l = LayoutOf(n->input(first));
      if (!dg_.Unite(l, LayoutOf(n->input(i)), why)) return;
    }
    int64_t c = LayoutSize(LayoutOf(n->input(first)));
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      ir::Value* v = n->input(i);
      if (!v || Get(v)) continue;
      Consume(static_cast<int>(i));
      auto s = ShapeOf(v);
      int ri = s ? static_cast<int>(s->size()) : -1;
      int ax = out_axis - (r - ri);
      if (s && ax < 0) continue;  // broadcast from fewer dims
      if (s && (*s)[ax].known() && (*s)[ax].value == 1) continue;
      if (s && ConstantOf(v) && (*s)[ax].known() && (*s)[ax].value == c) {
        if (!AddParam(n, static_cast<int>(i), ax, LayoutOf(n->input(first)),
                      "per-channel constant of " + Name(n)))
          return;
        continue;
      }
      dg_.Freeze(LayoutOf(n->input(first)),
                 Name(n) + " combines the channels with '" + v->name() + "', which is in no group");
      return;
    }
    Set(n->output(0), out_axis, LayoutOf(n->input(first)));
  }

  void VisitConcat(ir::Node* n) {
    int r = RankOf(n->output(0));
    int64_t axis = n->attr_int("axis", 0);
    if (axis < 0) axis += r;
    int laid = -1;
    bool on_axis = false;
    for (size_t i = 0; i < n->num_inputs(); ++i)
      if (const ValueLayout* vl = Get(n->input(i))) {
        Consume(static_cast<int>(i));
        if (laid >= 0 && (vl->axis == axis) != on_axis) {
          FreezeInputs(n, "inputs carry channels on different axes");
          return;
        }
        if (laid >= 0 && !on_axis && vl->axis != Get(n->input(laid))->axis) {
          FreezeInputs(n, "inputs carry channels on different axes");
          return;
        }
        if (laid < 0) laid = static_cast<int>(i), on_axis = vl->axis == axis;
      }
    if (laid < 0) return;
    for (size_t i = 0; i < n->num_inputs(); ++i) Consume(static_cast<int>(i));
    if (!on_axis) {
      for (size_t i = 0; i < n->num_inputs(); ++i) {
        if (!Get(n->input(i))) return FreezeInputs(n, "an input of the concatenation has no group");
        if (static_cast<int>(i) == laid) continue;
        Layout l = LayoutOf(n->input(laid));
        if (!dg_.Unite(l, LayoutOf(n->input(i)), "Concat " + Name(n))) return;
      }
      return Set(n->output(0), Get(n->input(laid))->axis, LayoutOf(n->input(laid)));
    }
    Layout out;
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      if (const ValueLayout* vl = Get(n->input(i))) {
        out.insert(out.end(), vl->layout.begin(), vl->layout.end());
        continue;
      }
      auto s = ShapeOf(n->input(i));
      if (!s || axis >= static_cast<int64_t>(s->size()) || !(*s)[axis].known())
        return FreezeInputs(n, "an input's channel count is unknown");
      int64_t dim = (*s)[axis].value;
      if (dim == 0) continue;
      int fixed = dg_.NewGroup("fixed", dim, nullptr);
      dg_.Freeze(fixed, "concatenated input '" + n->input(i)->name() + "' is in no group");
      out.push_back({fixed, dim, 1});
    }
    Set(n->output(0), static_cast<int>(axis), out);
  }

  void VisitSplit(ir::Node* n) {
    const ValueLayout* x = Get(n->input(0));
    if (!x) return;
    Consume(0);
    int r = RankOf(n->input(0));
    int64_t axis = n->attr_int("axis", 0);
    if (axis < 0) axis += r;
    if (axis != x->axis) {
      for (ir::Value* o : n->outputs()) Set(o, x->axis, x->layout);
      return;
    }
    const ir::Tensor* sizes_t = n->input(1) ? ConstantOf(n->input(1)) : nullptr;
    if (!sizes_t) {
      dg_.Freeze(x->layout, Name(n) + " splits the channels without constant sizes");
      return;
    }
    std::vector<int64_t> sizes = sizes_t->ToInt64();
    if (sizes.size() != n->num_outputs()) {
      dg_.Freeze(x->layout, Name(n) + ": sizes do not match outputs");
      return;
    }
    // Cut the groups at every split point (a fused QKV projection becomes three groups).
    int64_t cut = 0;
    for (size_t k = 0; k + 1 < sizes.size(); ++k) {
      cut += sizes[k];
      int64_t off = 0;
      for (const Segment& s : LayoutOf(n->input(0))) {
        int64_t len = s.units * s.block;
        if (cut > off && cut < off + len) {
          if ((cut - off) % s.block != 0) {
            dg_.Freeze(LayoutOf(n->input(0)), Name(n) + " cuts a unit of channels");
            return;
          }
          dg_.SplitGroup(s.group, (cut - off) / s.block);
          break;
        }
        off += len;
      }
    }
    Layout l = LayoutOf(n->input(0));
    size_t si = 0;
    for (size_t k = 0; k < sizes.size(); ++k) {
      Layout part;
      int64_t need = sizes[k];
      while (need > 0 && si < l.size()) {
        part.push_back(l[si]);
        need -= l[si].units * l[si].block;
        ++si;
      }
      if (need != 0) {
        dg_.Freeze(l, Name(n) + ": sizes do not add up");
        return;
      }
      AddShapeMember(Member::Kind::kShapeEntry, n, 1, static_cast<int64_t>(k), part,
                     "split size " + std::to_string(k) + " of " + Name(n));
      Set(n->output(k), x->axis, part);
    }
  }

  // Shape of a grouped value is harmless when only non-channel dims are read from it.
  void VisitShape(ir::Node* n) {
    const ValueLayout* x = Get(n->input(0));
    if (!x) return;
    Consume(0);
    int64_t start = n->attr_int("start", 0);
    int r = RankOf(n->input(0));
    if (start < 0) start += r;
    const ir::Value* out = n->output(0);
    bool ok = !out->is_graph_output() && r >= 0;
    for (const ir::Use& u : out->uses()) {
      const ir::Node* user = u.user;
      const ir::Tensor* idx =
          user->op_type() == "Gather" && u.index == 0 && user->attr_int("axis", 0) == 0
              ? ConstantOf(user->input(1))
              : nullptr;
      if (!idx) {
        ok = false;
        break;
      }
      for (int64_t i : idx->ToInt64()) {
        int64_t dim = (i < 0 ? i + (r - start) : i) + start;
        ok = ok && dim != x->axis;
      }
    }
    if (!ok) dg_.Freeze(x->layout, "its channel count is read at run time by " + Name(n));
  }

  void VisitGather(ir::Node* n) {
    const ValueLayout* x = Get(n->input(0));
    if (!x) return;
    Consume(0);
    int r = RankOf(n->input(0));
    int64_t axis = n->attr_int("axis", 0);
    if (axis < 0) axis += r;
    int ri = RankOf(n->input(1));
    if (axis == x->axis || ri < 0 || Get(n->input(1))) {
      dg_.Freeze(x->layout, Name(n) + " gathers along the channel axis");
      return;
    }
    Set(n->output(0), axis < x->axis ? x->axis - 1 + ri : x->axis, x->layout);
  }

  void VisitSlice(ir::Node* n) {
    const ValueLayout* x = Get(n->input(0));
    if (!x) return;
    Consume(0);
    int r = RankOf(n->input(0));
    const ir::Tensor* starts = ConstantOf(n->input(1));
    std::vector<int64_t> axes;
    if (n->input(3)) {
      const ir::Tensor* t = ConstantOf(n->input(3));
      if (t)
        axes = t->ToInt64();
      else
        starts = nullptr;
    } else if (starts) {
      for (uint64_t i = 0; i < starts->numel(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    bool ok = starts != nullptr && r >= 0;
    for (int64_t a : axes) ok = ok && (a < 0 ? a + r : a) != x->axis;
    if (!ok) {
      dg_.Freeze(x->layout, Name(n) + " slices the channel axis");
      return;
    }
    Set(n->output(0), x->axis, x->layout);
  }

  void VisitPad(ir::Node* n) {
    const ValueLayout* x = Get(n->input(0));
    if (!x) return;
    Consume(0);
    int r = RankOf(n->input(0));
    const ir::Tensor* pads = n->input(1) ? ConstantOf(n->input(1)) : nullptr;
    bool ok = pads && !n->input(3) && r >= 0 && static_cast<int>(pads->numel()) == 2 * r;
    if (ok) {
      auto p = pads->ToInt64();
      ok = p[x->axis] == 0 && p[x->axis + r] == 0;
    }
    if (!ok) {
      dg_.Freeze(x->layout, Name(n) + " pads the channel axis");
      return;
    }
    Set(n->output(0), x->axis, x->layout);
  }

  DependencyGraph& dg_;
  ir::Graph& g_;
  int64_t opset_;
  std::set<int> consumed_;
};

bool InferShapesWithFusedOps(ir::Model& model) {
  bool ok = true;
  try {
    ir::InferShapes(model);
  } catch (const Error&) {
    ok = false;  // best effort: rules that need a shape freeze their groups without one
  }
  // Shape inference knows ai.onnx only. The com.microsoft fusions of the optimize pipeline
  // keep the shapes of their standard forms, so a clone with stand-ins (FusedConv -> Conv,
  // FusedGemm -> Gemm, Gelu -> Relu) is inferred and the missing types copied back.
  auto clone = model.Clone();
  ir::Graph& g = *clone->graph;
  std::map<std::string, std::string> original;  // stand-in output -> original name
  for (ir::Node* n : g.nodes()) {
    if (n->domain() != "com.microsoft" || n->num_outputs() != 1 || !n->output(0)) continue;
    const std::string& op = n->op_type();
    std::string standin = op == "FusedConv"                                         ? "Conv"
                          : op == "FusedGemm"                                       ? "Gemm"
                          : (op == "Gelu" || op == "FastGelu" || op == "QuickGelu") ? "Relu"
                                                                                    : "";
    if (standin.empty() || !n->input(0)) continue;
    std::vector<ir::Value*> ins = n->inputs();
    ins.resize(standin == "Relu" ? 1 : std::min<size_t>(ins.size(), 3));
    ir::Value* out = n->output(0);
    ir::Node* s = g.InsertNode(n, standin, ins, {g.UniqueName(out->name() + "_standin")}, n->name);
    if (standin != "Relu")
      for (const ir::Attribute& a : n->attributes())
        if (a.name.rfind("activation", 0) != 0) s->set_attr(a);
    original[s->output(0)->name()] = out->name();
    g.ReplaceAllUsesWith(out, s->output(0));
    g.RemoveNode(n);
  }
  if (original.empty()) return ok;
  try {
    ir::InferShapes(*clone);
  } catch (const Error&) {
    return ok;
  }
  for (ir::Node* n : g.nodes())
    for (ir::Value* o : n->outputs()) {
      if (!o || !o->type.shape) continue;
      auto it = original.find(o->name());
      ir::Value* v = model.graph->FindValue(it == original.end() ? o->name() : it->second);
      if (v && v->graph() == model.graph.get() && !v->type.shape) v->type = o->type;
    }
  return ok;
}

DependencyGraph DependencyGraph::Build(ir::Model& model) {
  InferShapesWithFusedOps(model);
  DependencyGraph dg;
  int64_t opset = model.OpsetVersion("");
  Builder(dg, *model.graph, opset).Run();
  for (int r : dg.Roots()) {
    Group& g = dg.groups_[r];
    if (g.units <= 1) {
      g.prunable = false;
      g.reasons.push_back("a single unit");
    }
    if (g.anchors.empty() && g.prunable) {
      g.prunable = false;
      g.reasons.push_back("no Conv, Gemm or MatMul produces it");
    }
    if (g.heads) {
      g.kind = "heads";
    } else if (g.kind == "linear") {
      // A token-wise Linear (rank >= 3 input, as in a transformer) is an FFN layer.
      bool tokens = false;
      for (ir::Node* a : g.anchors) {
        const ir::Value* x = a->input(0);
        tokens = tokens || (x && x->type.shape && x->type.shape->size() >= 3);
      }
      if (tokens) g.kind = "ffn";
    }
  }
  return dg;
}

}  // namespace edgepress::passes::prune

namespace edgepress::passes::prune {

namespace {

// Nodes downstream of `v` (through node outputs), as a set.
std::set<const ir::Node*> Descendants(const ir::Value* v) {
  std::set<const ir::Node*> seen;
  std::vector<const ir::Value*> stack{v};
  while (!stack.empty()) {
    const ir::Value* x = stack.back();
    stack.pop_back();
    for (const ir::Use& u : x->uses())
      if (seen.insert(u.user).second)
        for (const ir::Value* o : u.user->outputs())
          if (o) stack.push_back(o);
  }
  return seen;
}

bool SameShape(const ir::Value* a, const ir::Value* b) {
  return a->type.is_tensor() && b->type.is_tensor() && a->type.shape && b->type.shape &&
         *a->type.shape == *b->type.shape && a->type.dtype == b->type.dtype;
}

}  // namespace

std::vector<ResidualBlock> FindResidualBlocks(ir::Graph& g) {
  std::vector<ResidualBlock> blocks;
  for (ir::Node* add : g.nodes()) {
    if (add->op_type() != "Add" || !add->domain().empty() || add->num_inputs() != 2) continue;
    for (int s = 0; s < 2; ++s) {
      ir::Value* skip = add->input(s);
      ir::Value* branch = add->input(1 - s);
      if (!skip || !branch || !branch->producer() || ConstantOf(skip) || ConstantOf(branch))
        continue;
      if (!SameShape(skip, add->output(0)) || add->output(0)->is_graph_output()) continue;
      // The branch: descendants of `skip` that are ancestors of `branch`.
      std::set<const ir::Node*> down = Descendants(skip);
      if (!down.count(branch->producer())) continue;
      std::set<const ir::Node*> nodes;
      std::vector<const ir::Node*> stack{branch->producer()};
      while (!stack.empty()) {
        const ir::Node* n = stack.back();
        stack.pop_back();
        if (!down.count(n) || !nodes.insert(n).second) continue;
        for (const ir::Value* in : n->inputs())
          if (in && in->producer()) stack.push_back(in->producer());
      }
      bool closed = true;
      for (const ir::Node* n : nodes) {
        closed = closed && n->subgraphs().empty();
        for (const ir::Value* o : n->outputs()) {
          if (!o) continue;
          closed = closed && !o->is_graph_output();
          for (const ir::Use& u : o->uses())
            closed = closed && (nodes.count(u.user) || (u.user == add && o == branch));
        }
      }
      if (!closed) continue;
      ResidualBlock b{add, skip, branch, {}, 0};
      std::set<const ir::Value*> counted;
      for (ir::Node* n : g.nodes()) {
        if (!nodes.count(n)) continue;
        b.nodes.push_back(n);
        for (const ir::Value* in : n->inputs()) {
          const ir::Tensor* t = ConstantOf(in);
          if (!t || !IsFloat(t->dtype()) || !counted.insert(in).second) continue;
          bool only = true;
          for (const ir::Use& u : in->uses()) only = only && nodes.count(u.user);
          if (only) b.params += static_cast<int64_t>(t->numel());
        }
      }
      blocks.push_back(std::move(b));
      break;
    }
  }
  return blocks;
}

}  // namespace edgepress::passes::prune
