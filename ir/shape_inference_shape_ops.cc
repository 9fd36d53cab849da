// Shape inference for the shape and index ops (Reshape, Transpose, Concat, Slice, Gather,
// Expand, Pad, Shape, Cast, ConstantOfShape, Range, ...), which also track partial values.
#include "ir/shape_inference.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "ir/error.h"
#include "ir/shape_inference_internal.h"

namespace edgepress::ir::shape_detail {

// ----------------------------------------------------------------------------- shape ops

void Inferencer::Reshape(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  std::optional<Partial> target;
  if (HasInput(n, 1))
    target = PartialOf(n.input(1));
  else if (n.has_attr("shape")) {
    Partial p;
    for (int64_t v : n.attr_ints("shape")) p.elems.push_back(Elem::Of(v));
    target = p;
  }
  if (!target) {
    const Shape* ss = ShapeOf(n.input(1));
    if (ss && ss->size() == 1 && (*ss)[0].known())
      return SetOutput(n, 0, dt, UnknownDims((*ss)[0].value));
    return SetOutput(n, 0, dt, std::nullopt);
  }
  bool allowzero = n.attr_int("allowzero", 0) != 0;
  Shape out;
  int infer = -1;
  for (size_t i = 0; i < target->elems.size(); ++i) {
    const Elem& e = target->elems[i];
    if (e.v && *e.v == -1) {
      if (infer >= 0) Fail(n, "shape has more than one -1");
      infer = static_cast<int>(i);
      out.push_back(Dim{});
    } else if (e.v && *e.v == 0 && !allowzero) {
      if (xs && i >= xs->size())
        Fail(n, "shape entry " + std::to_string(i) + " is 0 (copy) but the input has rank " +
                    std::to_string(xs->size()));
      out.push_back(xs ? (*xs)[i] : Dim{});
    } else if (e.v && *e.v < -1) {
      Fail(n, "shape entry " + std::to_string(*e.v) + " is invalid");
    } else {
      out.push_back(e.ToDim());
    }
  }
  if (xs) {
    // Cancel known products and matching symbols between input dims and output dims.
    int64_t pin = 1, pout = 1;
    bool unknown_in = false, unknown_out = false, overflow = false;
    std::vector<std::string> sin, sout;
    for (const Dim& d : *xs) {
      if (d.known())
        overflow |= __builtin_mul_overflow(pin, d.value, &pin);
      else if (!d.symbol.empty())
        sin.push_back(d.symbol);
      else
        unknown_in = true;
    }
    for (size_t i = 0; i < out.size(); ++i) {
      if (static_cast<int>(i) == infer) continue;
      const Dim& d = out[i];
      if (d.known())
        overflow |= __builtin_mul_overflow(pout, d.value, &pout);
      else if (!d.symbol.empty())
        sout.push_back(d.symbol);
      else
        unknown_out = true;
    }
    for (auto it = sout.begin(); it != sout.end();) {
      auto m = std::find(sin.begin(), sin.end(), *it);
      if (m != sin.end()) {
        sin.erase(m);
        it = sout.erase(it);
      } else {
        ++it;
      }
    }
    if (!overflow && !unknown_in && !unknown_out && sout.empty()) {
      if (infer >= 0) {
        if (sin.empty()) {
          if (pout == 0) {
            if (pin != 0) Fail(n, "cannot infer -1 with a zero-sized shape");
          } else if (pin % pout != 0) {
            Fail(n, "cannot reshape " + ShapeToString(*xs) + " (" + std::to_string(pin) +
                        " elements) into " + ShapeToString(out) + ": not divisible");
          } else {
            out[static_cast<size_t>(infer)] = Dim::Known(pin / pout);
          }
        } else if (sin.size() == 1 && pin == pout) {
          out[static_cast<size_t>(infer)] = Dim::Symbol(sin[0]);
        }
      } else if (sin.empty() && pin != pout) {
        Fail(n, "cannot reshape " + ShapeToString(*xs) + " (" + std::to_string(pin) +
                    " elements) into " + ShapeToString(out) + " (" + std::to_string(pout) +
                    " elements)");
      }
    }
  }
  SetOutput(n, 0, dt, out);
  // Reshaping a small shape value to [n] or [] keeps its elements.
  if (auto p = PartialOf(n.input(0))) {
    if (out.size() <= 1 &&
        (out.empty() ? p->elems.size() == 1
                     : out[0].known() && out[0].value == static_cast<int64_t>(p->elems.size()))) {
      p->scalar = out.empty();
      SetPartial(n, 0, *p);
    }
  }
}

void Inferencer::Transpose(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  std::vector<int64_t> perm = n.attr_ints("perm");
  if (!xs)
    return SetOutput(n, 0, dt,
                     perm.empty() ? std::nullopt : std::optional<Shape>(Shape(perm.size())));
  int64_t r = static_cast<int64_t>(xs->size());
  if (perm.empty())
    for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int64_t>(perm.size()) != r)
    Fail(n, "perm " + JoinInts(perm) + " does not match rank " + std::to_string(r));
  std::vector<bool> seen(static_cast<size_t>(r), false);
  Shape out;
  for (int64_t p : perm) {
    int64_t a = NormAxis(n, p, r, "perm entry");
    if (seen[static_cast<size_t>(a)]) Fail(n, "perm " + JoinInts(perm) + " repeats an axis");
    seen[static_cast<size_t>(a)] = true;
    out.push_back((*xs)[static_cast<size_t>(a)]);
  }
  SetOutput(n, 0, dt, out);
}

void Inferencer::Flatten(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) return SetOutput(n, 0, dt, Shape(2));
  int64_t r = static_cast<int64_t>(xs->size());
  int64_t axis = n.attr_int("axis", 1);
  if (axis < -r || axis > r)
    Fail(n, "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
  if (axis < 0) axis += r;
  size_t a = static_cast<size_t>(axis);
  SetOutput(n, 0, dt, Shape{Product(*xs, 0, a), Product(*xs, a, xs->size())});
}

void Inferencer::Squeeze(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  auto axes = IntsFromInputOrAttr(n, 1, "axes");
  bool given = HasInput(n, 1) || n.has_attr("axes");
  if (!xs || (given && !axes)) return SetOutput(n, 0, dt, std::nullopt);
  int64_t r = static_cast<int64_t>(xs->size());
  std::vector<bool> drop(xs->size(), false);
  if (!given) {
    for (size_t i = 0; i < xs->size(); ++i) {
      if (!(*xs)[i].known()) return SetOutput(n, 0, dt, std::nullopt);
      drop[i] = (*xs)[i].value == 1;
    }
  } else {
    for (int64_t a : *axes) {
      size_t k = static_cast<size_t>(NormAxis(n, a, r, "axis"));
      if ((*xs)[k].known() && (*xs)[k].value != 1)
        Fail(n, "cannot squeeze axis " + std::to_string(a) + " of size " +
                    std::to_string((*xs)[k].value));
      drop[k] = true;
    }
  }
  Shape out;
  for (size_t i = 0; i < xs->size(); ++i)
    if (!drop[i]) out.push_back((*xs)[i]);
  SetOutput(n, 0, dt, out);
  if (auto p = PartialOf(n.input(0)))
    if (out.empty() && p->elems.size() == 1) SetPartial(n, 0, Partial{p->elems, true});
}

void Inferencer::Unsqueeze(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  auto axes = IntsFromInputOrAttr(n, 1, "axes");
  if (!xs || !axes) return SetOutput(n, 0, dt, std::nullopt);
  int64_t r = static_cast<int64_t>(xs->size() + axes->size());
  std::vector<bool> ins(static_cast<size_t>(r), false);
  for (int64_t a : *axes) {
    size_t k = static_cast<size_t>(NormAxis(n, a, r, "axis"));
    if (ins[k]) Fail(n, "axes " + JoinInts(*axes) + " repeat an axis");
    ins[k] = true;
  }
  Shape out;
  size_t j = 0;
  for (size_t i = 0; i < ins.size(); ++i) out.push_back(ins[i] ? Dim::Known(1) : (*xs)[j++]);
  SetOutput(n, 0, dt, out);
  if (auto p = PartialOf(n.input(0)))
    if (p->scalar && out.size() == 1) SetPartial(n, 0, Partial{p->elems, false});
}

void Inferencer::Concat(const Node& n) {
  DType dt = DType::kUndefined;
  for (Value* v : n.inputs())
    if (DTypeOf(v) != DType::kUndefined) dt = DTypeOf(v);
  if (dt == DType::kUndefined) return;
  int rank = -1;
  for (Value* v : n.inputs()) {
    int r = RankOf(v);
    if (r < 0) continue;
    if (rank >= 0 && r != rank)
      Fail(n, "inputs have ranks " + std::to_string(rank) + " and " + std::to_string(r));
    rank = r;
  }
  if (rank < 0) return SetOutput(n, 0, dt, std::nullopt);
  if (rank == 0) Fail(n, "cannot concatenate scalars");
  int64_t axis = NormAxis(n, n.attr_int("axis", 0), rank, "axis");
  Shape out(static_cast<size_t>(rank));
  bool first = true;
  int64_t sum = 0;
  bool sum_known = true;
  for (Value* v : n.inputs()) {
    const Shape* s = ShapeOf(v);
    if (!s) {
      sum_known = false;
      continue;
    }
    for (size_t k = 0; k < s->size(); ++k) {
      if (static_cast<int64_t>(k) == axis) {
        if (!(*s)[k].known() || __builtin_add_overflow(sum, (*s)[k].value, &sum)) sum_known = false;
      } else {
        out[k] =
            first ? (*s)[k]
                  : MergeDim(n, out[k], (*s)[k], "non-axis dim " + std::to_string(k) + " differs");
      }
    }
    first = false;
  }
  out[static_cast<size_t>(axis)] = sum_known ? Dim::Known(sum) : Dim{};
  SetOutput(n, 0, dt, out);
  // Concatenating small shape values (the usual Reshape target construction).
  if (rank == 1) {
    Partial p;
    for (Value* v : n.inputs()) {
      auto pi = PartialOf(v);
      if (!pi) return;
      p.elems.insert(p.elems.end(), pi->elems.begin(), pi->elems.end());
    }
    SetPartial(n, 0, std::move(p));
  }
}

void Inferencer::Split(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  size_t outs = n.num_outputs();
  if (!xs) {
    for (size_t i = 0; i < outs; ++i) SetOutput(n, i, dt, std::nullopt);
    return;
  }
  int64_t axis = NormAxis(n, n.attr_int("axis", 0), static_cast<int64_t>(xs->size()), "axis");
  const Dim& d = (*xs)[static_cast<size_t>(axis)];
  std::optional<std::vector<int64_t>> split = IntsFromInputOrAttr(n, 1, "split");
  bool given = HasInput(n, 1) || n.has_attr("split");
  std::vector<Dim> sizes(outs);
  if (given && split) {
    if (split->size() != outs)
      Fail(n, "split " + JoinInts(*split) + " has " + std::to_string(split->size()) +
                  " entries for " + std::to_string(outs) + " outputs");
    int64_t sum = 0;
    for (size_t i = 0; i < outs; ++i) {
      if ((*split)[i] < 0) Fail(n, "split " + JoinInts(*split) + " has a negative entry");
      if (__builtin_add_overflow(sum, (*split)[i], &sum)) Fail(n, "split sizes overflow");
      sizes[i] = Dim::Known((*split)[i]);
    }
    if (d.known() && sum != d.value)
      Fail(n, "split " + JoinInts(*split) + " sums to " + std::to_string(sum) + " but axis " +
                  std::to_string(axis) + " has size " + std::to_string(d.value));
  } else if (!given && d.known() && outs > 0) {
    int64_t chunk = CeilDiv(d.value, static_cast<int64_t>(outs));
    if (d.value % static_cast<int64_t>(outs) != 0 && opset_ < 18)
      Fail(n, "axis size " + std::to_string(d.value) + " does not split evenly into " +
                  std::to_string(outs) + " outputs");
    for (size_t i = 0; i < outs; ++i) {
      int64_t rem = d.value - chunk * static_cast<int64_t>(i);
      sizes[i] = Dim::Known(std::max<int64_t>(0, std::min(chunk, rem)));
    }
  }
  for (size_t i = 0; i < outs; ++i) {
    Shape s = *xs;
    s[static_cast<size_t>(axis)] = sizes[i];
    SetOutput(n, i, dt, s);
  }
}

namespace {
// Output length of slicing a dim of size `d` (ONNX Slice clamping rules).
int64_t SliceLength(int64_t d, int64_t start, int64_t end, int64_t step) {
  if (d == 0) return 0;
  if (start < 0) start += d;
  if (end < 0) end += d;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, d);
    end = std::clamp<int64_t>(end, 0, d);
    return end > start ? (end - start + step - 1) / step : 0;
  }
  start = std::clamp<int64_t>(start, 0, d - 1);
  end = std::clamp<int64_t>(end, -1, d - 1);
  return start > end ? (start - end + (-step) - 1) / (-step) : 0;
}
}  // namespace

void Inferencer::Slice(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) return SetOutput(n, 0, dt, std::nullopt);
  int64_t r = static_cast<int64_t>(xs->size());
  bool attr_form = !HasInput(n, 1) && n.has_attr("starts");
  auto starts = attr_form ? std::optional(n.attr_ints("starts")) : ConstInts(n.input(1));
  auto ends = attr_form ? std::optional(n.attr_ints("ends")) : ConstInts(n.input(2));
  std::optional<std::vector<int64_t>> axes =
      attr_form ? (n.has_attr("axes") ? std::optional(n.attr_ints("axes")) : std::nullopt)
                : (HasInput(n, 3) ? ConstInts(n.input(3)) : std::nullopt);
  bool axes_given = attr_form ? n.has_attr("axes") : HasInput(n, 3);
  std::optional<std::vector<int64_t>> steps = HasInput(n, 4) ? ConstInts(n.input(4)) : std::nullopt;
  bool steps_given = HasInput(n, 4);
  Shape out = *xs;
  if (axes_given && !axes) {
    for (Dim& d : out) d = Dim{};
    return SetOutput(n, 0, dt, out);
  }
  if (!starts || !ends || (steps_given && !steps)) {
    if (axes)
      for (int64_t a : *axes) out[static_cast<size_t>(NormAxis(n, a, r, "axis"))] = Dim{};
    else
      for (Dim& d : out) d = Dim{};
    return SetOutput(n, 0, dt, out);
  }
  size_t k = starts->size();
  if (ends->size() != k) Fail(n, "starts and ends have different lengths");
  std::vector<int64_t> ax = axes ? *axes : std::vector<int64_t>();
  if (!axes)
    for (size_t i = 0; i < k; ++i) ax.push_back(static_cast<int64_t>(i));
  std::vector<int64_t> st = steps ? *steps : std::vector<int64_t>(k, 1);
  if (ax.size() != k || st.size() != k) Fail(n, "starts, ends, axes and steps differ in length");
  auto partial = PartialOf(n.input(0));
  for (size_t i = 0; i < k; ++i) {
    size_t a = static_cast<size_t>(NormAxis(n, ax[i], r, "axis"));
    if (st[i] == 0) Fail(n, "step is 0");
    const Dim& d = (*xs)[a];
    if (d.known()) {
      out[a] = Dim::Known(SliceLength(d.value, (*starts)[i], (*ends)[i], st[i]));
    } else if ((*starts)[i] == 0 && st[i] == 1 &&
               (*ends)[i] >= std::numeric_limits<int32_t>::max()) {
      out[a] = d;  // the whole axis
    } else {
      out[a] = Dim{};
    }
  }
  SetOutput(n, 0, dt, out);
  if (partial && !partial->scalar && r == 1 && k == 1 && out[0].known()) {
    int64_t len = static_cast<int64_t>(partial->elems.size());
    int64_t s = (*starts)[0], e = (*ends)[0], step = st[0];
    if (s < 0) s += len;
    if (e < 0) e += len;
    Partial p;
    if (len == 0) {
      // nothing to take
    } else if (step > 0) {
      s = std::clamp<int64_t>(s, 0, len);
      e = std::clamp<int64_t>(e, 0, len);
      for (int64_t i = s; i < e; i += step)
        p.elems.push_back(partial->elems[static_cast<size_t>(i)]);
    } else {
      s = std::clamp<int64_t>(s, 0, len - 1);
      e = std::clamp<int64_t>(e, -1, len - 1);
      for (int64_t i = s; i > e; i += step)
        p.elems.push_back(partial->elems[static_cast<size_t>(i)]);
    }
    SetPartial(n, 0, std::move(p));
  }
}

void Inferencer::Gather(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  const Shape* is = ShapeOf(n.input(1));
  if (!xs || !is) return SetOutput(n, 0, dt, std::nullopt);
  int64_t r = static_cast<int64_t>(xs->size());
  if (r == 0) Fail(n, "cannot gather from a scalar");
  size_t axis = static_cast<size_t>(NormAxis(n, n.attr_int("axis", 0), r, "axis"));
  Shape out(xs->begin(), xs->begin() + static_cast<long>(axis));
  out.insert(out.end(), is->begin(), is->end());
  out.insert(out.end(), xs->begin() + static_cast<long>(axis) + 1, xs->end());
  SetOutput(n, 0, dt, out);
  auto data = PartialOf(n.input(0));
  auto idx = ConstInts(n.input(1));
  if (data && !data->scalar && idx && is->size() <= 1) {
    Partial p;
    p.scalar = is->empty();
    int64_t len = static_cast<int64_t>(data->elems.size());
    for (int64_t i : *idx) {
      if (i < -len || i >= len)
        Fail(n, "index " + std::to_string(i) + " is out of range for size " + std::to_string(len));
      p.elems.push_back(data->elems[static_cast<size_t>(i < 0 ? i + len : i)]);
    }
    SetPartial(n, 0, std::move(p));
  }
}

void Inferencer::Expand(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  auto target = PartialOf(n.input(1));
  if (!target) {
    const Shape* ss = ShapeOf(n.input(1));
    if (xs && ss && ss->size() == 1 && (*ss)[0].known())
      return SetOutput(
          n, 0, dt,
          UnknownDims(std::max<int64_t>(static_cast<int64_t>(xs->size()), (*ss)[0].value)));
    return SetOutput(n, 0, dt, std::nullopt);
  }
  Shape t;
  for (const Elem& e : target->elems) {
    if (e.v && *e.v < 0) Fail(n, "shape entry " + std::to_string(*e.v) + " is negative");
    t.push_back(e.ToDim());
  }
  if (!xs) return SetOutput(n, 0, dt, Shape(t.size()));
  Shape out = t.size() >= xs->size() ? t : *xs;
  size_t rank = std::max(t.size(), xs->size());
  out.assign(rank, Dim::Known(1));
  for (size_t i = 0; i < rank; ++i) {
    Dim a = i + xs->size() >= rank ? (*xs)[i + xs->size() - rank] : Dim::Known(1);
    Dim b = i + t.size() >= rank ? t[i + t.size() - rank] : Dim::Known(1);
    out[i] = BroadcastDim(n, a, b);
  }
  SetOutput(n, 0, dt, out);
}

void Inferencer::Tile(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  auto reps = ConstInts(n.input(1));
  if (!xs) return SetOutput(n, 0, dt, std::nullopt);
  Shape out = *xs;
  if (!reps) {
    for (Dim& d : out) d = Dim{};
    return SetOutput(n, 0, dt, out);
  }
  if (reps->size() != xs->size())
    Fail(n, "repeats " + JoinInts(*reps) + " do not match rank " + std::to_string(xs->size()));
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t k = (*reps)[i];
    if (k < 0) Fail(n, "repeats " + JoinInts(*reps) + " has a negative entry");
    if (out[i].known()) {
      int64_t v;
      out[i] = __builtin_mul_overflow(out[i].value, k, &v) ? Dim{} : Dim::Known(v);
    } else if (k != 1) {
      out[i] = k == 0 ? Dim::Known(0) : Dim{};
    }
  }
  SetOutput(n, 0, dt, out);
}

void Inferencer::Pad(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) return SetOutput(n, 0, dt, std::nullopt);
  auto pads = IntsFromInputOrAttr(n, 1, "pads");
  Shape out = *xs;
  size_t r = xs->size();
  if (!pads) {
    for (Dim& d : out) d = Dim{};
    return SetOutput(n, 0, dt, out);
  }
  std::vector<int64_t> axes;
  if (HasInput(n, 3)) {
    auto a = ConstInts(n.input(3));
    if (!a) {
      for (Dim& d : out) d = Dim{};
      return SetOutput(n, 0, dt, out);
    }
    for (int64_t x : *a) axes.push_back(NormAxis(n, x, static_cast<int64_t>(r), "axis"));
  } else {
    for (size_t i = 0; i < r; ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (pads->size() != 2 * axes.size())
    Fail(n, "pads " + JoinInts(*pads) + " has " + std::to_string(pads->size()) +
                " entries, expected " + std::to_string(2 * axes.size()));
  for (size_t i = 0; i < axes.size(); ++i) {
    Dim& d = out[static_cast<size_t>(axes[i])];
    int64_t add = 0, v = 0;
    if (__builtin_add_overflow((*pads)[i], (*pads)[i + axes.size()], &add) ||
        (d.known() && __builtin_add_overflow(d.value, add, &v)))
      Fail(n, "pads " + JoinInts(*pads) + " overflow");
    if (d.known()) {
      if (v < 0) Fail(n, "pads " + JoinInts(*pads) + " make a dim negative");
      d = Dim::Known(v);
    } else if (add != 0) {
      d = Dim{};
    }
  }
  SetOutput(n, 0, dt, out);
}

void Inferencer::ShapeOp(const Node& n) {
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) {
    if (!n.has_attr("start") && !n.has_attr("end")) SetOutput(n, 0, DType::kInt64, Shape(1));
    return;
  }
  int64_t r = static_cast<int64_t>(xs->size());
  int64_t start = n.attr_int("start", 0), end = n.attr_int("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  Partial p;
  for (int64_t i = start; i < end; ++i)
    p.elems.push_back(Elem::FromDim((*xs)[static_cast<size_t>(i)]));
  SetOutput(n, 0, DType::kInt64, MakeShape({static_cast<int64_t>(p.elems.size())}));
  SetPartial(n, 0, std::move(p));
}

void Inferencer::Size(const Node& n) {
  SetOutput(n, 0, DType::kInt64, Shape{});
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) return;
  Dim d = Product(*xs, 0, xs->size());
  SetPartial(n, 0, Partial{{Elem::FromDim(d)}, true});
}

void Inferencer::Cast(const Node& n) {
  if (!n.has_attr("to")) Fail(n, "attribute 'to' is missing");
  DType to = DTypeFromOnnx(n.attr_int("to", 0));
  if (to == DType::kUndefined)
    Fail(n, "attribute 'to' names unknown type " + std::to_string(n.attr_int("to", 0)));
  const ValueType* t = TensorType(n.input(0));
  SetOutput(n, 0, to, t ? t->shape : std::nullopt);
  if (IsIntLike(to))
    if (auto p = PartialOf(n.input(0))) SetPartial(n, 0, *p);
}

void Inferencer::ConstantOfShape(const Node& n) {
  DType dt = DType::kFloat32;
  const Attribute* a = n.attr("value");
  if (a && a->kind == Attribute::Kind::kTensor) dt = a->t.dtype();
  auto target = PartialOf(n.input(0));
  if (!target) {
    const Shape* ss = ShapeOf(n.input(0));
    if (ss && ss->size() == 1 && (*ss)[0].known())
      return SetOutput(n, 0, dt, UnknownDims((*ss)[0].value));
    return SetOutput(n, 0, dt, std::nullopt);
  }
  Shape s;
  for (const Elem& e : target->elems) {
    if (e.v && *e.v < 0) Fail(n, "shape entry " + std::to_string(*e.v) + " is negative");
    s.push_back(e.ToDim());
  }
  SetOutput(n, 0, dt, s);
  // ConstantOfShape(Shape(x)[k]) of ints feeds Expand/Where shape arithmetic in exports.
  if (s.size() == 1 && s[0].known() && s[0].value <= static_cast<int64_t>(kMaxPartialElements) &&
      IsIntLike(dt)) {
    int64_t fill =
        a && a->kind == Attribute::Kind::kTensor && a->t.numel() == 1 ? a->t.ToInt64()[0] : 0;
    SetPartial(n, 0,
               Partial{std::vector<Elem>(static_cast<size_t>(s[0].value), Elem::Of(fill)), false});
  }
}

void Inferencer::Range(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) dt = DTypeOf(n.input(1));
  if (dt == DType::kUndefined) return;
  auto start = ConstDoubles(n.input(0));
  auto limit = ConstDoubles(n.input(1));
  auto delta = ConstDoubles(n.input(2));
  if (!start || !limit || !delta || start->size() != 1 || limit->size() != 1 ||
      delta->size() != 1) {
    // arange(0, seq): positions for a symbolic sequence length, as exporters write them.
    auto lim = PartialOf(n.input(1));
    if (start && delta && start->size() == 1 && delta->size() == 1 && (*start)[0] == 0 &&
        (*delta)[0] == 1 && lim && lim->elems.size() == 1 && !lim->elems[0].sym.empty())
      return SetOutput(n, 0, dt, Shape{Dim::Symbol(lim->elems[0].sym)});
    return SetOutput(n, 0, dt, Shape(1));
  }
  if ((*delta)[0] == 0) Fail(n, "delta is 0");
  double count = std::ceil(((*limit)[0] - (*start)[0]) / (*delta)[0]);
  if (!(count < 9.0e18)) Fail(n, "range is too long");
  int64_t len = std::max<int64_t>(0, static_cast<int64_t>(count));
  SetOutput(n, 0, dt, MakeShape({len}));
  if (IsIntLike(dt) && len <= static_cast<int64_t>(kMaxPartialElements)) {
    Partial p;
    for (int64_t i = 0; i < len; ++i)
      p.elems.push_back(
          Elem::Of(static_cast<int64_t>((*start)[0] + static_cast<double>(i) * (*delta)[0])));
    SetPartial(n, 0, std::move(p));
  }
}


}  // namespace edgepress::ir::shape_detail
