// The direct convolution's AVX2 + FMA pieces (conv_direct.h), for CPUs without AVX-512
// (AMD Zen 2/3): 16 ymm registers hold a 6-pixel x 16-channel tile (12 accumulators, 2
// weight vectors, 1 broadcast), so each tap loads 2 weight vectors and 6 broadcasts for 12
// FMAs; 16-channel blocks also waste at most 15 computed channels. Where 24-channel blocks
// pad less (M = 24, 72: OcBlock) the tile is 4 pixels x 24 channels (12 accumulators, 3
// weight vectors, 1 broadcast: 4 broadcasts per 12 FMAs). The store transposes 8 x 8
// blocks of the scratch into Y's rows.
#include "runtime/kernels/conv/conv_direct.h"
#include "runtime/kernels/conv/simd8_avx2.h"

#include <algorithm>
#include <cstdint>

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

// TileFn (conv_direct.h) for N pixels x 8 * V output channels, V ymm per pixel.
template <int N, int V>
__attribute__((target("avx2,fma"))) void Tile(const float* const* px, int64_t x_off,
                                              const int64_t* tab, int64_t k, const float* w,
                                              float* const* acc, const float* init,
                                              const float* pf, int64_t pf_lines) {
  __m256 a[N][V];
  const float* p[N];
#pragma GCC unroll 8
  for (int i = 0; i < N; ++i) {
    p[i] = px[i] + x_off;
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) a[i][v] = _mm256_load_ps((init ? init : acc[i]) + 8 * v);
  }
  for (const int64_t* e = tab; e < tab + 2 * k; e += 2) {
    const int64_t o = e[0];
    const float* wt = w + e[1];
    if (pf_lines > 0) {
      _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
      pf += 16;
      --pf_lines;
    }
    __m256 wv[V];
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) wv[v] = _mm256_load_ps(wt + 8 * v);
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) {
      const __m256 b = _mm256_broadcast_ss(p[i] + o);
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) a[i][v] = _mm256_fmadd_ps(b, wv[v], a[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < N; ++i)
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) _mm256_store_ps(acc[i] + 8 * v, a[i][v]);
}

// StoreFn (conv_direct.h) for kB-channel blocks, 8 x 8 transposed; a partial 8-pixel group
// uses masked loads and stores, so nothing outside Y's (and Z's) run is touched.
template <int kB, bool kZ, bool kClamp>
__attribute__((target("avx2"))) void StoreRows(const float* scratch, int64_t npix, int64_t nch,
                                               const float* z, int64_t ld,
                                               const GemmEpilogue& ep, float* y) {
  const __m256 lo = _mm256_set1_ps(ep.lo), hi = _mm256_set1_ps(ep.hi);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t p0 = 0; p0 < npix; p0 += 8) {
    const int64_t n = std::min<int64_t>(8, npix - p0);
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane);
    for (int64_t c0 = 0; c0 < nch; c0 += 8) {
      __m256 r[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) r[i] = _mm256_load_ps(scratch + (p0 + i) * kB + c0);
      Transpose8x8(r);
      const int64_t cn = std::min<int64_t>(8, nch - c0);
      for (int64_t j = 0; j < cn; ++j) {
        __m256 v = r[j];
        const int64_t off = (c0 + j) * ld + p0;
        if (n == 8) {
          if (kZ) v = _mm256_add_ps(v, _mm256_loadu_ps(z + off));
          if (kClamp) v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
          _mm256_storeu_ps(y + off, v);
        } else {
          if (kZ) v = _mm256_add_ps(v, _mm256_maskload_ps(z + off, m));
          if (kClamp) v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
          StoreFirst(y + off, v, n);
        }
      }
    }
  }
}

#pragma GCC diagnostic pop

}  // namespace

const IsaOps& Avx2Ops(int oc_block) {
  // ~12 KiB of weights ([cb][taps][B]) per channel block: Zen's L1 is 32 KiB.
  static const IsaOps ops16 = {16,
                               6,
                               3072,
                               {Tile<1, 2>, Tile<2, 2>, Tile<3, 2>, Tile<4, 2>, Tile<5, 2>,
                                Tile<6, 2>},
                               {{StoreRows<16, false, false>, StoreRows<16, false, true>},
                                {StoreRows<16, true, false>, StoreRows<16, true, true>}}};
  static const IsaOps ops24 = {24,
                               4,
                               3072,
                               {Tile<1, 3>, Tile<2, 3>, Tile<3, 3>, Tile<4, 3>},
                               {{StoreRows<24, false, false>, StoreRows<24, false, true>},
                                {StoreRows<24, true, false>, StoreRows<24, true, true>}}};
  return oc_block == 24 ? ops24 : ops16;
}

#endif  // __x86_64__

}  // namespace edgepress::runtime::conv_direct
