// Internal to the SGEMM family: the tile interface every micro-kernel implements (one file
// per ISA: gemm_scalar.cc, gemm_avx2.cc, gemm_avx512.cc) and the scalar store shared by
// their edge tiles. The driver (gemm.cc) owns the table that maps an Isa to a micro-kernel.
#pragma once

#include <algorithm>
#include <cstdint>

namespace edgepress::runtime::gemm_internal {

struct StoreParams {
  float alpha = 1;
  float beta = 0;          // 0: C is not read
  const float* row_bias = nullptr;  // bias of the tile's first row, or nullptr
  const float* col_bias = nullptr;  // bias of the tile's first column, or nullptr
  bool clamp = false;
  float lo = 0, hi = 0;
  // Lines (64 bytes each, from `prefetch` on) a kernel that supports it fetches into L2
  // one per K step while it computes: the next B panel, spread so that the misses never
  // pile up in the fill buffers (AVX-512 tile; the driver prefetches for the others).
  const char* prefetch = nullptr;
  int64_t prefetch_lines = 0;
};

// Tile of `rows` x `cols` (cols <= 16 or 32) from accumulators laid out [rows][ld_acc].
inline void StoreTileScalar(int rows, int cols, const float* acc, int ld_acc, float* c,
                            int64_t ldc, const StoreParams& p) {
  for (int r = 0; r < rows; ++r) {
    float* cr = c + r * ldc;
    for (int j = 0; j < cols; ++j) {
      float v = p.alpha * acc[r * ld_acc + j];
      if (p.beta != 0) v += p.beta * cr[j];
      if (p.row_bias) v += p.row_bias[r];
      if (p.col_bias) v += p.col_bias[j];
      if (p.clamp) v = std::min(std::max(v, p.lo), p.hi);
      cr[j] = v;
    }
  }
}

using TileFn = void (*)(int rows, int cols, int64_t kc, const float* a, const float* b,
                        int64_t ldb, float* c, int64_t ldc, const StoreParams& p);

// Micro-kernels: a tile of `rows` (<= mr) x `cols` (<= nr) over a K block of a packed A
// panel and a B panel whose K rows of nr floats are `ldb` floats apart: nr for a packed
// panel, the leading dimension for raw row-major B read in place (all nr columns valid).
void ScalarKernel(int rows, int cols, int64_t kc, const float* a, const float* b,
                  int64_t ldb, float* c, int64_t ldc, const StoreParams& p);  // 6 x 16
#if defined(__x86_64__)
void Avx2Kernel(int rows, int cols, int64_t kc, const float* a, const float* b,
                int64_t ldb, float* c, int64_t ldc, const StoreParams& p);  // 6 x 16, AVX2 + FMA
void Avx512Kernel(int rows, int cols, int64_t kc, const float* a, const float* b,
                  int64_t ldb, float* c, int64_t ldc, const StoreParams& p);  // 12 x 32, AVX-512F
#endif

// The same tile with A read in place from row-major memory: row r of the tile at
// a + r * lda, K contiguous. Packing A cost as much as the GEMM itself where K is short or
// N narrow (attention's Q.K^T with K = 32 and P.V with N = 32), as MLAS's unpacked-A SGEMM
// shows. Null where an ISA has none.
using TileRawAFn = void (*)(int rows, int cols, int64_t kc, const float* a, int64_t lda,
                            const float* b, int64_t ldb, float* c, int64_t ldc,
                            const StoreParams& p);
#if defined(__x86_64__)
void Avx512KernelRawA(int rows, int cols, int64_t kc, const float* a, int64_t lda,
                      const float* b, int64_t ldb, float* c, int64_t ldc,
                      const StoreParams& p);  // 12 x 32, AVX-512F
#endif

// GEMV micro-kernels for M <= 4 (one file per ISA: gemv_scalar.cc, gemv_avx2.cc,
// gemv_avx512.cc). acc[r][j] = sum_k a[r * lda + k] * b[k * ldb + j] for r < rows (1..4),
// j < cols (<= nr of the ISA's GEMM: 16 or 32); acc has room for 4 x nr floats, entries past
// `cols` are unspecified. b is either one packed B panel (ldb = nr, read once front to back)
// or raw row-major B (ldb = its leading dimension; no float past `cols` of a row is read).
// No packing of A or B: at M <= 4 a GEMM is bound by streaming B once from memory, and the
// 6-row micro-kernel wasted 2/3 to 5/6 of its FMAs on padding rows.
using GemvFn = void (*)(int rows, int cols, int64_t k, const float* a, int64_t lda,
                        const float* b, int64_t ldb, float* acc);
void GemvScalar(int rows, int cols, int64_t k, const float* a, int64_t lda, const float* b,
                int64_t ldb, float* acc);  // nr 16
#if defined(__x86_64__)
void GemvAvx2(int rows, int cols, int64_t k, const float* a, int64_t lda, const float* b,
              int64_t ldb, float* acc);  // nr 16, AVX2 + FMA
void GemvAvx512(int rows, int cols, int64_t k, const float* a, int64_t lda, const float* b,
                int64_t ldb, float* acc);  // nr 32, AVX-512F
#endif

}  // namespace edgepress::runtime::gemm_internal
