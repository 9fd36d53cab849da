// Portable GEMV micro-kernel (M <= 4, 16 columns): the reference the SIMD GEMVs are tested
// against (see gemm_ukernel.h for the contract).
#include "runtime/kernels/gemm/gemm_ukernel.h"

namespace edgepress::runtime::gemm_internal {

void GemvScalar(int rows, int cols, int64_t k, const float* a, int64_t lda, const float* b,
                int64_t ldb, float* acc) {
  constexpr int kNr = 16;
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < cols; ++j) acc[r * kNr + j] = 0.f;
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* bk = b + kk * ldb;
    for (int r = 0; r < rows; ++r) {
      const float av = a[r * lda + kk];
      for (int j = 0; j < cols; ++j) acc[r * kNr + j] += av * bk[j];
    }
  }
}

}  // namespace edgepress::runtime::gemm_internal
