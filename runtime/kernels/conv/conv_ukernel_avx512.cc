// The implicit-GEMM convolution's AVX-512 micro-kernel: 12 x 32, 24 zmm accumulators
// (conv_implicit.h). Twice the rows of the SGEMM's 6 x 32 tile, so each B vector loaded
// from the L1 panel feeds 12 FMAs instead of 6 and the A block makes half as many passes
// over each B panel; measured on this project's Xeon with a 16-panel A block and a 128-
// to 256-deep B panel in L1: 168 -> 187 GFLOP/s (peak about 195). The conv driver always
// hands it whole 32-column panels; rows may be partial (the tile is instantiated per row
// count, reading the 12-wide A panel), and with TileStore::keep it stores only the kept
// columns, packed (vcompressps), straight into Y.
#include "runtime/kernels/conv/conv_implicit.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::conv_implicit {

namespace {

// gcc 12 reports -Wmaybe-uninitialized inside unmasked AVX-512 intrinsics (their merge
// source is _mm512_undefined_ps()): a false positive, silenced for these tiles.
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// One 16-lane column half of a tile row: load (expand), store (compress). With a partial
// `keep` the kept lanes sit at consecutive addresses from `at` (see TileStore::keep).
__attribute__((target("avx512f"), always_inline)) inline __m512 LoadKept(const float* at,
                                                                         __mmask16 keep,
                                                                         bool full) {
  if (full) return _mm512_loadu_ps(at);
  const __mmask16 packed = static_cast<__mmask16>((1u << __builtin_popcount(keep)) - 1);
  return _mm512_maskz_expand_ps(keep, _mm512_maskz_loadu_ps(packed, at));
}
__attribute__((target("avx512f"), always_inline)) inline void StoreKept(float* at, __mmask16 keep,
                                                                       bool full, __m512 v) {
  if (full) return _mm512_storeu_ps(at, v);
  _mm512_mask_storeu_ps(at, static_cast<__mmask16>((1u << __builtin_popcount(keep)) - 1),
                        _mm512_maskz_compress_ps(keep, v));
}

// kRows rows of the 12-row A panel (stride 12 per k): a partial last panel (M = 64 leaves
// 4 rows) computes only its rows instead of 12.
// kPrefetch: one prefetch of p.prefetch per k step (TileStore::prefetch). kHalves = 1:
// every kept column is in the first 16 (the last panel of a 14x14 plane keeps 4, of a
// 28x28 plane 16), so the second half is neither computed nor stored.
template <int kRows, bool kPrefetch, int kHalves>
__attribute__((target("avx512f"))) void Tile12x32(int64_t kc, const float* a, const float* b,
                                                  float* c, int64_t ldc, const TileStore& p) {
  constexpr int kMr = 12;
  __m512 acc[kRows][kHalves];
#pragma GCC unroll 12
  for (int r = 0; r < kRows; ++r)
    for (int h = 0; h < kHalves; ++h) acc[r][h] = _mm512_setzero_ps();
  const float* pf = p.prefetch;
  const int64_t ldb = p.ldb > 0 ? p.ldb : 32;
  for (int64_t k = 0; k < kc; ++k) {
    if (kPrefetch) {
      _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
      pf += kMr;
    }
    __m512 bv[kHalves];
    for (int h = 0; h < kHalves; ++h) bv[h] = _mm512_loadu_ps(b + 16 * h);
#pragma GCC unroll 12
    for (int r = 0; r < kRows; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
      for (int h = 0; h < kHalves; ++h) acc[r][h] = _mm512_fmadd_ps(av, bv[h], acc[r][h]);
    }
    a += kMr;
    b += ldb;
  }
  const __m512 lo = _mm512_set1_ps(p.lo), hi = _mm512_set1_ps(p.hi);
  const bool full = p.keep == 0xffffffffu;
  const __mmask16 k0 = static_cast<__mmask16>(p.keep), k1 = static_cast<__mmask16>(p.keep >> 16);
  const int64_t h1 = full ? 16 : __builtin_popcount(k0);  // where the second half starts
#pragma GCC unroll 12
  for (int r = 0; r < kRows; ++r) {
    float* cr = c + r * ldc;
    __m512 v0 = acc[r][0], v1 = acc[r][kHalves - 1];  // v1 unused when kHalves = 1
    constexpr bool two = kHalves == 2;
    if (p.accumulate) {
      v0 = _mm512_add_ps(v0, LoadKept(cr, k0, full));
      if (two) v1 = _mm512_add_ps(v1, LoadKept(cr + h1, k1, full));
    }
    if (p.row_bias) {
      const __m512 rb = _mm512_set1_ps(p.row_bias[r]);
      v0 = _mm512_add_ps(v0, rb);
      if (two) v1 = _mm512_add_ps(v1, rb);
    }
    if (p.z) {
      const float* zr = p.z + r * p.ldz;
      v0 = _mm512_add_ps(v0, LoadKept(zr, k0, full));
      if (two) v1 = _mm512_add_ps(v1, LoadKept(zr + h1, k1, full));
    }
    if (p.clamp) {
      v0 = _mm512_min_ps(_mm512_max_ps(v0, lo), hi);
      if (two) v1 = _mm512_min_ps(_mm512_max_ps(v1, lo), hi);
    }
    if (p.post.any()) {
      v0 = conv_act::Post512(p.post, v0);
      if (two) v1 = conv_act::Post512(p.post, v1);
    }
    StoreKept(cr, k0, full, v0);
    if (two) StoreKept(cr + h1, k1, full, v1);
  }
}

#pragma GCC diagnostic pop

template <int kRows>
__attribute__((target("avx512f"))) void Tile12x32Rows(int64_t kc, const float* a,
                                                      const float* b, float* c, int64_t ldc,
                                                      const TileStore& p) {
  if ((p.keep >> 16) == 0)  // only the first 16 columns are kept
    return p.prefetch ? Tile12x32<kRows, true, 1>(kc, a, b, c, ldc, p)
                      : Tile12x32<kRows, false, 1>(kc, a, b, c, ldc, p);
  if (p.prefetch) return Tile12x32<kRows, true, 2>(kc, a, b, c, ldc, p);
  Tile12x32<kRows, false, 2>(kc, a, b, c, ldc, p);
}

}  // namespace

void Ukernel12x32Avx512(int rows, int64_t kc, const float* a, const float* b, float* c,
                        int64_t ldc, const TileStore& p) {
  switch (rows) {
    case 1: return Tile12x32Rows<1>(kc, a, b, c, ldc, p);
    case 2: return Tile12x32Rows<2>(kc, a, b, c, ldc, p);
    case 3: return Tile12x32Rows<3>(kc, a, b, c, ldc, p);
    case 4: return Tile12x32Rows<4>(kc, a, b, c, ldc, p);
    case 5: return Tile12x32Rows<5>(kc, a, b, c, ldc, p);
    case 6: return Tile12x32Rows<6>(kc, a, b, c, ldc, p);
    case 7: return Tile12x32Rows<7>(kc, a, b, c, ldc, p);
    case 8: return Tile12x32Rows<8>(kc, a, b, c, ldc, p);
    case 9: return Tile12x32Rows<9>(kc, a, b, c, ldc, p);
    case 10: return Tile12x32Rows<10>(kc, a, b, c, ldc, p);
    case 11: return Tile12x32Rows<11>(kc, a, b, c, ldc, p);
    default: return Tile12x32Rows<12>(kc, a, b, c, ldc, p);
  }
}

namespace {

// The pixel-major tile (conv_pixel_major.cc): 7 pixels x 16*kJ channels of a 64-wide
// weight panel (B stride 64 per k). kJ = 4: 28 zmm accumulators; per GEMM row 4 B loads
// and 7 broadcasts feed 28 FMAs (the 12 x 32 tile: 2 + 12 for 24). kJ < 4 serves a last
// channel panel of 16, 32 or 48 channels (MobileNetV2's 160 and 96), which the full tile
// computed as 64. Bias, Z and the clamp are applied by the caller's transposed store;
// this tile only stores or accumulates its 16*kJ columns.
template <int kJ>
__attribute__((target("avx512f"))) void Tile7xJ(int rows, int64_t kc, const float* a,
                                                const float* b, float* c, int64_t ldc,
                                                const TileStore& p) {
  constexpr int kMr = 7;
  __m512 acc[kMr][kJ];
#pragma GCC unroll 7
  for (int r = 0; r < kMr; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < kJ; ++j) acc[r][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[kJ];
#pragma GCC unroll 4
    for (int j = 0; j < kJ; ++j) bv[j] = _mm512_loadu_ps(b + 16 * j);
#pragma GCC unroll 7
    for (int r = 0; r < kMr; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
      for (int j = 0; j < kJ; ++j) acc[r][j] = _mm512_fmadd_ps(av, bv[j], acc[r][j]);
    }
    a += kMr;
    b += kPmCols;
  }
#pragma GCC unroll 7
  for (int r = 0; r < kMr; ++r) {
    if (r >= rows) break;
    float* cr = c + r * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < kJ; ++j) {
      __m512 v = acc[r][j];
      if (p.accumulate) v = _mm512_add_ps(v, _mm512_loadu_ps(cr + 16 * j));
      _mm512_storeu_ps(cr + 16 * j, v);
    }
  }
}

}  // namespace

void Ukernel7x64Avx512(int rows, int64_t kc, const float* a, const float* b, float* c,
                       int64_t ldc, const TileStore& p) {
  Tile7xJ<4>(rows, kc, a, b, c, ldc, p);
}

ConvTileFn Ukernel7xNAvx512(int cols) {
  if (cols <= 16) return Tile7xJ<1>;
  if (cols <= 32) return Tile7xJ<2>;
  if (cols <= 48) return Tile7xJ<3>;
  return Tile7xJ<4>;
}

}  // namespace edgepress::runtime::conv_implicit
#endif  // __x86_64__
