// Depthwise planes of at most 8 output columns (MobileNet's 7x7, stride-2 onto 7x7) on
// AVX-512F+VL: the direct fast path of depthwise_avx512.cc at 8 lanes (EVEX ymm), so a
// 7-wide row fills 7 of 8 lanes instead of 7 of 16, with AVX-512's 32 registers: a 3x3
// plane of up to 8 rows is one pass (its 9 weights and 8 row accumulators in registers,
// each input row loaded once per tap column), and so is a 5x5 plane, its 25 weights taken as
// broadcast operands from memory (in registers, with 4 rows a pass, they were spilled and
// reloaded as whole vectors: conv_bench, 1 thread, min thread-CPU, load ~7, dw 5x5 576x7
// 0.037 -> 0.027 ms, 5x5/2 288x14 0.024 -> 0.020).
// Stride 2 takes the even lanes of two masked loads with one vpermt2ps. The padding is the
// masked-off lanes (no copy), as in depthwise_avx512.cc.
#include "runtime/kernels/conv/depthwise/depthwise.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>

namespace edgepress::runtime::depthwise {

namespace {

constexpr int kVec = 8;

// Lanes l of an 8-float load at column `col` of a row of `w` floats with 0 <= col + l < w.
inline __mmask8 RowMask8(int64_t col, int64_t w) {
  const int64_t lo = std::max<int64_t>(0, -col), hi = std::min<int64_t>(kVec, w - col);
  if (hi <= lo) return 0;
  return static_cast<__mmask8>(((1u << hi) - 1) & ~((1u << lo) - 1));
}

// Output rows [oh0, oh0 + kR) of a plane with ow <= 8.
template <int kS, int kK, int kR>
__attribute__((target("avx512f,avx512vl,fma"), always_inline)) inline void RowsSmall(
    const DwGeometry& g, const float* x, int64_t oh0, const __m256* wv, const float* w,
    const __mmask8 (*m)[2],
    __m256 vbias, bool clamp, __m256 lo, __m256 hi, const conv_act::PostActivation& post,
    __mmask8 out_mask, float* y) {
  constexpr int kIn = (kR - 1) * kS + kK;
  const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i odd = _mm256_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15);
  const int64_t ih0 = oh0 * kS - g.pad_t, b = -g.pad_l;
  __m256 acc[kR];
#pragma GCC unroll 8
  for (int q = 0; q < kR; ++q) acc[q] = vbias;
#pragma GCC unroll 16
  for (int r = 0; r < kIn; ++r) {
    const int64_t ih = ih0 + r;
    if (ih < 0 || ih >= g.h) continue;  // zero padding rows
    const float* xr = x + ih * g.w + b;
    __m256 lo_half = _mm256_setzero_ps(), hi_half = _mm256_setzero_ps();
#pragma GCC unroll 5
    for (int j = 0; j < kK; ++j) {
      __m256 v;
      if (kS == 1) {
        v = _mm256_maskz_loadu_ps(m[j][0], xr + j);
      } else if (j % 2 == 1) {  // tap j - 1's loads, odd lanes (depthwise_avx512.cc)
        v = _mm256_permutex2var_ps(lo_half, odd, hi_half);
      } else {
        lo_half = _mm256_maskz_loadu_ps(m[j][0], xr + j);
        hi_half = _mm256_maskz_loadu_ps(m[j][1], xr + j + kVec);
        v = _mm256_permutex2var_ps(lo_half, even, hi_half);
      }
#pragma GCC unroll 8
      for (int q = 0; q < kR; ++q) {
        const int i = r - q * kS;
        if (i < 0 || i >= kK) continue;
        const __m256 wt = kK == 5 ? _mm256_set1_ps(w[i * kK + j]) : wv[i * kK + j];
        acc[q] = _mm256_fmadd_ps(wt, v, acc[q]);
      }
    }
  }
#pragma GCC unroll 8
  for (int q = 0; q < kR; ++q) {
    if (clamp) acc[q] = _mm256_min_ps(_mm256_max_ps(acc[q], lo), hi);
    if (post.any()) acc[q] = conv_act::Post256(post, acc[q]);
    _mm256_mask_storeu_ps(y + q * g.ow, out_mask, acc[q]);
  }
}

template <int kS, int kK>
__attribute__((target("avx512f,avx512vl,fma"))) void PlaneSmall(const DwGeometry& g, const float* x,
                                                           const float* w, const DwEpilogue& ep,
                                                           float* y) {
  // 5x5 takes its weights as broadcast operands ({1to8}), as depthwise_avx512.cc does, so
  // that a whole 7x7 plane is one pass, too.
  constexpr int kR = 8;
  __m256 wv[kK == 3 ? 9 : 1];
  if (kK == 3)
    for (int t = 0; t < 9; ++t) wv[t] = _mm256_set1_ps(w[t]);
  __mmask8 m[kK][2];
  for (int j = 0; j < kK; ++j)
    for (int h = 0; h < 2; ++h) m[j][h] = RowMask8(-g.pad_l + j + h * kVec, g.w);
  const __m256 vbias = _mm256_set1_ps(ep.bias), lo = _mm256_set1_ps(ep.lo),
               hi = _mm256_set1_ps(ep.hi);
  const __mmask8 out_mask = static_cast<__mmask8>((1u << g.ow) - 1);
  int64_t oh = 0;
  for (; oh + kR <= g.oh; oh += kR)
    RowsSmall<kS, kK, kR>(g, x, oh, wv, w, m, vbias, ep.clamp, lo, hi, ep.post, out_mask, y + oh * g.ow);
  float* yl = y + oh * g.ow;
  switch (g.oh - oh) {  // the last 1..kR-1 rows in one pass
    case 7: if constexpr (kR > 7) RowsSmall<kS, kK, 7>(g, x, oh, wv, w, m, vbias, ep.clamp, lo, hi, ep.post, out_mask, yl); break;
    case 6: if constexpr (kR > 6) RowsSmall<kS, kK, 6>(g, x, oh, wv, w, m, vbias, ep.clamp, lo, hi, ep.post, out_mask, yl); break;
    case 5: if constexpr (kR > 5) RowsSmall<kS, kK, 5>(g, x, oh, wv, w, m, vbias, ep.clamp, lo, hi, ep.post, out_mask, yl); break;
    case 4: if constexpr (kR > 4) RowsSmall<kS, kK, 4>(g, x, oh, wv, w, m, vbias, ep.clamp, lo, hi, ep.post, out_mask, yl); break;
    case 3: RowsSmall<kS, kK, 3>(g, x, oh, wv, w, m, vbias, ep.clamp, lo, hi, ep.post, out_mask, yl); break;
    case 2: RowsSmall<kS, kK, 2>(g, x, oh, wv, w, m, vbias, ep.clamp, lo, hi, ep.post, out_mask, yl); break;
    case 1: RowsSmall<kS, kK, 1>(g, x, oh, wv, w, m, vbias, ep.clamp, lo, hi, ep.post, out_mask, yl); break;
    default: break;
  }
}

}  // namespace

void PlaneSmallAvx512(const DwGeometry& g, const float* x, const float* w, const DwEpilogue& ep,
                      float* y) {
  if (g.stride_w == 1)
    return g.kh == 3 ? PlaneSmall<1, 3>(g, x, w, ep, y) : PlaneSmall<1, 5>(g, x, w, ep, y);
  return g.kh == 3 ? PlaneSmall<2, 3>(g, x, w, ep, y) : PlaneSmall<2, 5>(g, x, w, ep, y);
}

}  // namespace edgepress::runtime::depthwise
#endif  // __x86_64__
