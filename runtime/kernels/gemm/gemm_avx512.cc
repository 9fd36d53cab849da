// SGEMM micro-kernel for AVX-512F (6 x 32).
#include "runtime/kernels/gemm/gemm_ukernel.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::gemm_internal {

// ---- AVX-512F: 6 x 32, 12 zmm accumulators ---------------------------------------------

#define EP_AVX512_ROW(r)                                          \
  {                                                               \
    const __m512 av = _mm512_set1_ps(a[r]);                       \
    c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0);                   \
    c##r##1 = _mm512_fmadd_ps(av, b1, c##r##1);                   \
  }

__attribute__((target("avx512f"))) void Avx512Kernel(int rows, int cols, int64_t kc,
                                                     const float* a, const float* b, int64_t ldb, float* c,
                                                     int64_t ldc, const StoreParams& p) {
  constexpr int kMr = 6, kNr = 32;
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
         c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
    EP_AVX512_ROW(0)
    EP_AVX512_ROW(1)
    EP_AVX512_ROW(2)
    EP_AVX512_ROW(3)
    EP_AVX512_ROW(4)
    EP_AVX512_ROW(5)
    a += kMr;
    b += ldb;
  }
  alignas(64) __m512 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
  if (cols == kNr) {
    const __m512 va = _mm512_set1_ps(p.alpha), vb = _mm512_set1_ps(p.beta);
    const __m512 lo = _mm512_set1_ps(p.lo), hi = _mm512_set1_ps(p.hi);
    for (int r = 0; r < rows; ++r) {
      float* cr = c + r * ldc;
      __m512 v0 = _mm512_mul_ps(acc[2 * r], va), v1 = _mm512_mul_ps(acc[2 * r + 1], va);
      if (p.beta != 0) {
        v0 = _mm512_fmadd_ps(_mm512_loadu_ps(cr), vb, v0);
        v1 = _mm512_fmadd_ps(_mm512_loadu_ps(cr + 16), vb, v1);
      }
      if (p.row_bias) {
        const __m512 rb = _mm512_set1_ps(p.row_bias[r]);
        v0 = _mm512_add_ps(v0, rb);
        v1 = _mm512_add_ps(v1, rb);
      }
      if (p.col_bias) {
        v0 = _mm512_add_ps(v0, _mm512_loadu_ps(p.col_bias));
        v1 = _mm512_add_ps(v1, _mm512_loadu_ps(p.col_bias + 16));
      }
      if (p.clamp) {
        v0 = _mm512_min_ps(_mm512_max_ps(v0, lo), hi);
        v1 = _mm512_min_ps(_mm512_max_ps(v1, lo), hi);
      }
      _mm512_storeu_ps(cr, v0);
      _mm512_storeu_ps(cr + 16, v1);
    }
    return;
  }
  alignas(64) float tmp[6][kNr];
  for (int r = 0; r < rows; ++r) {
    _mm512_store_ps(tmp[r], acc[2 * r]);
    _mm512_store_ps(tmp[r] + 16, acc[2 * r + 1]);
  }
  StoreTileScalar(rows, cols, &tmp[0][0], kNr, c, ldc, p);
}
#undef EP_AVX512_ROW

}  // namespace edgepress::runtime::gemm_internal
#endif  // __x86_64__
