// q4s8_gemm__avx512vnni: the int8-activation MatMulNBits kernel with vpdpbusd
// (nbits_int8.h).
//
// A tile is up to 6 rows x 2 panels (32 columns): 12 int32 block accumulators and 12 float
// accumulators. Per step of 8 k, one 64-byte load per panel gives, after `& 15` and
// `>> 4 & 15`, the u8 operands for k..k+3 and k+4..k+7 of 16 columns; each row's four
// activation bytes are broadcast (an embedded-broadcast memory operand) as the s8 operand.
// vpdpbusd adds four products to each int32 lane without saturation, so the block's dot
// product is exact; at the end of a block it is folded into the float accumulator with
// the reference's two fused multiply-adds.
#include <algorithm>
#include <cstring>

#include "runtime/kernels/lowbit/nbits_int8.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::nbits_detail {

namespace {

// gcc 12 reports -Wmaybe-uninitialized inside unmasked AVX-512 intrinsics (their merge
// source is _mm512_undefined_*()): a false positive, silenced for this file's kernels.
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define EP_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))

inline int32_t Load32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Rows r0..r0+R-1 x panels p..p+V-1.
template <int R, int V>
EP_VNNI void Tile(const Q8Rows& a, int64_t r0, const Q4Int8Packed& b, int64_t p,
                  const float* bias, float* y) {
  const int64_t kb = b.k_blocks, bs = b.block_size, steps = bs / 8;
  const __m512i mask = _mm512_set1_epi8(0x0F);
  const int8_t* ar[R];
  __m512 acc[R][V];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    ar[r] = a.q.data() + (r0 + r) * a.kp;
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  for (int64_t blk = 0; blk < kb; ++blk) {
    const uint8_t* codes[V];
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) codes[v] = b.Codes(p + v, blk);
    const int64_t k0 = blk * bs;
    __m512i dot[R][V];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) dot[r][v] = _mm512_setzero_si512();
    for (int64_t s = 0; s < steps; ++s) {
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) {
        const __m512i raw = _mm512_loadu_si512(codes[v] + 64 * s);
        const __m512i lo = _mm512_and_si512(raw, mask);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          const int8_t* ak = ar[r] + k0 + 8 * s;
          dot[r][v] = _mm512_dpbusd_epi32(dot[r][v], lo, _mm512_set1_epi32(Load32(ak)));
          dot[r][v] = _mm512_dpbusd_epi32(dot[r][v], hi, _mm512_set1_epi32(Load32(ak + 4)));
        }
      }
    }
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) {
      const __m512 sw = _mm512_loadu_ps(b.Scales(p + v, blk));
      const __m512 szp = _mm512_loadu_ps(b.ScaledZeroPoints(p + v, blk));
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m512 sa = _mm512_set1_ps(a.scale[(r0 + r) * kb + blk]);
        const __m512 asum = _mm512_set1_ps(a.sum[(r0 + r) * kb + blk]);
        acc[r][v] =
            _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[r][v]), _mm512_mul_ps(sw, sa), acc[r][v]);
        acc[r][v] = _mm512_fnmadd_ps(szp, asum, acc[r][v]);
      }
    }
  }
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    const int64_t col0 = (p + v) * kQ4PanelCols;
    const int cols = static_cast<int>(std::min<int64_t>(kQ4PanelCols, b.n - col0));
    const __mmask16 m = static_cast<__mmask16>((1u << cols) - 1);
    const __m512 vb = bias ? _mm512_maskz_loadu_ps(m, bias + col0) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      _mm512_mask_storeu_ps(y + (r0 + r) * b.n + col0, m, _mm512_add_ps(acc[r][v], vb));
  }
}

using TileFn = void (*)(const Q8Rows&, int64_t, const Q4Int8Packed&, int64_t, const float*,
                        float*);
constexpr TileFn kTiles[2][6] = {
    {Tile<1, 1>, Tile<2, 1>, Tile<3, 1>, Tile<4, 1>, Tile<5, 1>, Tile<6, 1>},
    {Tile<1, 2>, Tile<2, 2>, Tile<3, 2>, Tile<4, 2>, Tile<5, 2>, Tile<6, 2>}};

#undef EP_VNNI
#pragma GCC diagnostic pop

}  // namespace

void Q4Int8GemmAvx512Vnni(const Q8Rows& a, int64_t r0, int64_t r1, const Q4Int8Packed& b,
                          int64_t p0, int64_t p1, const float* bias, float* y) {
  for (int64_t p = p0; p < p1; p += 2) {
    const int v = static_cast<int>(std::min<int64_t>(2, p1 - p));
    for (int64_t r = r0; r < r1;) {
      const int rows = static_cast<int>(std::min<int64_t>(6, r1 - r));
      kTiles[v - 1][rows - 1](a, r, b, p, bias, y);
      r += rows;
    }
  }
}

}  // namespace edgepress::runtime::nbits_detail

#endif  // __x86_64__
