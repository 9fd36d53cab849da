// Elementwise, activation and reduction converters. ONNX broadcasting is numpy's, as is
// LibTorch's, so binary ops map one to one; integer Div truncates (C semantics, as the
// native kernels and onnxruntime do) and integer Mod follows the `fmod` attribute.
#include <ATen/ATen.h>

#include <cmath>

#include "ir/error.h"
#include "runtime/torch/torch_ops.h"

namespace edgepress::runtime::torch_ops {

namespace {

using Outs = std::vector<at::Tensor>;

bool IsFloating(const at::Tensor& t) { return at::isFloatingType(t.scalar_type()); }

template <at::Tensor (*F)(const at::Tensor&)>
Outs Unary(OpContext& c) {
  return {F(c.in(0))};
}

at::Tensor Identity(const at::Tensor& x) { return x; }
at::Tensor Softsign(const at::Tensor& x) { return x / (1 + at::abs(x)); }
at::Tensor HardSwish(const at::Tensor& x) { return x * at::clamp(x / 6.0 + 0.5, 0, 1); }
at::Tensor Mish(const at::Tensor& x) { return x * at::tanh(at::softplus(x)); }
at::Tensor Softplus(const at::Tensor& x) { return at::softplus(x); }
at::Tensor Reciprocal(const at::Tensor& x) { return at::reciprocal(x); }
at::Tensor Not(const at::Tensor& x) { return at::logical_not(x); }
at::Tensor IsNaN(const at::Tensor& x) { return at::isnan(x); }
at::Tensor Round(const at::Tensor& x) { return at::round(x); }  // half to even

Outs Neg(OpContext& c) { return {at::neg(c.in(0))}; }
Outs Abs(OpContext& c) { return {at::abs(c.in(0))}; }
Outs Sign(OpContext& c) { return {at::sign(c.in(0))}; }

Outs LeakyRelu(OpContext& c) {
  return {at::leaky_relu(c.in(0), c.node.attr_float("alpha", 0.01f))};
}
Outs Elu(OpContext& c) {
  const at::Tensor& x = c.in(0);
  double a = c.node.attr_float("alpha", 1.0f);
  return {at::where(x > 0, x, a * (at::exp(x) - 1))};
}
Outs Celu(OpContext& c) {
  const at::Tensor& x = c.in(0);
  double a = c.node.attr_float("alpha", 1.0f);
  return {at::clamp_min(x, 0) + at::clamp_max(a * (at::exp(x / a) - 1), 0)};
}
Outs Selu(OpContext& c) {
  const at::Tensor& x = c.in(0);
  double a = c.node.attr_float("alpha", 1.67326319217681884765625f);
  double g = c.node.attr_float("gamma", 1.05070102214813232421875f);
  return {g * at::where(x > 0, x, a * (at::exp(x) - 1))};
}
Outs ThresholdedRelu(OpContext& c) {
  const at::Tensor& x = c.in(0);
  return {at::where(x > c.node.attr_float("alpha", 1.0f), x, at::zeros_like(x))};
}
Outs HardSigmoid(OpContext& c) {
  double a = c.node.attr_float("alpha", 0.2f), b = c.node.attr_float("beta", 0.5f);
  return {at::clamp(c.in(0) * a + b, 0, 1)};
}
Outs Gelu(OpContext& c) {
  std::string approx = c.node.attr_string("approximate", "none");
  return {at::gelu(c.in(0), approx)};
}
// com.microsoft FastGelu: the tanh form (fuse-gelu writes it); its optional bias is refused
// as by the native kernel.
Outs FastGelu(OpContext& c) {
  if (c.node.num_inputs() > 1 && c.node.input(1))
    throw Error(ErrorCode::kUnsupported, c.node.describe() + ": FastGelu with a bias input is not "
                                                             "supported; add the bias with an Add before it");
  return {at::gelu(c.in(0), "tanh")};
}
Outs PRelu(OpContext& c) {
  const at::Tensor& x = c.in(0);
  at::Tensor slope = c.in(1);
  // Models exported before opset 7 carry a per-channel slope [C] for an N-D input, which
  // numpy broadcasting would align with the last axis; it means axis 1 (as in the native
  // kernel and onnxruntime).
  if (slope.dim() == 1 && x.dim() > 2 && slope.size(0) == x.size(1) &&
      slope.size(0) != x.size(-1)) {
    std::vector<int64_t> shape(static_cast<size_t>(x.dim() - 1), 1);
    shape[0] = slope.size(0);
    slope = slope.reshape(shape);
  }
  return {at::where(x < 0, x * slope, x)};
}
Outs IsInf(OpContext& c) {
  const at::Tensor& x = c.in(0);
  bool pos = c.node.attr_int("detect_positive", 1), neg = c.node.attr_int("detect_negative", 1);
  at::Tensor inf = at::isinf(x);
  if (!pos) inf = at::logical_and(inf, x < 0);
  if (!neg) inf = at::logical_and(inf, x > 0);
  return {inf};
}
Outs Clip(OpContext& c) {
  at::Tensor y = c.in(0);
  // Bounds are constants (scalars): clamp with a Scalar keeps the dtype, ints included.
  if (c.has(1)) y = at::clamp_min(y, c.in(1).detach().to(at::kCPU).item());
  if (c.has(2)) y = at::clamp_max(y, c.in(2).detach().to(at::kCPU).item());
  return {y};
}
Outs Dropout(OpContext& c) {
  Outs out{c.in(0)};
  if (c.wants(1)) out.push_back(at::ones_like(c.in(0), at::kBool));
  return out;
}

template <at::Tensor (*F)(const at::Tensor&, const at::Tensor&)>
Outs Binary(OpContext& c) {
  return {F(c.in(0), c.in(1))};
}

at::Tensor Add(const at::Tensor& a, const at::Tensor& b) { return a + b; }
at::Tensor Sub(const at::Tensor& a, const at::Tensor& b) { return a - b; }
at::Tensor Mul(const at::Tensor& a, const at::Tensor& b) { return a * b; }
at::Tensor Div(const at::Tensor& a, const at::Tensor& b) {
  if (!IsFloating(a)) return at::div(a, b, "trunc");
  return a / b;
}
at::Tensor Pow(const at::Tensor& a, const at::Tensor& b) {
  // ONNX: the result has X's type, whatever Y's is.
  at::Tensor y = at::pow(a, b);
  return y.scalar_type() == a.scalar_type() ? y : y.to(a.scalar_type());
}
at::Tensor Equal(const at::Tensor& a, const at::Tensor& b) { return at::eq(a, b); }
at::Tensor Less(const at::Tensor& a, const at::Tensor& b) { return at::lt(a, b); }
at::Tensor Greater(const at::Tensor& a, const at::Tensor& b) { return at::gt(a, b); }
at::Tensor LessOrEqual(const at::Tensor& a, const at::Tensor& b) { return at::le(a, b); }
at::Tensor GreaterOrEqual(const at::Tensor& a, const at::Tensor& b) { return at::ge(a, b); }
at::Tensor And(const at::Tensor& a, const at::Tensor& b) { return at::logical_and(a, b); }
at::Tensor Or(const at::Tensor& a, const at::Tensor& b) { return at::logical_or(a, b); }
at::Tensor Xor(const at::Tensor& a, const at::Tensor& b) { return at::logical_xor(a, b); }

Outs Mod(OpContext& c) {
  const at::Tensor& a = c.in(0);
  const at::Tensor& b = c.in(1);
  if (c.node.attr_int("fmod", 0)) return {at::fmod(a, b)};
  return {at::remainder(a, b)};  // the sign of the divisor, as Python's %
}
Outs BitShift(OpContext& c) {
  std::string dir = c.node.attr_string("direction", "");
  if (dir == "LEFT") return {at::bitwise_left_shift(c.in(0), c.in(1))};
  return {at::bitwise_right_shift(c.in(0), c.in(1))};
}
std::string CheckBitShift(const ir::Node& n) {
  std::string d = n.attr_string("direction", "");
  return d == "LEFT" || d == "RIGHT" ? "" : "direction '" + d + "'";
}

Outs Where(OpContext& c) { return {at::where(c.in(0), c.in(1), c.in(2))}; }

// Variadic Sum/Mean/Max/Min with broadcasting.
Outs Sum(OpContext& c) {
  at::Tensor y = c.in(0);
  for (size_t i = 1; i < c.inputs.size(); ++i) y = y + c.in(i);
  return {y};
}
Outs Mean(OpContext& c) {
  Outs s = Sum(c);
  return {s[0] / static_cast<double>(c.inputs.size())};
}
Outs Max(OpContext& c) {
  at::Tensor y = c.in(0);
  for (size_t i = 1; i < c.inputs.size(); ++i) y = at::maximum(y, c.in(i));
  return {y};
}
Outs Min(OpContext& c) {
  at::Tensor y = c.in(0);
  for (size_t i = 1; i < c.inputs.size(); ++i) y = at::minimum(y, c.in(i));
  return {y};
}

// Softmax-family axis handling: before opset 13 the input is coerced to 2-D at `axis`.
template <int kMode>  // 0 softmax, 1 log-softmax, 2 hardmax
Outs SoftmaxLike(OpContext& c) {
  const at::Tensor& x = c.in(0);
  bool legacy = c.opset > 0 && c.opset < 13;
  int64_t axis = NormAxis(c.node.attr_int("axis", legacy ? 1 : -1), x.dim(), c.node);
  at::Tensor v = x;
  int64_t a = axis;
  if (legacy) {
    int64_t outer = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= x.size(d);
    v = x.reshape({outer, -1});
    a = 1;
  }
  at::Tensor y;
  if (kMode == 0)
    y = at::softmax(v, a);
  else if (kMode == 1)
    y = at::log_softmax(v, a);
  else
    y = at::zeros_like(v).scatter_(a, at::argmax(v, a, true), 1);
  return {legacy ? y.reshape(x.sizes()) : y};
}

// Reductions; axes come from the second input (opset 18, ReduceSum 13) or the attribute.
std::vector<int64_t> ReduceAxes(OpContext& c, bool* all) {
  std::vector<int64_t> axes = c.has(1) ? c.ints(1) : c.node.attr_ints("axes", {});
  *all = axes.empty();
  for (int64_t& a : axes) a = NormAxis(a, c.in(0).dim(), c.node);
  return axes;
}

template <int kOp>
Outs Reduce(OpContext& c) {
  at::Tensor x = c.in(0);
  bool keep = c.node.attr_int("keepdims", 1) != 0;
  bool all = false;
  std::vector<int64_t> axes = ReduceAxes(c, &all);
  if (all) {
    if (c.node.attr_int("noop_with_empty_axes", 0)) return {x};
    for (int64_t i = 0; i < x.dim(); ++i) axes.push_back(i);
  }
  // 0 sum, 1 mean, 2 max, 3 min, 4 prod, 5 sumsquare, 6 l1, 7 l2, 8 logsum, 9 logsumexp
  switch (kOp) {
    case 0:
      return {at::sum(x, axes, keep, x.scalar_type())};
    case 1:
      return {at::mean(x, axes, keep)};
    case 2:
      return {axes.empty() ? x : at::amax(x, axes, keep)};
    case 3:
      return {axes.empty() ? x : at::amin(x, axes, keep)};
    case 4: {
      std::vector<int64_t> sorted = axes;
      std::sort(sorted.rbegin(), sorted.rend());
      at::Tensor y = x;
      for (int64_t a : sorted) y = at::prod(y, a, /*keepdim=*/true);
      if (!keep)
        for (int64_t a : sorted) y = y.squeeze(a);
      return {y};
    }
    case 5:
      return {at::sum(x * x, axes, keep, x.scalar_type())};
    case 6:
      return {at::sum(at::abs(x), axes, keep, x.scalar_type())};
    case 7:
      return {at::sqrt(at::sum(x * x, axes, keep))};
    case 8:
      return {at::log(at::sum(x, axes, keep))};
    default:
      return {at::logsumexp(x, axes, keep)};
  }
}

template <bool kMax>
Outs ArgReduce(OpContext& c) {
  at::Tensor x = c.in(0);
  int64_t axis = NormAxis(c.node.attr_int("axis", 0), x.dim(), c.node);
  bool keep = c.node.attr_int("keepdims", 1) != 0;
  bool last = c.node.attr_int("select_last_index", 0) != 0;
  if (last) x = x.flip(axis);
  at::Tensor idx = kMax ? at::argmax(x, axis, true) : at::argmin(x, axis, true);
  if (last) idx = (x.size(axis) - 1) - idx;
  return {keep ? idx : idx.squeeze(axis)};
}

}  // namespace

void AddElementwiseConverters(std::vector<ConverterDef>& out) {
  std::vector<ConverterDef> defs = {
      {"Identity", "", Unary<Identity>},
      {"Abs", "", Abs},
      {"Neg", "", Neg},
      {"Sign", "", Sign},
      {"Exp", "", Unary<at::exp>},
      {"Log", "", Unary<at::log>},
      {"Sqrt", "", Unary<at::sqrt>},
      {"Reciprocal", "", Unary<Reciprocal>},
      {"Floor", "", Unary<at::floor>},
      {"Ceil", "", Unary<at::ceil>},
      {"Round", "", Unary<Round>},
      {"Sigmoid", "", Unary<at::sigmoid>},
      {"Tanh", "", Unary<at::tanh>},
      {"Relu", "", Unary<at::relu>},
      {"Erf", "", Unary<at::erf>},
      {"Sin", "", Unary<at::sin>},
      {"Cos", "", Unary<at::cos>},
      {"Tan", "", Unary<at::tan>},
      {"Asin", "", Unary<at::asin>},
      {"Acos", "", Unary<at::acos>},
      {"Atan", "", Unary<at::atan>},
      {"Sinh", "", Unary<at::sinh>},
      {"Cosh", "", Unary<at::cosh>},
      {"Asinh", "", Unary<at::asinh>},
      {"Acosh", "", Unary<at::acosh>},
      {"Atanh", "", Unary<at::atanh>},
      {"Softplus", "", Unary<Softplus>},
      {"Softsign", "", Unary<Softsign>},
      {"HardSwish", "", Unary<HardSwish>},
      {"Mish", "", Unary<Mish>},
      {"Not", "", Unary<Not>},
      {"IsNaN", "", Unary<IsNaN>},
      {"IsInf", "", IsInf},
      {"LeakyRelu", "", LeakyRelu},
      {"Elu", "", Elu},
      {"Celu", "", Celu},
      {"Selu", "", Selu},
      {"ThresholdedRelu", "", ThresholdedRelu},
      {"HardSigmoid", "", HardSigmoid},
      {"Gelu", "", Gelu},
      {"Gelu", "com.microsoft", Gelu},
      {"FastGelu", "com.microsoft", FastGelu},
      {"PRelu", "", PRelu},
      {"Clip", "", Clip},
      {"Dropout", "", Dropout},
      {"Add", "", Binary<Add>},
      {"Sub", "", Binary<Sub>},
      {"Mul", "", Binary<Mul>},
      {"Div", "", Binary<Div>},
      {"Pow", "", Binary<Pow>},
      {"Mod", "", Mod},
      {"BitShift", "", BitShift, CheckBitShift},
      {"Equal", "", Binary<Equal>},
      {"Less", "", Binary<Less>},
      {"Greater", "", Binary<Greater>},
      {"LessOrEqual", "", Binary<LessOrEqual>},
      {"GreaterOrEqual", "", Binary<GreaterOrEqual>},
      {"And", "", Binary<And>},
      {"Or", "", Binary<Or>},
      {"Xor", "", Binary<Xor>},
      {"Where", "", Where},
      {"Sum", "", Sum},
      {"Mean", "", Mean},
      {"Max", "", Max},
      {"Min", "", Min},
      {"Softmax", "", SoftmaxLike<0>},
      {"LogSoftmax", "", SoftmaxLike<1>},
      {"Hardmax", "", SoftmaxLike<2>},
      {"ReduceSum", "", Reduce<0>},
      {"ReduceMean", "", Reduce<1>},
      {"ReduceMax", "", Reduce<2>},
      {"ReduceMin", "", Reduce<3>},
      {"ReduceProd", "", Reduce<4>},
      {"ReduceSumSquare", "", Reduce<5>},
      {"ReduceL1", "", Reduce<6>},
      {"ReduceL2", "", Reduce<7>},
      {"ReduceLogSum", "", Reduce<8>},
      {"ReduceLogSumExp", "", Reduce<9>},
      {"ArgMax", "", ArgReduce<true>},
      {"ArgMin", "", ArgReduce<false>},
  };
  out.insert(out.end(), defs.begin(), defs.end());
}

}  // namespace edgepress::runtime::torch_ops
