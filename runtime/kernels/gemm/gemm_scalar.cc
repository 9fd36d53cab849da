// Portable SGEMM micro-kernel (6 x 16): the reference every SIMD kernel is tested against.
#include "runtime/kernels/gemm/gemm_ukernel.h"

namespace edgepress::runtime::gemm_internal {

// ---- portable micro-kernel -------------------------------------------------------------

template <int R>
void ScalarTile(int cols, int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc,
                const StoreParams& p) {
  constexpr int kMr = 6, kNr = 16;
  float acc[R][kNr] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int r = 0; r < R; ++r) {
      const float av = a[r];
      for (int j = 0; j < kNr; ++j) acc[r][j] += av * b[j];
    }
    a += kMr;
    b += ldb;
  }
  StoreTileScalar(R, cols, &acc[0][0], kNr, c, ldc, p);
}

void ScalarKernel(int rows, int cols, int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                  int64_t ldc, const StoreParams& p) {
  switch (rows) {
    case 1: return ScalarTile<1>(cols, kc, a, b, ldb, c, ldc, p);
    case 2: return ScalarTile<2>(cols, kc, a, b, ldb, c, ldc, p);
    case 3: return ScalarTile<3>(cols, kc, a, b, ldb, c, ldc, p);
    case 4: return ScalarTile<4>(cols, kc, a, b, ldb, c, ldc, p);
    case 5: return ScalarTile<5>(cols, kc, a, b, ldb, c, ldc, p);
    default: return ScalarTile<6>(cols, kc, a, b, ldb, c, ldc, p);
  }
}

}  // namespace edgepress::runtime::gemm_internal
