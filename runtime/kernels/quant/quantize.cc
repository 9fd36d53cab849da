// QuantizeLinear, DequantizeLinear (opset 10/13 semantics: per-tensor, or per-axis with
// `axis`) and DynamicQuantizeLinear.
//
//   QuantizeLinear:   y = saturate(round_half_even(x / scale) + zero_point)
//   DequantizeLinear: y = (x - zero_point) * scale   (x uint8/int8/int32; int32 is the
//                     bias form, whose zero point must be 0)
//   DynamicQuantizeLinear: uint8 with scale = (max(0, max x) - min(0, min x)) / 255 and
//                     zero_point = round(clamp(-min / scale, 0, 255)).
// Division (not multiplication by 1/scale) and round-half-to-even are what the ONNX
// reference and onnxruntime's MLAS do, so results agree bit for bit. The output type of
// QuantizeLinear is the zero point's type (uint8 when it is omitted; opset 21
// `output_dtype` is honoured too). Entries: *_quantizelinear__ref etc.; QuantizeLinear to
// uint8/int8 also has an AVX2 entry, any_quantizelinear__avx2 (the float ops left between
// integer ones, e.g. a float residual Add, quantize whole activation tensors).
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/quant/quantize_util.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

namespace {

using qutil::QuantAxis;

template <typename T>
void QuantizeSpan(const float* x, int64_t n, float scale, int32_t zp, T* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = qutil::Saturate<T>(x[i] / scale, zp);
}

#if defined(__x86_64__)
// Eight at a time: divide (not multiply by 1/scale: bit-exact with the reference),
// zero NaN lanes (the reference maps NaN to the zero point), clamp to the integer range
// shifted by -zp (integer bounds, so clamping before rounding is the same), round half to
// even with cvtps (default MXCSR), add zp, narrow. The tail uses the scalar loop.
template <typename T>
__attribute__((target("avx2,fma"))) void QuantizeSpanAvx2(const float* x, int64_t n,
                                                          float scale, int32_t zp, T* y) {
  constexpr bool kU8 = std::is_same<T, uint8_t>::value;
  const __m256 vs = _mm256_set1_ps(scale);
  const __m256 lo = _mm256_set1_ps(static_cast<float>((kU8 ? 0 : -128) - zp));
  const __m256 hi = _mm256_set1_ps(static_cast<float>((kU8 ? 255 : 127) - zp));
  const __m256i vz = _mm256_set1_epi32(zp);
  const __m256i gather = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), vs);
    v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), vz);
    const __m256i w = _mm256_packs_epi32(q, q);
    const __m256i b = kU8 ? _mm256_packus_epi16(w, w) : _mm256_packs_epi16(w, w);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(y + i),
                     _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(b, gather)));
  }
  QuantizeSpan(x + i, n - i, scale, zp, y + i);
}
#endif

template <typename T>
void DequantizeSpan(const T* x, int64_t n, float scale, int32_t zp, float* y) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = static_cast<float>(static_cast<int32_t>(x[i]) - zp) * scale;
}

#if defined(__x86_64__)
// Eight at a time: widen, subtract the zero point (exact in int32), convert (exact below
// 2^24) and multiply: the scalar loop's operations, so the same bits. The tail uses it.
template <typename T>
__attribute__((target("avx2"))) void DequantizeSpanAvx2(const T* x, int64_t n, float scale,
                                                        int32_t zp, float* y) {
  const __m256 vs = _mm256_set1_ps(scale);
  const __m256i vz = _mm256_set1_epi32(zp);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + i));
    const __m256i w = std::is_same<T, uint8_t>::value ? _mm256_cvtepu8_epi32(b) : _mm256_cvtepi8_epi32(b);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(w, vz)), vs));
  }
  DequantizeSpan(x + i, n - i, scale, zp, y + i);
}
#endif

// Threads split a tensor's elements in chunks of at least kGrain; every element is
// computed alone (no reduction), so the bytes do not depend on the split or the thread
// count. The float ops left between integer ones in QDQ models (BERT's Softmax, Gelu,
// LayerNorm) quantize whole activations: serial, they were 13% of static BERT at 1
// thread and more at 2.
constexpr int64_t kGrain = 16384;

// f(offset, length, channel) over the elements [b, e) of `qa`, cut at channel boundaries.
template <class F>
void ForEachSpan(const QuantAxis& qa, int64_t b, int64_t e, const F& f) {
  while (b < e) {
    const int64_t row = b / qa.inner;
    const int64_t end = std::min(e, (row + 1) * qa.inner);
    f(b, end - b, row % qa.channels);
    b = end;
  }
}

// x as float32 (float16 inputs are widened first).
std::vector<float> FloatData(const ir::Tensor& t, const float** out) {
  std::vector<float> tmp;
  if (t.dtype() == ir::DType::kFloat32) {
    *out = t.data<float>();
    return tmp;
  }
  tmp.resize(t.numel());
  const uint16_t* h = t.data<uint16_t>();
  for (uint64_t i = 0; i < t.numel(); ++i) tmp[i] = ir::HalfToFloat(h[i]);
  *out = tmp.data();
  return tmp;
}

template <Isa kIsa>
class QuantizeLinearKernel : public Kernel {
 public:
  explicit QuantizeLinearKernel(const KernelInit& init)
      : axis_(init.node.attr_int("axis", 1)),
        output_dtype_(init.node.attr_int("output_dtype", 0)) {
    if (init.node.attr_int("block_size", 0) != 0)
      ThrowUnsupported(init.node.describe() + ": blocked quantization (block_size) is not supported");
  }

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor* x = ctx.input(0);
    const ir::Tensor* scale = ctx.input(1);
    const ir::Tensor* zp = ctx.input(2);
    if (zp && zp->empty()) zp = nullptr;
    if (!x || x->empty() || !scale || scale->empty())
      ThrowInvalid(node.describe() + ": needs inputs x and y_scale");
    if (x->dtype() != ir::DType::kFloat32 && x->dtype() != ir::DType::kFloat16)
      ThrowUnsupported(node.describe() + ": input x has dtype " + ir::DTypeName(x->dtype()) +
                       ", expected float32 or float16");
    ir::DType out = zp ? zp->dtype() : ir::DType::kUInt8;
    if (!zp && output_dtype_ != 0) out = ir::DTypeFromOnnx(output_dtype_);
    if (out != ir::DType::kUInt8 && out != ir::DType::kInt8 && out != ir::DType::kUInt16 &&
        out != ir::DType::kInt16)
      ThrowUnsupported(node.describe() + ": output dtype " + ir::DTypeName(out) +
                       " is not supported (uint8, int8, uint16, int16 are)");
    const QuantAxis qa = QuantAxis::Make(node, *x, *scale, zp, axis_);
    const std::vector<float> sc = qutil::Scales(node, *scale);
    const std::vector<int32_t> zps = qutil::ZeroPoints(node, zp, sc.size());
    const float* xd = nullptr;
    const std::vector<float> tmp = FloatData(*x, &xd);
    ir::Tensor& y = ctx.AllocateOutput(0, out, x->shape());
    auto span = [&](int64_t off, int64_t len, int64_t c) {
      const float s = sc[static_cast<size_t>(c)];
      const int32_t z = zps[static_cast<size_t>(c)];
      switch (out) {
        case ir::DType::kUInt8:
#if defined(__x86_64__)
          if (kIsa == Isa::kAvx2) {
            QuantizeSpanAvx2(xd + off, len, s, z, y.mutable_data<uint8_t>() + off);
            break;
          }
#endif
          QuantizeSpan(xd + off, len, s, z, y.mutable_data<uint8_t>() + off);
          break;
        case ir::DType::kInt8:
#if defined(__x86_64__)
          if (kIsa == Isa::kAvx2) {
            QuantizeSpanAvx2(xd + off, len, s, z, y.mutable_data<int8_t>() + off);
            break;
          }
#endif
          QuantizeSpan(xd + off, len, s, z, y.mutable_data<int8_t>() + off);
          break;
        case ir::DType::kUInt16:
          QuantizeSpan(xd + off, len, s, z, y.mutable_data<uint16_t>() + off);
          break;
        default:
          QuantizeSpan(xd + off, len, s, z, y.mutable_data<int16_t>() + off);
          break;
      }
    };
    const int64_t total = qa.outer * qa.channels * qa.inner;
    ctx.pool().ParallelFor(total, kGrain,
                           [&](int64_t b, int64_t e) { ForEachSpan(qa, b, e, span); });
  }

 private:
  int64_t axis_;
  int64_t output_dtype_;
};

template <Isa kIsa>
class DequantizeLinearKernel : public Kernel {
 public:
  explicit DequantizeLinearKernel(const KernelInit& init) : axis_(init.node.attr_int("axis", 1)) {
    if (init.node.attr_int("block_size", 0) != 0)
      ThrowUnsupported(init.node.describe() + ": blocked quantization (block_size) is not supported");
  }

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor* x = ctx.input(0);
    const ir::Tensor* scale = ctx.input(1);
    const ir::Tensor* zp = ctx.input(2);
    if (zp && zp->empty()) zp = nullptr;
    if (!x || x->empty() || !scale || scale->empty())
      ThrowInvalid(node.describe() + ": needs inputs x and x_scale");
    if (zp && zp->dtype() != x->dtype())
      ThrowInvalid(node.describe() + ": x_zero_point has dtype " + ir::DTypeName(zp->dtype()) +
                   " but x has " + ir::DTypeName(x->dtype()));
    const QuantAxis qa = QuantAxis::Make(node, *x, *scale, zp, axis_);
    const std::vector<float> sc = qutil::Scales(node, *scale);
    const std::vector<int32_t> zps = qutil::ZeroPoints(node, zp, sc.size());
    if (x->dtype() == ir::DType::kInt32)
      for (int32_t z : zps)
        if (z != 0) ThrowInvalid(node.describe() + ": an int32 input needs zero point 0");
    const ir::DType dt = x->dtype();
    if (dt != ir::DType::kUInt8 && dt != ir::DType::kInt8 && dt != ir::DType::kUInt16 &&
        dt != ir::DType::kInt16 && dt != ir::DType::kInt32)
      ThrowUnsupported(node.describe() + ": input x has dtype " + ir::DTypeName(dt) +
                       ", expected uint8, int8, uint16, int16 or int32");
    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kFloat32, x->shape());
    float* yd = y.mutable_data<float>();
    auto span = [&](int64_t off, int64_t len, int64_t c) {
      const float s = sc[static_cast<size_t>(c)];
      const int32_t z = zps[static_cast<size_t>(c)];
      switch (dt) {
        case ir::DType::kUInt8:
#if defined(__x86_64__)
          if (kIsa == Isa::kAvx2) {
            DequantizeSpanAvx2(x->data<uint8_t>() + off, len, s, z, yd + off);
            break;
          }
#endif
          DequantizeSpan(x->data<uint8_t>() + off, len, s, z, yd + off);
          break;
        case ir::DType::kInt8:
#if defined(__x86_64__)
          if (kIsa == Isa::kAvx2) {
            DequantizeSpanAvx2(x->data<int8_t>() + off, len, s, z, yd + off);
            break;
          }
#endif
          DequantizeSpan(x->data<int8_t>() + off, len, s, z, yd + off);
          break;
        case ir::DType::kUInt16:
          DequantizeSpan(x->data<uint16_t>() + off, len, s, z, yd + off);
          break;
        case ir::DType::kInt16:
          DequantizeSpan(x->data<int16_t>() + off, len, s, z, yd + off);
          break;
        default:
          DequantizeSpan(x->data<int32_t>() + off, len, s, z, yd + off);
          break;
      }
    };
    const int64_t total = qa.outer * qa.channels * qa.inner;
    ctx.pool().ParallelFor(total, kGrain,
                           [&](int64_t b, int64_t e) { ForEachSpan(qa, b, e, span); });
  }

 private:
  int64_t axis_;
};

class DynamicQuantizeLinearKernel : public Kernel {
 public:
  explicit DynamicQuantizeLinearKernel(const KernelInit&) {}

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor* x = ctx.input(0);
    if (!x || x->empty() || x->dtype() != ir::DType::kFloat32)
      ThrowInvalid(node.describe() + ": needs a float32 input x");
    const float* xd = x->data<float>();
    const int64_t n = static_cast<int64_t>(x->numel());
    const qutil::U8Params p = qutil::DynamicU8Params(xd, n, &ctx.pool());
    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kUInt8, x->shape());
    qutil::QuantizeU8(xd, n, p.scale, p.zero_point, y.mutable_data<uint8_t>(), &ctx.pool());
    if (ctx.output_requested(1))
      *ctx.AllocateOutput(1, ir::DType::kFloat32, {}).mutable_data<float>() = p.scale;
    if (ctx.output_requested(2))
      *ctx.AllocateOutput(2, ir::DType::kUInt8, {}).mutable_data<uint8_t>() =
          static_cast<uint8_t>(p.zero_point);
  }
};

template <class K>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  return std::make_unique<K>(init);
}

}  // namespace

namespace qutil {

QuantAxis QuantAxis::Make(const ir::Node& node, const ir::Tensor& x, const ir::Tensor& scale,
                          const ir::Tensor* zp, int64_t axis) {
  QuantAxis q;
  q.inner = static_cast<int64_t>(x.numel());
  // One value (a scalar or a 1-element 1-D tensor) is per-tensor; either reading of a
  // 1-element scale on a size-1 axis gives the same result.
  if (scale.numel() != 1 || scale.rank() > 1) {
    if (scale.rank() != 1)
      ThrowInvalid(node.describe() + ": scale of rank " + std::to_string(scale.rank()) +
                   " is neither a scalar nor 1-D (blocked quantization is not supported)");
    if (axis < -x.rank() || axis >= x.rank())
      ThrowInvalid(node.describe() + ": axis " + std::to_string(axis) +
                   " is out of range for rank " + std::to_string(x.rank()));
    const int64_t ax = axis < 0 ? axis + x.rank() : axis;
    const int64_t dim = x.shape()[static_cast<size_t>(ax)];
    if (static_cast<int64_t>(scale.numel()) != dim)
      ThrowInvalid(node.describe() + ": per-axis scale has " + std::to_string(scale.numel()) +
                   " values but axis " + std::to_string(axis) + " has size " +
                   std::to_string(dim));
    q.outer = 1;
    for (int64_t i = 0; i < ax; ++i) q.outer *= x.shape()[static_cast<size_t>(i)];
    q.channels = dim;
    q.inner = 1;
    for (int64_t i = ax + 1; i < x.rank(); ++i) q.inner *= x.shape()[static_cast<size_t>(i)];
  }
  if (zp && zp->numel() != scale.numel())
    ThrowInvalid(node.describe() + ": zero point has " + std::to_string(zp->numel()) +
                 " values but scale has " + std::to_string(scale.numel()));
  return q;
}

int32_t OneZeroPoint(const ir::Node& node, const ir::Tensor* zp, ir::DType want, const char* what) {
  if (!zp) return 0;
  if (zp->dtype() != want)
    ThrowInvalid(node.describe() + ": " + what + " has dtype " + ir::DTypeName(zp->dtype()) +
                 ", expected " + ir::DTypeName(want));
  if (zp->numel() != 1) ThrowUnsupported(node.describe() + ": " + what + " must be per-tensor");
  return ZeroPoints(node, zp, 1)[0];
}

std::vector<float> ScalesOf(const ir::Node& node, const ir::Tensor* s, int64_t per,
                            const char* what) {
  if (!s) ThrowInvalid(node.describe() + ": missing " + std::string(what));
  if (s->numel() != 1 && static_cast<int64_t>(s->numel()) != per)
    ThrowInvalid(node.describe() + ": " + what + " has " + std::to_string(s->numel()) +
                 " values, expected 1 or " + std::to_string(per));
  return Scales(node, *s);
}

std::vector<float> Scales(const ir::Node& node, const ir::Tensor& scale) {
  std::vector<float> s(scale.numel());
  if (scale.dtype() == ir::DType::kFloat32) {
    std::copy(scale.data<float>(), scale.data<float>() + s.size(), s.begin());
  } else if (scale.dtype() == ir::DType::kFloat16) {
    for (size_t i = 0; i < s.size(); ++i) s[i] = ir::HalfToFloat(scale.data<uint16_t>()[i]);
  } else {
    ThrowUnsupported(node.describe() + ": scale has dtype " + ir::DTypeName(scale.dtype()) +
                     ", expected float32");
  }
  return s;
}

std::vector<int32_t> ZeroPoints(const ir::Node& node, const ir::Tensor* zp, size_t count) {
  std::vector<int32_t> z(count, 0);
  if (!zp) return z;
  if (zp->numel() != count)
    ThrowInvalid(node.describe() + ": zero point has " + std::to_string(zp->numel()) +
                 " values, expected " + std::to_string(count));
  if (count == 0) return z;
  // One dtype switch per tensor, not per value: per-channel weight zero points are read
  // on every conv run.
  auto widen = [&](const auto* v) { std::copy(v, v + count, z.begin()); };
  switch (zp->dtype()) {
    case ir::DType::kUInt8: widen(zp->data<uint8_t>()); break;
    case ir::DType::kInt8: widen(zp->data<int8_t>()); break;
    case ir::DType::kUInt16: widen(zp->data<uint16_t>()); break;
    case ir::DType::kInt16: widen(zp->data<int16_t>()); break;
    case ir::DType::kInt32: widen(zp->data<int32_t>()); break;
    default:
      ThrowUnsupported(node.describe() + ": zero point has dtype " + ir::DTypeName(zp->dtype()));
  }
  return z;
}

Activation ReadActivation(const ir::Node& node) {
  Activation a;
  const std::string act = node.attr_string("activation", "");
  if (act.empty()) return a;
  a.any = true;
  if (act == "Relu") {
    a.lo = 0.f;
  } else if (act == "Clip") {
    const std::vector<float> p = node.attr_floats("activation_params", {});
    if (p.size() != 2)
      ThrowInvalid(node.describe() + ": activation Clip needs 2 activation_params, got " +
                   std::to_string(p.size()));
    a.lo = p[0];
    a.hi = p[1];
  } else {
    ThrowUnsupported(node.describe() + ": fused activation '" + act +
                     "' is not supported (Relu, Clip are)");
  }
  return a;
}

namespace {
#if defined(__x86_64__)
// min/max over 4 x 8 lanes: one min/max chain was bound by its latency (8 floats per 2
// cycles, 3 us of a BERT DynamicQuantizeMatMul's 128 x 384 input on Zen 4); four chains
// scan at load speed, about twice as fast. _mm256_min_ps(x, m) returns m for a NaN x, as
// std::min(m, x) does, and min/max are exact, so the order of the reduction (chains
// folded at the end) does not matter.
__attribute__((target("avx2"))) void MinMaxAvx2(const float* x, int64_t n, float* mn, float* mx) {
  __m256 mn0 = _mm256_set1_ps(*mn), mx0 = _mm256_set1_ps(*mx);
  __m256 mn1 = mn0, mn2 = mn0, mn3 = mn0, mx1 = mx0, mx2 = mx0, mx3 = mx0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    const __m256 v2 = _mm256_loadu_ps(x + i + 16), v3 = _mm256_loadu_ps(x + i + 24);
    mn0 = _mm256_min_ps(v0, mn0);
    mx0 = _mm256_max_ps(v0, mx0);
    mn1 = _mm256_min_ps(v1, mn1);
    mx1 = _mm256_max_ps(v1, mx1);
    mn2 = _mm256_min_ps(v2, mn2);
    mx2 = _mm256_max_ps(v2, mx2);
    mn3 = _mm256_min_ps(v3, mn3);
    mx3 = _mm256_max_ps(v3, mx3);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    mn0 = _mm256_min_ps(v, mn0);
    mx0 = _mm256_max_ps(v, mx0);
  }
  mn0 = _mm256_min_ps(_mm256_min_ps(mn0, mn1), _mm256_min_ps(mn2, mn3));
  mx0 = _mm256_max_ps(_mm256_max_ps(mx0, mx1), _mm256_max_ps(mx2, mx3));
  alignas(32) float a[8], b[8];
  _mm256_store_ps(a, mn0);
  _mm256_store_ps(b, mx0);
  for (int j = 0; j < 8; ++j) {
    *mn = std::min(*mn, a[j]);
    *mx = std::max(*mx, b[j]);
  }
  for (; i < n; ++i) {
    *mn = std::min(*mn, x[i]);
    *mx = std::max(*mx, x[i]);
  }
}
#endif

bool UseAvx2() { return GetCpuFeatures().Has(Isa::kAvx2) && !ForceScalar(); }

// Folds x into [mn, mx]; NaN is skipped (the vector min/max keep their second operand,
// std::min/max their first), so any split of x folds to the same bounds.
void MinMax(const float* x, int64_t n, float* mn, float* mx) {
#if defined(__x86_64__)
  if (UseAvx2()) return MinMaxAvx2(x, n, mn, mx);
#endif
  for (int64_t i = 0; i < n; ++i) {
    *mn = std::min(*mn, x[i]);
    *mx = std::max(*mx, x[i]);
  }
}

}  // namespace

U8Params DynamicU8Params(const float* x, int64_t n, ThreadPool* pool) {
  float mn = 0.f, mx = 0.f;
  // Below 4 grains (BERT's 128 x 384 inputs are 3) the caller scans alone: the scan takes
  // about 2 us, less than handing a loop to the pool and waiting for it, which on a loaded
  // machine (the worker not running) costs far more.
  const int64_t parts = pool && pool->num_threads() > 1 && n >= 4 * kGrain
                            ? std::min<int64_t>(4 * pool->num_threads(), n / kGrain)
                            : 1;
  if (parts > 1) {
    // Bounds per part, folded in part order: min and max are exact, the result is the
    // serial one.
    std::vector<float> lo(static_cast<size_t>(parts), 0.f), hi(static_cast<size_t>(parts), 0.f);
    pool->ParallelFor(parts, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t q = p0; q < p1; ++q)
        MinMax(x + q * n / parts, (q + 1) * n / parts - q * n / parts, &lo[static_cast<size_t>(q)],
               &hi[static_cast<size_t>(q)]);
    });
    for (int64_t q = 0; q < parts; ++q) {
      mn = std::min(mn, lo[static_cast<size_t>(q)]);
      mx = std::max(mx, hi[static_cast<size_t>(q)]);
    }
  } else {
    MinMax(x, n, &mn, &mx);
  }
  U8Params p;
  // As onnxruntime's GetQuantizationParameter: an all-zero input gets scale 1.
  p.scale = mx == mn ? 1.f : (mx - mn) / 255.f;
  const float zp = std::min(255.f, std::max(0.f, 0.f - mn / p.scale));
  p.zero_point = static_cast<int32_t>(std::nearbyint(zp));
  return p;
}

void QuantizeU8(const float* x, int64_t n, float scale, int32_t zp, uint8_t* y, ThreadPool* pool) {
  auto span = [&](int64_t b, int64_t e) {
#if defined(__x86_64__)
    if (UseAvx2()) return QuantizeSpanAvx2<uint8_t>(x + b, e - b, scale, zp, y + b);
#endif
    QuantizeSpan<uint8_t>(x + b, e - b, scale, zp, y + b);
  };
  if (pool)
    pool->ParallelFor(n, kGrain, span);
  else
    span(0, n);
}

}  // namespace qutil

void RegisterQuantizeKernels(KernelRegistry& r) {
  using ir::DType;
  r.Add({"QuantizeLinear", "", DType::kUndefined, Isa::kScalar, "any_quantizelinear__ref",
         Create<QuantizeLinearKernel<Isa::kScalar>>});
#if defined(__x86_64__)
  r.Add({"QuantizeLinear", "", DType::kUndefined, Isa::kAvx2, "any_quantizelinear__avx2",
         Create<QuantizeLinearKernel<Isa::kAvx2>>});
#endif
  r.Add({"DequantizeLinear", "", DType::kUndefined, Isa::kScalar, "any_dequantizelinear__ref",
         Create<DequantizeLinearKernel<Isa::kScalar>>});
#if defined(__x86_64__)
  r.Add({"DequantizeLinear", "", DType::kUndefined, Isa::kAvx2, "any_dequantizelinear__avx2",
         Create<DequantizeLinearKernel<Isa::kAvx2>>});
#endif
  r.Add({"DynamicQuantizeLinear", "", DType::kFloat32, Isa::kScalar,
         "f32_dynamicquantizelinear__ref", Create<DynamicQuantizeLinearKernel>});
}

}  // namespace edgepress::runtime
