// GEMV micro-kernel for AVX2+FMA: M <= 4 rows x 16 columns (two ymm per row), see
// gemm_ukernel.h. Same structure as gemv_avx512.cc: K unrolled into independent
// accumulators for 1-2 rows, masked loads at a ragged last column block.
#include "runtime/kernels/gemm/gemm_ukernel.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::gemm_internal {

namespace {

constexpr int kNr = 16;

template <int kM>
__attribute__((target("avx2,fma"))) void GemvAvx2T(int cols, int64_t k, const float* a,
                                                   int64_t lda, const float* b, int64_t ldb,
                                                   float* acc) {
  constexpr int kU = kM == 1 ? 4 : kM == 2 ? 2 : 1;
  alignas(32) int32_t lanes[kNr];
  for (int j = 0; j < kNr; ++j) lanes[j] = j < cols ? -1 : 0;
  const __m256i m0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
  const __m256i m1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes + 8));
  __m256 c[kU][kM][2];
  for (int u = 0; u < kU; ++u)
    for (int r = 0; r < kM; ++r) c[u][r][0] = c[u][r][1] = _mm256_setzero_ps();
  const int64_t pf = 8 * ldb;
  int64_t kk = 0;
  for (; kk + kU <= k; kk += kU) {
    for (int u = 0; u < kU; ++u) {
      const float* bk = b + (kk + u) * ldb;
      _mm_prefetch(reinterpret_cast<const char*>(bk + pf), _MM_HINT_T0);
      const __m256 b0 = _mm256_maskload_ps(bk, m0), b1 = _mm256_maskload_ps(bk + 8, m1);
      for (int r = 0; r < kM; ++r) {
        const __m256 av = _mm256_broadcast_ss(a + r * lda + kk + u);
        c[u][r][0] = _mm256_fmadd_ps(av, b0, c[u][r][0]);
        c[u][r][1] = _mm256_fmadd_ps(av, b1, c[u][r][1]);
      }
    }
  }
  for (; kk < k; ++kk) {
    const float* bk = b + kk * ldb;
    const __m256 b0 = _mm256_maskload_ps(bk, m0), b1 = _mm256_maskload_ps(bk + 8, m1);
    for (int r = 0; r < kM; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r * lda + kk);
      c[0][r][0] = _mm256_fmadd_ps(av, b0, c[0][r][0]);
      c[0][r][1] = _mm256_fmadd_ps(av, b1, c[0][r][1]);
    }
  }
  for (int r = 0; r < kM; ++r) {
    __m256 s0 = c[0][r][0], s1 = c[0][r][1];
    for (int u = 1; u < kU; ++u) {
      s0 = _mm256_add_ps(s0, c[u][r][0]);
      s1 = _mm256_add_ps(s1, c[u][r][1]);
    }
    _mm256_storeu_ps(acc + r * kNr, s0);
    _mm256_storeu_ps(acc + r * kNr + 8, s1);
  }
}

}  // namespace

void GemvAvx2(int rows, int cols, int64_t k, const float* a, int64_t lda, const float* b,
              int64_t ldb, float* acc) {
  switch (rows) {
    case 1: return GemvAvx2T<1>(cols, k, a, lda, b, ldb, acc);
    case 2: return GemvAvx2T<2>(cols, k, a, lda, b, ldb, acc);
    case 3: return GemvAvx2T<3>(cols, k, a, lda, b, ldb, acc);
    default: return GemvAvx2T<4>(cols, k, a, lda, b, ldb, acc);
  }
}

}  // namespace edgepress::runtime::gemm_internal
#endif  // __x86_64__
