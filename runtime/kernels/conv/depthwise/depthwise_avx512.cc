// Depthwise plane kernel for AVX-512F, 16 output columns per vector, the last vector of a
// row masked. 3x3/5x5 (FastPathHandles) read the plane directly (PlaneDirect); the other
// geometries read the zero-bordered plane copy (depthwise.h) with all taps accumulated in
// one register. Stride 2 gathers the even columns of two loads with one vpermt2ps.
#include "runtime/kernels/conv/depthwise/depthwise.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>

namespace edgepress::runtime::depthwise {

// gcc 12 reports -Wmaybe-uninitialized inside unmasked AVX-512 intrinsics (their merge
// source is _mm512_undefined_ps()): a false positive, silenced for this file's kernels.
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

constexpr int kVec = 16;

// kKh/kKw > 0 fix the kernel size at compile time (weights held in registers), 0 reads it.
template <int kS, int kKh, int kKw>
__attribute__((target("avx512f"))) void PlaneT(const DwGeometry& g, const float* xp,
                                               int64_t pitch, const float* w,
                                               const DwEpilogue& ep, float* y) {
  const int64_t kh = kKh > 0 ? kKh : g.kh, kw = kKw > 0 ? kKw : g.kw;
  const int64_t dh = g.dil_h * pitch, dw = g.dil_w;
  constexpr int kTaps = kKh * kKw > 0 ? kKh * kKw : 1;
  __m512 wv[kTaps];
  if (kKh * kKw > 0)
    for (int t = 0; t < kTaps; ++t) wv[t] = _mm512_set1_ps(w[t]);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                         28, 30);
  const __m512 vbias = _mm512_set1_ps(ep.bias), lo = _mm512_set1_ps(ep.lo),
               hi = _mm512_set1_ps(ep.hi);
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    const float* x0 = xp + oh * g.stride_h * pitch;
    float* yr = y + oh * g.ow;
    for (int64_t ow = 0; ow < g.ow; ow += kVec) {
      const int64_t left = g.ow - ow;
      const __mmask16 mask =
          left >= kVec ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
      __m512 acc = vbias;
      for (int64_t i = 0; i < kh; ++i) {
        const float* xr = x0 + i * dh + ow * kS;
        for (int64_t j = 0; j < kw; ++j) {
          const float* src = xr + j * dw;
          __m512 v;
          if (kS == 1)
            v = _mm512_loadu_ps(src);
          else
            v = _mm512_permutex2var_ps(_mm512_loadu_ps(src), even, _mm512_loadu_ps(src + kVec));
          const __m512 wt = kKh * kKw > 0 ? wv[i * kw + j] : _mm512_set1_ps(w[i * kw + j]);
          acc = _mm512_fmadd_ps(wt, v, acc);
        }
      }
      if (ep.clamp) acc = _mm512_min_ps(_mm512_max_ps(acc, lo), hi);
      if (ep.post.any()) acc = conv_act::Post512(ep.post, acc);
      _mm512_mask_storeu_ps(yr + ow, mask, acc);
    }
  }
}

// Lanes l of a 16-float load at column `col` of a row of `w` floats with 0 <= col + l < w:
// the rest read as the zero padding (masked loads do not fault on masked-off lanes).
inline __mmask16 RowMask(int64_t col, int64_t w) {
  const int64_t lo = std::max<int64_t>(0, -col), hi = std::min<int64_t>(kVec, w - col);
  if (hi <= lo) return 0;
  return static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
}

// Fast path (FastPathHandles): reads the plane directly, no padded copy. The padding is
// the masked-off lanes of each tap's load (one mask per tap and strip, shared by all rows)
// and the rows outside the plane are skipped. Stride 2 takes the even lanes of two loads
// per tap (vpermt2ps): the former even/odd split copy of every input row cost 2.5x the
// FMAs on a 112x112 plane. kR output rows per pass read their (kR - 1) * kS + kK input
// rows once each (fully unrolled), feeding kR independent accumulator chains; each
// accumulator takes its taps in (i, j) order after the bias, as before.
template <int kS, int kK, int kR>
__attribute__((target("avx512f"), always_inline)) inline void RowsDirect(
    const DwGeometry& g, const float* x, int64_t oh0, const __m512* wv, const float* w,
    __m512 vbias,
    bool clamp, __m512 lo, __m512 hi, const conv_act::PostActivation& post, float* y) {
  constexpr int kIn = (kR - 1) * kS + kK;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                         28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29,
                                        31);
  const int64_t ih0 = oh0 * kS - g.pad_t;
  for (int64_t ow = 0; ow < g.ow; ow += kVec) {
    const int64_t left = g.ow - ow;
    const __mmask16 out_mask =
        left >= kVec ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    const int64_t b = ow * kS - g.pad_l;  // column of tap 0 of the strip's first output
    __mmask16 m[kK][kS];
    #pragma GCC unroll 16
    for (int j = 0; j < kK; ++j)
      for (int h = 0; h < kS; ++h) m[j][h] = RowMask(b + j + h * kVec, g.w);
    __m512 acc[kR];
    #pragma GCC unroll 16
    for (int q = 0; q < kR; ++q) acc[q] = vbias;
    #pragma GCC unroll 16
    for (int r = 0; r < kIn; ++r) {
      const int64_t ih = ih0 + r;
      if (ih < 0 || ih >= g.h) continue;  // zero padding rows
      const float* xr = x + ih * g.w;
      __m512 lo_half = _mm512_setzero_ps(), hi_half = _mm512_setzero_ps();
      #pragma GCC unroll 16
      for (int j = 0; j < kK; ++j) {
        const int64_t c = b + j;
        __m512 v;
        if (kS == 1) {
          v = _mm512_maskz_loadu_ps(m[j][0], xr + c);
        } else if (j % 2 == 1) {
          // The odd lanes of tap j - 1's two loads are tap j's columns (the same in-row
          // lanes): one vpermt2ps, no loads.
          v = _mm512_permutex2var_ps(lo_half, odd, hi_half);
        } else {
          lo_half = _mm512_maskz_loadu_ps(m[j][0], xr + c);
          hi_half = _mm512_maskz_loadu_ps(m[j][kS - 1], xr + c + kVec);
          v = _mm512_permutex2var_ps(lo_half, even, hi_half);
        }
        #pragma GCC unroll 16
        for (int q = 0; q < kR; ++q) {
          const int i = r - q * kS;
          if (i < 0 || i >= kK) continue;
          const __m512 wt = kK == 5 ? _mm512_set1_ps(w[i * kK + j]) : wv[i * kK + j];
          acc[q] = _mm512_fmadd_ps(wt, v, acc[q]);
        }
      }
    }
    #pragma GCC unroll 16
    for (int q = 0; q < kR; ++q) {
      if (clamp) acc[q] = _mm512_min_ps(_mm512_max_ps(acc[q], lo), hi);
      if (post.any()) acc[q] = conv_act::Post512(post, acc[q]);
      _mm512_mask_storeu_ps(y + q * g.ow + ow, out_mask, acc[q]);
    }
  }
}

// The last 1..kR-1 rows of a plane in one pass (a 7-row plane is 4 + 3, not 4 + 1 + 1 + 1).
template <int kS, int kK, int kR>
__attribute__((target("avx512f"))) void RowsTail(int64_t rows, const DwGeometry& g,
                                                 const float* x, int64_t oh0,
                                                 const __m512* wv, const float* w,
                                                 __m512 vbias, bool clamp, __m512 lo, __m512 hi,
                                                 const conv_act::PostActivation& post,
                                                 float* y) {
  if constexpr (kR > 1) {
    if (rows == kR - 1)
      return RowsDirect<kS, kK, kR - 1>(g, x, oh0, wv, w, vbias, clamp, lo, hi, post, y);
    RowsTail<kS, kK, kR - 1>(rows, g, x, oh0, wv, w, vbias, clamp, lo, hi, post, y);
  }
}

// 3x3 holds its 9 weights in registers. 5x5's 25 do not fit next to the accumulators:
// spilled as 64-byte vectors, every FMA reloaded a whole zmm from the stack, so each FMA
// takes its weight as a 4-byte broadcast operand ({1to16}) instead. That frees the
// registers for 7 rows a pass (MobileNet's planes are 7 * 2^n rows), each input row loaded
// once for up to 7 accumulators. conv_bench, 1 thread, min thread-CPU time, load ~7: dw 5x5
// 240x14 0.051 -> 0.033 ms, 5x5/2 96x28 0.028 -> 0.021 (4 rows a pass with broadcast
// operands: 0.038 and 0.024; 8 rows: 0.033 and 0.031).
template <int kS, int kK>
__attribute__((target("avx512f"))) void PlaneDirect(const DwGeometry& g, const float* x,
                                                    const float* w, const DwEpilogue& ep,
                                                    float* y) {
  // 3x3 at stride 1 shares each input row among 8 rows a pass (17 registers): 144x56 0.136
  // -> 0.117 ms, 576x14 0.043 -> 0.036 against 4 rows (conv_bench as above); stride 2
  // measured no better with 7.
  constexpr int kR = kK == 5 ? 7 : kS == 1 ? 8 : 4;
  __m512 wv[kK == 3 ? 9 : 1];
  if (kK == 3)
    for (int t = 0; t < 9; ++t) wv[t] = _mm512_set1_ps(w[t]);
  const __m512 vbias = _mm512_set1_ps(ep.bias), lo = _mm512_set1_ps(ep.lo),
               hi = _mm512_set1_ps(ep.hi);
  int64_t oh = 0;
  for (; oh + kR <= g.oh; oh += kR)
    RowsDirect<kS, kK, kR>(g, x, oh, wv, w, vbias, ep.clamp, lo, hi, ep.post, y + oh * g.ow);
  RowsTail<kS, kK, kR>(g.oh - oh, g, x, oh, wv, w, vbias, ep.clamp, lo, hi, ep.post,
                       y + oh * g.ow);
}

template <int kS>
void Dispatch(const DwGeometry& g, const float* xp, int64_t pitch, const float* w,
              const DwEpilogue& ep, float* y) {
  if (g.kh == 3 && g.kw == 3) return PlaneT<kS, 3, 3>(g, xp, pitch, w, ep, y);
  if (g.kh == 5 && g.kw == 5) return PlaneT<kS, 5, 5>(g, xp, pitch, w, ep, y);
  PlaneT<kS, 0, 0>(g, xp, pitch, w, ep, y);
}

}  // namespace

void PlaneAvx512(const DwGeometry& g, const float* x, const float* w, const DwEpilogue& ep,
                 float* y) {
  if (!SimdHandles(g)) return PlaneRef(g, x, w, ep, y);
  if (FastPathHandles(g)) {
    // Rows of at most 8 outputs (MobileNet's 7x7 planes) fill half a 16-lane vector: the
    // 8-lane EVEX kernel does the same FMAs on half the width with 32 registers
    // (depthwise_small_avx512.cc; conv_bench, 1 thread, min thread CPU time, load ~6,
    // against the former AVX2 8-lane kernel for 3x3 and this file's for 5x5: dw 3x3 960x7
    // 0.033 -> 0.021 ms, 3x3/2 576x14 0.036 -> 0.023, 5x5 576x7 0.047 -> 0.030, 5x5/2
    // 288x14 0.040 -> 0.027).
    if (g.ow <= 8) return PlaneSmallAvx512(g, x, w, ep, y);
    if (g.stride_w == 1)
      return g.kh == 3 ? PlaneDirect<1, 3>(g, x, w, ep, y) : PlaneDirect<1, 5>(g, x, w, ep, y);
    return g.kh == 3 ? PlaneDirect<2, 3>(g, x, w, ep, y) : PlaneDirect<2, 5>(g, x, w, ep, y);
  }
  thread_local std::vector<float> buf;
  const int64_t pitch = PadPlane(g, x, kVec, &buf);
  if (g.stride_w == 1)
    Dispatch<1>(g, buf.data(), pitch, w, ep, y);
  else
    Dispatch<2>(g, buf.data(), pitch, w, ep, y);
}

#pragma GCC diagnostic pop

}  // namespace edgepress::runtime::depthwise
#endif  // __x86_64__
