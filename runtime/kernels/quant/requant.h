// The output side of the integer GEMM kernels (QLinearConv, QLinearMatMul, QGemm,
// DynamicQuantizeMatMul): the per-channel multiplier in_scale * w_scale[i] / y_scale
// (computed in float32 as onnxruntime does), the output zero point and the fused
// activation's bounds, or float output when there is no y_scale.
#pragma once

#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/kernels/qgemm/qgemm.h"
#include "runtime/kernels/quant/quantize_util.h"

namespace edgepress::runtime::qutil {

// `out.scale` points into `multiplier`, so a Requant stays where it was filled.
struct Requant {
  QOutput out;
  std::vector<float> multiplier;
  ir::DType dtype = ir::DType::kInt32;
  Requant() = default;
  Requant(const Requant&) = delete;
  Requant& operator=(const Requant&) = delete;
};

// Fills rq's multiplier, activation bounds and output kind/zero point/dtype. y_scale null:
// float output. Bias and per_row are the caller's.
inline void FillRequant(const ir::Node& node, float in_scale, const std::vector<float>& w_scales,
                        const ir::Tensor* y_scale, const ir::Tensor* y_zp, const Activation& act,
                        Requant* rq) {
  QOutput& out = rq->out;
  const float ys = y_scale ? ScalesOf(node, y_scale, 1, "y_scale")[0] : 1.f;
  rq->multiplier.resize(w_scales.size());
  for (size_t i = 0; i < w_scales.size(); ++i)
    rq->multiplier[i] = y_scale ? in_scale * w_scales[i] / ys : in_scale * w_scales[i];
  out.scale = rq->multiplier.data();
  out.per_channel_scale = rq->multiplier.size() > 1;
  out.lo = act.lo;
  out.hi = act.hi;
  if (!y_scale) {
    rq->dtype = ir::DType::kFloat32;
    out.kind = QOutput::Kind::kFloat;
    return;
  }
  rq->dtype = y_zp ? y_zp->dtype() : ir::DType::kUInt8;
  if (rq->dtype != ir::DType::kUInt8 && rq->dtype != ir::DType::kInt8)
    ThrowUnsupported(node.describe() + ": y_zero_point dtype " + ir::DTypeName(rq->dtype) +
                     " is not supported");
  if (y_zp && y_zp->numel() != 1)
    ThrowUnsupported(node.describe() + ": y_zero_point must be per-tensor");
  out.kind = rq->dtype == ir::DType::kInt8 ? QOutput::Kind::kInt8 : QOutput::Kind::kUInt8;
  out.zero_point = ZeroPoints(node, y_zp, 1)[0];
  out.q_lo = QuantizeBound(act.lo, ys, out.zero_point);
  out.q_hi = QuantizeBound(act.hi, ys, out.zero_point);
}

}  // namespace edgepress::runtime::qutil
