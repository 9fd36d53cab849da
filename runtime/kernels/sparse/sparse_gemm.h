// Sparse-weight x dense-activation products for MatMul/Gemm with a constant, pruned
// weight: C[M, N] = alpha * A[M, K] * W[K, N] (+ bias per column, clamp).
//
// Two packed weight forms, built once when a session is created:
//   CsrWeight  unstructured sparsity: for every output column n, the k's where
//              W[k][n] != 0 and their values (CSR of W^T).
//   NMWeight   N:M along K (2:4, 4:8; pruned by prune-nm along the reduction axis): for
//              every group of m consecutive k's and every column, n slots of
//              (value, index in the group), in blocks of 16 columns so a SIMD lane is one
//              column and a block's groups are contiguous (streamed along K).
//
// Kernels per ISA (one file each: _ref always, _avx2, _avx512), named like the dense ones:
//   f32_spmm_csr__ref / __avx2 / __avx512     gather form for M <= lanes / 4 (x[idx] gathered per
//                                              non-zero), transposed-A form otherwise (A^T
//                                              packed in blocks of 8/16 rows, one FMA of a
//                                              whole row block per non-zero)
//   f32_spmm_nm__ref / __avx2 / __avx512       A's m values of a group broadcast into a
//                                              register and permuted by the slot indices
//   q8_spmm_csr__ref / __avx512vnni            int8 weights with the zero point
//                                              subtracted; exact int32 accumulators
// The driver splits columns over the thread pool. Whether a sparse kernel is used at all
// is decided by measurement (sparse_select.h), never by sparsity alone.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime::sparse {

struct CsrWeight {
  int64_t k = 0, n = 0;
  std::vector<int32_t> col_ptr;  // n + 1 offsets into k_idx / values
  std::vector<int32_t> k_idx;
  std::vector<float> values;
  int64_t nnz() const { return static_cast<int64_t>(values.size()); }
};
// W is op(B): W[k][j] = trans ? b[j * ldb + k] : b[k * ldb + j].
CsrWeight PackCsr(const float* b, int64_t ldb, bool trans, int64_t k, int64_t n);

struct NMWeight {
  int64_t k = 0, n = 0;
  int nn = 0, m = 0;          // nn slots per group of m (2:4 -> nn 2, m 4)
  int64_t groups = 0;         // k / m
  int64_t n_padded = 0;       // n rounded up to 16 (padding columns hold zeros)
  std::vector<float> values;  // [n_padded / 16][groups][nn][16]
  std::vector<uint8_t> idx;   // same layout, each < m
  // Offset of (column block of column j, group g, slot s, lane 0).
  size_t At(int64_t j, int64_t g, int s) const {
    return static_cast<size_t>(((j / 16) * groups + g) * nn + s) * 16;
  }
};
// The tightest N:M pattern (m 4 with n <= 2, else m 8 with n <= 4) that every group of m
// consecutive k's of every column satisfies; false when none does or K % m != 0.
bool PackNM(const float* b, int64_t ldb, bool trans, int64_t k, int64_t n, NMWeight* out);

// The epilogue the sparse kernels apply: y = alpha * acc (+ bias[col]), clamped.
struct SparseOut {
  float* c = nullptr;
  int64_t ldc = 0;
  float alpha = 1.f;
  const float* col_bias = nullptr;
  bool clamp = false;
  float lo = 0, hi = 0;
  float Apply(float acc, int64_t col) const {
    float v = alpha * acc;
    if (col_bias) v += col_bias[col];
    if (clamp) v = v < lo ? lo : (v > hi ? hi : v);
    return v;
  }
};

// Per-ISA kernels over output columns [n0, n1). `at` is A^T packed by PackATransposed for
// the same ISA (nullptr selects the gather form, for small M).
using CsrFn = void (*)(int64_t m, const float* a, int64_t lda, const float* at,
                       const CsrWeight& w, int64_t n0, int64_t n1, const SparseOut& o);
// n0/n1 are multiples of 16 (or n1 == n).
using NMFn = void (*)(int64_t m, const float* a, int64_t lda, const NMWeight& w, int64_t n0,
                      int64_t n1, const SparseOut& o);

// int8: acc[i][j] = sum_k (A[i][k] - za) * (B[k][j] - zb[j]) over the non-zeros of B - zb.
struct QCsrWeight {
  int64_t k = 0, n = 0;
  std::vector<int32_t> col_ptr;
  std::vector<int32_t> k_idx;
  std::vector<int32_t> values;  // B - zb, in [-255, 255]; high 16 bits zero (see qspmm)
  int64_t nnz() const { return static_cast<int64_t>(values.size()); }
};
// B is int8 or uint8 (`is_signed`), K x N row-major (or N x K when trans), zero points one
// or per column.
QCsrWeight PackQCsr(const void* b, bool is_signed, int64_t ldb, bool trans, int64_t k, int64_t n,
                    const int32_t* zb, bool per_col_zb);
// `a_rows` is A - za widened to int32, M x K row-major; writes acc (M x N, ld n) rows for
// columns [n0, n1).
using QCsrFn = void (*)(int64_t m, const int32_t* a_rows, int64_t k, const QCsrWeight& w,
                        int64_t n0, int64_t n1, int32_t* acc, int64_t ld_acc);

struct SparseKernels {
  Isa isa;
  int lanes;  // rows per block of the packed A^T
  CsrFn csr;
  NMFn nm;
  QCsrFn qcsr;  // nullptr: no int8 kernel for this ISA
  const char* csr_name;
  const char* nm_name;
  const char* qcsr_name;
};
// The kernels for `isa` (the scalar reference when the build or the CPU lacks it).
const SparseKernels& SparseKernelsFor(Isa isa);
// Whether this build has a dedicated sparse kernel for `isa` and the CPU runs it.
bool SparseIsaAvailable(Isa isa);

// A^T of rows [0, m) in blocks of `lanes` rows: at[blk][k][lanes], rows past m zero.
void PackATransposed(int64_t m, int64_t k, const float* a, int64_t lda, int lanes, float* at);

// Drivers: choose the form, pack A^T when needed (thread-local buffer), split columns
// over `pool` (may be nullptr).
void SpmmCsr(const SparseKernels& ks, int64_t m, const float* a, int64_t lda, const CsrWeight& w,
             const SparseOut& o, ThreadPool* pool);
void SpmmNM(const SparseKernels& ks, int64_t m, const float* a, int64_t lda, const NMWeight& w,
            const SparseOut& o, ThreadPool* pool);
void QSpmmCsr(const SparseKernels& ks, int64_t m, const int32_t* a_rows, int64_t k,
              const QCsrWeight& w, int32_t* acc, int64_t ld_acc, ThreadPool* pool);

// Scalar kernels (the reference every ISA variant is tested against); declared for the
// per-ISA files' tails.
void CsrRef(int64_t m, const float* a, int64_t lda, const float* at, const CsrWeight& w,
            int64_t n0, int64_t n1, const SparseOut& o);
void NMRef(int64_t m, const float* a, int64_t lda, const NMWeight& w, int64_t n0, int64_t n1,
           const SparseOut& o);
void QCsrRef(int64_t m, const int32_t* a_rows, int64_t k, const QCsrWeight& w, int64_t n0,
             int64_t n1, int32_t* acc, int64_t ld_acc);
#if defined(__x86_64__)
void CsrAvx2(int64_t m, const float* a, int64_t lda, const float* at, const CsrWeight& w,
             int64_t n0, int64_t n1, const SparseOut& o);
void NMAvx2(int64_t m, const float* a, int64_t lda, const NMWeight& w, int64_t n0, int64_t n1,
            const SparseOut& o);
void CsrAvx512(int64_t m, const float* a, int64_t lda, const float* at, const CsrWeight& w,
               int64_t n0, int64_t n1, const SparseOut& o);
void NMAvx512(int64_t m, const float* a, int64_t lda, const NMWeight& w, int64_t n0, int64_t n1,
              const SparseOut& o);
void QCsrAvx512Vnni(int64_t m, const int32_t* a_rows, int64_t k, const QCsrWeight& w, int64_t n0,
                    int64_t n1, int32_t* acc, int64_t ld_acc);
#endif

}  // namespace edgepress::runtime::sparse
