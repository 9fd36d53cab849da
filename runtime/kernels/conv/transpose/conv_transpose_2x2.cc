// The direct 2x2 stride-2 ConvTranspose (conv_transpose_2x2.h): weight packing (portable)
// and the AVX-512F tile.
#include <algorithm>

#include "runtime/kernels/conv/transpose/conv_transpose_2x2.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::conv_transpose_2x2 {

namespace {
constexpr int kCo = 4;  // output channels per tile
}  // namespace

bool Handles(const conv_util::ConvGeometry& g) {
  return g.rank == 2 && g.in[0] == 1 && g.k[0] == 1 && g.k[1] == 2 && g.k[2] == 2 &&
         conv_util::TapsTileOutput(g) && g.cg > 0 && g.mg > 0;
}

std::vector<float> PackWeights(int64_t c, int64_t group, int64_t mg, const float* w) {
  const int64_t cg = c / group, blocks = (mg + kCo - 1) / kCo;
  std::vector<float> p(static_cast<size_t>(group * blocks * cg * kCo * 4), 0.f);
  for (int64_t gi = 0; gi < group; ++gi)
    for (int64_t ci = 0; ci < cg; ++ci)
      for (int64_t m = 0; m < mg; ++m)
        for (int t = 0; t < 4; ++t)
          p[static_cast<size_t>((((gi * blocks + m / kCo) * cg + ci) * kCo + m % kCo) * 4 + t)] =
              w[((gi * cg + ci) * mg + m) * 4 + t];
  return p;
}

#if defined(__x86_64__)
namespace {

// kC (<= 4) output channels of one input row, all of its columns: the tile's first kC
// of its 4 packed channels (a last block of 1 or 2 channels, e.g. a 1-channel
// probability head, computes only those).
template <int kC>
__attribute__((target("avx512f"))) void RowTile(int64_t cg, int64_t w, int64_t in_size,
                                                int64_t ow, int64_t out_size,
                                                const float* x, const float* wp,
                                                const float* bias, float* y) {
  const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi_idx =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  for (int64_t j = 0; j < w; j += 16) {
    const int left = static_cast<int>(std::min<int64_t>(16, w - j));
    const __mmask16 in_mask = static_cast<__mmask16>((1u << left) - 1);
    // Output columns 2j .. 2j + 2 * left: the first store takes min(16, 2 * left).
    const int out_left = 2 * left;
    const __mmask16 st0 = static_cast<__mmask16>(out_left >= 16 ? 0xFFFF : (1u << out_left) - 1);
    const __mmask16 st1 =
        static_cast<__mmask16>(out_left > 16 ? (1u << (out_left - 16)) - 1 : 0);
    __m512 acc[kC][4];
#pragma GCC unroll 4
    for (int c = 0; c < kC; ++c) {
      const __m512 b = _mm512_set1_ps(bias ? bias[c] : 0.f);
      acc[c][0] = acc[c][1] = acc[c][2] = acc[c][3] = b;
    }
    const float* xc = x + j;
    const float* wc = wp;
    for (int64_t ci = 0; ci < cg; ++ci, xc += in_size, wc += kCo * 4) {
      const __m512 v = _mm512_maskz_loadu_ps(in_mask, xc);
#pragma GCC unroll 4
      for (int c = 0; c < kC; ++c)
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t)
          acc[c][t] = _mm512_fmadd_ps(_mm512_set1_ps(wc[c * 4 + t]), v, acc[c][t]);
    }
#pragma GCC unroll 4
    for (int c = 0; c < kC; ++c) {
#pragma GCC unroll 2
      for (int a = 0; a < 2; ++a) {
        float* yr = y + c * out_size + a * ow + 2 * j;
        _mm512_mask_storeu_ps(yr, st0, _mm512_permutex2var_ps(acc[c][2 * a], lo_idx, acc[c][2 * a + 1]));
        if (st1)
          _mm512_mask_storeu_ps(yr + 16, st1,
                                _mm512_permutex2var_ps(acc[c][2 * a], hi_idx, acc[c][2 * a + 1]));
      }
    }
  }
}

}  // namespace

void RunAvx512(const conv_util::ConvGeometry& g, const float* x, const float* packed,
               const float* bias, float* y, ThreadPool& pool) {
  const int64_t blocks = (g.mg + kCo - 1) / kCo, h = g.in[1], w = g.in[2];
  const int64_t in_size = g.in_size(), out_size = g.out_size(), ow = g.out[2];
  const int64_t items = g.n * g.group * blocks * h;
  // About 16 KiB of input per chunk.
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, g.cg * w));
  pool.ParallelFor(items, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t ih = t % h, rest = t / h;
      const int64_t blk = rest % blocks, ng = rest / blocks;
      const int64_t gi = ng % g.group, n = ng / g.group;
      const int64_t m0 = blk * kCo;
      const int ch = static_cast<int>(std::min<int64_t>(kCo, g.mg - m0));
      auto tile = ch == 1 ? RowTile<1> : ch == 2 ? RowTile<2> : ch == 3 ? RowTile<3> : RowTile<4>;
      tile(g.cg, w, in_size, ow, out_size, x + (n * g.c + gi * g.cg) * in_size + ih * w,
              packed + (gi * blocks + blk) * g.cg * kCo * 4,
              bias ? bias + gi * g.mg + m0 : nullptr,
              y + (n * g.m + gi * g.mg + m0) * out_size + 2 * ih * ow);
    }
  });
}
#endif

}  // namespace edgepress::runtime::conv_transpose_2x2
