// Quantized ops, run by dequantizing (docs/torch_backend.md):
//   QuantizeLinear / DequantizeLinear   per tensor, per axis, or blocked (opset 21)
//   DynamicQuantizeLinear               uint8, onnxruntime's parameter rule (all-zero -> scale 1)
//   MatMulInteger / ConvInteger         exact: zero points subtracted, products in float64
//   QLinearMatMul / QLinearConv         exact integer accumulation, requantized with the
//                                       float32 multiplier the native kernels use
//   com.microsoft DynamicQuantizeMatMul A quantized per call like DynamicQuantizeLinear
//   com.microsoft MatMulNBits           4-bit blocks unpacked, (q - zp) * scale, float MatMul
// Rounding is half-to-even (at::round), division by the scale as in the ONNX reference, so
// values agree with the native kernels; round() has no gradient, a fake-quant training
// loop wraps these in its own straight-through estimator.
#include <ATen/ATen.h>

#include "ir/error.h"
#include "runtime/torch/torch_ops.h"

namespace edgepress::runtime::torch_ops {

namespace {

using Outs = std::vector<at::Tensor>;

// The dtype a zero point input declares in the IR (int4 tensors arrive unpacked as int8).
ir::DType DeclaredDType(const ir::Node& n, size_t i) {
  const ir::Value* v = n.input(i);
  if (!v) return ir::DType::kUndefined;
  if (v->initializer()) return v->initializer()->dtype();
  return v->type.dtype;
}

void Range(ir::DType t, double* lo, double* hi) {
  switch (t) {
    case ir::DType::kInt8:
      *lo = -128;
      *hi = 127;
      return;
    case ir::DType::kInt4:
      *lo = -8;
      *hi = 7;
      return;
    case ir::DType::kUInt4:
      *lo = 0;
      *hi = 15;
      return;
    case ir::DType::kInt16:
      *lo = -32768;
      *hi = 32767;
      return;
    case ir::DType::kUInt16:
      *lo = 0;
      *hi = 65535;
      return;
    case ir::DType::kInt32:
      *lo = -2147483648.0;
      *hi = 2147483647.0;
      return;
    default:
      *lo = 0;
      *hi = 255;
      return;
  }
}

// Scale/zero point shaped to broadcast against x: per tensor, per `axis`, or per block of
// `block_size` along `axis`.
at::Tensor AlongAxis(const OpContext& c, const at::Tensor& p, const at::Tensor& x) {
  if (p.numel() == 1 && c.node.attr_int("block_size", 0) == 0) return p.reshape({});
  int64_t axis = NormAxis(c.node.attr_int("axis", 1), x.dim(), c.node);
  int64_t block = c.node.attr_int("block_size", 0);
  if (block > 0) {
    return p.repeat_interleave(block, axis).narrow(axis, 0, x.size(axis));
  }
  if (p.dim() != 1 || p.size(0) != x.size(axis))
    c.Fail("per-axis scale/zero point of " + std::to_string(p.numel()) + " values for axis " +
           std::to_string(axis) + " of size " + std::to_string(x.size(axis)));
  std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
  shape[static_cast<size_t>(axis)] = p.size(0);
  return p.reshape(shape);
}

at::Tensor Quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zp,
                    ir::DType out, at::ScalarType st) {
  double lo, hi;
  Range(out, &lo, &hi);
  at::Tensor v = at::round(x.to(at::kFloat) / scale.to(at::kFloat));
  if (zp.defined()) v = v + zp.to(at::kFloat);
  return at::clamp(v, lo, hi).to(st);
}

at::Tensor Dequantize(const at::Tensor& q, const at::Tensor& scale, const at::Tensor& zp) {
  at::Tensor v = q.to(at::kFloat);
  if (zp.defined()) v = v - zp.to(at::kFloat);
  return v * scale;
}

Outs QuantizeLinear(OpContext& c) {
  const at::Tensor& x = c.in(0);
  ir::DType out = c.has(2) ? DeclaredDType(c.node, 2) : ir::DType::kUInt8;
  if (c.node.has_attr("output_dtype") && !c.has(2))
    out = ir::DTypeFromOnnx(c.node.attr_int("output_dtype", 2));
  at::Tensor scale = AlongAxis(c, c.in(1), x);
  at::Tensor zp = c.has(2) ? AlongAxis(c, c.in(2), x) : at::Tensor();
  return {Quantize(x, scale, zp, out, ToScalarType(out))};
}

Outs DequantizeLinear(OpContext& c) {
  const at::Tensor& x = c.in(0);
  at::Tensor scale = AlongAxis(c, c.in(1), x);
  at::Tensor zp = c.has(2) ? AlongAxis(c, c.in(2), x) : at::Tensor();
  return {Dequantize(x, scale, zp).to(c.in(1).scalar_type())};
}

std::string CheckQdq(const ir::Node& n) {
  for (size_t i : {size_t{0}, size_t{2}}) {
    ir::DType t = DeclaredDType(n, i);
    if (t == ir::DType::kUInt16 || t == ir::DType::kUInt32 || t == ir::DType::kUInt64)
      return std::string("quantized type ") + ir::DTypeName(t);
  }
  return "";
}

struct U8 {
  at::Tensor q, scale, zp;  // q uint8; scale float scalar; zp uint8 scalar
};

U8 DynamicU8(const at::Tensor& x) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor mn = at::clamp_max(xf.min(), 0), mx = at::clamp_min(xf.max(), 0);
  at::Tensor scale = at::where(mx == mn, at::ones_like(mx), (mx - mn) / 255.0f);
  at::Tensor zp = at::round(at::clamp(-mn / scale, 0, 255));
  U8 r;
  r.q = at::clamp(at::round(xf / scale) + zp, 0, 255).to(at::kByte);
  r.scale = scale;
  r.zp = zp.to(at::kByte);
  return r;
}

Outs DynamicQuantizeLinear(OpContext& c) {
  U8 r = DynamicU8(c.in(0));
  return {r.q, r.scale, r.zp};
}

// (a - a_zp) x (b - b_zp) exactly: products and sums of 8-bit values fit float64's
// 53-bit mantissa for any K below 2^37.
at::Tensor IntMatMul(const at::Tensor& a, const at::Tensor& azp, const at::Tensor& b,
                     const at::Tensor& bzp) {
  at::Tensor ad = a.to(at::kDouble), bd = b.to(at::kDouble);
  if (azp.defined()) {
    at::Tensor z = azp.to(at::kDouble);
    // A 1-D a_zero_point is per row of A.
    if (z.dim() == 1 && z.numel() > 1) z = z.unsqueeze(-1);
    ad = ad - z;
  }
  if (bzp.defined()) bd = bd - bzp.to(at::kDouble);
  return at::matmul(ad, bd);
}

Outs MatMulInteger(OpContext& c) {
  at::Tensor azp = c.has(2) ? c.in(2) : at::Tensor(), bzp = c.has(3) ? c.in(3) : at::Tensor();
  return {IntMatMul(c.in(0), azp, c.in(1), bzp).to(at::kInt)};
}

std::vector<int64_t> Attr(const ir::Node& n, const char* name, size_t count, int64_t def) {
  std::vector<int64_t> v = n.attr_ints(name, {});
  if (v.empty()) v.assign(count, def);
  return v;
}

// Convolution of zero-point-corrected integers in float64 (exact).
at::Tensor IntConv(OpContext& c, const at::Tensor& x, const at::Tensor& xzp, const at::Tensor& w,
                   const at::Tensor& wzp) {
  at::Tensor xd = x.to(at::kDouble), wd = w.to(at::kDouble);
  size_t n = static_cast<size_t>(w.dim() - 2);
  if (xzp.defined()) xd = xd - xzp.to(at::kDouble);
  if (wzp.defined()) {
    at::Tensor z = wzp.to(at::kDouble);
    if (z.numel() > 1) {
      std::vector<int64_t> shape(static_cast<size_t>(w.dim()), 1);
      shape[0] = z.numel();
      z = z.reshape(shape);
    }
    wd = wd - z;
  }
  std::vector<int64_t> kernel(w.sizes().begin() + 2, w.sizes().end());
  std::vector<int64_t> strides = Attr(c.node, "strides", n, 1),
                       dil = Attr(c.node, "dilations", n, 1);
  // Padding adds the zero point's value (0 after the subtraction above).
  xd = PadSpatial(xd, ConvPads(c.node, x, kernel, strides, dil), 0.0);
  return at::convolution(xd, wd, {}, strides, std::vector<int64_t>(n, 0), dil, false,
                         std::vector<int64_t>(n, 0), c.node.attr_int("group", 1));
}

Outs ConvInteger(OpContext& c) {
  at::Tensor xzp = c.has(2) ? c.in(2) : at::Tensor(), wzp = c.has(3) ? c.in(3) : at::Tensor();
  return {IntConv(c, c.in(0), xzp, c.in(1), wzp).to(at::kInt)};
}

// y = saturate(round(acc * float32(a_scale * b_scale / y_scale)) + y_zp).
at::Tensor Requantize(const at::Tensor& acc, const at::Tensor& multiplier, const at::Tensor& yzp,
                      at::ScalarType st) {
  at::Tensor v = at::round((acc.to(at::kFloat) * multiplier)).to(at::kFloat);
  v = v + yzp.to(at::kFloat);
  double lo = st == at::kChar ? -128 : 0, hi = st == at::kChar ? 127 : 255;
  return at::clamp(v, lo, hi).to(st);
}

Outs QLinearMatMul(OpContext& c) {
  at::Tensor acc = IntMatMul(c.in(0), c.in(2), c.in(3), c.in(5));
  at::Tensor bs = c.in(4).to(at::kFloat);
  at::Tensor mult = c.in(1).to(at::kFloat) * bs / c.in(6).to(at::kFloat);
  return {Requantize(acc, mult, c.in(7), c.in(7).scalar_type())};
}

Outs QLinearConv(OpContext& c) {
  at::Tensor acc = IntConv(c, c.in(0), c.in(2), c.in(3), c.in(5));
  std::vector<int64_t> per_channel(static_cast<size_t>(acc.dim()), 1);
  per_channel[1] = -1;
  if (c.has(8)) acc = acc + c.in(8).to(at::kDouble).reshape(per_channel);
  at::Tensor ws = c.in(4).to(at::kFloat);
  if (ws.numel() > 1) ws = ws.reshape(per_channel);
  at::Tensor mult = c.in(1).to(at::kFloat) * ws / c.in(6).to(at::kFloat);
  return {Requantize(acc, mult, c.in(7), c.in(7).scalar_type())};
}

Outs DynamicQuantizeMatMul(OpContext& c) {
  U8 a = DynamicU8(c.in(0));
  at::Tensor bzp = c.has(3) ? c.in(3) : at::Tensor();
  at::Tensor acc = IntMatMul(a.q, a.zp, c.in(1), bzp);
  at::Tensor y = acc.to(at::kFloat) * (a.scale * c.in(2).to(at::kFloat));
  if (c.has(4)) y = y + c.in(4);
  return {y};
}

// The float weight [N, K] of MatMulNBits' 4-bit blocks.
at::Tensor NBitsWeight(OpContext& c) {
  int64_t K = c.node.attr_int("K", 0), N = c.node.attr_int("N", 0);
  int64_t block = c.node.attr_int("block_size", 0);
  int64_t blocks = (K + block - 1) / block;
  at::Tensor b = c.in(1).reshape({N, blocks * block / 2}).to(at::kShort);
  at::Tensor q = at::stack({at::bitwise_and(b, 0xF), at::bitwise_right_shift(b, 4)}, -1)
                     .reshape({N, blocks, block});
  at::Tensor scales = c.in(2).to(at::kFloat).reshape({N, blocks, 1});
  at::Tensor zp;
  if (c.has(3)) {
    const at::Tensor& z = c.in(3);
    if (z.scalar_type() == at::kByte) {
      int64_t per_row = (blocks + 1) / 2;
      at::Tensor zb = z.reshape({N, per_row}).to(at::kShort);
      zp = at::stack({at::bitwise_and(zb, 0xF), at::bitwise_right_shift(zb, 4)}, -1)
               .reshape({N, 2 * per_row})
               .narrow(1, 0, blocks)
               .to(at::kFloat)
               .reshape({N, blocks, 1});
    } else {
      zp = z.to(at::kFloat).reshape({N, blocks, 1});
    }
  } else {
    zp = at::full({1}, 8.0, scales.options());
  }
  at::Tensor w = (q.to(at::kFloat) - zp) * scales;
  return w.reshape({N, blocks * block}).narrow(1, 0, K);
}

Outs MatMulNBits(OpContext& c) {
  at::Tensor w = NBitsWeight(c).to(c.in(0).scalar_type());
  at::Tensor y = at::matmul(c.in(0), w.t());
  if (c.has(5)) y = y + c.in(5);
  return {y};
}

std::string CheckNBits(const ir::Node& n) {
  if (n.attr_int("bits", 4) != 4) return "bits=" + std::to_string(n.attr_int("bits", 4));
  if (n.num_inputs() > 4 && n.input(4)) return "g_idx input";
  if (n.attr_int("block_size", 0) < 2) return "block_size < 2";
  return "";
}

}  // namespace

void AddQuantConverters(std::vector<ConverterDef>& out) {
  std::vector<ConverterDef> defs = {
      {"QuantizeLinear", "", QuantizeLinear, CheckQdq},
      {"DequantizeLinear", "", DequantizeLinear, CheckQdq},
      {"DynamicQuantizeLinear", "", DynamicQuantizeLinear},
      {"MatMulInteger", "", MatMulInteger},
      {"ConvInteger", "", ConvInteger},
      {"QLinearMatMul", "", QLinearMatMul},
      {"QLinearConv", "", QLinearConv},
      {"DynamicQuantizeMatMul", "com.microsoft", DynamicQuantizeMatMul},
      {"MatMulNBits", "com.microsoft", MatMulNBits, CheckNBits},
  };
  out.insert(out.end(), defs.begin(), defs.end());
}

}  // namespace edgepress::runtime::torch_ops
