// Shape inference for the compute op families: elementwise, conv & pool, matmul,
// reductions, resize, constants.
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

// ----------------------------------------------------------------------------- elementwise

void Inferencer::Elementwise(const Node& n, DType out_dtype) {
  std::vector<const Value*> ins(n.inputs().begin(), n.inputs().end());
  DType common = DType::kUndefined;
  if (n.op_type() != "Where" && n.op_type() != "Pow" && n.op_type() != "BitShift") {
    for (const Value* v : ins) {
      DType dt = DTypeOf(v);
      if (dt == DType::kUndefined) continue;
      if (common != DType::kUndefined && dt != common)
        Fail(n, std::string("inputs have different dtypes ") + DTypeName(common) + " and " +
                    DTypeName(dt));
      common = dt;
    }
    if (out_dtype == DType::kUndefined) out_dtype = common;
  }
  if (out_dtype == DType::kUndefined) return;
  SetOutput(n, 0, out_dtype, Broadcast(n, ins));
}

// Integer arithmetic on shape values (Shape -> Mul -> Reshape and friends).
void Inferencer::PartialArith(const Node& n) {
  const std::string& op = n.op_type();
  std::vector<Partial> ins;
  for (size_t i = 0; i < n.num_inputs(); ++i) {
    auto p = PartialOf(n.input(i));
    if (!p) return;
    ins.push_back(std::move(*p));
  }
  if (ins.empty()) return;
  size_t len = 1;
  bool scalar = true;
  for (const Partial& p : ins) {
    if (p.elems.size() != 1 && len != 1 && p.elems.size() != len) return;
    if (p.elems.size() != 1) len = p.elems.size();
    scalar = scalar && p.scalar;
  }
  auto at = [&](const Partial& p, size_t i) -> const Elem& {
    return p.elems.size() == 1 ? p.elems[0] : p.elems[i];
  };
  Partial out;
  out.scalar = scalar;
  for (size_t i = 0; i < len; ++i) {
    Elem r;
    if (op == "Where") {
      const Elem& c = at(ins[0], i);
      if (ins.size() == 3 && c.v) r = *c.v ? at(ins[1], i) : at(ins[2], i);
    } else if (ins.size() == 2) {
      const Elem& a = at(ins[0], i);
      const Elem& b = at(ins[1], i);
      if (a.v && b.v) {
        int64_t x = *a.v, y = *b.v, z = 0;
        bool ok = true;
        if (op == "Add")
          ok = !__builtin_add_overflow(x, y, &z);
        else if (op == "Sub")
          ok = !__builtin_sub_overflow(x, y, &z);
        else if (op == "Mul")
          ok = !__builtin_mul_overflow(x, y, &z);
        else if (op == "Div") {
          ok = y != 0 && !(x == std::numeric_limits<int64_t>::min() && y == -1);
          if (ok) z = x / y;  // truncation, as ONNX integer Div
        } else if (op == "Min")
          z = std::min(x, y);
        else if (op == "Max")
          z = std::max(x, y);
        else if (op == "Equal")
          z = x == y;
        else if (op == "Less")
          z = x < y;
        else if (op == "Greater")
          z = x > y;
        else
          ok = false;
        if (ok) r = Elem::Of(z);
      } else if ((op == "Mul" || op == "Div") && !a.sym.empty() && b.v && *b.v == 1) {
        r = a;
      } else if (op == "Mul" && !b.sym.empty() && a.v && *a.v == 1) {
        r = b;
      } else if ((op == "Add" || op == "Sub") && !a.sym.empty() && b.v && *b.v == 0) {
        r = a;
      } else if (op == "Add" && !b.sym.empty() && a.v && *a.v == 0) {
        r = b;
      } else if (op == "Equal" && !a.sym.empty() && a.sym == b.sym) {
        r = Elem::Of(1);
      }
    } else {
      return;
    }
    out.elems.push_back(std::move(r));
  }
  SetPartial(n, 0, std::move(out));
}

// ----------------------------------------------------------------------------- conv & pool

namespace {
struct WindowAttrs {
  std::vector<int64_t> kernel, strides, dilations, pads;
  std::string auto_pad;
};
}  // namespace

static WindowAttrs ReadWindow(const Node& n, size_t spatial, const std::vector<int64_t>& kernel,
                              const std::function<void(const std::string&)>& fail) {
  WindowAttrs w;
  w.kernel = kernel;
  w.strides = n.attr_ints("strides", std::vector<int64_t>(spatial, 1));
  w.dilations = n.attr_ints("dilations", std::vector<int64_t>(spatial, 1));
  w.pads = n.attr_ints("pads", std::vector<int64_t>(2 * spatial, 0));
  w.auto_pad = n.attr_string("auto_pad", "NOTSET");
  if (w.kernel.size() != spatial)
    fail("kernel_shape has " + std::to_string(w.kernel.size()) + " entries for " +
         std::to_string(spatial) + " spatial dims");
  if (w.strides.size() != spatial)
    fail("strides has " + std::to_string(w.strides.size()) + " entries for " +
         std::to_string(spatial) + " spatial dims");
  if (w.dilations.size() != spatial)
    fail("dilations has " + std::to_string(w.dilations.size()) + " entries for " +
         std::to_string(spatial) + " spatial dims");
  if (w.pads.size() != 2 * spatial)
    fail("pads has " + std::to_string(w.pads.size()) + " entries for " + std::to_string(spatial) +
         " spatial dims");
  for (size_t i = 0; i < spatial; ++i) {
    if (w.kernel[i] < 1) fail("kernel size " + std::to_string(w.kernel[i]) + " is not positive");
    if (w.strides[i] < 1) fail("stride " + std::to_string(w.strides[i]) + " is not positive");
    if (w.dilations[i] < 1) fail("dilation " + std::to_string(w.dilations[i]) + " is not positive");
    if (w.pads[i] < 0 || w.pads[i + spatial] < 0) fail("negative pads");
  }
  if (w.auto_pad != "NOTSET" && w.auto_pad != "SAME_UPPER" && w.auto_pad != "SAME_LOWER" &&
      w.auto_pad != "VALID")
    fail("unknown auto_pad '" + w.auto_pad + "'");
  return w;
}

void Inferencer::ConvLike(const Node& n, size_t x_in, size_t w_in, DType out_dtype) {
  const Shape* xs = ShapeOf(n.input(x_in));
  const Shape* ws = ShapeOf(n.input(w_in));
  if (out_dtype == DType::kUndefined) return;
  int rank = xs ? static_cast<int>(xs->size()) : ws ? static_cast<int>(ws->size()) : -1;
  if (rank < 0) return SetOutput(n, 0, out_dtype, std::nullopt);
  if (rank < 3) Fail(n, "input rank " + std::to_string(rank) + " is below 3");
  if (xs && ws && xs->size() != ws->size())
    Fail(n, "input rank " + std::to_string(xs->size()) + " differs from weight rank " +
                std::to_string(ws->size()));
  size_t spatial = static_cast<size_t>(rank - 2);
  int64_t group = n.attr_int("group", 1);
  if (group < 1) Fail(n, "group " + std::to_string(group) + " is not positive");
  if (xs && ws && (*xs)[1].known() && (*ws)[1].known() && (*xs)[1].value != (*ws)[1].value * group)
    Fail(n, "input has " + std::to_string((*xs)[1].value) + " channels but weight expects " +
                std::to_string((*ws)[1].value) + " x group " + std::to_string(group));
  if (ws && (*ws)[0].known() && (*ws)[0].value % group != 0)
    Fail(n, "output channels " + std::to_string((*ws)[0].value) + " are not divisible by group " +
                std::to_string(group));
  Shape out(static_cast<size_t>(rank));
  out[0] = xs ? (*xs)[0] : Dim{};
  out[1] = ws ? (*ws)[0] : Dim{};
  std::vector<int64_t> kernel = n.attr_ints("kernel_shape");
  if (kernel.empty()) {
    if (!ws) return SetOutput(n, 0, out_dtype, out);
    for (size_t i = 0; i < spatial; ++i) {
      if (!(*ws)[2 + i].known()) return SetOutput(n, 0, out_dtype, out);
      kernel.push_back((*ws)[2 + i].value);
    }
  }
  WindowAttrs w = ReadWindow(n, spatial, kernel, [&](const std::string& m) { Fail(n, m); });
  if (ws)
    for (size_t i = 0; i < spatial; ++i)
      MergeDim(n, (*ws)[2 + i], Dim::Known(w.kernel[i]), "kernel_shape vs weight dims");
  for (size_t i = 0; i < spatial; ++i) {
    Dim in = xs ? (*xs)[2 + i] : Dim{};
    out[2 + i] = WindowDim(n, in, w.kernel[i], w.strides[i], w.dilations[i], w.pads[i],
                           w.pads[i + spatial], w.auto_pad, false);
  }
  SetOutput(n, 0, out_dtype, out);
}

void Inferencer::ConvTranspose(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  const Shape* xs = ShapeOf(n.input(0));
  const Shape* ws = ShapeOf(n.input(1));
  if (dt == DType::kUndefined) return;
  int rank = xs ? static_cast<int>(xs->size()) : ws ? static_cast<int>(ws->size()) : -1;
  if (rank < 0) return SetOutput(n, 0, dt, std::nullopt);
  if (rank < 3) Fail(n, "input rank " + std::to_string(rank) + " is below 3");
  size_t spatial = static_cast<size_t>(rank - 2);
  int64_t group = n.attr_int("group", 1);
  if (group < 1) Fail(n, "group " + std::to_string(group) + " is not positive");
  if (xs && ws) {
    MergeDim(n, (*xs)[1], (*ws)[0], "input channels vs weight dim 0");
  }
  Shape out(static_cast<size_t>(rank));
  out[0] = xs ? (*xs)[0] : Dim{};
  out[1] = ws && (*ws)[1].known() ? Dim::Known((*ws)[1].value * group) : Dim{};
  std::vector<int64_t> kernel = n.attr_ints("kernel_shape");
  if (kernel.empty() && ws) {
    for (size_t i = 0; i < spatial; ++i) {
      if (!(*ws)[2 + i].known()) return SetOutput(n, 0, dt, out);
      kernel.push_back((*ws)[2 + i].value);
    }
  }
  if (kernel.empty()) return SetOutput(n, 0, dt, out);
  WindowAttrs w = ReadWindow(n, spatial, kernel, [&](const std::string& m) { Fail(n, m); });
  std::vector<int64_t> out_pad = n.attr_ints("output_padding", std::vector<int64_t>(spatial, 0));
  std::vector<int64_t> out_shape = n.attr_ints("output_shape");
  if (out_pad.size() != spatial) Fail(n, "output_padding has the wrong length");
  if (!out_shape.empty()) {
    if (out_shape.size() < spatial)
      Fail(n, "output_shape " + JoinInts(out_shape) + " is too short");
    for (size_t i = 0; i < spatial; ++i)
      out[2 + i] = Dim::Known(out_shape[out_shape.size() - spatial + i]);
    return SetOutput(n, 0, dt, out);
  }
  for (size_t i = 0; i < spatial; ++i) {
    Dim in = xs ? (*xs)[2 + i] : Dim{};
    if (!in.known()) {
      out[2 + i] = Dim{};
      continue;
    }
    // Sizes come from the model file: compute in double and refuse what int64 cannot hold.
    double dk = static_cast<double>(w.dilations[i]) * static_cast<double>(w.kernel[i] - 1) + 1;
    double vd;
    if (w.auto_pad == "SAME_UPPER" || w.auto_pad == "SAME_LOWER") {
      vd = static_cast<double>(in.value) * static_cast<double>(w.strides[i]);
    } else {
      double pads = w.auto_pad == "VALID"
                        ? 0
                        : static_cast<double>(w.pads[i]) + static_cast<double>(w.pads[i + spatial]);
      vd = static_cast<double>(w.strides[i]) * static_cast<double>(in.value - 1) +
           static_cast<double>(out_pad[i]) + dk - pads;
    }
    if (!(vd < 9.0e15)) Fail(n, "output size overflows");
    int64_t v = static_cast<int64_t>(vd);
    if (v < 0) Fail(n, "output size " + std::to_string(v) + " is negative");
    out[2 + i] = Dim::Known(v);
  }
  SetOutput(n, 0, dt, out);
}

void Inferencer::Pool(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  const Shape* xs = ShapeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  if (!xs) {
    SetOutput(n, 0, dt, std::nullopt);
    SetOutput(n, 1, DType::kInt64, std::nullopt);
    return;
  }
  if (xs->size() < 3) Fail(n, "input rank " + std::to_string(xs->size()) + " is below 3");
  size_t spatial = xs->size() - 2;
  std::vector<int64_t> kernel = n.attr_ints("kernel_shape");
  if (kernel.empty()) Fail(n, "kernel_shape is required");
  WindowAttrs w = ReadWindow(n, spatial, kernel, [&](const std::string& m) { Fail(n, m); });
  bool ceil_mode = n.attr_int("ceil_mode", 0) != 0;
  Shape out = *xs;
  for (size_t i = 0; i < spatial; ++i)
    out[2 + i] = WindowDim(n, (*xs)[2 + i], w.kernel[i], w.strides[i], w.dilations[i], w.pads[i],
                           w.pads[i + spatial], w.auto_pad, ceil_mode);
  SetOutput(n, 0, dt, out);
  SetOutput(n, 1, DType::kInt64, out);
}

void Inferencer::GlobalPool(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) return SetOutput(n, 0, dt, std::nullopt);
  if (xs->size() < 2) Fail(n, "input rank " + std::to_string(xs->size()) + " is below 2");
  Shape out = *xs;
  for (size_t i = 2; i < out.size(); ++i) out[i] = Dim::Known(1);
  SetOutput(n, 0, dt, out);
}

// ----------------------------------------------------------------------------- matmul

void Inferencer::MatMulLike(const Node& n, size_t a_in, size_t b_in, DType out_dtype) {
  if (out_dtype == DType::kUndefined) return;
  const Shape* as = ShapeOf(n.input(a_in));
  const Shape* bs = ShapeOf(n.input(b_in));
  if (!as || !bs) return SetOutput(n, 0, out_dtype, std::nullopt);
  if (as->empty() || bs->empty()) Fail(n, "MatMul inputs must have rank >= 1");
  Shape a = *as, b = *bs;
  bool a1 = a.size() == 1, b1 = b.size() == 1;
  if (a1) a.insert(a.begin(), Dim::Known(1));
  if (b1) b.push_back(Dim::Known(1));
  const Dim& ka = a.back();
  const Dim& kb = b[b.size() - 2];
  if (ka.known() && kb.known() && ka.value != kb.value)
    Fail(n, "inner dimensions differ: " + ShapeToString(*as) + " x " + ShapeToString(*bs) + " (" +
                std::to_string(ka.value) + " vs " + std::to_string(kb.value) + ")");
  Shape ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
  Shape batch;
  size_t nb = std::max(ba.size(), bb.size());
  for (size_t i = 0; i < nb; ++i) {
    Dim da = i + ba.size() >= nb ? ba[i + ba.size() - nb] : Dim::Known(1);
    Dim db = i + bb.size() >= nb ? bb[i + bb.size() - nb] : Dim::Known(1);
    batch.push_back(BroadcastDim(n, da, db));
  }
  Shape out = batch;
  if (!a1) out.push_back(a[a.size() - 2]);
  if (!b1) out.push_back(b.back());
  SetOutput(n, 0, out_dtype, out);
}

void Inferencer::Gemm(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) dt = DTypeOf(n.input(1));
  if (dt == DType::kUndefined) return;
  const Shape* as = ShapeOf(n.input(0));
  const Shape* bs = ShapeOf(n.input(1));
  if (as && as->size() != 2) Fail(n, "A has rank " + std::to_string(as->size()) + ", expected 2");
  if (bs && bs->size() != 2) Fail(n, "B has rank " + std::to_string(bs->size()) + ", expected 2");
  bool ta = n.attr_int("transA", 0) != 0, tb = n.attr_int("transB", 0) != 0;
  Dim m = as ? (*as)[ta ? 1 : 0] : Dim{};
  Dim ka = as ? (*as)[ta ? 0 : 1] : Dim{};
  Dim kb = bs ? (*bs)[tb ? 1 : 0] : Dim{};
  Dim nn = bs ? (*bs)[tb ? 0 : 1] : Dim{};
  if (ka.known() && kb.known() && ka.value != kb.value)
    Fail(n, "inner dimensions differ: " + std::to_string(ka.value) + " vs " +
                std::to_string(kb.value));
  SetOutput(n, 0, dt, Shape{m, nn});
}


// ----------------------------------------------------------------------------- reductions

void Inferencer::Reduce(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  bool keepdims = n.attr_int("keepdims", 1) != 0;
  bool noop = n.attr_int("noop_with_empty_axes", 0) != 0;
  bool given = HasInput(n, 1) || n.has_attr("axes");
  auto axes = IntsFromInputOrAttr(n, 1, "axes");
  if (!xs) return SetOutput(n, 0, dt, std::nullopt);
  int64_t r = static_cast<int64_t>(xs->size());
  if (given && !axes) {
    if (!keepdims) return SetOutput(n, 0, dt, std::nullopt);
    return SetOutput(n, 0, dt, Shape(xs->size()));
  }
  std::vector<bool> reduce(xs->size(), false);
  if (!axes || axes->empty()) {
    if (noop) return SetOutput(n, 0, dt, *xs);
    reduce.assign(xs->size(), true);
  } else {
    for (int64_t a : *axes) reduce[static_cast<size_t>(NormAxis(n, a, r, "axis"))] = true;
  }
  Shape out;
  for (size_t i = 0; i < xs->size(); ++i) {
    if (!reduce[i])
      out.push_back((*xs)[i]);
    else if (keepdims)
      out.push_back(Dim::Known(1));
  }
  SetOutput(n, 0, dt, out);
}

void Inferencer::ArgReduce(const Node& n) {
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) return SetOutput(n, 0, DType::kInt64, std::nullopt);
  int64_t r = static_cast<int64_t>(xs->size());
  size_t axis = static_cast<size_t>(NormAxis(n, n.attr_int("axis", 0), r, "axis"));
  Shape out = *xs;
  if (n.attr_int("keepdims", 1) != 0)
    out[axis] = Dim::Known(1);
  else
    out.erase(out.begin() + static_cast<long>(axis));
  SetOutput(n, 0, DType::kInt64, out);
}

void Inferencer::TopK(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  const Shape* xs = ShapeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  if (!xs) {
    SetOutput(n, 0, dt, std::nullopt);
    SetOutput(n, 1, DType::kInt64, std::nullopt);
    return;
  }
  Shape out = *xs;
  size_t axis = static_cast<size_t>(
      NormAxis(n, n.attr_int("axis", -1), static_cast<int64_t>(out.size()), "axis"));
  auto k = HasInput(n, 1)
               ? ConstInts(n.input(1))
               : std::optional<std::vector<int64_t>>(std::vector<int64_t>{n.attr_int("k", -1)});
  if (k && k->size() == 1 && (*k)[0] >= 0) {
    if (out[axis].known() && (*k)[0] > out[axis].value)
      Fail(n, "k " + std::to_string((*k)[0]) + " exceeds axis size " +
                  std::to_string(out[axis].value));
    out[axis] = Dim::Known((*k)[0]);
  } else {
    out[axis] = Dim{};
  }
  SetOutput(n, 0, dt, out);
  SetOutput(n, 1, DType::kInt64, out);
}

// ----------------------------------------------------------------------------- resize

void Inferencer::Resize(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  // Resize-10 and Upsample-9 take (X, scales); Resize-11+ takes (X, roi, scales, sizes);
  // Upsample-7 has a `scales` attribute.
  bool two_input = n.op_type() == "Upsample" || opset_ < 11;
  const Value* scales_in = two_input ? n.input(1) : n.input(2);
  const Value* sizes_in = two_input ? nullptr : n.input(3);
  if (!xs) return SetOutput(n, 0, dt, std::nullopt);
  Shape out = *xs;
  if (sizes_in) {
    auto sizes = PartialOf(sizes_in);
    if (!sizes) {
      for (Dim& d : out) d = Dim{};
      return SetOutput(n, 0, dt, out);
    }
    if (sizes->elems.size() != out.size())
      Fail(n, "sizes has " + std::to_string(sizes->elems.size()) + " entries for rank " +
                  std::to_string(out.size()));
    for (size_t i = 0; i < out.size(); ++i) out[i] = sizes->elems[i].ToDim();
    return SetOutput(n, 0, dt, out);
  }
  std::optional<std::vector<double>> scales;
  if (scales_in)
    scales = ConstDoubles(scales_in);
  else if (n.has_attr("scales")) {
    std::vector<double> s;
    for (float f : n.attr_floats("scales")) s.push_back(f);
    scales = s;
  }
  if (!scales || (scales->empty() && scales_in)) {
    for (Dim& d : out) d = Dim{};
    return SetOutput(n, 0, dt, out);
  }
  if (scales->size() != out.size())
    Fail(n, "scales has " + std::to_string(scales->size()) + " entries for rank " +
                std::to_string(out.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    double s = (*scales)[i];
    if (!(s > 0)) Fail(n, "scale " + std::to_string(s) + " is not positive");
    if (out[i].known()) {
      double v = std::floor(static_cast<double>(out[i].value) * s);
      if (!(v < 9.0e18)) Fail(n, "scale " + std::to_string(s) + " makes a dim overflow");
      out[i] = Dim::Known(static_cast<int64_t>(v));
    } else if (s != 1.0)
      out[i] = Dim{};
  }
  SetOutput(n, 0, dt, out);
}

// ----------------------------------------------------------------------------- constants

void Inferencer::Constant(const Node& n) {
  const Tensor* t = ConstTensor(n.output(0));
  if (!t) return;
  SetOutput(n, 0, t->dtype(), MakeShape(t->shape()));
}


}  // namespace edgepress::ir::shape_detail
