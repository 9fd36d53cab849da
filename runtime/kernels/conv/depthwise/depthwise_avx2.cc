// Depthwise plane kernel for AVX2+FMA, 8 output columns per vector, the last vector of a
// row masked. 3x3/5x5 (FastPathHandles) read the plane directly (PlaneDirect); the other
// geometries read the zero-bordered plane copy (depthwise.h) with all taps accumulated in
// one register. Stride 2 de-interleaves two loads (shuffle + cross-lane permute).
#include "runtime/kernels/conv/depthwise/depthwise.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>

#include "runtime/kernels/conv/simd8_avx2.h"

namespace edgepress::runtime::depthwise {

namespace {

constexpr int kVec = 8;

// Columns 0, 2, ..., 14 of src as 8 floats.
__attribute__((target("avx2,fma"))) inline __m256 EvenColumns(const float* src) {
  const __m256 a = _mm256_loadu_ps(src), b = _mm256_loadu_ps(src + kVec);
  return _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
}

template <int kS, int kKh, int kKw>
__attribute__((target("avx2,fma"))) void PlaneT(const DwGeometry& g, const float* xp,
                                                int64_t pitch, const float* w,
                                                const DwEpilogue& ep, float* y) {
  const int64_t kh = kKh > 0 ? kKh : g.kh, kw = kKw > 0 ? kKw : g.kw;
  const int64_t dh = g.dil_h * pitch, dw = g.dil_w;
  constexpr int kTaps = kKh * kKw > 0 ? kKh * kKw : 1;
  __m256 wv[kTaps];
  if (kKh * kKw > 0)
    for (int t = 0; t < kTaps; ++t) wv[t] = _mm256_set1_ps(w[t]);
  const __m256 vbias = _mm256_set1_ps(ep.bias), lo = _mm256_set1_ps(ep.lo),
               hi = _mm256_set1_ps(ep.hi);
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    const float* x0 = xp + oh * g.stride_h * pitch;
    float* yr = y + oh * g.ow;
    for (int64_t ow = 0; ow < g.ow; ow += kVec) {
      const int64_t left = g.ow - ow;
      __m256 acc = vbias;
      for (int64_t i = 0; i < kh; ++i) {
        const float* xr = x0 + i * dh + ow * kS;
        for (int64_t j = 0; j < kw; ++j) {
          const float* src = xr + j * dw;
          const __m256 v = kS == 1 ? _mm256_loadu_ps(src) : EvenColumns(src);
          const __m256 wt = kKh * kKw > 0 ? wv[i * kw + j] : _mm256_set1_ps(w[i * kw + j]);
          acc = _mm256_fmadd_ps(wt, v, acc);
        }
      }
      if (ep.clamp) acc = _mm256_min_ps(_mm256_max_ps(acc, lo), hi);
      if (ep.post.any()) acc = conv_act::Post256(ep.post, acc);
      StoreFirst(yr + ow, acc, left);
    }
  }
}

// Fast path (FastPathHandles), as in depthwise_avx512.cc: reads the plane directly (no
// padded copy), kR output rows per pass read their input rows once and keep kR
// independent accumulator chains. The strips whose taps all lie inside the row
// (kEdge false) use plain loads; the edge strips vmaskmovps (lanes outside the row read
// the zero padding, without faulting). Stride 2 takes the even lanes of two loads.
template <int kS, int kK, int kR, bool kEdge>
__attribute__((target("avx2,fma"), always_inline)) inline void StripDirect(
    const DwGeometry& g, const float* x, int64_t ih0, int64_t ow, const __m256* wv,
    __m256 vbias, bool clamp, __m256 lo, __m256 hi, const conv_act::PostActivation& post,
    float* y) {
  constexpr int kIn = (kR - 1) * kS + kK;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int64_t b = ow * kS - g.pad_l;  // column of tap 0 of the strip's first output
  __m256i m[kK][kS];
  if (kEdge) {
#pragma GCC unroll 16
    for (int j = 0; j < kK; ++j)
#pragma GCC unroll 2
      for (int h = 0; h < kS; ++h) {
        // Lane l valid when 0 <= col + l < w.
        const int64_t col = b + j + h * kVec;
        const int lo_l = static_cast<int>(std::max<int64_t>(-1, std::min<int64_t>(kVec, -col - 1)));
        const int hi_l = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(kVec, g.w - col)));
        m[j][h] = _mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(lo_l)),
                                   _mm256_cmpgt_epi32(_mm256_set1_epi32(hi_l), lane));
      }
  }
  __m256 acc[kR];
#pragma GCC unroll 16
  for (int q = 0; q < kR; ++q) acc[q] = vbias;
#pragma GCC unroll 16
  for (int r = 0; r < kIn; ++r) {
    const int64_t ih = ih0 + r;
    if (ih < 0 || ih >= g.h) continue;  // zero padding rows
    const float* xr = x + ih * g.w + b;
    __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
#pragma GCC unroll 16
    for (int j = 0; j < kK; ++j) {
      // Stride 2: an odd tap j takes the odd lanes of tap j - 1's two loads (its columns,
      // the same in-row lanes), no loads of its own.
      const bool reuse = kS == 2 && j % 2 == 1;
      if (!reuse && kEdge) {
        v0 = _mm256_maskload_ps(xr + j, m[j][0]);
        if (kS == 2) v1 = _mm256_maskload_ps(xr + j + kVec, m[j][kS - 1]);
      } else if (!reuse) {
        v0 = _mm256_loadu_ps(xr + j);
        if (kS == 2) v1 = _mm256_loadu_ps(xr + j + kVec);
      }
      __m256 v = v0;
      if (kS == 2) {
        // Within each 128-bit lane the evens (odds) of v0 then of v1: output columns in the
        // order 0 1 4 5 | 2 3 6 7, the same for every tap, so the accumulators keep that
        // order and one 64-bit permute per output row restores it before the store (a
        // lane-crossing permute per tap made stride 2 twice onnxruntime's NCHWc time).
        v = reuse ? _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(3, 1, 3, 1))
                  : _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0));
      }
#pragma GCC unroll 16
      for (int q = 0; q < kR; ++q) {
        const int i = r - q * kS;
        if (i >= 0 && i < kK) acc[q] = _mm256_fmadd_ps(wv[i * kK + j], v, acc[q]);
      }
    }
  }
  const int64_t left = g.ow - ow;
#pragma GCC unroll 16
  for (int q = 0; q < kR; ++q) {
    if (kS == 2) acc[q] = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(acc[q]), 0xD8));
    if (clamp) acc[q] = _mm256_min_ps(_mm256_max_ps(acc[q], lo), hi);
    if (post.any()) acc[q] = conv_act::Post256(post, acc[q]);
    StoreFirst(y + q * g.ow + ow, acc[q], left);
  }
}

template <int kS, int kK, int kR>
__attribute__((target("avx2,fma"), always_inline)) inline void RowsDirect(
    const DwGeometry& g, const float* x, int64_t oh0, const __m256* wv, __m256 vbias,
    bool clamp, __m256 lo, __m256 hi, const conv_act::PostActivation& post, float* y) {
  const int64_t ih0 = oh0 * kS - g.pad_t;
  for (int64_t ow = 0; ow < g.ow; ow += kVec) {
    const int64_t b = ow * kS - g.pad_l;
    if (b >= 0 && b + kK - 1 + kS * kVec <= g.w)
      StripDirect<kS, kK, kR, false>(g, x, ih0, ow, wv, vbias, clamp, lo, hi, post, y);
    else
      StripDirect<kS, kK, kR, true>(g, x, ih0, ow, wv, vbias, clamp, lo, hi, post, y);
  }
}

// 16 registers: 3x3 keeps its 9 weights and 4 row accumulators in registers; 5x5 takes 2
// rows (25 weights spill to the stack either way and are read as memory operands).
template <int kS, int kK>
__attribute__((target("avx2,fma"))) void PlaneDirect(const DwGeometry& g, const float* x,
                                                     const float* w, const DwEpilogue& ep,
                                                     float* y) {
  constexpr int kR = kK == 3 ? 4 : 2;
  __m256 wv[kK * kK];
  for (int t = 0; t < kK * kK; ++t) wv[t] = _mm256_set1_ps(w[t]);
  const __m256 vbias = _mm256_set1_ps(ep.bias), lo = _mm256_set1_ps(ep.lo),
               hi = _mm256_set1_ps(ep.hi);
  int64_t oh = 0;
  for (; oh + kR <= g.oh; oh += kR)
    RowsDirect<kS, kK, kR>(g, x, oh, wv, vbias, ep.clamp, lo, hi, ep.post, y + oh * g.ow);
  // The last 1..kR-1 rows in one pass too (a 7-row plane is 4 + 3, not 4 + 1 + 1 + 1).
  float* yl = y + oh * g.ow;
  switch (g.oh - oh) {
    case 3:
      if (kR > 3) RowsDirect<kS, kK, 3>(g, x, oh, wv, vbias, ep.clamp, lo, hi, ep.post, yl);
      break;
    case 2:
      if (kR > 2) RowsDirect<kS, kK, 2>(g, x, oh, wv, vbias, ep.clamp, lo, hi, ep.post, yl);
      break;
    case 1:
      RowsDirect<kS, kK, 1>(g, x, oh, wv, vbias, ep.clamp, lo, hi, ep.post, yl);
      break;
    default:
      break;
  }
}

template <int kS>
void Dispatch(const DwGeometry& g, const float* xp, int64_t pitch, const float* w,
              const DwEpilogue& ep, float* y) {
  if (g.kh == 3 && g.kw == 3) return PlaneT<kS, 3, 3>(g, xp, pitch, w, ep, y);
  if (g.kh == 5 && g.kw == 5) return PlaneT<kS, 5, 5>(g, xp, pitch, w, ep, y);
  PlaneT<kS, 0, 0>(g, xp, pitch, w, ep, y);
}

}  // namespace

void PlaneAvx2(const DwGeometry& g, const float* x, const float* w, const DwEpilogue& ep,
               float* y) {
  if (!SimdHandles(g)) return PlaneRef(g, x, w, ep, y);
  if (FastPathHandles(g)) {
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

}  // namespace edgepress::runtime::depthwise
#endif  // __x86_64__
