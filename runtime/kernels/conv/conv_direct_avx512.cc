// The direct AVX-512 convolution (conv_direct.h).
// Why: the implicit GEMM (conv_implicit.cc) packs a B panel of 32 pixels per K block and
// keeps 12 output channels per tile, so each loaded B vector feeds 12 FMAs and every
// input value is copied into a panel once per tap; ResNet-18's 3x3 convs ran at ~128
// GFLOP/s in the model against onnxruntime's ~180 (peak ~195). Here nothing is packed per
// call: the 6 x 64 tile loads 4 weight vectors and 6 broadcasts per tap (10 loads for 24
// FMAs, weights from L1), the accumulators of ~112 output pixels stay in an L1 scratch
// across input-channel blocks, and Y is written once, transposed.
#include "runtime/kernels/conv/conv_direct.h"

#include <algorithm>
#include <cstdint>

#include "ir/error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::conv_direct {

#if defined(__x86_64__)

namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

constexpr int kOcBlock = 64;
constexpr int kTilePixels = 6;  // 6 x 4 zmm accumulators + 4 weights + 1 broadcast

// TileFn (conv_direct.h) for 64 output channels, 4 zmm per pixel.
template <int N>
__attribute__((target("avx512f"))) void Tile(const float* const* px, int64_t x_off,
                                             const int64_t* tab, int64_t k, const float* w,
                                             float* const* acc, const float* init,
                                             const float* pf, int64_t pf_lines) {
  __m512 a[N][4];
  const float* p[N];
#pragma GCC unroll 8
  for (int i = 0; i < N; ++i) {
    p[i] = px[i] + x_off;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j)
      a[i][j] = _mm512_load_ps(init ? init + j * 16 : acc[i] + j * 16);
  }
  for (const int64_t* e = tab; e < tab + 2 * k; e += 2) {
    const int64_t o = e[0];
    const float* wt = w + e[1];
    if (pf_lines > 0) {
      _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
      pf += 16;
      --pf_lines;
    }
    const __m512 w0 = _mm512_load_ps(wt), w1 = _mm512_load_ps(wt + 16);
    const __m512 w2 = _mm512_load_ps(wt + 32), w3 = _mm512_load_ps(wt + 48);
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) {
      const __m512 b = _mm512_set1_ps(p[i][o]);
      a[i][0] = _mm512_fmadd_ps(b, w0, a[i][0]);
      a[i][1] = _mm512_fmadd_ps(b, w1, a[i][1]);
      a[i][2] = _mm512_fmadd_ps(b, w2, a[i][2]);
      a[i][3] = _mm512_fmadd_ps(b, w3, a[i][3]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < N; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) _mm512_store_ps(acc[i] + j * 16, a[i][j]);
}

// r[i] (row i of a 16 x 16 block) -> r[j] = column j, in registers.
__attribute__((target("avx512f"), always_inline)) inline void Transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  // u[4g + j], 128-bit lane L: rows 4g..4g+3 of column 4L + j.
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    u[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
    const __m512 w0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
    const __m512 w1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
    r[j] = _mm512_shuffle_f32x4(v0, w0, 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
    r[4 + j] = _mm512_shuffle_f32x4(v1, w1, 0x88);
    r[12 + j] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
  }
}

// StoreFn (conv_direct.h) for 64-channel blocks, 16 x 16 transposed. Templated on Z and the clamp, with a straight-line path for whole 16-channel
// groups: with runtime flags and bounds gcc spilled the transposed block.
template <bool kZ, bool kClamp>
__attribute__((target("avx512f"), always_inline)) inline void StoreChannel(
    __m512 v, __mmask16 m, const float* z, float* y, int64_t off, __m512 lo, __m512 hi) {
  if (kZ) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, z + off));
  if (kClamp) v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
  _mm512_mask_storeu_ps(y + off, m, v);
}
template <bool kZ, bool kClamp>
__attribute__((target("avx512f"))) void StoreRows(const float* scratch, int64_t npix,
                                                 int64_t nch, const float* z, int64_t ld,
                                                 const GemmEpilogue& ep, float* y) {
  const __m512 lo = _mm512_set1_ps(ep.lo), hi = _mm512_set1_ps(ep.hi);
  for (int64_t p0 = 0; p0 < npix; p0 += 16) {
    const __mmask16 m = static_cast<__mmask16>((1u << std::min<int64_t>(16, npix - p0)) - 1);
    for (int64_t c0 = 0; c0 < nch; c0 += 16) {
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) r[i] = _mm512_load_ps(scratch + (p0 + i) * kOcBlock + c0);
      Transpose16(r);
      if (nch - c0 >= 16) {
#pragma GCC unroll 16
        for (int j = 0; j < 16; ++j) StoreChannel<kZ, kClamp>(r[j], m, z, y, (c0 + j) * ld + p0, lo, hi);
      } else {
        for (int j = 0; j < nch - c0; ++j)
          StoreChannel<kZ, kClamp>(r[j], m, z, y, (c0 + j) * ld + p0, lo, hi);
      }
    }
  }
}

#pragma GCC diagnostic pop

}  // namespace

const IsaOps& Avx512Ops() {
  static const IsaOps ops = {kOcBlock,
                             kTilePixels,
                             // ~12 KiB of weights in L1 (48 KiB) beside the scratch and rows
                             3072,
                             {Tile<1>, Tile<2>, Tile<3>, Tile<4>, Tile<5>, Tile<6>},
                             {{StoreRows<false, false>, StoreRows<false, true>},
                              {StoreRows<true, false>, StoreRows<true, true>}}};
  return ops;
}

#endif  // __x86_64__

}  // namespace edgepress::runtime::conv_direct
