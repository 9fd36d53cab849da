// Helpers shared by the quantization kernels (quantize.cc, qlinear.cc): reading scales and
// zero points with ONNX's per-tensor / per-axis rules, and the uint8 parameters that
// DynamicQuantizeLinear and DynamicQuantizeMatMul derive from a tensor's range.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace edgepress::runtime {
class ThreadPool;
}  // namespace edgepress::runtime

namespace edgepress::runtime::qutil {

// x viewed as [outer, channels, inner] around the quantization axis (channels = 1 for
// per-tensor parameters).
struct QuantAxis {
  int64_t outer = 1, channels = 1, inner = 1;
  // Validates the scale/zero-point shapes against x; throws naming the node.
  static QuantAxis Make(const ir::Node& node, const ir::Tensor& x, const ir::Tensor& scale,
                        const ir::Tensor* zp, int64_t axis);
};

// Scale values as float (float32 or float16 tensors).
std::vector<float> Scales(const ir::Node& node, const ir::Tensor& scale);
// Zero points widened to int32; all zero when `zp` is nullptr. Checks the count.
std::vector<int32_t> ZeroPoints(const ir::Node& node, const ir::Tensor* zp, size_t count);
// A per-tensor zero point `what` of dtype `want` (0 when absent); throws naming the node.
int32_t OneZeroPoint(const ir::Node& node, const ir::Tensor* zp, ir::DType want, const char* what);
// The scales `what`, required, with 1 or `per` values; throws naming the node.
std::vector<float> ScalesOf(const ir::Node& node, const ir::Tensor* s, int64_t per,
                            const char* what);

struct U8Params {
  float scale = 1.f;
  int32_t zero_point = 0;
};
// The range [min(0, min x), max(0, max x)] mapped onto [0, 255], as ONNX
// DynamicQuantizeLinear and onnxruntime's DynamicQuantizeMatMul define it.
// With a pool, threads split the min/max scan (exact: the same result for any split).
U8Params DynamicU8Params(const float* x, int64_t n, ThreadPool* pool = nullptr);
// y[i] = Saturate<uint8_t>(x[i] / scale, zp), vectorised where the CPU allows (same bits);
// with a pool, threads split x.
void QuantizeU8(const float* x, int64_t n, float scale, int32_t zp, uint8_t* y,
                ThreadPool* pool = nullptr);

// saturate(round_half_even(v) + zp) into T's range; v is already divided by the scale.
template <typename T>
inline T Saturate(float v, int32_t zp) {
  constexpr float lo = static_cast<float>(std::numeric_limits<T>::min());
  constexpr float hi = static_cast<float>(std::numeric_limits<T>::max());
  float r = std::nearbyint(v) + static_cast<float>(zp);
  r = std::min(std::max(r, lo), hi);
  return static_cast<T>(r == r ? r : static_cast<float>(zp));
}

// The fused activation of an integer op (`activation` = "Relu" or "Clip" with
// `activation_params` [lo, hi], as com.microsoft FusedConv writes it): float bounds.
struct Activation {
  bool any = false;
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();
};
Activation ReadActivation(const ir::Node& node);
// Bounds mapped into the quantized output domain: saturate(round(bound / y_scale) + y_zp).
inline int32_t QuantizeBound(float bound, float y_scale, int32_t y_zp) {
  if (bound == -std::numeric_limits<float>::infinity()) return std::numeric_limits<int32_t>::min();
  if (bound == std::numeric_limits<float>::infinity()) return std::numeric_limits<int32_t>::max();
  const double q = std::nearbyint(static_cast<double>(static_cast<float>(bound / y_scale))) + y_zp;
  return static_cast<int32_t>(std::min(2e9, std::max(-2e9, q)));
}

}  // namespace edgepress::runtime::qutil
