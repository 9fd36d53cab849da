// The 2-D block transpose behind Transpose's batched last-two-axes path for 4-byte
// elements, 8 x 8 at a time in ymm registers (unpack / shuffle / permute2f128): each block
// is 8 row loads and 8 row stores instead of 64 scalar moves with a strided side. The
// attention graphs' K^T ([b, s, h, d] -> [b, h, d, s]) is this path. Ragged edges use the
// scalar loop.
#include "runtime/kernels/tensor/tensor_ops.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::kernels {

#if defined(__x86_64__)
namespace {

// dst[r * ldd + c] = src[c * lds + r] for r, c < 8.
__attribute__((target("avx2"))) inline void Block8x8(const float* src, int64_t lds, float* dst,
                                                     int64_t ldd) {
  __m256 r0 = _mm256_loadu_ps(src + 0 * lds), r1 = _mm256_loadu_ps(src + 1 * lds);
  __m256 r2 = _mm256_loadu_ps(src + 2 * lds), r3 = _mm256_loadu_ps(src + 3 * lds);
  __m256 r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds);
  __m256 r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst + 0 * ldd, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + 1 * ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}

}  // namespace

// Bit patterns move through float registers unchanged (no arithmetic), so any 4-byte
// dtype works.
__attribute__((target("avx2"))) void Transpose2DAvx2(const uint32_t* src, int64_t sb,
                                                     uint32_t* dst, int64_t a_n, int64_t b_n) {
  const float* s = reinterpret_cast<const float*>(src);
  float* d = reinterpret_cast<float*>(dst);
  const int64_t a8 = a_n - a_n % 8, b8 = b_n - b_n % 8;
  // 8 x 8 blocks along b for a strip of 8 output rows: the 8 output rows stay in L1.
  for (int64_t a = 0; a < a8; a += 8) {
    for (int64_t b = 0; b < b8; b += 8) Block8x8(s + a + b * sb, sb, d + a * b_n + b, b_n);
    for (int64_t r = a; r < a + 8; ++r)
      for (int64_t b = b8; b < b_n; ++b) dst[r * b_n + b] = src[r + b * sb];
  }
  for (int64_t r = a8; r < a_n; ++r)
    for (int64_t b = 0; b < b_n; ++b) dst[r * b_n + b] = src[r + b * sb];
}
#endif

}  // namespace edgepress::runtime::kernels
