// Depthwise plane kernel for AVX2+FMA: 8 output columns per vector over the zero-bordered
// plane copy (depthwise.h), all taps accumulated in one register, the last vector of a row
// masked. Stride 2 de-interleaves two loads (shuffle + cross-lane permute).
#include "runtime/kernels/conv/depthwise.h"

#if defined(__x86_64__)
#include <immintrin.h>

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
      if (left >= kVec) {
        _mm256_storeu_ps(yr + ow, acc);
      } else {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left)), lane);
        _mm256_maskstore_ps(yr + ow, mask, acc);
      }
    }
  }
}

// Fast path (FastPathHandles), as in depthwise_avx512.cc: kR output rows per pass share
// their input row loads and keep kR independent accumulator chains; stride 2 reads the
// even/odd split rows of PadPlaneSplit.
template <int kS, int kK, int kR>
__attribute__((target("avx2,fma"), always_inline)) inline void RowsFast(
    const float* x0, int64_t pitch, int64_t half, const __m256* wv, __m256 vbias, bool clamp,
    __m256 lo, __m256 hi, int64_t ow_n, float* y) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t ow = 0; ow < ow_n; ow += kVec) {
    const int64_t left = ow_n - ow;
    __m256 acc[kR];
    for (int r = 0; r < kR; ++r) acc[r] = vbias;
    // Taps outer, rows inner: consecutive FMAs go to different accumulators.
    for (int i = 0; i < kK; ++i) {
      for (int j = 0; j < kK; ++j) {
        const int64_t col = kS == 1 ? j : (j & 1) * half + (j >> 1);
        for (int r = 0; r < kR; ++r)
          acc[r] = _mm256_fmadd_ps(wv[i * kK + j],
                                _mm256_loadu_ps(x0 + (r * kS + i) * pitch + ow + col), acc[r]);
      }
    }
    for (int r = 0; r < kR; ++r) {
      if (clamp) acc[r] = _mm256_min_ps(_mm256_max_ps(acc[r], lo), hi);
      if (left >= kVec) {
        _mm256_storeu_ps(y + r * ow_n + ow, acc[r]);
      } else {
        const __m256i mask =
            _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left)), lane);
        _mm256_maskstore_ps(y + r * ow_n + ow, mask, acc[r]);
      }
    }
  }
}

// 16 registers: 3x3 keeps its 9 weights and 4 row accumulators in registers; 5x5 takes 2
// rows (25 weights spill to the stack either way and are read as memory operands).
template <int kS, int kK>
__attribute__((target("avx2,fma"))) void PlaneFast(const DwGeometry& g, const float* xp,
                                                   int64_t pitch, int64_t half, const float* w,
                                                   const DwEpilogue& ep, float* y) {
  constexpr int kR = kK == 3 ? 4 : 2;
  __m256 wv[kK * kK];
  for (int t = 0; t < kK * kK; ++t) wv[t] = _mm256_set1_ps(w[t]);
  const __m256 vbias = _mm256_set1_ps(ep.bias), lo = _mm256_set1_ps(ep.lo),
               hi = _mm256_set1_ps(ep.hi);
  int64_t oh = 0;
  for (; oh + kR <= g.oh; oh += kR)
    RowsFast<kS, kK, kR>(xp + oh * kS * pitch, pitch, half, wv, vbias, ep.clamp, lo, hi, g.ow,
                         y + oh * g.ow);
  // The last 1..kR-1 rows in one pass too (a 7-row plane is 4 + 3, not 4 + 1 + 1 + 1).
  const float* xl = xp + oh * kS * pitch;
  float* yl = y + oh * g.ow;
  switch (g.oh - oh) {
    case 3:
      if (kR > 3) RowsFast<kS, kK, 3>(xl, pitch, half, wv, vbias, ep.clamp, lo, hi, g.ow, yl);
      break;
    case 2:
      if (kR > 2) RowsFast<kS, kK, 2>(xl, pitch, half, wv, vbias, ep.clamp, lo, hi, g.ow, yl);
      break;
    case 1:
      RowsFast<kS, kK, 1>(xl, pitch, half, wv, vbias, ep.clamp, lo, hi, g.ow, yl);
      break;
    default:
      break;
  }
}

__attribute__((target("avx2"))) void SplitAvx2(const float* src, int64_t n, float* even,
                                               float* odd) {
  int64_t c = 0;
  for (; c + kVec <= n; c += kVec) {
    const __m256 a = _mm256_loadu_ps(src + 2 * c), b = _mm256_loadu_ps(src + 2 * c + kVec);
    // Within each 128-bit lane: evens then odds; the 64-bit permute puts lanes in order.
    const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    const __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    _mm256_storeu_ps(even + c, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
    _mm256_storeu_ps(odd + c, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xD8)));
  }
  for (; c < n; ++c) {
    even[c] = src[2 * c];
    odd[c] = src[2 * c + 1];
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
  thread_local std::vector<float> buf;
  if (FastPathHandles(g)) {
    int64_t half = 0;
    if (g.stride_w == 1) {
      const int64_t pitch = PadPlane(g, x, kVec, &buf);
      return g.kh == 3 ? PlaneFast<1, 3>(g, buf.data(), pitch, 0, w, ep, y)
                       : PlaneFast<1, 5>(g, buf.data(), pitch, 0, w, ep, y);
    }
    const int64_t pitch = PadPlaneSplit(g, x, kVec, &buf, &half, SplitAvx2);
    return g.kh == 3 ? PlaneFast<2, 3>(g, buf.data(), pitch, half, w, ep, y)
                     : PlaneFast<2, 5>(g, buf.data(), pitch, half, w, ep, y);
  }
  const int64_t pitch = PadPlane(g, x, kVec, &buf);
  if (g.stride_w == 1)
    Dispatch<1>(g, buf.data(), pitch, w, ep, y);
  else
    Dispatch<2>(g, buf.data(), pitch, w, ep, y);
}

}  // namespace edgepress::runtime::depthwise
#endif  // __x86_64__
