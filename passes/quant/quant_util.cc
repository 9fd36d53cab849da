#include "passes/quant/quant_util.h"

#include "passes/graph/opset_upgrade.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

#include "ir/error.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes::quant {

void QRange(ir::DType dtype, bool symmetric, int32_t* qmin, int32_t* qmax) {
  switch (dtype) {
    case ir::DType::kInt8: *qmin = symmetric ? -127 : -128; *qmax = 127; return;
    case ir::DType::kUInt8: *qmin = 0; *qmax = 255; return;
    case ir::DType::kInt4: *qmin = symmetric ? -7 : -8; *qmax = 7; return;
    case ir::DType::kUInt4: *qmin = 0; *qmax = 15; return;
    default:
      ThrowUnsupported(std::string("quantization to ") + ir::DTypeName(dtype) +
                       " is not supported (use int8, uint8, int4 or uint4)");
  }
}

QParams ChooseQParams(float min, float max, ir::DType dtype, bool symmetric) {
  if (!std::isfinite(min) || !std::isfinite(max))
    ThrowInvalid("cannot quantize the range [" + std::to_string(min) + ", " +
                 std::to_string(max) + "]: it is not finite");
  int32_t qmin, qmax;
  QRange(dtype, symmetric, &qmin, &qmax);
  double lo = std::min(0.0, static_cast<double>(std::min(min, max)));
  double hi = std::max(0.0, static_cast<double>(std::max(min, max)));
  if (symmetric) {
    double a = std::max(-lo, hi);
    lo = -a;
    hi = a;
  }
  QParams q;
  double scale = (hi - lo) / (qmax - qmin);
  if (!(scale >= FLT_MIN)) {
    // Degenerate (all zeros): any scale represents the data; 1 keeps later math finite.
    q.scale = 1.f;
    q.zero_point = symmetric ? (dtype == ir::DType::kUInt8 ? 128 : dtype == ir::DType::kUInt4 ? 8 : 0)
                             : std::clamp<int32_t>(0, qmin, qmax);
    return q;
  }
  q.scale = static_cast<float>(scale);
  if (symmetric) {
    // Signed: 0; unsigned: the middle code (128, 8), as onnxruntime's (qmin + qmax + 1) / 2.
    q.zero_point = (qmin + qmax + 1) / 2;
  } else {
    // qmin - lo / scale, rounded half to even like onnxruntime's quantizer.
    double zp = std::nearbyint(qmin - lo / q.scale);
    q.zero_point = static_cast<int32_t>(std::clamp<double>(zp, qmin, qmax));
  }
  return q;
}

int32_t QuantizeValue(float x, const QParams& q, int32_t qmin, int32_t qmax) {
  // Division (not multiplication by a reciprocal) and the default rounding mode
  // (round half to even), as ONNX QuantizeLinear specifies.
  float r = std::nearbyint(x / q.scale);
  double v = static_cast<double>(r) + q.zero_point;
  if (std::isnan(v)) return std::clamp<int32_t>(q.zero_point, qmin, qmax);
  return static_cast<int32_t>(std::clamp<double>(v, qmin, qmax));
}

namespace {

// Splits a shape at `axis` into outer x channels x inner.
void SplitAxis(const std::vector<int64_t>& shape, int axis, int64_t* outer, int64_t* ch,
               int64_t* inner) {
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < axis; ++i) *outer *= shape[i];
  *ch = shape[axis];
  for (size_t i = axis + 1; i < shape.size(); ++i) *inner *= shape[i];
}

int NormalizeAxis(const ir::Tensor& w, int axis, const std::string& name) {
  int a = axis < 0 ? axis + w.rank() : axis;
  if (a < 0 || a >= w.rank())
    ThrowInvalid("cannot quantize '" + name + "': per-channel axis " + std::to_string(axis) +
                 " out of range for rank-" + std::to_string(w.rank()) + " tensor");
  return a;
}

void CheckFloat(const ir::Tensor& w, const std::string& name) {
  if (w.dtype() != ir::DType::kFloat32)
    ThrowUnsupported("cannot quantize '" + name + "': element type " +
                     ir::DTypeName(w.dtype()) + " (expected f32)");
}

void Store(ir::Tensor& t, uint64_t i, int32_t v) {
  if (t.dtype() == ir::DType::kInt8) t.mutable_data<int8_t>()[i] = static_cast<int8_t>(v);
  else t.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(v);
}
int32_t Load(const ir::Tensor& t, uint64_t i) {
  if (t.dtype() == ir::DType::kInt8) return t.data<int8_t>()[i];
  return t.data<uint8_t>()[i];
}

}  // namespace

ir::Tensor QuantizeWith(const ir::Tensor& w, const ir::Tensor& scale,
                        const ir::Tensor& zero_point, int axis, ir::DType dtype) {
  int32_t qmin, qmax;
  QRange(dtype, /*symmetric=*/false, &qmin, &qmax);
  ir::Tensor out(dtype, w.shape());
  const float* src = w.data<float>();
  int64_t outer = 1, ch = 1, inner = static_cast<int64_t>(w.numel());
  if (axis >= 0 && scale.numel() > 1) SplitAxis(w.shape(), axis, &outer, &ch, &inner);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < ch; ++c) {
      QParams q{scale.data<float>()[c], Load(zero_point, c)};
      uint64_t base = static_cast<uint64_t>((o * ch + c) * inner);
      for (int64_t i = 0; i < inner; ++i)
        Store(out, base + i, QuantizeValue(src[base + i], q, qmin, qmax));
    }
  return out;
}

QuantizedTensor QuantizeWeightPerChannel(const ir::Tensor& w, int axis, bool symmetric,
                                         const std::string& name) {
  CheckFloat(w, name);
  int a = NormalizeAxis(w, axis, name);
  int64_t outer, ch, inner;
  SplitAxis(w.shape(), a, &outer, &ch, &inner);
  std::vector<float> lo(ch, 0.f), hi(ch, 0.f);
  const float* src = w.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < ch; ++c)
      for (int64_t i = 0; i < inner; ++i) {
        float v = src[(o * ch + c) * inner + i];
        if (!std::isfinite(v))
          ThrowInvalid("cannot quantize '" + name + "': it holds a non-finite value");
        lo[c] = std::min(lo[c], v);
        hi[c] = std::max(hi[c], v);
      }
  QuantizedTensor q;
  q.axis = a;
  q.scale = ir::Tensor(ir::DType::kFloat32, {ch});
  q.zero_point = ir::Tensor(ir::DType::kInt8, {ch});
  for (int64_t c = 0; c < ch; ++c) {
    QParams p = ChooseQParams(lo[c], hi[c], ir::DType::kInt8, symmetric);
    q.scale.mutable_data<float>()[c] = p.scale;
    q.zero_point.mutable_data<int8_t>()[c] = static_cast<int8_t>(p.zero_point);
  }
  q.data = QuantizeWith(w, q.scale, q.zero_point, a, ir::DType::kInt8);
  return q;
}

QuantizedTensor QuantizePerTensor(const ir::Tensor& w, ir::DType dtype, bool symmetric,
                                  const std::string& name) {
  CheckFloat(w, name);
  float lo = 0, hi = 0;
  const float* src = w.data<float>();
  for (uint64_t i = 0; i < w.numel(); ++i) {
    if (!std::isfinite(src[i]))
      ThrowInvalid("cannot quantize '" + name + "': it holds a non-finite value");
    lo = std::min(lo, src[i]);
    hi = std::max(hi, src[i]);
  }
  QParams p = ChooseQParams(lo, hi, dtype, symmetric);
  QuantizedTensor q;
  q.scale = ir::Tensor(ir::DType::kFloat32, {});
  q.scale.mutable_data<float>()[0] = p.scale;
  q.zero_point = ir::Tensor(dtype, {});
  Store(q.zero_point, 0, p.zero_point);
  q.data = QuantizeWith(w, q.scale, q.zero_point, -1, dtype);
  return q;
}

ir::Tensor Dequantize(const QuantizedTensor& q) {
  ir::Tensor out(ir::DType::kFloat32, q.data.shape());
  int64_t outer = 1, ch = 1, inner = static_cast<int64_t>(q.data.numel());
  if (q.axis >= 0 && q.scale.numel() > 1) SplitAxis(q.data.shape(), q.axis, &outer, &ch, &inner);
  float* dst = out.mutable_data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < ch; ++c) {
      QParams p{q.scale.data<float>()[c], Load(q.zero_point, c)};
      uint64_t base = static_cast<uint64_t>((o * ch + c) * inner);
      for (int64_t i = 0; i < inner; ++i) dst[base + i] = DequantizeValue(Load(q.data, base + i), p);
    }
  return out;
}

bool MatchGlob(const std::string& pattern, const std::string& name) {
  // Iterative wildcard match with one backtrack point (linear in practice, no recursion).
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool MatchAnyGlob(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& p : patterns)
    if (MatchGlob(p, name)) return true;
  return false;
}

ir::Value* AddWeightDequantize(ir::Graph& g, ir::Node* pos, const std::string& base,
                               QuantizedTensor q) {
  std::vector<int64_t> shape = q.data.shape();
  bool per_axis = q.axis >= 0 && q.scale.rank() == 1;
  int axis = q.axis;
  ir::Value* data = AddConstant(g, base + "_quantized", std::move(q.data));
  ir::Value* scale = AddConstant(g, base + "_scale", std::move(q.scale));
  ir::Value* zp = AddConstant(g, base + "_zero_point", std::move(q.zero_point));
  ir::Node* dq = g.InsertNode(pos, "DequantizeLinear", {data, scale, zp},
                              {g.UniqueName(base + "_dq")},
                              g.UniqueName(base + "_DequantizeLinear"));
  if (per_axis) dq->set_attr(ir::Attribute::Int("axis", axis));
  dq->output(0)->type = ir::ValueType::Tensor(ir::DType::kFloat32, ir::MakeShape(shape));
  return dq->output(0);
}

bool EnsureOpset(ir::Model& model, int64_t version) {
  return UpgradeOpset(model, version).changed();
}

}  // namespace edgepress::passes::quant
