// Shared by conv.cc and conv_transpose.cc: reading and validating the convolution
// attributes (kernel_shape, strides, dilations, pads, auto_pad, group) against the input
// and weight shapes, so that both ops report bad attributes the same way, naming the node.
// Spatial shapes are normalised to 3-D (missing leading dims are 1) so one code path serves
// Conv1d, Conv2d and Conv3d.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ir/error.h"
#include "ir/graph.h"
#include "runtime/kernel.h"
#include "runtime/kernels/gemm/gemm_op_util.h"

namespace edgepress::runtime::conv_util {

// Attributes larger than this are rejected, so that sums like in + pad_begin + pad_end
// cannot overflow int64.
constexpr int64_t kMaxAttr = int64_t{1} << 31;

struct ConvAttrs {
  std::string auto_pad = "NOTSET";
  std::vector<int64_t> kernel_shape, strides, dilations, pads, output_padding, output_shape;
  int64_t group = 1;

  static ConvAttrs Read(const ir::Node& node) {
    ConvAttrs a;
    a.auto_pad = node.attr_string("auto_pad", "NOTSET");
    a.kernel_shape = node.attr_ints("kernel_shape");
    a.strides = node.attr_ints("strides");
    a.dilations = node.attr_ints("dilations");
    a.pads = node.attr_ints("pads");
    a.output_padding = node.attr_ints("output_padding");
    a.output_shape = node.attr_ints("output_shape");
    a.group = node.attr_int("group", 1);
    if (a.auto_pad != "NOTSET" && a.auto_pad != "SAME_UPPER" && a.auto_pad != "SAME_LOWER" &&
        a.auto_pad != "VALID")
      ThrowInvalid(node.describe() + ": unknown auto_pad '" + a.auto_pad + "'");
    return a;
  }
};

// A convolution's shapes, normalised to 3 spatial dims. For ConvTranspose, `in` is the
// (small) input and `out` the (large) output, and c/m are its input/output channels.
struct ConvGeometry {
  int rank = 0;  // spatial rank of the model, 1..3
  int64_t n = 0, c = 0, m = 0, group = 1, cg = 0, mg = 0;
  int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1}, dil[3] = {1, 1, 1}, pad_b[3] = {0, 0, 0};
  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
  int64_t k_size() const { return k[0] * k[1] * k[2]; }
  std::vector<int64_t> OutputShape() const {
    std::vector<int64_t> s = {n, m};
    for (int i = 3 - rank; i < 3; ++i) s.push_back(out[i]);
    return s;
  }
};

inline void CheckList(const ir::Node& node, const char* name, const std::vector<int64_t>& v,
                      size_t want, int64_t min_value) {
  if (v.empty()) return;
  if (v.size() != want)
    ThrowInvalid(node.describe() + ": attribute '" + name + "' has " + std::to_string(v.size()) +
                 " values, expected " + std::to_string(want));
  for (int64_t x : v)
    if (x < min_value || x > kMaxAttr)
      ThrowInvalid(node.describe() + ": attribute '" + name + "' has value " +
                   std::to_string(x) + " out of range");
}

// Common checks of X, W and the attributes; fills everything but `out` and `pad_b`.
// `transpose` selects ConvTranspose's weight layout [C, M/group, k...].
inline ConvGeometry BaseGeometry(const ir::Node& node, const ConvAttrs& a,
                                 const std::vector<int64_t>& xs, const std::vector<int64_t>& ws,
                                 bool transpose) {
  using gemm_util::DimsToString;
  if (xs.size() < 3 || xs.size() > 5)
    ThrowUnsupported(node.describe() + ": input X of shape " + DimsToString(xs) +
                     " is not 1-D, 2-D or 3-D NC... data");
  if (ws.size() != xs.size())
    ThrowInvalid(node.describe() + ": weight W of shape " + DimsToString(ws) +
                 " does not match the rank of X " + DimsToString(xs));
  ConvGeometry g;
  g.rank = static_cast<int>(xs.size()) - 2;
  const size_t r = static_cast<size_t>(g.rank);
  if (a.group < 1 || a.group > kMaxAttr)
    ThrowInvalid(node.describe() + ": group " + std::to_string(a.group) + " is not positive");
  g.group = a.group;
  g.n = xs[0];
  g.c = xs[1];
  if (g.c % g.group != 0)
    ThrowInvalid(node.describe() + ": " + std::to_string(g.c) +
                 " input channels are not divisible by group " + std::to_string(g.group));
  g.cg = g.c / g.group;
  if (!transpose) {
    g.m = ws[0];
    g.mg = g.m / g.group;
    if (ws[1] != g.cg)
      ThrowInvalid(node.describe() + ": channel mismatch: X has " + std::to_string(g.c) +
                   " channels, so W" + DimsToString(ws) + " needs " + std::to_string(g.cg) +
                   " per group (group " + std::to_string(g.group) + ")");
    if (g.m % g.group != 0)
      ThrowInvalid(node.describe() + ": " + std::to_string(g.m) +
                   " output channels are not divisible by group " + std::to_string(g.group));
  } else {
    if (ws[0] != g.c)
      ThrowInvalid(node.describe() + ": channel mismatch: X has " + std::to_string(g.c) +
                   " channels but W" + DimsToString(ws) + " expects " + std::to_string(ws[0]));
    g.mg = ws[1];
    g.m = g.mg * g.group;
  }
  CheckList(node, "kernel_shape", a.kernel_shape, r, 1);
  CheckList(node, "strides", a.strides, r, 1);
  CheckList(node, "dilations", a.dilations, r, 1);
  CheckList(node, "pads", a.pads, 2 * r, 0);
  for (size_t i = 0; i < r; ++i) {
    const size_t d = 3 - r + i;
    g.in[d] = xs[2 + i];
    g.k[d] = ws[2 + i];
    if (g.k[d] < 1)
      ThrowInvalid(node.describe() + ": weight W" + DimsToString(ws) + " has an empty kernel");
    if (!a.kernel_shape.empty() && a.kernel_shape[i] != g.k[d])
      ThrowInvalid(node.describe() + ": kernel_shape " + DimsToString(a.kernel_shape) +
                   " does not match W" + DimsToString(ws));
    if (!a.strides.empty()) g.stride[d] = a.strides[i];
    if (!a.dilations.empty()) g.dil[d] = a.dilations[i];
  }
  return g;
}

// Rejects outputs past 2^40 elements (or whose size overflows) before anything allocates.
inline void CheckOutputSize(const ir::Node& node, const ConvGeometry& g) {
  uint64_t total = 1;
  for (int64_t v : g.OutputShape())
    if (MulOverflows(total, static_cast<uint64_t>(v), &total) || total > (uint64_t{1} << 40))
      ThrowInvalid(node.describe() + ": output of shape " +
                   gemm_util::DimsToString(g.OutputShape()) + " is too large");
}

// Conv: output dims and leading pads from pads/auto_pad.
inline ConvGeometry ConvForward(const ir::Node& node, const ConvAttrs& a,
                                const std::vector<int64_t>& xs, const std::vector<int64_t>& ws) {
  ConvGeometry g = BaseGeometry(node, a, xs, ws, false);
  const size_t r = static_cast<size_t>(g.rank);
  for (size_t i = 0; i < r; ++i) {
    const size_t d = 3 - r + i;
    const int64_t span = g.dil[d] * (g.k[d] - 1) + 1;
    int64_t pb = 0, pe = 0;
    if (a.auto_pad == "NOTSET") {
      if (!a.pads.empty()) {
        pb = a.pads[i];
        pe = a.pads[i + r];
      }
    } else if (a.auto_pad != "VALID") {
      const int64_t out = (g.in[d] + g.stride[d] - 1) / g.stride[d];
      const int64_t total = std::max<int64_t>(0, (out - 1) * g.stride[d] + span - g.in[d]);
      pb = a.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      pe = total - pb;
    }
    const int64_t padded = g.in[d] + pb + pe;
    if (padded < span)
      ThrowInvalid(node.describe() + ": kernel (extent " + std::to_string(span) +
                   " with dilation) is larger than the padded input (" + std::to_string(padded) +
                   ") in spatial dim " + std::to_string(i));
    g.out[d] = (padded - span) / g.stride[d] + 1;
    g.pad_b[d] = pb;
  }
  CheckOutputSize(node, g);
  return g;
}

// ConvTranspose: output dims and the leading crop ("pad") from pads, output_padding,
// output_shape and auto_pad, as in the ONNX spec.
inline ConvGeometry ConvTransposeForward(const ir::Node& node, const ConvAttrs& a,
                                         const std::vector<int64_t>& xs,
                                         const std::vector<int64_t>& ws) {
  ConvGeometry g = BaseGeometry(node, a, xs, ws, true);
  const size_t r = static_cast<size_t>(g.rank);
  CheckList(node, "output_padding", a.output_padding, r, 0);
  CheckList(node, "output_shape", a.output_shape, r, 1);
  for (size_t i = 0; i < r; ++i) {
    const size_t d = 3 - r + i;
    const int64_t span = g.dil[d] * (g.k[d] - 1) + 1;
    const int64_t opad = a.output_padding.empty() ? 0 : a.output_padding[i];
    if (opad >= g.stride[d] && opad >= g.dil[d])
      ThrowInvalid(node.describe() + ": output_padding " + std::to_string(opad) +
                   " must be smaller than the stride or the dilation");
    int64_t full;
    if (__builtin_mul_overflow(g.stride[d], std::max<int64_t>(0, g.in[d] - 1), &full) ||
        __builtin_add_overflow(full, opad + span, &full) || full > kMaxAttr * 64)
      ThrowInvalid(node.describe() + ": output size overflows in spatial dim " +
                   std::to_string(i));
    int64_t out, pb;
    if (!a.output_shape.empty() || (a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER")) {
      out = !a.output_shape.empty() ? a.output_shape[i] : g.in[d] * g.stride[d];
      const int64_t total = full - out;
      // A negative total means the requested output is larger: the extra is at the end.
      if (total < 0)
        pb = 0;
      else
        pb = a.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
    } else {
      int64_t pe = 0;
      pb = 0;
      if (a.auto_pad == "NOTSET" && !a.pads.empty()) {
        pb = a.pads[i];
        pe = a.pads[i + r];
      }
      out = full - pb - pe;
    }
    if (out < 1)
      ThrowInvalid(node.describe() + ": pads remove the whole output in spatial dim " +
                   std::to_string(i));
    g.out[d] = out;
    g.pad_b[d] = pb;
  }
  CheckOutputSize(node, g);
  return g;
}

// The float operands of a Conv/ConvTranspose node, validated: X, W, optional bias B (one
// value per output channel), the geometry from `forward` (ConvForward or
// ConvTransposeForward), and the allocated output Y.
struct FloatConvIo {
  const ir::Tensor* w = nullptr;
  ConvGeometry g;
  const float* x = nullptr;
  const float* wd = nullptr;
  const float* b = nullptr;
  float* y = nullptr;  // nullptr when the output is empty
};
template <typename Forward>
FloatConvIo BindFloatConv(KernelContext& ctx, const ConvAttrs& attrs, Forward forward) {
  const ir::Node& node = ctx.node();
  const ir::Tensor& x = gemm_util::FloatInput(ctx, 0, "X");
  const ir::Tensor& w = gemm_util::FloatInput(ctx, 1, "W");
  const ir::Tensor* b = gemm_util::OptionalFloatInput(ctx, 2, "B");
  FloatConvIo io;
  io.w = &w;
  io.g = forward(node, attrs, x.shape(), w.shape());
  if (b && (b->rank() != 1 || b->shape()[0] != io.g.m))
    ThrowInvalid(node.describe() + ": bias B of shape " + gemm_util::DimsToString(b->shape()) +
                 " does not match " + std::to_string(io.g.m) + " output channels");
  ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kFloat32, io.g.OutputShape());
  if (y.numel() == 0) return io;
  io.y = y.mutable_data<float>();
  io.x = x.data<float>();
  io.wd = w.data<float>();
  io.b = b ? b->data<float>() : nullptr;
  return io;
}

// ConvTranspose's col2im: adds rows of `col` ([Mg * kprod][in], float or int32) for output
// channels [m0, m1) of one group into y ([Mg][out]); taps falling outside Y are dropped.
template <typename T>
void Col2ImAdd(const ConvGeometry& g, const T* col, int64_t m0, int64_t m1, T* y) {
  const int64_t ks = g.k_size(), in_size = g.in_size(), out_size = g.out_size();
  for (int64_t m = m0; m < m1; ++m) {
    T* ym = y + m * out_size;
    for (int64_t kidx = 0; kidx < ks; ++kidx) {
      const int64_t kw = kidx % g.k[2], kh = (kidx / g.k[2]) % g.k[1],
                    kd = kidx / (g.k[2] * g.k[1]);
      const T* row = col + (m * ks + kidx) * in_size;
      // Input columns whose output column is inside Y: iw in [lo, hi).
      const int64_t off_w = kw * g.dil[2] - g.pad_b[2];
      int64_t lo = off_w >= 0 ? 0 : (-off_w + g.stride[2] - 1) / g.stride[2];
      int64_t hi = g.out[2] - 1 - off_w < 0 ? 0 : (g.out[2] - 1 - off_w) / g.stride[2] + 1;
      hi = std::min(hi, g.in[2]);
      lo = std::min(lo, hi);
      for (int64_t id = 0; id < g.in[0]; ++id) {
        const int64_t od = id * g.stride[0] + kd * g.dil[0] - g.pad_b[0];
        if (od < 0 || od >= g.out[0]) continue;
        for (int64_t ih = 0; ih < g.in[1]; ++ih) {
          const int64_t oh = ih * g.stride[1] + kh * g.dil[1] - g.pad_b[1];
          if (oh < 0 || oh >= g.out[1]) continue;
          const T* src = row + (id * g.in[1] + ih) * g.in[2];
          T* dst = ym + (od * g.out[1] + oh) * g.out[2];
          for (int64_t iw = lo; iw < hi; ++iw) dst[iw * g.stride[2] + off_w] += src[iw];
        }
      }
    }
  }
}

// Whether every output element of a ConvTranspose receives exactly one tap: kernel =
// stride, no dilation where the kernel is wider than 1, no pads or output_padding (the
// upsampling heads of detectors and U-Nets).
inline bool TapsTileOutput(const ConvGeometry& g) {
  for (int d = 0; d < 3; ++d)
    if (g.k[d] != g.stride[d] || (g.k[d] > 1 && g.dil[d] != 1) || g.pad_b[d] != 0 ||
        g.out[d] != g.in[d] * g.stride[d])
      return false;
  return true;
}

}  // namespace edgepress::runtime::conv_util
