// Channel dependency rules (prune_deps_builder.h) for ops that move, split or merge the
// channel axis: Reshape/Flatten/Squeeze/Unsqueeze, Concat, Split, Shape, Gather, Slice, Pad.
#include <algorithm>
#include <numeric>
#include <set>

#include "ir/error.h"
#include "passes/prune/prune_deps_builder.h"

namespace edgepress::passes::prune {

void Builder::VisitReshape(ir::Node* n) {
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

bool Builder::ReshapeShapeMember(ir::Node* n, int b, const Layout& l, bool zero_ok) {
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
    if (b >= static_cast<int>(s.size()) || !entry_ok(s[b])) return fail("shape entry copies a dim");
    if (s[b] > 0) AddShapeMember(Member::Kind::kShapeEntry, n, 1, b, l, "head count in " + Name(n));
    return true;
  }
  // Exporters build the shape at run time: Concat(Unsqueeze(Gather(Shape(x))), ..., [12], [64]).
  ir::Node* cat = ProducerOf(n->input(1), "Concat");
  if (!cat) return fail("the target shape is computed at run time");
  int64_t pos = 0;
  for (size_t i = 0; i < cat->num_inputs(); ++i) {
    auto s = ShapeOf(cat->input(i));
    if (!s || s->size() != 1 || !(*s)[0].known()) return fail("the target shape is not followable");
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

void Builder::AddShapeMember(Member::Kind kind, ir::Node* n, int slot, int64_t index,
                             const Layout& l, const std::string& why) {
  Member m;
  m.kind = kind;
  m.node = n;
  m.slot = slot;
  m.index = index;
  m.layout = l;
  m.why = why;
  dg_.members_.push_back(std::move(m));
}

void Builder::VisitConcat(ir::Node* n) {
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

void Builder::VisitSplit(ir::Node* n) {
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

void Builder::VisitShape(ir::Node* n) {
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

void Builder::VisitGather(ir::Node* n) {
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

void Builder::VisitSlice(ir::Node* n) {
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

void Builder::VisitPad(ir::Node* n) {
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

}  // namespace edgepress::passes::prune
