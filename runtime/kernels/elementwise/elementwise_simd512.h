// AVX-512F vector math for the softmax, normalisation and elementwise kernels: the same
// Cephes expf as Exp256 (elementwise_simd.h, <= 2 ulp in [-87, 88]), Tanh and Erf on 16
// lanes, and horizontal reductions. Every function carries its own target attribute; callers must only reach
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

// Tanh256 / Erf256 (elementwise_simd.h) on 16 lanes: the same rational approximations
// (exact divisions), so the same error bounds (absolute <= 4e-7); NaN passes through.
EP_AVX512 __m512 Tanh512(__m512 x) {
  const __m512 c = _mm512_set1_ps(7.90531110763549805f);
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_sub_ps(_mm512_setzero_ps(), c)), c);
  const __m512 x2 = _mm512_mul_ps(xc, xc);
  __m512 p = _mm512_set1_ps(-2.76076847742355e-16f);
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.00018790482477e-13f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-8.60467152213735e-11f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(5.12229709037114e-08f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(1.48572235717979e-05f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(6.37261928875436e-04f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(4.89352455891786e-03f));
  p = _mm512_mul_ps(p, xc);
  __m512 q = _mm512_set1_ps(1.19825839466702e-06f);
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(1.18534705686654e-04f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(2.26843463243900e-03f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(4.89352518554385e-03f));
  __m512 r = _mm512_div_ps(p, q);
  // tanh(x) = x to float precision below 4e-4; keeps signed zero and tiny values exact.
  const __m512 absx = _mm512_abs_ps(x);
  r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(absx, _mm512_set1_ps(0.0004f), _CMP_LT_OQ), x);
  return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

EP_AVX512 __m512 Erf512(__m512 x) {
  const __m512 c = _mm512_set1_ps(4.0f);
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_sub_ps(_mm512_setzero_ps(), c)), c);
  const __m512 x2 = _mm512_mul_ps(xc, xc);
  __m512 p = _mm512_set1_ps(-2.72614225801306e-10f);
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.77068142495902e-08f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.10102402082508e-06f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-5.69250639462346e-05f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-7.34990630326855e-04f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.95459980854025e-03f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-1.60960333262415e-02f));
  p = _mm512_mul_ps(p, xc);
  __m512 q = _mm512_set1_ps(-1.45660718464996e-05f);
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-2.13374055278905e-04f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.68282697438203e-03f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-7.37332916720468e-03f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.42647390514189e-02f));
  const __m512 r = _mm512_div_ps(p, q);
  return _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
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
