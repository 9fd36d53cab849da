// SGEMM micro-kernel for AVX2 + FMA (6 x 16).
#include "runtime/kernels/gemm/gemm_ukernel.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::gemm_internal {

// ---- AVX2 + FMA: 6 x 16, 12 ymm accumulators ------------------------------------------
// The accumulators are named variables, not arrays: gcc 12 keeps arrays of vectors in
// memory across the K loop (a store per FMA), which halves the throughput. Edge panels with
// fewer than 6 rows run the full tile on the zero-padded A panel and store only `rows`;
// one-row panels (batch-1 GEMV) have their own kernel.

#define EP_AVX2_ROW(r)                                            \
  {                                                               \
    const __m256 av = _mm256_broadcast_ss(a + r);                 \
    c##r##0 = _mm256_fmadd_ps(av, b0, c##r##0);                   \
    c##r##1 = _mm256_fmadd_ps(av, b1, c##r##1);                   \
  }

__attribute__((target("avx2,fma"))) void Avx2Store(int rows, int cols, const __m256* acc,
                                                   float* c, int64_t ldc,
                                                   const StoreParams& p) {
  constexpr int kNr = 16;
  if (cols == kNr) {
    const __m256 va = _mm256_set1_ps(p.alpha), vb = _mm256_set1_ps(p.beta);
    const __m256 lo = _mm256_set1_ps(p.lo), hi = _mm256_set1_ps(p.hi);
    for (int r = 0; r < rows; ++r) {
      float* cr = c + r * ldc;
      __m256 v0 = _mm256_mul_ps(acc[2 * r], va), v1 = _mm256_mul_ps(acc[2 * r + 1], va);
      if (p.beta != 0) {
        v0 = _mm256_fmadd_ps(_mm256_loadu_ps(cr), vb, v0);
        v1 = _mm256_fmadd_ps(_mm256_loadu_ps(cr + 8), vb, v1);
      }
      if (p.row_bias) {
        const __m256 rb = _mm256_set1_ps(p.row_bias[r]);
        v0 = _mm256_add_ps(v0, rb);
        v1 = _mm256_add_ps(v1, rb);
      }
      if (p.col_bias) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(p.col_bias));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(p.col_bias + 8));
      }
      if (p.clamp) {
        v0 = _mm256_min_ps(_mm256_max_ps(v0, lo), hi);
        v1 = _mm256_min_ps(_mm256_max_ps(v1, lo), hi);
      }
      _mm256_storeu_ps(cr, v0);
      _mm256_storeu_ps(cr + 8, v1);
    }
    return;
  }
  alignas(32) float tmp[6][kNr];
  for (int r = 0; r < rows; ++r) {
    _mm256_store_ps(tmp[r], acc[2 * r]);
    _mm256_store_ps(tmp[r] + 8, acc[2 * r + 1]);
  }
  StoreTileScalar(rows, cols, &tmp[0][0], kNr, c, ldc, p);
}

__attribute__((target("avx2,fma"))) void Avx2Kernel(int rows, int cols, int64_t kc,
                                                    const float* a, const float* b, int64_t ldb, float* c,
                                                    int64_t ldc, const StoreParams& p) {
  constexpr int kMr = 6;
  alignas(32) __m256 acc[12];
  if (rows == 1) {
    // Two k steps per iteration into separate accumulators hide the FMA latency.
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00;
    int64_t k = 0;
    for (; k + 2 <= kc; k += 2) {
      const __m256 a0 = _mm256_broadcast_ss(a), a1 = _mm256_broadcast_ss(a + kMr);
      c00 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b), c00);
      c01 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + 8), c01);
      c10 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(b + ldb), c10);
      c11 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(b + ldb + 8), c11);
      a += 2 * kMr;
      b += 2 * ldb;
    }
    if (k < kc) {
      const __m256 a0 = _mm256_broadcast_ss(a);
      c00 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b), c00);
      c01 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + 8), c01);
    }
    acc[0] = _mm256_add_ps(c00, c10);
    acc[1] = _mm256_add_ps(c01, c11);
    Avx2Store(1, cols, acc, c, ldc, p);
    return;
  }
  // Start fetching the C tile now; it is read (beta != 0) or written after the K loop.
  for (int r = 0; r < rows; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 15), _MM_HINT_T0);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
         c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    EP_AVX2_ROW(0)
    EP_AVX2_ROW(1)
    EP_AVX2_ROW(2)
    EP_AVX2_ROW(3)
    EP_AVX2_ROW(4)
    EP_AVX2_ROW(5)
    a += kMr;
    b += ldb;
  }
  acc[0] = c00, acc[1] = c01, acc[2] = c10, acc[3] = c11, acc[4] = c20, acc[5] = c21;
  acc[6] = c30, acc[7] = c31, acc[8] = c40, acc[9] = c41, acc[10] = c50, acc[11] = c51;
  Avx2Store(rows, cols, acc, c, ldc, p);
}
#undef EP_AVX2_ROW

}  // namespace edgepress::runtime::gemm_internal
#endif  // __x86_64__
