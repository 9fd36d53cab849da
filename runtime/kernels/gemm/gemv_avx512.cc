// GEMV micro-kernel for AVX-512F: M <= 4 rows x 32 columns (two zmm per row), see
// gemm_ukernel.h. With one row, the K loop is unrolled 4 times into independent accumulators
// (2 rows: 2 times) so that FMA latency, not bandwidth, never bounds the stream of B; loads
// are masked at a ragged last column block, so raw B is never read past its row.
#include "runtime/kernels/gemm/gemm_ukernel.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::gemm_internal {

namespace {

constexpr int kNr = 32;

template <int kM>
__attribute__((target("avx512f"))) void GemvAvx512T(int cols, int64_t k, const float* a,
                                                    int64_t lda, const float* b, int64_t ldb,
                                                    float* acc) {
  constexpr int kU = kM == 1 ? 4 : kM == 2 ? 2 : 1;
  const __mmask16 m0 = cols >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << cols) - 1);
  const __mmask16 m1 =
      cols >= 32 ? 0xFFFF : cols > 16 ? static_cast<__mmask16>((1u << (cols - 16)) - 1) : 0;
  __m512 c[kU][kM][2];
  for (int u = 0; u < kU; ++u)
    for (int r = 0; r < kM; ++r) c[u][r][0] = c[u][r][1] = _mm512_setzero_ps();
  // A strided raw B is prefetched 8 rows ahead (32 measured no better). A packed panel
  // (ldb == 32) is one contiguous stream that the hardware prefetchers follow on their own:
  // prefetching it as well, 32 K steps ahead, cost the mlp fixture's layers (weights in L3)
  // 111 -> 84 us per run at 1 thread, and gained nothing measurable where the weights
  // stream from memory (gemm_bench, 16 copies of B, and 1x4096x4096).
  const bool prefetch = ldb != kNr;
  const int64_t pf = 8 * ldb;
  int64_t kk = 0;
  for (; kk + kU <= k; kk += kU) {
    for (int u = 0; u < kU; ++u) {
      const float* bk = b + (kk + u) * ldb;
      if (prefetch) {
        _mm_prefetch(reinterpret_cast<const char*>(bk + pf), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(bk + pf + 16), _MM_HINT_T0);
      }
      const __m512 b0 = _mm512_maskz_loadu_ps(m0, bk), b1 = _mm512_maskz_loadu_ps(m1, bk + 16);
      for (int r = 0; r < kM; ++r) {
        const __m512 av = _mm512_set1_ps(a[r * lda + kk + u]);
        c[u][r][0] = _mm512_fmadd_ps(av, b0, c[u][r][0]);
        c[u][r][1] = _mm512_fmadd_ps(av, b1, c[u][r][1]);
      }
    }
  }
  for (; kk < k; ++kk) {
    const float* bk = b + kk * ldb;
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, bk), b1 = _mm512_maskz_loadu_ps(m1, bk + 16);
    for (int r = 0; r < kM; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + kk]);
      c[0][r][0] = _mm512_fmadd_ps(av, b0, c[0][r][0]);
      c[0][r][1] = _mm512_fmadd_ps(av, b1, c[0][r][1]);
    }
  }
  for (int r = 0; r < kM; ++r) {
    __m512 s0 = c[0][r][0], s1 = c[0][r][1];
    for (int u = 1; u < kU; ++u) {
      s0 = _mm512_add_ps(s0, c[u][r][0]);
      s1 = _mm512_add_ps(s1, c[u][r][1]);
    }
    _mm512_storeu_ps(acc + r * kNr, s0);
    _mm512_storeu_ps(acc + r * kNr + 16, s1);
  }
}

}  // namespace

void GemvAvx512(int rows, int cols, int64_t k, const float* a, int64_t lda, const float* b,
                int64_t ldb, float* acc) {
  switch (rows) {
    case 1: return GemvAvx512T<1>(cols, k, a, lda, b, ldb, acc);
    case 2: return GemvAvx512T<2>(cols, k, a, lda, b, ldb, acc);
    case 3: return GemvAvx512T<3>(cols, k, a, lda, b, ldb, acc);
    default: return GemvAvx512T<4>(cols, k, a, lda, b, ldb, acc);
  }
}

}  // namespace edgepress::runtime::gemm_internal
#endif  // __x86_64__
