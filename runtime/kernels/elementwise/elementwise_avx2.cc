// AVX2+FMA kernels for the hot f32 elementwise ops: activations (Relu, LeakyRelu, Clip,
// Sigmoid, HardSigmoid, HardSwish, Tanh, Erf, Gelu), Exp, Sqrt, Neg, Abs, and the
// broadcasting Add/Sub/Mul/Div with vector paths for same-shape, scalar and row
// broadcasts. Tails use masked loads so every element goes through the same vector
// code (results do not depend on where a chunk boundary falls).
#if defined(__x86_64__)

#include <immintrin.h>

#include <limits>

#include "runtime/kernels/elementwise/elementwise.h"
#include "runtime/kernels/elementwise/elementwise_common.h"
#include "runtime/kernels/elementwise/elementwise_impl.h"
#include "runtime/kernels/elementwise/elementwise_simd.h"

namespace edgepress::runtime::kernels {
namespace {

#define EP_AVX2 __attribute__((target("avx2,fma")))

template <class V>
EP_AVX2 void UnaryLoop(const float* x, float* y, int64_t n, const V& v) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, v(_mm256_loadu_ps(x + i)));
  if (i < n) {
    __m256i m = avx2::TailMask(n - i);
    _mm256_maskstore_ps(y + i, m, v(_mm256_maskload_ps(x + i, m)));
  }
}

template <class V>
std::unique_ptr<Kernel> Avx2Unary(V v) {
  return MakeKernel([v](KernelContext& ctx) {
    RunUnary(ctx, UnaryKind::kFloat, [&](ir::DType dt, const void* x, void* y, int64_t n) {
      UnaryLoop(static_cast<const float*>(x), static_cast<float*>(y), n, v);
    });
  });
}

struct ReluV {
  EP_AVX2 __m256 operator()(__m256 x) const {
    // maxps returns its second operand for NaN: 0, as the reference's x > 0 ? x : 0.
    return _mm256_max_ps(x, _mm256_setzero_ps());
  }
};
struct LeakyReluV {
  float alpha;
  EP_AVX2 __m256 operator()(__m256 x) const {
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    return _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(alpha)), neg);
  }
};
struct ClipV {
  float lo, hi;
  EP_AVX2 __m256 operator()(__m256 x) const {
    // Compare-and-blend keeps NaN, as the reference does.
    __m256 l = _mm256_set1_ps(lo), h = _mm256_set1_ps(hi);
    x = _mm256_blendv_ps(x, l, _mm256_cmp_ps(x, l, _CMP_LT_OQ));
    return _mm256_blendv_ps(x, h, _mm256_cmp_ps(x, h, _CMP_GT_OQ));
  }
};
struct SigmoidV {
  EP_AVX2 __m256 operator()(__m256 x) const { return avx2::Sigmoid256(x); }
};
struct HardSigmoidV {
  float alpha, beta;
  EP_AVX2 __m256 operator()(__m256 x) const {
    __m256 v = _mm256_fmadd_ps(x, _mm256_set1_ps(alpha), _mm256_set1_ps(beta));
    return _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(1.0f));
  }
};
struct HardSwishV {
  EP_AVX2 __m256 operator()(__m256 x) const {
    __m256 v = _mm256_fmadd_ps(x, _mm256_set1_ps(1.0f / 6.0f), _mm256_set1_ps(0.5f));
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(1.0f));
    return _mm256_mul_ps(x, v);
  }
};
struct TanhV {
  EP_AVX2 __m256 operator()(__m256 x) const { return avx2::Tanh256(x); }
};
struct ErfV {
  EP_AVX2 __m256 operator()(__m256 x) const { return avx2::Erf256(x); }
};
struct GeluV {
  bool tanh_approx;
  EP_AVX2 __m256 operator()(__m256 x) const {
    __m256 half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5f));
    __m256 t;
    if (tanh_approx) {
      __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
      __m256 in = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                _mm256_fmadd_ps(x3, _mm256_set1_ps(0.044715f), x));
      t = avx2::Tanh256(in);
    } else {
      t = avx2::Erf256(_mm256_mul_ps(x, _mm256_set1_ps(0.7071067811865476f)));
    }
    return _mm256_fmadd_ps(half_x, t, half_x);
  }
};
struct ExpV {
  EP_AVX2 __m256 operator()(__m256 x) const { return avx2::ExpFull256(x); }
};
struct SqrtV {
  EP_AVX2 __m256 operator()(__m256 x) const { return _mm256_sqrt_ps(x); }
};
struct NegV {
  EP_AVX2 __m256 operator()(__m256 x) const { return _mm256_xor_ps(x, _mm256_set1_ps(-0.0f)); }
};
struct AbsV {
  EP_AVX2 __m256 operator()(__m256 x) const {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  }
};

std::unique_ptr<Kernel> CreateClipAvx2(const KernelInit& init) {
  float amin = init.node.attr_float("min", -std::numeric_limits<float>::infinity());
  float amax = init.node.attr_float("max", std::numeric_limits<float>::infinity());
  return MakeKernel([amin, amax](KernelContext& ctx) {
    float lo = amin, hi = amax;
    if (const ir::Tensor* t = OptIn(ctx, 1))
      lo = static_cast<float>(ScalarValue(ctx, *t, "Clip min"));
    if (const ir::Tensor* t = OptIn(ctx, 2))
      hi = static_cast<float>(ScalarValue(ctx, *t, "Clip max"));
    ClipV v{lo, hi};
    RunUnary(ctx, UnaryKind::kFloat, [&](ir::DType, const void* x, void* y, int64_t n) {
      UnaryLoop(static_cast<const float*>(x), static_cast<float*>(y), n, v);
    });
  });
}

// --- binary ----------------------------------------------------------------------------

struct AddV {
  EP_AVX2 __m256 operator()(__m256 a, __m256 b) const { return _mm256_add_ps(a, b); }
};
struct SubV {
  EP_AVX2 __m256 operator()(__m256 a, __m256 b) const { return _mm256_sub_ps(a, b); }
};
struct MulV {
  EP_AVX2 __m256 operator()(__m256 a, __m256 b) const { return _mm256_mul_ps(a, b); }
};
struct DivV {
  EP_AVX2 __m256 operator()(__m256 a, __m256 b) const { return _mm256_div_ps(a, b); }
};

template <class V>
EP_AVX2 void BinaryLoop(float* o, const float* a, int64_t sa, const float* b, int64_t sb,
                        int64_t n, const V& v) {
  int64_t i = 0;
  if (sa && sb) {
    for (; i + 8 <= n; i += 8)
      _mm256_storeu_ps(o + i, v(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    if (i < n) {
      __m256i m = avx2::TailMask(n - i);
      _mm256_maskstore_ps(o + i, m, v(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m)));
    }
  } else if (sa) {
    __m256 vb = _mm256_set1_ps(*b);
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(o + i, v(_mm256_loadu_ps(a + i), vb));
    if (i < n) {
      __m256i m = avx2::TailMask(n - i);
      _mm256_maskstore_ps(o + i, m, v(_mm256_maskload_ps(a + i, m), vb));
    }
  } else if (sb) {
    __m256 va = _mm256_set1_ps(*a);
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(o + i, v(va, _mm256_loadu_ps(b + i)));
    if (i < n) {
      __m256i m = avx2::TailMask(n - i);
      _mm256_maskstore_ps(o + i, m, v(va, _mm256_maskload_ps(b + i, m)));
    }
  } else {
    __m256 r = v(_mm256_set1_ps(*a), _mm256_set1_ps(*b));
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(o + i, r);
    if (i < n) _mm256_maskstore_ps(o + i, avx2::TailMask(n - i), r);
  }
}

template <class V>
std::unique_ptr<Kernel> Avx2Binary(V v) {
  return MakeKernel([v](KernelContext& ctx) {
    const ir::Tensor& a = In(ctx, 0);
    const ir::Tensor& b = In(ctx, 1);
    RunBinary(ctx, a, b, ir::DType::kUndefined,
              [&](ir::DType, void* o, const void* pa, int64_t sa, const void* pb, int64_t sb,
                  int64_t n) {
                BinaryLoop(static_cast<float*>(o), static_cast<const float*>(pa), sa,
                           static_cast<const float*>(pb), sb, n, v);
              });
  });
}

#undef EP_AVX2

void Add(KernelRegistry& r, const char* op, std::unique_ptr<Kernel> (*create)(const KernelInit&),
         const char* domain = "") {
  r.Add({op, domain, ir::DType::kFloat32, Isa::kAvx2,
         KernelName(std::string(domain).empty() ? "f32" : "f32_ms", op, "avx2"), create});
}

}  // namespace

void RegisterElementwiseAvx2Kernels(KernelRegistry& r) {
  Add(r, "Relu", [](const KernelInit&) { return Avx2Unary(ReluV{}); });
  Add(r, "LeakyRelu", [](const KernelInit& i) {
    return Avx2Unary(LeakyReluV{i.node.attr_float("alpha", 0.01f)});
  });
  Add(r, "Clip", CreateClipAvx2);
  Add(r, "Sigmoid", [](const KernelInit&) { return Avx2Unary(SigmoidV{}); });
  Add(r, "HardSigmoid", [](const KernelInit& i) {
    return Avx2Unary(HardSigmoidV{i.node.attr_float("alpha", 0.2f), i.node.attr_float("beta", 0.5f)});
  });
  Add(r, "HardSwish", [](const KernelInit&) { return Avx2Unary(HardSwishV{}); });
  Add(r, "Tanh", [](const KernelInit&) { return Avx2Unary(TanhV{}); });
  Add(r, "Erf", [](const KernelInit&) { return Avx2Unary(ErfV{}); });
  Add(r, "Gelu", [](const KernelInit& i) {
    return Avx2Unary(GeluV{i.node.attr_string("approximate", "none") == "tanh"});
  });
  Add(r, "Gelu", [](const KernelInit&) { return Avx2Unary(GeluV{false}); }, "com.microsoft");
  Add(r, "FastGelu", [](const KernelInit& i) {
    RefuseFastGeluBias(i);
    return Avx2Unary(GeluV{true});
  }, "com.microsoft");
  Add(r, "Exp", [](const KernelInit&) { return Avx2Unary(ExpV{}); });
  Add(r, "Sqrt", [](const KernelInit&) { return Avx2Unary(SqrtV{}); });
  Add(r, "Neg", [](const KernelInit&) { return Avx2Unary(NegV{}); });
  Add(r, "Abs", [](const KernelInit&) { return Avx2Unary(AbsV{}); });
  Add(r, "Add", [](const KernelInit&) { return Avx2Binary(AddV{}); });
  Add(r, "Sub", [](const KernelInit&) { return Avx2Binary(SubV{}); });
  Add(r, "Mul", [](const KernelInit&) { return Avx2Binary(MulV{}); });
  Add(r, "Div", [](const KernelInit&) { return Avx2Binary(DivV{}); });
}

}  // namespace edgepress::runtime::kernels

#endif  // __x86_64__
