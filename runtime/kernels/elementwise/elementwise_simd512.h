// AVX-512F vector math for the softmax and normalisation kernels: the same Cephes expf as
// Exp256 (elementwise_simd.h, <= 2 ulp in [-87, 88]) on 16 lanes, and horizontal
// reductions. Every function carries its own target attribute; callers must only reach
// them after CpuFeatures::Has(Isa::kAvx512).
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::kernels::avx512 {

#define EP_AVX512 __attribute__((target("avx512f"))) inline

// exp(x) for x in [-87.33, 88.37] (callers clamp): the result is a normal float, never a
// denormal, so no FMA downstream takes a microcode assist.
EP_AVX512 __m512 Exp512(__m512 x) {
  __m512 fx = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f));
  fx = _mm512_roundscale_ps(fx, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
  __m512 y = _mm512_set1_ps(1.9875691500E-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894E-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459E-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201E-1f));
  const __m512 x2 = _mm512_mul_ps(x, x);
  y = _mm512_fmadd_ps(y, x2, _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  // y * 2^fx; scalef handles the full exponent range in one step.
  return _mm512_scalef_ps(y, fx);
}

EP_AVX512 float HSum512(__m512 v) { return _mm512_reduce_add_ps(v); }
EP_AVX512 float HMax512(__m512 v) { return _mm512_reduce_max_ps(v); }

// Mask of the first n (0..16) lanes.
EP_AVX512 __mmask16 TailMask16(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

#undef EP_AVX512

}  // namespace edgepress::runtime::kernels::avx512
#endif  // __x86_64__
