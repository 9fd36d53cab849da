// q8_ms_qlinearadd__avx512, q8_qlinearadd__avx512, q8_ms_qlinearmul__avx512: the vector
// loops of QLinearAdd / QLinearMul (qlinear_eltwise_simd.h), 16 lanes with masked tails.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "runtime/kernels/quant/qlinear_eltwise_simd.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::qeltwise {

namespace {

// BinaryLoop<false> (Add, qlinear_eltwise.cc) for same-shape inputs, 16 at a time with
// the same float operations in the same order (the _round forms are builtins gcc never
// contracts into an FMA, which would change the rounding), round half to even (cvtps under
// the default MXCSR, as nearbyint), then the integer clamp. |v| is clamped to 2^30 first so
// that the conversion stays in range (beyond it the scalar cast has no defined value either).
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // gcc 12, unmasked AVX-512 intrinsics
#endif
template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void AddLoop(
    const T* a, const T* b, T* c, int64_t n, float ra, float rb, int32_t za, int32_t zb,
    int32_t zc, int32_t lo, int32_t hi) {
  constexpr int kR = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512i vza = _mm512_set1_epi32(za), vzb = _mm512_set1_epi32(zb), vzc = _mm512_set1_epi32(zc);
  const __m512i vlo = _mm512_set1_epi32(lo), vhi = _mm512_set1_epi32(hi);
  const __m512 vra = _mm512_set1_ps(ra), vrb = _mm512_set1_ps(rb);
  const __m512 big = _mm512_set1_ps(1073741824.f), nbig = _mm512_set1_ps(-1073741824.f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m128i ra8 = _mm_maskz_loadu_epi8(m, a + i), rb8 = _mm_maskz_loadu_epi8(m, b + i);
    const bool u8 = std::is_same<T, uint8_t>::value;
    const __m512i ai = u8 ? _mm512_cvtepu8_epi32(ra8) : _mm512_cvtepi8_epi32(ra8);
    const __m512i bi = u8 ? _mm512_cvtepu8_epi32(rb8) : _mm512_cvtepi8_epi32(rb8);
    const __m512 x = _mm512_mul_round_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(ai, vza)), vra, kR);
    const __m512 y = _mm512_mul_round_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(bi, vzb)), vrb, kR);
    __m512 v = _mm512_add_round_ps(x, y, kR);
    v = _mm512_min_ps(_mm512_max_ps(v, nbig), big);
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), vzc);
    q = _mm512_min_epi32(_mm512_max_epi32(q, vlo), vhi);
    _mm_mask_storeu_epi8(c + i, m, _mm512_cvtepi32_epi8(q));
  }
}

// MulBlocks and the same-shape Mul (qlinear_eltwise.cc), 16 at a time with the scalar loops' exact operations:
// the gate term rg = (g - zg) * r once per block (or the integer product a * b for equal
// shapes), one non-contracted multiply, the same clamp to +-2^22 and round half to even
// (cvtps under the default MXCSR, as RoundEven), the integer clamp.
template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void MulRow(
    const T* a, const T* b, float rg, float r, T* c, int64_t n, int32_t za, int32_t zb,
    int32_t zc, int32_t lo, int32_t hi) {
  constexpr int kR = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const bool u8 = std::is_same<T, uint8_t>::value;
  const __m512i vza = _mm512_set1_epi32(za), vzb = _mm512_set1_epi32(zb), vzc = _mm512_set1_epi32(zc);
  const __m512i vlo = _mm512_set1_epi32(lo), vhi = _mm512_set1_epi32(hi);
  const __m512 big = _mm512_set1_ps(4194304.f), nbig = _mm512_set1_ps(-4194304.f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m128i ra8 = _mm_maskz_loadu_epi8(m, a + i);
    const __m512i ai = _mm512_sub_epi32(u8 ? _mm512_cvtepu8_epi32(ra8) : _mm512_cvtepi8_epi32(ra8), vza);
    __m512 v;
    if (b) {  // same shapes: float(qa * qb) * r
      const __m128i rb8 = _mm_maskz_loadu_epi8(m, b + i);
      const __m512i bi = _mm512_sub_epi32(u8 ? _mm512_cvtepu8_epi32(rb8) : _mm512_cvtepi8_epi32(rb8), vzb);
      v = _mm512_mul_round_ps(_mm512_cvtepi32_ps(_mm512_mullo_epi32(ai, bi)), _mm512_set1_ps(r), kR);
    } else {  // a block of one gate: float(qa) * rg
      v = _mm512_mul_round_ps(_mm512_cvtepi32_ps(ai), _mm512_set1_ps(rg), kR);
    }
    v = _mm512_min_ps(_mm512_max_ps(v, nbig), big);
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), vzc);
    q = _mm512_min_epi32(_mm512_max_epi32(q, vlo), vhi);
    _mm_mask_storeu_epi8(c + i, m, _mm512_cvtepi32_epi8(q));
  }
}
#pragma GCC diagnostic pop

}  // namespace

// Plain entry points: gcc would take a target attribute that differs from the header's
// declaration for a second version of the function.
template <typename T>
void AddLoopAvx512(const T* a, const T* b, T* c, int64_t n, float ra, float rb, int32_t za,
                   int32_t zb, int32_t zc, int32_t lo, int32_t hi) {
  AddLoop(a, b, c, n, ra, rb, za, zb, zc, lo, hi);
}

template <typename T>
void MulRowAvx512(const T* a, const T* b, float rg, float r, T* c, int64_t n, int32_t za,
                  int32_t zb, int32_t zc, int32_t lo, int32_t hi) {
  MulRow(a, b, rg, r, c, n, za, zb, zc, lo, hi);
}

template void AddLoopAvx512<uint8_t>(const uint8_t*, const uint8_t*, uint8_t*, int64_t, float,
                                     float, int32_t, int32_t, int32_t, int32_t, int32_t);
template void AddLoopAvx512<int8_t>(const int8_t*, const int8_t*, int8_t*, int64_t, float, float,
                                    int32_t, int32_t, int32_t, int32_t, int32_t);
template void MulRowAvx512<uint8_t>(const uint8_t*, const uint8_t*, float, float, uint8_t*,
                                    int64_t, int32_t, int32_t, int32_t, int32_t, int32_t);
template void MulRowAvx512<int8_t>(const int8_t*, const int8_t*, float, float, int8_t*, int64_t,
                                   int32_t, int32_t, int32_t, int32_t, int32_t);

}  // namespace edgepress::runtime::qeltwise

#endif  // __x86_64__
