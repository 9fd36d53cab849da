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
  const int64_t pitch = PadPlane(g, x, kVec, &buf);
  if (g.stride_w == 1)
    Dispatch<1>(g, buf.data(), pitch, w, ep, y);
  else
    Dispatch<2>(g, buf.data(), pitch, w, ep, y);
}

}  // namespace edgepress::runtime::depthwise
#endif  // __x86_64__
