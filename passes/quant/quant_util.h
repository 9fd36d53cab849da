// Small quantization math shared by the quantization passes (quantize-weights,
// quantize-static, quantize-dynamic): choosing a scale and zero point for a range,
// quantizing and dequantizing with ONNX QuantizeLinear semantics (x / scale rounded half
// to even, plus the zero point, saturated), per-channel weight quantization, node-name
// globs, and the DequantizeLinear that feeds a quantized initializer to its users.
//
// Conventions (the team's agreed names): a quantized initializer W becomes
// `W_quantized` (integer data), `W_scale` (float) and `W_zero_point` (same integer type as
// the data), read by one DequantizeLinear whose output is `W_dq`. Names are made unique
// with Graph::UniqueName, so they carry a numeric suffix only on collisions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace edgepress::passes::quant {

struct QParams {
  float scale = 1.f;
  int32_t zero_point = 0;
};

// The integer range of `dtype` (kUInt8, kInt8, kUInt4, kInt4). With `symmetric`, signed
// types drop their most negative value (int8: [-127, 127]) so that the range is symmetric
// around the zero point 0, as onnxruntime's quantizer does; unsigned types keep their range
// (zero point in the middle). Throws Error(kUnsupported) for other dtypes.
void QRange(ir::DType dtype, bool symmetric, int32_t* qmin, int32_t* qmax);

// Scale and zero point for real values in [min, max]. The range is first widened to
// include 0 so that 0 is exactly representable (zero padding, ReLU outputs). With
// `symmetric` the range becomes [-a, a], a = max(|min|, |max|), and the zero point is 0
// for signed types, the middle (128 / 8) for unsigned ones. A degenerate range (all zero,
// or a scale below the smallest normal float) gets scale 1. Throws Error(kInvalidInput)
// for a non-finite bound.
QParams ChooseQParams(float min, float max, ir::DType dtype, bool symmetric);

// ONNX QuantizeLinear of one value: saturate(round_half_even(x / scale) + zero_point).
int32_t QuantizeValue(float x, const QParams& q, int32_t qmin, int32_t qmax);
inline float DequantizeValue(int32_t v, const QParams& q) {
  return static_cast<float>(v - q.zero_point) * q.scale;
}

// The result of quantizing a float tensor: integer data of the original shape, and one
// scale and zero point per channel of `axis` (shapes [C], or [] when per-tensor).
struct QuantizedTensor {
  ir::Tensor data;        // kInt8 or kUInt8
  ir::Tensor scale;       // kFloat32
  ir::Tensor zero_point;  // same dtype as data
  int axis = -1;          // -1: per-tensor
};

// Quantizes a float32 tensor to int8 with one (scale, zero point) per index of `axis`
// (negative counts from the end), each from that channel's min/max. `name` is used in
// error messages (non-float tensor, axis out of range, non-finite value).
QuantizedTensor QuantizeWeightPerChannel(const ir::Tensor& w, int axis, bool symmetric,
                                         const std::string& name = "weight");
// Per-tensor quantization to `dtype` (kInt8 or kUInt8) from the tensor's min/max.
QuantizedTensor QuantizePerTensor(const ir::Tensor& w, ir::DType dtype, bool symmetric,
                                  const std::string& name = "tensor");
// Quantizes `w` with given per-channel (or per-tensor when scale has one element) params.
ir::Tensor QuantizeWith(const ir::Tensor& w, const ir::Tensor& scale,
                        const ir::Tensor& zero_point, int axis, ir::DType dtype);
// The float tensor that DequantizeLinear(data, scale, zero_point, axis) computes.
ir::Tensor Dequantize(const QuantizedTensor& q);

// Shell-style match of a whole node name: `*` any run of characters, `?` one character.
bool MatchGlob(const std::string& pattern, const std::string& name);
bool MatchAnyGlob(const std::vector<std::string>& patterns, const std::string& name);

// Adds initializers `<base>_quantized`, `<base>_scale`, `<base>_zero_point` holding `q`
// to `g` and a DequantizeLinear (axis set when per-channel) inserted before `pos`
// (nullptr: appended), named `<base>_DequantizeLinear`, whose output `<base>_dq` has the
// float type and shape of the original weight. Returns that output; callers point their
// node inputs at it. The model needs ai.onnx opset >= 13 for per-axis scales (see
// EnsureOpset).
ir::Value* AddWeightDequantize(ir::Graph& g, ir::Node* pos, const std::string& base,
                               QuantizedTensor q);

// Raises the model's ai.onnx opset to `version` when it is lower, rewriting the nodes whose
// meaning changed (passes/graph/opset_upgrade.h). Returns true when it raised it.
bool EnsureOpset(ir::Model& model, int64_t version);

}  // namespace edgepress::passes::quant
