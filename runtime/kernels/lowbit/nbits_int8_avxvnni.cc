// q4s8_gemm__avxvnni: the int8-activation MatMulNBits kernel with AVX-VNNI (VEX-encoded
// 256-bit vpdpbusd: client CPUs without AVX-512, e.g. Alder Lake), nbits_int8.h.
//
// The AVX2 kernel's tiles (up to 4 rows x 8 columns, half a 16-column panel) with
// vpdpbusd in place of vpmaddubsw + vpmaddwd: four u8 code x s8 activation products are
// added to each int32 lane without saturation, so the block's dot product is exact, and
// the fold is the reference's two fused multiply-adds (bit-identical output).
#include <algorithm>
#include <cstring>

#include "runtime/kernels/lowbit/nbits_int8.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::nbits_detail {

namespace {

#define EP_AVXVNNI __attribute__((target("avx2,fma,avxvnni")))

inline int32_t Load32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Rows r0..r0+R-1 x columns [8h, 8h + 8) of panel p.
template <int R>
EP_AVXVNNI void Tile(const Q8Rows& a, int64_t r0, const Q4Int8Packed& b, int64_t p, int h,
                     const float* bias, float* y) {
  const int64_t kb = b.k_blocks, bs = b.block_size, steps = bs / 8;
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const int8_t* ar[R];
  __m256 acc[R];
  for (int r = 0; r < R; ++r) {
    ar[r] = a.q.data() + (r0 + r) * a.kp;
    acc[r] = _mm256_setzero_ps();
  }
  for (int64_t blk = 0; blk < kb; ++blk) {
    const uint8_t* codes = b.Codes(p, blk) + 32 * h;
    __m256i dot[R];
    for (int r = 0; r < R; ++r) dot[r] = _mm256_setzero_si256();
    for (int64_t s = 0; s < steps; ++s) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 64 * s));
      const __m256i lo = _mm256_and_si256(raw, mask);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
      for (int r = 0; r < R; ++r) {
        const int8_t* ak = ar[r] + blk * bs + 8 * s;
        dot[r] = _mm256_dpbusd_avx_epi32(dot[r], lo, _mm256_set1_epi32(Load32(ak)));
        dot[r] = _mm256_dpbusd_avx_epi32(dot[r], hi, _mm256_set1_epi32(Load32(ak + 4)));
      }
    }
    const __m256 sw = _mm256_loadu_ps(b.Scales(p, blk) + 8 * h);
    const __m256 szp = _mm256_loadu_ps(b.ScaledZeroPoints(p, blk) + 8 * h);
    for (int r = 0; r < R; ++r) {
      const __m256 sa = _mm256_set1_ps(a.scale[(r0 + r) * kb + blk]);
      const __m256 asum = _mm256_set1_ps(a.sum[(r0 + r) * kb + blk]);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[r]), _mm256_mul_ps(sw, sa), acc[r]);
      acc[r] = _mm256_fnmadd_ps(szp, asum, acc[r]);
    }
  }
  const int64_t col0 = p * kQ4PanelCols + 8 * h;
  const int cols = static_cast<int>(std::min<int64_t>(8, b.n - col0));
  alignas(32) float bv[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (bias) std::memcpy(bv, bias + col0, cols * sizeof(float));
  const __m256 vb = _mm256_load_ps(bv);
  for (int r = 0; r < R; ++r) {
    float* yr = y + (r0 + r) * b.n + col0;
    const __m256 out = _mm256_add_ps(acc[r], vb);
    if (cols == 8) {
      _mm256_storeu_ps(yr, out);
    } else {
      alignas(32) float tmp[8];
      _mm256_store_ps(tmp, out);
      std::memcpy(yr, tmp, cols * sizeof(float));
    }
  }
}

#undef EP_AVXVNNI

using TileFn = void (*)(const Q8Rows&, int64_t, const Q4Int8Packed&, int64_t, int, const float*,
                        float*);
constexpr TileFn kTiles[] = {Tile<1>, Tile<2>, Tile<3>, Tile<4>};

}  // namespace

void Q4Int8GemmAvxVnni(const Q8Rows& a, int64_t r0, int64_t r1, const Q4Int8Packed& b,
                       int64_t p0, int64_t p1, const float* bias, float* y) {
  for (int64_t p = p0; p < p1; ++p)
    for (int h = 0; h < 2 && p * kQ4PanelCols + 8 * h < b.n; ++h)
      for (int64_t r = r0; r < r1;) {
        const int rows = static_cast<int>(std::min<int64_t>(4, r1 - r));
        kTiles[rows - 1](a, r, b, p, h, bias, y);
        r += rows;
      }
}

}  // namespace edgepress::runtime::nbits_detail

#endif  // __x86_64__
