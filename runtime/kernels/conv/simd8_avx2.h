// 8-float ymm helpers of the conv family's AVX2 kernels: an 8 x 8 transpose (pixel-major
// tiles to NCHW rows and back: conv_direct_avx2.cc, depthwise/depthwise_channels_avx2.cc)
// and a store of a vector's first n floats (the depthwise rows' and the direct store's
// tails).
#pragma once

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime {

// r[i] (row i of an 8 x 8 block) -> r[j] = column j.
__attribute__((target("avx2"), always_inline)) inline void Transpose8x8(__m256 r[8]) {
  __m256 t[8], s[8];
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    t[2 * k] = _mm256_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm256_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  // s[4g + j], 128-bit lane L: rows 4g..4g+3 of column 4L + j.
#pragma GCC unroll 2
  for (int g = 0; g < 2; ++g) {
    s[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    s[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    s[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    s[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_permute2f128_ps(s[j], s[4 + j], 0x20);
    r[4 + j] = _mm256_permute2f128_ps(s[j], s[4 + j], 0x31);
  }
}

// v's first n floats (0 <= n <= 8) to y, nothing past them written. vmaskmovps stores
// are microcoded on AMD Zen (~15 cycles each on Zen 3 against 1 for a plain store): a
// 7x7 depthwise plane ending each of its rows with one spent ~30% of its time there.
__attribute__((target("avx2"), always_inline)) inline void StoreFirst(float* y, __m256 v,
                                                                       int64_t n) {
  if (n >= 8) {
    _mm256_storeu_ps(y, v);
    return;
  }
  __m128 part = _mm256_castps256_ps128(v);
  if (n & 4) {
    _mm_storeu_ps(y, part);
    part = _mm256_extractf128_ps(v, 1);
    y += 4;
  }
  if (n & 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(y), part);
    part = _mm_movehl_ps(part, part);
    y += 2;
  }
  if (n & 1) _mm_store_ss(y, part);
}

}  // namespace edgepress::runtime
#endif  // __x86_64__
