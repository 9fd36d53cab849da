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
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

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

// r[j] = channel j of 16 pixels from the scratch s ([pixel][kOcBlock], 16 pixels from the
// block's channel 0 of this group). The 128-bit lane exchange of a 16 x 16 register
// transpose happens in the loads instead: register (C, p) gathers channels 4C..4C+3 of
// pixels p, 4 + p, 8 + p, 12 + p (one load and three vinsertf32x4 from memory, which run on
// the load ports and port 0 or 5), so only the 4 x 4 transposes inside the lanes are
// shuffles (32, port 5 only, against 64 for the full register transpose: the store was ~7%
// of a 56x56 layer).
__attribute__((target("avx512f"), always_inline)) inline void LoadTransposed(const float* s,
                                                                              __m512 r[16]) {
#pragma GCC unroll 4
  for (int C = 0; C < 4; ++C) {
    __m512 v[4];
#pragma GCC unroll 4
    for (int p = 0; p < 4; ++p) {
      const float* q = s + p * kOcBlock + 4 * C;
      __m512 t = _mm512_castps128_ps512(_mm_load_ps(q));
      t = _mm512_insertf32x4(t, _mm_load_ps(q + 4 * kOcBlock), 1);
      t = _mm512_insertf32x4(t, _mm_load_ps(q + 8 * kOcBlock), 2);
      v[p] = _mm512_insertf32x4(t, _mm_load_ps(q + 12 * kOcBlock), 3);
    }
    // Lane L of v[p]: pixel 4L + p, channels 4C..4C+3; transpose each lane's 4 x 4.
    const __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
    const __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
    r[4 * C] = _mm512_shuffle_ps(t0, t2, 0x44);
    r[4 * C + 1] = _mm512_shuffle_ps(t0, t2, 0xEE);
    r[4 * C + 2] = _mm512_shuffle_ps(t1, t3, 0x44);
    r[4 * C + 3] = _mm512_shuffle_ps(t1, t3, 0xEE);
  }
}

// StoreFn (conv_direct.h) for 64-channel blocks, 16 x 16 transposed (LoadTransposed). Templated on Z and the clamp, with a straight-line path for whole 16-channel
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
      LoadTransposed(scratch + p0 * kOcBlock + c0, r);
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
