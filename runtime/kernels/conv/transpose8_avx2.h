// An 8 x 8 float transpose in ymm registers (AVX), shared by the AVX2 kernels that turn
// pixel-major tiles into NCHW rows (conv_direct_avx2.cc) and back
// (depthwise/depthwise_channels_avx2.cc).
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

}  // namespace edgepress::runtime
#endif  // __x86_64__
