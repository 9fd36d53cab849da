// Softmax, LogSoftmax and Hardmax. Opset 13 normalises along one axis (default -1);
// opsets 1-12 coerce the input to 2-D [prod(dims[:axis]), prod(dims[axis:])] (default
// axis 1) and normalise each row. KernelInit::opset selects the rule (0 = unknown: 13).
//
// The reference subtracts the row max and accumulates in double. The AVX2 and AVX-512
// entries handle rows that are contiguous (the last axis, or any 2-D-coerced row) with
// Exp256 / Exp512 (<= 2 ulp) and f32 sums; strided lines fall back to the reference loop.
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/kernels/elementwise/elementwise_common.h"
#include "runtime/kernels/elementwise/elementwise_impl.h"
#include "runtime/kernels/elementwise/elementwise_simd.h"
#include "runtime/kernels/elementwise/elementwise_simd512.h"

namespace edgepress::runtime {
namespace kernels {
namespace {

enum class SOp { kSoftmax, kLogSoftmax, kHardmax };

// One line of n elements at stride `inner`.
template <class T>
void LineRef(SOp op, const T* x, T* y, int64_t n, int64_t inner) {
  if (n == 0) return;
  double m = -std::numeric_limits<double>::infinity();
  int64_t arg = 0;
  for (int64_t k = 0; k < n; ++k) {
    double v = static_cast<double>(x[k * inner]);
    if (v > m) {
      m = v;
      arg = k;
    }
  }
  if (op == SOp::kHardmax) {
    for (int64_t k = 0; k < n; ++k) y[k * inner] = static_cast<T>(k == arg ? 1 : 0);
    return;
  }
  double s = 0;
  for (int64_t k = 0; k < n; ++k) s += std::exp(static_cast<double>(x[k * inner]) - m);
  if (op == SOp::kSoftmax) {
    for (int64_t k = 0; k < n; ++k)
      y[k * inner] = static_cast<T>(std::exp(static_cast<double>(x[k * inner]) - m) / s);
  } else {
    double ls = std::log(s);
    for (int64_t k = 0; k < n; ++k) y[k * inner] = static_cast<T>(static_cast<double>(x[k * inner]) - m - ls);
  }
}

using FastRow = void (*)(SOp op, const float* x, float* y, int64_t n);

#if defined(__x86_64__)
// exp(v) for v = x - max <= 0, and exactly 0 where the result would be below FLT_MIN (a
// masked attention score, -1e4 or -inf): Exp256 clamps there to a 4e-39 denormal, and a
// denormal probability made the next MatMul take the CPU's slow microcode path (the GPT
// fixture ran 2.4x slower). The reference's double exp rounds those entries to 0 or a
// denormal below 1.2e-38, so outputs still agree within that.
//
// The argument is clamped to -87.34 first: Exp256 alone clamps at -88.38 and computes a
// denormal there, and every masked score then cost a microcode assist inside the exp (the
// BERT fixture's padding mask made its Softmax 3x slower than its unmasked rows).
constexpr float kExpFloor = -87.33654475f;  // log(FLT_MIN)

__attribute__((target("avx2,fma"))) inline __m256 SoftmaxExp(__m256 v) {
  const __m256 floor = _mm256_set1_ps(kExpFloor);
  const __m256 e = avx2::Exp256(_mm256_max_ps(v, floor));
  return _mm256_andnot_ps(_mm256_cmp_ps(v, floor, _CMP_LT_OQ), e);
}

__attribute__((target("avx2,fma"))) void RowAvx2(SOp op, const float* x, float* y, int64_t n) {
  if (n == 0) return;
  __m256 vm = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + k));
  float m = avx2::HMax256(vm);
  for (; k < n; ++k) m = std::max(m, x[k]);
  __m256 vmax = _mm256_set1_ps(m);
  __m256 vs = _mm256_setzero_ps();
  k = 0;
  if (op == SOp::kSoftmax) {
    for (; k + 8 <= n; k += 8) {
      __m256 e = SoftmaxExp(_mm256_sub_ps(_mm256_loadu_ps(x + k), vmax));
      _mm256_storeu_ps(y + k, e);
      vs = _mm256_add_ps(vs, e);
    }
    if (k < n) {
      __m256i mask = avx2::TailMask(n - k);
      __m256 e = SoftmaxExp(_mm256_sub_ps(_mm256_maskload_ps(x + k, mask), vmax));
      e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
      _mm256_maskstore_ps(y + k, mask, e);
      vs = _mm256_add_ps(vs, e);
    }
    __m256 inv = _mm256_set1_ps(1.0f / avx2::HSum256(vs));
    for (k = 0; k + 8 <= n; k += 8) _mm256_storeu_ps(y + k, _mm256_mul_ps(_mm256_loadu_ps(y + k), inv));
    if (k < n) {
      __m256i mask = avx2::TailMask(n - k);
      _mm256_maskstore_ps(y + k, mask, _mm256_mul_ps(_mm256_maskload_ps(y + k, mask), inv));
    }
    return;
  }
  for (; k + 8 <= n; k += 8)
    vs = _mm256_add_ps(vs, SoftmaxExp(_mm256_sub_ps(_mm256_loadu_ps(x + k), vmax)));
  if (k < n) {
    __m256i mask = avx2::TailMask(n - k);
    __m256 e = SoftmaxExp(_mm256_sub_ps(_mm256_maskload_ps(x + k, mask), vmax));
    vs = _mm256_add_ps(vs, _mm256_and_ps(e, _mm256_castsi256_ps(mask)));
  }
  __m256 shift = _mm256_set1_ps(m + std::log(avx2::HSum256(vs)));
  for (k = 0; k + 8 <= n; k += 8) _mm256_storeu_ps(y + k, _mm256_sub_ps(_mm256_loadu_ps(x + k), shift));
  if (k < n) {
    __m256i mask = avx2::TailMask(n - k);
    _mm256_maskstore_ps(y + k, mask, _mm256_sub_ps(_mm256_maskload_ps(x + k, mask), shift));
  }
}

#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // gcc 12, unmasked AVX-512 intrinsics
#endif
// The AVX2 row on 16 lanes with masked tails; exp(v) is 0 below kExpFloor as above, and a
// NaN score stays NaN (max(floor, NaN) returns the NaN).
__attribute__((target("avx512f"))) inline __m512 SoftmaxExp512(__m512 v) {
  const __m512 floor = _mm512_set1_ps(kExpFloor);
  const __mmask16 keep = _mm512_cmp_ps_mask(v, floor, _CMP_NLT_UQ);
  return _mm512_maskz_mov_ps(keep, avx512::Exp512(_mm512_max_ps(floor, v)));
}

__attribute__((target("avx512f"))) void RowAvx512(SOp op, const float* x, float* y, int64_t n) {
  if (n == 0) return;
  __m512 vm = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(x + k));
  if (k < n) vm = _mm512_mask_max_ps(vm, avx512::TailMask16(n - k), vm, _mm512_maskz_loadu_ps(avx512::TailMask16(n - k), x + k));
  const float m = avx512::HMax512(vm);
  const __m512 vmax = _mm512_set1_ps(m);
  __m512 vs = _mm512_setzero_ps();
  const __mmask16 tail = avx512::TailMask16(n % 16);
  const int64_t full = n - n % 16;
  for (k = 0; k < full; k += 16) {
    const __m512 e = SoftmaxExp512(_mm512_sub_ps(_mm512_loadu_ps(x + k), vmax));
    if (op == SOp::kSoftmax) _mm512_storeu_ps(y + k, e);
    vs = _mm512_add_ps(vs, e);
  }
  if (tail) {
    __m512 e = SoftmaxExp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + k), vmax));
    e = _mm512_maskz_mov_ps(tail, e);
    if (op == SOp::kSoftmax) _mm512_mask_storeu_ps(y + k, tail, e);
    vs = _mm512_add_ps(vs, e);
  }
  if (op == SOp::kSoftmax) {
    const __m512 inv = _mm512_set1_ps(1.0f / avx512::HSum512(vs));
    for (k = 0; k < full; k += 16) _mm512_storeu_ps(y + k, _mm512_mul_ps(_mm512_loadu_ps(y + k), inv));
    if (tail) _mm512_mask_storeu_ps(y + k, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, y + k), inv));
    return;
  }
  const __m512 shift = _mm512_set1_ps(m + std::log(avx512::HSum512(vs)));
  for (k = 0; k < full; k += 16) _mm512_storeu_ps(y + k, _mm512_sub_ps(_mm512_loadu_ps(x + k), shift));
  if (tail) _mm512_mask_storeu_ps(y + k, tail, _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + k), shift));
}
#pragma GCC diagnostic pop
#endif

void RunSoftmax(KernelContext& ctx, SOp op, int64_t axis, bool coerce_2d, FastRow fast) {
  const ir::Node& node = ctx.node();
  const ir::Tensor& x0 = In(ctx, 0);
  if (!ir::IsFloat(x0.dtype()))
    FailUnsupported(node, std::string("dtype ") + ir::DTypeName(x0.dtype()));
  int64_t r = x0.rank();
  int64_t outer = 1, n = 1, inner = 1;
  if (r == 0) {
    if (coerce_2d ? (axis != 0 && axis != -1 && axis != 1) : (axis != 0 && axis != -1))
      Fail(node, "axis " + std::to_string(axis) + " out of range for a scalar");
  } else if (coerce_2d) {
    int64_t a = axis < 0 ? axis + r : axis;
    if (a < 0 || a > r) Fail(node, "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(r));
    for (int64_t i = 0; i < r; ++i) (i < a ? outer : n) *= x0.shape()[i];
  } else {
    int64_t a = NormAxis(node, axis, r);
    for (int64_t i = 0; i < r; ++i) (i < a ? outer : (i == a ? n : inner)) *= x0.shape()[i];
  }
  NumElements(node, x0.shape());
  bool half = IsHalfLike(x0.dtype());
  ir::Tensor x = half ? CastTensor(node, x0, ir::DType::kFloat32) : x0;
  ir::Tensor res = half ? ir::Tensor(ir::DType::kFloat32, x0.shape()) : ir::Tensor();
  ir::Tensor& out = half ? res : ctx.AllocateOutput(0, x0.dtype(), x0.shape());
  if (x.numel()) {
    const int64_t lines = outer * inner;
    const int64_t threshold = std::max<int64_t>(1, kParallelThreshold / 4 / std::max<int64_t>(1, n));
    DispatchNumeric(node, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_floating_point_v<T>) {
        const T* px = x.data<T>();
        T* py = out.mutable_data<T>();
        ParallelRange(ctx.pool(), lines, threshold, [&](int64_t b, int64_t e) {
          for (int64_t l = b; l < e; ++l) {
            int64_t o = l / inner, i = l % inner;
            const T* xl = px + o * n * inner + i;
            T* yl = py + o * n * inner + i;
            if constexpr (std::is_same_v<T, float>) {
              if (fast && inner == 1) {
                fast(op, xl, yl, n);
                continue;
              }
            }
            LineRef(op, xl, yl, n, inner);
          }
        });
      }
    });
  }
  if (half) {
    ir::Tensor back = CastTensor(node, res, x0.dtype());
    ir::Tensor& o = ctx.AllocateOutput(0, x0.dtype(), x0.shape());
    if (o.nbytes()) std::memcpy(o.mutable_raw(), back.raw(), o.nbytes());
  }
}

template <SOp kOp, Isa kIsa>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  bool coerce = init.opset > 0 && init.opset < 13;
  int64_t axis = init.node.attr_int("axis", coerce ? 1 : -1);
  FastRow fast = nullptr;
#if defined(__x86_64__)
  if (kIsa == Isa::kAvx2) fast = RowAvx2;
  if (kIsa == Isa::kAvx512) fast = RowAvx512;
#endif
  return MakeKernel([axis, coerce, fast](KernelContext& ctx) { RunSoftmax(ctx, kOp, axis, coerce, fast); });
}

}  // namespace
}  // namespace kernels

void RegisterSoftmaxKernels(KernelRegistry& r) {
  using kernels::SOp;
  kernels::AddRef(r, "Softmax", kernels::Create<SOp::kSoftmax, Isa::kScalar>);
  kernels::AddRef(r, "LogSoftmax", kernels::Create<SOp::kLogSoftmax, Isa::kScalar>);
  kernels::AddRef(r, "Hardmax", kernels::Create<SOp::kHardmax, Isa::kScalar>);
#if defined(__x86_64__)
  r.Add({"Softmax", "", ir::DType::kFloat32, Isa::kAvx2, "f32_softmax__avx2",
         kernels::Create<SOp::kSoftmax, Isa::kAvx2>});
  r.Add({"LogSoftmax", "", ir::DType::kFloat32, Isa::kAvx2, "f32_log_softmax__avx2",
         kernels::Create<SOp::kLogSoftmax, Isa::kAvx2>});
  r.Add({"Softmax", "", ir::DType::kFloat32, Isa::kAvx512, "f32_softmax__avx512",
         kernels::Create<SOp::kSoftmax, Isa::kAvx512>});
  r.Add({"LogSoftmax", "", ir::DType::kFloat32, Isa::kAvx512, "f32_log_softmax__avx512",
         kernels::Create<SOp::kLogSoftmax, Isa::kAvx512>});
#endif
}

}  // namespace edgepress::runtime
