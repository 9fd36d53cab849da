// AVX-512F entries of the f32 elementwise ops that show in transformer profiles: Gelu
// (ONNX, both approximations, and com.microsoft's erf form), Tanh, Erf, and the
// broadcasting Add/Sub/Mul/Div. The math is elementwise_avx2.cc's on 16 lanes (same
// approximations, same error bounds); tails use masked loads and stores.
#if defined(__x86_64__)

#include <immintrin.h>

#include "runtime/kernels/elementwise/elementwise.h"
#include "runtime/kernels/elementwise/elementwise_common.h"
#include "runtime/kernels/elementwise/elementwise_impl.h"
#include "runtime/kernels/elementwise/elementwise_simd512.h"

namespace edgepress::runtime::kernels {
namespace {

#define EP_AVX512 __attribute__((target("avx512f")))

// gcc 12 reports -Wmaybe-uninitialized inside the unmasked AVX-512 intrinsics once they
// are inlined into these loops (their _mm512_undefined_ps pass-through operand).
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

template <class V>
EP_AVX512 void UnaryLoop(const float* x, float* y, int64_t n, const V& v) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, v(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = avx512::TailMask16(n - i);
    _mm512_mask_storeu_ps(y + i, m, v(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

template <class V>
std::unique_ptr<Kernel> Unary(V v) {
  return MakeKernel([v](KernelContext& ctx) {
    RunUnary(ctx, UnaryKind::kFloat, [&](ir::DType, const void* x, void* y, int64_t n) {
      UnaryLoop(static_cast<const float*>(x), static_cast<float*>(y), n, v);
    });
  });
}

struct TanhV {
  EP_AVX512 __m512 operator()(__m512 x) const { return avx512::Tanh512(x); }
};
struct ErfV {
  EP_AVX512 __m512 operator()(__m512 x) const { return avx512::Erf512(x); }
};
struct GeluV {
  bool tanh_approx;
  EP_AVX512 __m512 operator()(__m512 x) const {
    const __m512 half_x = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
    __m512 t;
    if (tanh_approx) {
      const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
      const __m512 in = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f),
                                      _mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x));
      t = avx512::Tanh512(in);
    } else {
      t = avx512::Erf512(_mm512_mul_ps(x, _mm512_set1_ps(0.7071067811865476f)));
    }
    return _mm512_fmadd_ps(half_x, t, half_x);
  }
};

struct AddV {
  EP_AVX512 __m512 operator()(__m512 a, __m512 b) const { return _mm512_add_ps(a, b); }
};
struct SubV {
  EP_AVX512 __m512 operator()(__m512 a, __m512 b) const { return _mm512_sub_ps(a, b); }
};
struct MulV {
  EP_AVX512 __m512 operator()(__m512 a, __m512 b) const { return _mm512_mul_ps(a, b); }
};
struct DivV {
  EP_AVX512 __m512 operator()(__m512 a, __m512 b) const { return _mm512_div_ps(a, b); }
};

// One run of the broadcast plan: a and b advance by sa / sb (0: a broadcast scalar).
template <class V>
EP_AVX512 void BinaryLoop(float* o, const float* a, int64_t sa, const float* b, int64_t sb,
                          int64_t n, const V& v) {
  const __m512 va = sa ? _mm512_setzero_ps() : _mm512_set1_ps(*a);
  const __m512 vb = sb ? _mm512_setzero_ps() : _mm512_set1_ps(*b);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(o + i, v(sa ? _mm512_loadu_ps(a + i) : va, sb ? _mm512_loadu_ps(b + i) : vb));
  if (i < n) {
    const __mmask16 m = avx512::TailMask16(n - i);
    _mm512_mask_storeu_ps(o + i, m, v(sa ? _mm512_maskz_loadu_ps(m, a + i) : va,
                                      sb ? _mm512_maskz_loadu_ps(m, b + i) : vb));
  }
}

template <class V>
std::unique_ptr<Kernel> Binary(V v) {
  return MakeKernel([v](KernelContext& ctx) {
    RunBinary(ctx, In(ctx, 0), In(ctx, 1), ir::DType::kUndefined,
              [&](ir::DType, void* o, const void* pa, int64_t sa, const void* pb, int64_t sb,
                  int64_t n) {
                BinaryLoop(static_cast<float*>(o), static_cast<const float*>(pa), sa,
                           static_cast<const float*>(pb), sb, n, v);
              });
  });
}

#pragma GCC diagnostic pop
#undef EP_AVX512

void Add(KernelRegistry& r, const char* op, std::unique_ptr<Kernel> (*create)(const KernelInit&),
         const char* domain = "") {
  r.Add({op, domain, ir::DType::kFloat32, Isa::kAvx512,
         KernelName(std::string(domain).empty() ? "f32" : "f32_ms", op, "avx512"), create});
}

}  // namespace

void RegisterElementwiseAvx512Kernels(KernelRegistry& r) {
  Add(r, "Tanh", [](const KernelInit&) { return Unary(TanhV{}); });
  Add(r, "Erf", [](const KernelInit&) { return Unary(ErfV{}); });
  Add(r, "Gelu", [](const KernelInit& i) {
    return Unary(GeluV{i.node.attr_string("approximate", "none") == "tanh"});
  });
  Add(r, "Gelu", [](const KernelInit&) { return Unary(GeluV{false}); }, "com.microsoft");
  Add(r, "FastGelu", [](const KernelInit& i) {
    RefuseFastGeluBias(i);
    return Unary(GeluV{true});
  }, "com.microsoft");
  Add(r, "Add", [](const KernelInit&) { return Binary(AddV{}); });
  Add(r, "Sub", [](const KernelInit&) { return Binary(SubV{}); });
  Add(r, "Mul", [](const KernelInit&) { return Binary(MulV{}); });
  Add(r, "Div", [](const KernelInit&) { return Binary(DivV{}); });
}

}  // namespace edgepress::runtime::kernels

#endif  // __x86_64__
