// Depthwise planes eight at a time for AVX2+FMA, the channels across the lanes: for small
// planes (MobileNet's 14x14 and 7x7), where a plane's row is one or two 8-float vectors
// with padding lanes and the per-plane setup (weights, masks, epilogue) is paid per 49 or
// 196 outputs. Eight planes' rows are transposed into a zero-bordered pixel-major copy
// ([row][column][8 channels]), every output pixel is then 9 (3x3) or 25 (5x5) FMAs of a
// whole vector with that tap's 8 weights, and each run of 8 output pixels is transposed back
// into the planes' rows (consecutive pixels of a plane are consecutive in Y, across rows).
// This is onnxruntime's NCHWc depthwise done inside the kernel, without a layout change.
// conv.cc takes it where depthwise::Planes8Preferred says so (5x5 kernels).
#include "runtime/kernels/conv/depthwise/depthwise.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "runtime/kernels/conv/simd8_avx2.h"

namespace edgepress::runtime::depthwise {

namespace {

constexpr int kLanes = 8;

__attribute__((target("avx2"))) inline __m256i LaneMask(int64_t n) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane);
}

// The zero-bordered pixel-major copy of 8 planes: rows [0, hp) x columns [0, wp) of the
// padded plane, 8 floats (one per plane) each.
__attribute__((target("avx2"))) void PackPlanes(const DwGeometry& g, const float* x,
                                                int64_t x_stride, int64_t hp, int64_t wp,
                                                float* p) {
  std::fill(p, p + hp * wp * kLanes, 0.f);
  const int64_t r0 = std::max<int64_t>(0, g.pad_t), r1 = std::min(hp, g.pad_t + g.h);
  const int64_t c1 = std::min(g.w, wp - g.pad_l);  // input columns that land inside
  for (int64_t r = r0; r < r1; ++r) {
    const float* xr = x + (r - g.pad_t) * g.w;
    float* pr = p + (r * wp + g.pad_l) * kLanes;
    for (int64_t c = 0; c < c1; c += kLanes) {
      const int64_t n = std::min<int64_t>(kLanes, c1 - c);
      const __m256i m = LaneMask(n);
      __m256 v[kLanes];
#pragma GCC unroll 8
      for (int i = 0; i < kLanes; ++i) v[i] = _mm256_maskload_ps(xr + i * x_stride + c, m);
      Transpose8x8(v);
      for (int64_t j = 0; j < n; ++j) _mm256_store_ps(pr + (c + j) * kLanes, v[j]);
    }
  }
}

template <int kK, int kS>
__attribute__((target("avx2,fma"))) void Planes8T(const DwGeometry& g, const float* x,
                                                  int64_t x_stride, const float* w,
                                                  const float* bias, const DwEpilogue& ep,
                                                  float* y, int64_t y_stride) {
  constexpr int kTaps = kK * kK;
  const int64_t hp = (g.oh - 1) * kS + kK, wp = (g.ow - 1) * kS + kK;
  thread_local std::vector<float> buf;
  const size_t need = static_cast<size_t>(hp * wp * kLanes + kLanes);
  if (buf.size() < need) buf.resize(need);
  float* p = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buf.data()) + 31) & ~uintptr_t{31});
  PackPlanes(g, x, x_stride, hp, wp, p);
  alignas(32) float wt[kTaps][kLanes];
  for (int i = 0; i < kLanes; ++i)
    for (int t = 0; t < kTaps; ++t) wt[t][i] = w[i * kTaps + t];
  const __m256 vbias = _mm256_loadu_ps(bias), lo = _mm256_set1_ps(ep.lo),
               hi = _mm256_set1_ps(ep.hi);
  const int64_t total = g.oh * g.ow;
  int64_t oh = 0, ow = 0;  // of pixel p0
  for (int64_t p0 = 0; p0 < total; p0 += kLanes) {
    const int64_t n = std::min<int64_t>(kLanes, total - p0);
    const float* src[kLanes];
    // Pixel p0 + i's first tap, stepping (oh, ow) without divisions; past the end of the
    // plane the last pixel again (computed, not stored).
#pragma GCC unroll 8
    for (int i = 0; i < kLanes; ++i) {
      src[i] = p + (oh * kS * wp + ow * kS) * kLanes;
      if (i < n - 1 && ++ow == g.ow) {
        ow = 0;
        ++oh;
      }
    }
    if (n == kLanes && ++ow == g.ow) {  // on to pixel p0 + 8
      ow = 0;
      ++oh;
    }
    __m256 acc[kLanes];
#pragma GCC unroll 8
    for (int i = 0; i < kLanes; ++i) acc[i] = vbias;
#pragma GCC unroll 5
    for (int kh = 0; kh < kK; ++kh) {
      const int64_t row = kh * wp * kLanes;
#pragma GCC unroll 5
      for (int kw = 0; kw < kK; ++kw) {
        const __m256 wv = _mm256_load_ps(wt[kh * kK + kw]);
#pragma GCC unroll 8
        for (int i = 0; i < kLanes; ++i)
          acc[i] = _mm256_fmadd_ps(_mm256_load_ps(src[i] + row + kw * kLanes), wv, acc[i]);
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < kLanes; ++i) {
      if (ep.clamp) acc[i] = _mm256_min_ps(_mm256_max_ps(acc[i], lo), hi);
      if (ep.post.any()) acc[i] = conv_act::Post256(ep.post, acc[i]);
    }
    Transpose8x8(acc);  // acc[c]: plane c's pixels p0..p0+7
#pragma GCC unroll 8
    for (int c = 0; c < kLanes; ++c) StoreFirst(y + c * y_stride + p0, acc[c], n);
  }
}

}  // namespace

void Planes8Avx2(const DwGeometry& g, const float* x, int64_t x_stride, const float* w,
                 const float* bias, const DwEpilogue& ep, float* y, int64_t y_stride) {
  if (g.kh == 3)
    return g.stride_h == 1 ? Planes8T<3, 1>(g, x, x_stride, w, bias, ep, y, y_stride)
                           : Planes8T<3, 2>(g, x, x_stride, w, bias, ep, y, y_stride);
  if (g.stride_h == 1) return Planes8T<5, 1>(g, x, x_stride, w, bias, ep, y, y_stride);
  Planes8T<5, 2>(g, x, x_stride, w, bias, ep, y, y_stride);
}

}  // namespace edgepress::runtime::depthwise
#endif  // __x86_64__
