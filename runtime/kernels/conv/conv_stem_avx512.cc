// The direct stem convolution on AVX-512F (conv_stem.h).
#include <algorithm>
#include <vector>

#include "runtime/kernels/conv/conv_stem.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::conv_stem {

bool Handles(const conv_util::ConvGeometry& g) {
  return g.rank == 2 && g.group == 1 && g.cg >= 1 && g.cg <= 4 && g.k[0] == 1 && g.in[0] == 1 &&
         g.k[1] == 3 && g.k[2] == 3 && g.stride[1] == g.stride[2] &&
         (g.stride[1] == 1 || g.stride[1] == 2) && g.dil[1] == 1 && g.dil[2] == 1 &&
         g.pad_b[1] >= 0 && g.pad_b[1] <= 2 && g.pad_b[2] >= 0 && g.pad_b[2] <= 2;
}

#if defined(__x86_64__)
namespace {

// gcc 12 reports -Wmaybe-uninitialized inside unmasked AVX-512 intrinsics (their merge
// source is _mm512_undefined_ps()): a false positive, silenced for these loops.
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"

constexpr int kCh = 16, kVec = 16;

// Lanes l of a 16-float load at column `col` of a row of `w` floats with 0 <= col + l < w.
inline __mmask16 RowMask(int64_t col, int64_t w) {
  const int64_t lo = std::max<int64_t>(0, -col), hi = std::min<int64_t>(kVec, w - col);
  if (hi <= lo) return 0;
  return static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
}

// One output row oh of 16 channels (`ch` real) from `x` (the image's C planes); `wp`: the
// block's packed weights [c * 9 + tap][16].
template <int kS>
__attribute__((target("avx512f"))) void StemRow(const conv_util::ConvGeometry& g,
                                                const float* x, const float* wp,
                                                const float* bias, int ch, int64_t oh,
                                                const float* z, const GemmEpilogue& ep,
                                                const conv_act::PostActivation& post,
                                                float* y) {
  const int64_t h = g.in[1], w = g.in[2], ow_n = g.out[2], plane = h * w;
  const int64_t out_size = g.out[1] * ow_n;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                         28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29,
                                        31);
  const __m512 lo = _mm512_set1_ps(ep.lo), hi = _mm512_set1_ps(ep.hi);
  for (int64_t ow = 0; ow < ow_n; ow += kVec) {
    const int64_t left = ow_n - ow;
    const __mmask16 out_mask =
        left >= kVec ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    __m512 acc[kCh];
#pragma GCC unroll 16
    for (int j = 0; j < kCh; ++j) acc[j] = _mm512_set1_ps(bias && j < ch ? bias[j] : 0.f);
    const int64_t b = ow * kS - g.pad_b[2];
    __mmask16 m0[3], m1[3];  // per kw: the (first, second) load's in-row lanes
#pragma GCC unroll 3
    for (int kw = 0; kw < 3; ++kw) {
      m0[kw] = RowMask(b + kw, w);
      m1[kw] = RowMask(b + kw + kVec, w);
    }
    for (int64_t c = 0; c < g.cg; ++c) {
      for (int kh = 0; kh < 3; ++kh) {
        const int64_t ih = oh * kS - g.pad_b[1] + kh;
        if (ih < 0 || ih >= h) continue;
        const float* xr = x + c * plane + ih * w;
        __m512 lo_half = _mm512_setzero_ps(), hi_half = _mm512_setzero_ps();
#pragma GCC unroll 3
        for (int kw = 0; kw < 3; ++kw) {
          const int64_t col = b + kw;
          __m512 v;
          if (kS == 1) {
            v = _mm512_maskz_loadu_ps(m0[kw], xr + col);
          } else if (kw == 1) {  // tap 0's two loads, odd lanes: the same in-row columns
            v = _mm512_permutex2var_ps(lo_half, odd, hi_half);
          } else {
            lo_half = _mm512_maskz_loadu_ps(m0[kw], xr + col);
            hi_half = _mm512_maskz_loadu_ps(m1[kw], xr + col + kVec);
            v = _mm512_permutex2var_ps(lo_half, even, hi_half);
          }
          const float* wt = wp + ((c * 3 + kh) * 3 + kw) * kCh;
#pragma GCC unroll 16
          for (int j = 0; j < kCh; ++j)
            acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(wt[j]), v, acc[j]);
        }
      }
    }
#pragma GCC unroll 16
    for (int j = 0; j < kCh; ++j) {
      if (j >= ch) break;
      __m512 v = acc[j];
      const int64_t at = j * out_size + oh * ow_n + ow;
      if (z) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(out_mask, z + at));
      if (ep.clamp) v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
      if (post.any()) v = conv_act::Post512(post, v);
      _mm512_mask_storeu_ps(y + at, out_mask, v);
    }
  }
}

#pragma GCC diagnostic pop

}  // namespace

void RunAvx512(const conv_util::ConvGeometry& g, const float* x, const float* w,
               const float* bias, const float* z, const GemmEpilogue& ep, float* y,
               ThreadPool& pool, const conv_act::PostActivation& post) {
  const int64_t blocks = (g.m + kCh - 1) / kCh, taps = g.cg * 9;
  // [block][tap][16], zero past the last channel: 16 broadcasts per tap from one line.
  std::vector<float> wp(static_cast<size_t>(blocks * taps * kCh), 0.f);
  for (int64_t m = 0; m < g.m; ++m)
    for (int64_t t = 0; t < taps; ++t)
      wp[static_cast<size_t>(((m / kCh) * taps + t) * kCh + m % kCh)] = w[m * taps + t];
  const int64_t oh_n = g.out[1], in_img = g.c * g.in_size(), out_size = g.out_size();
  const int64_t rows = g.n * blocks * oh_n;
  pool.ParallelFor(rows, std::max<int64_t>(1, 8 / std::max<int64_t>(1, g.out[2] / kVec)),
                   [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t oh = r % oh_n, blk = (r / oh_n) % blocks, n = r / (oh_n * blocks);
      const int64_t m0 = blk * kCh;
      const int ch = static_cast<int>(std::min<int64_t>(kCh, g.m - m0));
      const int64_t yoff = (n * g.m + m0) * out_size;
      auto row = g.stride[1] == 1 ? StemRow<1> : StemRow<2>;
      row(g, x + n * in_img, wp.data() + blk * taps * kCh, bias ? bias + m0 : nullptr, ch, oh,
          z ? z + yoff : nullptr, ep, post, y + yoff);
    }
  });
}
#endif

}  // namespace edgepress::runtime::conv_stem
