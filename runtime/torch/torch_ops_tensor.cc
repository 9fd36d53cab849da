// Converters for data movement and shape arithmetic (Reshape, Transpose, Slice, Gather,
// Concat, Pad, ...), constants, Cast, and the control flow ops If and Loop. Shape-valued
// inputs (Reshape's shape, Slice's starts, ...) are read back to the host; everything else
// stays on the session's device.
#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "ir/error.h"
#include "runtime/torch/torch_ops.h"

namespace edgepress::runtime::torch_ops {

namespace {

using Outs = std::vector<at::Tensor>;

std::vector<int64_t> Sizes(const at::Tensor& t) { return {t.sizes().begin(), t.sizes().end()}; }

Outs Reshape(OpContext& c) {
  const at::Tensor& x = c.in(0);
  std::vector<int64_t> shape = c.ints(1);
  bool allow_zero = c.node.attr_int("allowzero", 0) != 0;
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] == 0 && !allow_zero) {
      if (static_cast<int64_t>(i) >= x.dim()) c.Fail("shape copies a dim past the input's rank");
      shape[i] = x.size(static_cast<int64_t>(i));
    }
  return {x.reshape(shape)};
}

Outs Flatten(OpContext& c) {
  const at::Tensor& x = c.in(0);
  int64_t axis = c.node.attr_int("axis", 1);
  if (axis < 0) axis += x.dim();
  if (axis < 0 || axis > x.dim()) c.Fail("axis out of range");
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < x.dim(); ++d) (d < axis ? outer : inner) *= x.size(d);
  return {x.reshape({outer, inner})};
}

Outs Transpose(OpContext& c) {
  const at::Tensor& x = c.in(0);
  std::vector<int64_t> perm = c.node.attr_ints("perm", {});
  if (perm.empty())
    for (int64_t d = x.dim() - 1; d >= 0; --d) perm.push_back(d);
  return {x.permute(perm)};
}

Outs Squeeze(OpContext& c) {
  at::Tensor x = c.in(0);
  std::vector<int64_t> axes = c.has(1) ? c.ints(1) : c.node.attr_ints("axes", {});
  if (axes.empty()) return {x.squeeze()};
  for (int64_t& a : axes) a = NormAxis(a, x.dim(), c.node);
  std::sort(axes.rbegin(), axes.rend());
  for (int64_t a : axes) {
    if (x.size(a) != 1)
      c.Fail("cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(x.size(a)));
    x = x.squeeze(a);
  }
  return {x};
}

Outs Unsqueeze(OpContext& c) {
  at::Tensor x = c.in(0);
  std::vector<int64_t> axes = c.has(1) ? c.ints(1) : c.node.attr_ints("axes", {});
  int64_t rank = x.dim() + static_cast<int64_t>(axes.size());
  for (int64_t& a : axes) a = NormAxis(a, rank, c.node);
  std::sort(axes.begin(), axes.end());
  for (int64_t a : axes) x = x.unsqueeze(a);
  return {x};
}

Outs Concat(OpContext& c) {
  std::vector<at::Tensor> parts;
  for (size_t i = 0; i < c.inputs.size(); ++i) parts.push_back(c.in(i));
  int64_t axis = NormAxis(c.node.attr_int("axis", 0), parts[0].dim(), c.node);
  return {at::cat(parts, axis)};
}

Outs Split(OpContext& c) {
  const at::Tensor& x = c.in(0);
  int64_t axis = NormAxis(c.node.attr_int("axis", 0), x.dim(), c.node);
  std::vector<int64_t> sizes = c.has(1) ? c.ints(1) : c.node.attr_ints("split", {});
  if (sizes.empty()) {
    int64_t parts = c.node.attr_int("num_outputs", static_cast<int64_t>(c.node.num_outputs()));
    int64_t each = (x.size(axis) + parts - 1) / parts;  // the last part may be smaller
    for (int64_t i = 0, left = x.size(axis); i < parts; ++i, left -= each)
      sizes.push_back(std::min(each, std::max<int64_t>(left, 0)));
  }
  return at::split_with_sizes(x, sizes, axis);
}

// Clamping per the ONNX spec; negative steps gather the indices explicitly.
Outs Slice(OpContext& c) {
  at::Tensor x = c.in(0);
  std::vector<int64_t> starts = c.ints(1), ends = c.ints(2);
  std::vector<int64_t> axes = c.has(3) ? c.ints(3) : std::vector<int64_t>();
  std::vector<int64_t> steps = c.has(4) ? c.ints(4) : std::vector<int64_t>();
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    c.Fail("starts, ends, axes and steps differ in length");
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t a = NormAxis(axes[i], x.dim(), c.node), dim = x.size(a), step = steps[i];
    if (step == 0) c.Fail("step 0");
    int64_t s = starts[i], e = ends[i];
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      x = x.slice(a, s, std::max(s, e), step);
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      at::Tensor idx = s > e ? at::arange(s, e, step, x.options().dtype(at::kLong))
                             : at::empty({0}, x.options().dtype(at::kLong));
      x = x.index_select(a, idx);
    }
  }
  return {x};
}

at::Tensor NonNegative(const at::Tensor& idx, int64_t dim) {
  at::Tensor i = idx.to(at::kLong);
  return at::where(i < 0, i + dim, i);
}

Outs Gather(OpContext& c) {
  const at::Tensor& x = c.in(0);
  int64_t axis = NormAxis(c.node.attr_int("axis", 0), x.dim(), c.node);
  at::Tensor idx = NonNegative(c.in(1), x.size(axis));
  std::vector<int64_t> shape = Sizes(x);
  std::vector<int64_t> out(shape.begin(), shape.begin() + axis);
  for (int64_t s : idx.sizes()) out.push_back(s);
  out.insert(out.end(), shape.begin() + axis + 1, shape.end());
  return {x.index_select(axis, idx.reshape({-1})).reshape(out)};
}

Outs GatherElements(OpContext& c) {
  const at::Tensor& x = c.in(0);
  int64_t axis = NormAxis(c.node.attr_int("axis", 0), x.dim(), c.node);
  return {at::gather(x, axis, NonNegative(c.in(1), x.size(axis)))};
}

Outs ScatterElements(OpContext& c) {
  const at::Tensor& x = c.in(0);
  int64_t axis = NormAxis(c.node.attr_int("axis", 0), x.dim(), c.node);
  at::Tensor idx = NonNegative(c.in(1), x.size(axis));
  std::string red = c.node.attr_string("reduction", "none");
  if (red == "add") return {x.scatter_add(axis, idx, c.in(2))};
  return {x.scatter(axis, idx, c.in(2))};
}
std::string CheckScatter(const ir::Node& n) {
  std::string r = n.attr_string("reduction", "none");
  return r == "none" || r == "add" ? "" : "reduction '" + r + "'";
}

Outs Expand(OpContext& c) {
  const at::Tensor& x = c.in(0);
  std::vector<int64_t> shape = c.ints(1);
  // Bidirectional broadcast: the result is broadcast(x.shape, shape).
  std::vector<int64_t> xs = Sizes(x);
  size_t rank = std::max(xs.size(), shape.size());
  std::vector<int64_t> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t a = i < rank - xs.size() ? 1 : xs[i - (rank - xs.size())];
    int64_t b = i < rank - shape.size() ? 1 : shape[i - (rank - shape.size())];
    if (a != b && a != 1 && b != 1) c.Fail("shapes do not broadcast");
    out[i] = a == 1 ? b : a;
  }
  return {x.expand(out)};
}

Outs Tile(OpContext& c) { return {c.in(0).repeat(c.ints(1))}; }

Outs Shape(OpContext& c) {
  const at::Tensor& x = c.in(0);
  int64_t rank = x.dim();
  int64_t start = c.node.attr_int("start", 0), end = c.node.attr_int("end", rank);
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, start, rank);
  std::vector<int64_t> dims(x.sizes().begin() + start, x.sizes().begin() + end);
  return {at::tensor(dims, at::TensorOptions().dtype(at::kLong)).to(x.device())};
}

Outs Size(OpContext& c) {
  return {at::scalar_tensor(c.in(0).numel(), at::TensorOptions().dtype(at::kLong))
              .to(c.in(0).device())};
}

at::Tensor FromAttributeTensor(const ir::Tensor& t, const at::Device& dev) {
  return ToTorch(t, dev);
}

Outs Cast(OpContext& c) {
  ir::DType to = ir::DTypeFromOnnx(c.node.attr_int("to", 0));
  return {c.in(0).to(ToScalarType(to))};
}
std::string CheckCast(const ir::Node& n) {
  ir::DType to = ir::DTypeFromOnnx(n.attr_int("to", 0));
  try {
    ToScalarType(to);
  } catch (const Error&) {
    return std::string("cast to ") + ir::DTypeName(to);
  }
  if (to == ir::DType::kInt4 || to == ir::DType::kUInt4) return "cast to a 4-bit type";
  return "";
}
Outs CastLike(OpContext& c) { return {c.in(0).to(c.in(1).scalar_type())}; }

Outs ConstantOfShape(OpContext& c) {
  std::vector<int64_t> shape = c.ints(0);
  const ir::Attribute* v = c.node.attr("value");
  if (!v) return {at::zeros(shape, c.in(0).options().dtype(at::kFloat))};
  at::Tensor val = FromAttributeTensor(v->t, c.in(0).device());
  return {val.reshape({}).expand(shape).clone()};
}

Outs Constant(OpContext& c) {
  const ir::Node& n = c.node;
  at::Tensor t;
  if (const ir::Attribute* a = n.attr("value"))
    t = FromAttributeTensor(a->t, at::kCPU);
  else if (const ir::Attribute* a = n.attr("value_float"))
    t = at::scalar_tensor(a->f, at::kFloat);
  else if (const ir::Attribute* a = n.attr("value_int"))
    t = at::scalar_tensor(a->i, at::kLong);
  else if (const ir::Attribute* a = n.attr("value_floats"))
    t = at::tensor(a->floats);
  else if (const ir::Attribute* a = n.attr("value_ints"))
    t = at::tensor(a->ints);
  else
    c.Fail("no supported value attribute");
  return {t.to(c.device)};
}
std::string CheckConstant(const ir::Node& n) {
  if (const ir::Attribute* a = n.attr("value")) {
    if (a->t.dtype() == ir::DType::kString) return "string constant";
    try {
      ToScalarType(a->t.dtype());
    } catch (const Error&) {
      return std::string("constant of dtype ") + ir::DTypeName(a->t.dtype());
    }
    return "";
  }
  for (const char* k : {"value_float", "value_int", "value_floats", "value_ints"})
    if (n.has_attr(k)) return "";
  return "sparse or string constant";
}

Outs Range(OpContext& c) {
  const at::Tensor& s = c.in(0);
  at::Scalar start = s.detach().to(at::kCPU).item(), limit = c.in(1).detach().to(at::kCPU).item(),
             delta = c.in(2).detach().to(at::kCPU).item();
  // ONNX: max(ceil((limit - start) / delta), 0) elements start + i * delta.
  double n = std::ceil((limit.toDouble() - start.toDouble()) / delta.toDouble());
  int64_t count = std::max<int64_t>(0, static_cast<int64_t>(n));
  at::Tensor i = at::arange(count, s.options().dtype(at::kDouble));
  return {(i * delta.toDouble() + start.toDouble()).to(s.scalar_type())};
}

// Pad: constant via constant_pad_nd (negative pads crop); reflect/edge/wrap gather the
// source index along each padded axis.
Outs Pad(OpContext& c) {
  at::Tensor x = c.in(0);
  std::vector<int64_t> pads = c.ints(1);
  int64_t rank = x.dim();
  std::vector<int64_t> axes;
  if (c.has(3)) {
    for (int64_t a : c.ints(3)) axes.push_back(NormAxis(a, rank, c.node));
  } else {
    for (int64_t a = 0; a < rank; ++a) axes.push_back(a);
  }
  size_t n = axes.size();
  if (pads.size() != 2 * n) c.Fail("pads has " + std::to_string(pads.size()) + " values");
  std::string mode = c.node.attr_string("mode", "constant");
  if (mode == "constant") {
    double value = c.has(2) && c.in(2).numel() == 1 ? c.scalar(2) : 0.0;
    std::vector<int64_t> tp(2 * static_cast<size_t>(rank), 0);
    for (size_t i = 0; i < n; ++i) {
      size_t from_last = static_cast<size_t>(rank - 1 - axes[i]);
      tp[2 * from_last] = pads[i];
      tp[2 * from_last + 1] = pads[i + n];
    }
    return {at::constant_pad_nd(x, tp, value)};
  }
  for (size_t i = 0; i < n; ++i) {
    int64_t a = axes[i], dim = x.size(a), b = pads[i], e = pads[i + n];
    if (b < 0) x = x.narrow(a, -b, x.size(a) + b), dim += b, b = 0;
    if (e < 0) x = x.narrow(a, 0, x.size(a) + e), dim += e, e = 0;
    if (b == 0 && e == 0) continue;
    at::Tensor j = at::arange(-b, dim + e, at::TensorOptions().dtype(at::kLong));
    if (mode == "edge") {
      j = j.clamp(0, dim - 1);
    } else if (mode == "wrap") {
      j = at::remainder(j, dim);
    } else {  // reflect, period 2 * (dim - 1)
      if (dim < 2) c.Fail("reflect padding of an axis of size " + std::to_string(dim));
      int64_t period = 2 * (dim - 1);
      j = at::remainder(j, period);
      j = at::where(j >= dim, period - j, j);
    }
    x = x.index_select(a, j.to(x.device()));
  }
  return {x};
}
std::string CheckPad(const ir::Node& n) {
  std::string m = n.attr_string("mode", "constant");
  return m == "constant" || m == "reflect" || m == "edge" || m == "wrap" ? "" : "mode '" + m + "'";
}

Outs DepthToSpace(OpContext& c) {
  const at::Tensor& x = c.in(0);
  int64_t b = c.node.attr_int("blocksize", 0);
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor t;
  if (c.node.attr_string("mode", "DCR") == "DCR")
    t = x.reshape({N, b, b, C / (b * b), H, W}).permute({0, 3, 4, 1, 5, 2});
  else
    t = x.reshape({N, C / (b * b), b, b, H, W}).permute({0, 1, 4, 2, 5, 3});
  return {t.reshape({N, C / (b * b), H * b, W * b})};
}

Outs SpaceToDepth(OpContext& c) {
  const at::Tensor& x = c.in(0);
  int64_t b = c.node.attr_int("blocksize", 0);
  int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  return {x.reshape({N, C, H / b, b, W / b, b})
              .permute({0, 3, 5, 1, 2, 4})
              .reshape({N, C * b * b, H / b, W / b})};
}

Outs OneHot(OpContext& c) {
  at::Tensor idx = c.in(0).to(at::kLong);
  int64_t depth = static_cast<int64_t>(c.scalar(1));
  const at::Tensor& values = c.in(2);
  int64_t rank = idx.dim() + 1;
  int64_t axis = NormAxis(c.node.attr_int("axis", -1), rank, c.node);
  idx = at::where(idx < 0, idx + depth, idx);
  std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
  shape[static_cast<size_t>(axis)] = depth;
  at::Tensor range = at::arange(depth, idx.options()).reshape(shape);
  at::Tensor hit = idx.unsqueeze(axis).eq(range);
  return {at::where(hit, values[1], values[0])};
}

Outs CumSum(OpContext& c) {
  at::Tensor x = c.in(0);
  int64_t axis = NormAxis(static_cast<int64_t>(c.scalar(1)), x.dim(), c.node);
  bool reverse = c.node.attr_int("reverse", 0) != 0,
       exclusive = c.node.attr_int("exclusive", 0) != 0;
  if (reverse) x = x.flip(axis);
  at::Tensor y = at::cumsum(x, axis, x.scalar_type());
  if (exclusive) {
    at::Tensor zero = at::zeros_like(y.narrow(axis, 0, 1));
    y = at::cat({zero, y.narrow(axis, 0, y.size(axis) - 1)}, axis);
  }
  return {reverse ? y.flip(axis) : y};
}

Outs Trilu(OpContext& c) {
  int64_t k = c.has(1) ? static_cast<int64_t>(c.scalar(1)) : 0;
  if (c.node.attr_int("upper", 1)) return {at::triu(c.in(0), k)};
  return {at::tril(c.in(0), k)};
}

Outs TopK(OpContext& c) {
  const at::Tensor& x = c.in(0);
  int64_t k = c.ints(1).at(0);
  int64_t axis = NormAxis(c.node.attr_int("axis", -1), x.dim(), c.node);
  bool largest = c.node.attr_int("largest", 1) != 0;
  // A stable sort keeps equal values in index order, as ONNX asks.
  auto sorted = at::sort(x, /*stable=*/true, axis, /*descending=*/largest);
  at::Tensor v = std::get<0>(sorted).narrow(axis, 0, k);
  at::Tensor i = std::get<1>(sorted).narrow(axis, 0, k);
  return {v, i};
}

Outs NonZero(OpContext& c) { return {at::nonzero(c.in(0)).t().contiguous()}; }

Outs EyeLike(OpContext& c) {
  const at::Tensor& x = c.in(0);
  int64_t k = c.node.attr_int("k", 0);
  at::ScalarType st = c.node.has_attr("dtype")
                          ? ToScalarType(ir::DTypeFromOnnx(c.node.attr_int("dtype", 1)))
                          : x.scalar_type();
  at::Tensor rows = at::arange(x.size(0), x.options().dtype(at::kLong)).unsqueeze(1);
  at::Tensor cols = at::arange(x.size(1), x.options().dtype(at::kLong)).unsqueeze(0);
  return {(cols - rows).eq(k).to(st)};
}

Outs Einsum(OpContext& c) {
  std::vector<at::Tensor> ops;
  for (size_t i = 0; i < c.inputs.size(); ++i) ops.push_back(c.in(i));
  return {at::einsum(c.node.attr_string("equation", ""), ops)};
}

// ---- control flow ----------------------------------------------------------------------

const ir::Graph& GraphAttr(OpContext& c, const char* name) {
  const ir::Attribute* a = c.node.attr(name);
  if (!a || !a->g) c.Fail(std::string("missing graph attribute '") + name + "'");
  return *a->g;
}

Outs If(OpContext& c) {
  bool cond = c.in(0).detach().to(at::kCPU).to(at::kBool).item<bool>();
  return c.run_subgraph(GraphAttr(c, cond ? "then_branch" : "else_branch"), {});
}

// Loop(M, cond, v...) with body(iter, cond, v...) -> (cond, v..., scan...).
Outs Loop(OpContext& c) {
  const ir::Graph& body = GraphAttr(c, "body");
  int64_t max_trips = c.has(0) ? c.ints(0).at(0) : std::numeric_limits<int64_t>::max();
  bool cond = c.has(1) ? c.in(1).detach().to(at::kCPU).to(at::kBool).item<bool>() : true;
  std::vector<at::Tensor> state(c.inputs.begin() + 2, c.inputs.end());
  size_t num_scan = body.outputs().size() - 1 - state.size();
  std::vector<std::vector<at::Tensor>> scans(num_scan);
  at::Tensor cond_t = at::scalar_tensor(cond, at::kBool).to(c.device);
  for (int64_t i = 0; i < max_trips && cond; ++i) {
    std::vector<at::Tensor> in{at::scalar_tensor(i, at::kLong).to(c.device), cond_t};
    in.insert(in.end(), state.begin(), state.end());
    std::vector<at::Tensor> out = c.run_subgraph(body, in);
    cond_t = out[0];
    cond = out[0].detach().to(at::kCPU).to(at::kBool).item<bool>();
    for (size_t s = 0; s < state.size(); ++s) state[s] = out[1 + s];
    for (size_t s = 0; s < num_scan; ++s) scans[s].push_back(out[1 + state.size() + s]);
  }
  Outs result = state;
  for (auto& s : scans) {
    if (s.empty()) c.Fail("Loop ran zero iterations: scan output shapes are unknown");
    result.push_back(at::stack(s, 0));
  }
  return result;
}

}  // namespace

void AddTensorConverters(std::vector<ConverterDef>& out) {
  std::vector<ConverterDef> defs = {
      {"Reshape", "", Reshape},
      {"Flatten", "", Flatten},
      {"Transpose", "", Transpose},
      {"Squeeze", "", Squeeze},
      {"Unsqueeze", "", Unsqueeze},
      {"Concat", "", Concat},
      {"Split", "", Split},
      {"Slice", "", Slice},
      {"Gather", "", Gather},
      {"GatherElements", "", GatherElements},
      {"ScatterElements", "", ScatterElements, CheckScatter},
      {"Expand", "", Expand},
      {"Tile", "", Tile},
      {"Shape", "", Shape},
      {"Size", "", Size},
      {"Cast", "", Cast, CheckCast},
      {"CastLike", "", CastLike},
      {"ConstantOfShape", "", ConstantOfShape},
      {"Constant", "", Constant, CheckConstant},
      {"Range", "", Range},
      {"Pad", "", Pad, CheckPad},
      {"DepthToSpace", "", DepthToSpace},
      {"SpaceToDepth", "", SpaceToDepth},
      {"OneHot", "", OneHot},
      {"CumSum", "", CumSum},
      {"Trilu", "", Trilu},
      {"TopK", "", TopK},
      {"NonZero", "", NonZero},
      {"EyeLike", "", EyeLike},
      {"Einsum", "", Einsum},
      {"If", "", If},
      {"Loop", "", Loop},
  };
  out.insert(out.end(), defs.begin(), defs.end());
}

}  // namespace edgepress::runtime::torch_ops
