// Channel dependency rules (prune_deps_builder.h): the walk over the graph, the producers
// that open a group (Conv, Gemm, MatMul), channel-preserving ops and broadcasting
// elementwise ops.
#include <algorithm>
#include <numeric>
#include <set>

#include "ir/error.h"
#include "passes/prune/prune_deps_builder.h"

namespace edgepress::passes::prune {

void Builder::Run() {
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

bool Builder::AddParam(ir::Node* n, int slot, int axis, const Layout& l, const std::string& why,
                       Member::Role role) {
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

void Builder::Visit(ir::Node* n) {
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

void Builder::VisitConv(ir::Node* n) {
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

void Builder::VisitGemm(ir::Node* n) {
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

void Builder::VisitMatMul(ir::Node* n) {
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

void Builder::VisitUnary(ir::Node* n) {
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

void Builder::VisitPool(ir::Node* n) {
  const ValueLayout* x = Get(n->input(0));
  if (!x) return;
  Consume(0);
  if (x->axis != 1 || !ExtraOutputsUnused(n)) {
    dg_.Freeze(x->layout, Name(n) + " pools with channels off axis 1 or returns indices");
    return;
  }
  Set(n->output(0), 1, x->layout);
}

void Builder::VisitNorm(ir::Node* n, std::vector<int> params, const std::string& what) {
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

void Builder::VisitLayerNorm(ir::Node* n) {
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

void Builder::VisitSoftmax(ir::Node* n) {
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

void Builder::VisitReduce(ir::Node* n) {
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

void Builder::VisitTranspose(ir::Node* n) {
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

void Builder::VisitElementwise(ir::Node* n) {
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

}  // namespace edgepress::passes::prune
