// Depthwise plane kernel for AVX-512F: 16 output columns per vector over the zero-bordered
// plane copy (depthwise.h), all taps accumulated in one register, the last vector of a row
// masked. Stride 2 gathers the even columns of two loads with one vpermt2ps.
#include "runtime/kernels/conv/depthwise.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::depthwise {

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
      _mm512_mask_storeu_ps(yr + ow, mask, acc);
    }
  }
}

// Fast path (FastPathHandles): kR output rows per pass. Their taps read kR * kS + kK - kS
// distinct input rows, so the fully unrolled loops let the compiler load each input vector
// once for all rows that use it (5x5 stride 1, 4 rows: 40 loads for 100 FMAs), and the kR
// accumulators are independent chains: a 7x7 plane's rows were one vector each with a
// single 25-FMA dependency chain. Stride 2 reads the even/odd split rows (PadPlaneSplit).
template <int kS, int kK, int kR>
__attribute__((target("avx512f"), always_inline)) inline void RowsFast(
    const float* x0, int64_t pitch, int64_t half, const __m512* wv, __m512 vbias, bool clamp,
    __m512 lo, __m512 hi, int64_t ow_n, float* y) {
  for (int64_t ow = 0; ow < ow_n; ow += kVec) {
    const int64_t left = ow_n - ow;
    const __mmask16 mask =
        left >= kVec ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    __m512 acc[kR];
    for (int r = 0; r < kR; ++r) acc[r] = vbias;
    for (int r = 0; r < kR; ++r) {
      for (int i = 0; i < kK; ++i) {
        const float* xr = x0 + (r * kS + i) * pitch + ow;
        for (int j = 0; j < kK; ++j) {
          const int64_t col = kS == 1 ? j : (j & 1) * half + (j >> 1);
          acc[r] = _mm512_fmadd_ps(wv[i * kK + j], _mm512_loadu_ps(xr + col), acc[r]);
        }
      }
    }
    for (int r = 0; r < kR; ++r) {
      if (clamp) acc[r] = _mm512_min_ps(_mm512_max_ps(acc[r], lo), hi);
      _mm512_mask_storeu_ps(y + r * ow_n + ow, mask, acc[r]);
    }
  }
}

__attribute__((target("avx512f"))) void SplitAvx512(const float* src, int64_t n, float* even,
                                                   float* odd) {
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  int64_t c = 0;
  for (; c + kVec <= n; c += kVec) {
    const __m512 a = _mm512_loadu_ps(src + 2 * c), b = _mm512_loadu_ps(src + 2 * c + kVec);
    _mm512_storeu_ps(even + c, _mm512_permutex2var_ps(a, ev, b));
    _mm512_storeu_ps(odd + c, _mm512_permutex2var_ps(a, od, b));
  }
  for (; c < n; ++c) {
    even[c] = src[2 * c];
    odd[c] = src[2 * c + 1];
  }
}

template <int kS, int kK>
__attribute__((target("avx512f"))) void PlaneFast(const DwGeometry& g, const float* xp,
                                                  int64_t pitch, int64_t half, const float* w,
                                                  const DwEpilogue& ep, float* y) {
  constexpr int kR = 4;
  __m512 wv[kK * kK];
  for (int t = 0; t < kK * kK; ++t) wv[t] = _mm512_set1_ps(w[t]);
  const __m512 vbias = _mm512_set1_ps(ep.bias), lo = _mm512_set1_ps(ep.lo),
               hi = _mm512_set1_ps(ep.hi);
  int64_t oh = 0;
  for (; oh + kR <= g.oh; oh += kR)
    RowsFast<kS, kK, kR>(xp + oh * kS * pitch, pitch, half, wv, vbias, ep.clamp, lo, hi, g.ow,
                         y + oh * g.ow);
  for (; oh < g.oh; ++oh)
    RowsFast<kS, kK, 1>(xp + oh * kS * pitch, pitch, half, wv, vbias, ep.clamp, lo, hi, g.ow,
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
  thread_local std::vector<float> buf;
  if (FastPathHandles(g)) {
    int64_t half = 0;
    if (g.stride_w == 1) {
      const int64_t pitch = PadPlane(g, x, kVec, &buf);
      return g.kh == 3 ? PlaneFast<1, 3>(g, buf.data(), pitch, 0, w, ep, y)
                       : PlaneFast<1, 5>(g, buf.data(), pitch, 0, w, ep, y);
    }
    const int64_t pitch = PadPlaneSplit(g, x, kVec, &buf, &half, SplitAvx512);
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
