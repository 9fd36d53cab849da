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
  const int64_t pitch = PadPlane(g, x, kVec, &buf);
  if (g.stride_w == 1)
    Dispatch<1>(g, buf.data(), pitch, w, ep, y);
  else
    Dispatch<2>(g, buf.data(), pitch, w, ep, y);
}

}  // namespace edgepress::runtime::depthwise
#endif  // __x86_64__
