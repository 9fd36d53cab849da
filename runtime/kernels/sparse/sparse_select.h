// The rule that decides when MatMul/Gemm run a sparse kernel (docs/sparse.md): only for a
// constant fp32 weight with at least half of its entries zero (read from the data, not
// from annotations), and only at the row counts M where the sparse kernel measured
// faster than the dense GEMM on this CPU. At session creation both are timed on the
// layer's shape — at the model's static M when the input shape fixes it, else at probes
// M = 1, 4, 16, 64 — and a sparse form must beat dense by 10% to be kept, so noise never
// makes a layer slower. A run at another M uses the nearest probe's choice.
//
// EDGEPRESS_SPARSE=off disables the sparse path, =on skips the timing and uses the best
// sparse form at every M (tests, benchmarks); EDGEPRESS_SPARSE_LOG=1 prints each decision
// to stderr. EDGEPRESS_FORCE_SCALAR=1 keeps the dense reference kernels.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/qgemm/qgemm.h"
#include "runtime/kernels/sparse/sparse_gemm.h"

namespace edgepress::runtime::sparse {

// Fraction of entries of a K x N float weight that are exactly zero.
double ZeroFraction(const float* b, int64_t ldb, bool trans, int64_t k, int64_t n);

class SparseMatMul {
 public:
  // nullptr when the sparse path does not apply (dense weight, scalar ISA, disabled, or
  // no M where it measured faster). `dense` is the weight packed for the dense GEMM of
  // `isa` (timed against); `static_m` is M when the model fixes it.
  static std::unique_ptr<SparseMatMul> Create(Isa isa, const float* b, int64_t ldb, bool trans,
                                              int64_t k, int64_t n, const PackedMatrix& dense,
                                              std::optional<int64_t> static_m,
                                              const std::string& node_desc);

  // Runs C = alpha * A W (+ epilogue) sparse and returns true when the choice for M is a
  // sparse kernel and the epilogue is one the sparse kernels apply (none, per-column
  // bias, clamp); false means the caller runs the dense GEMM.
  bool Run(int64_t m, const float* a, int64_t lda, float* c, int64_t ldc, float alpha,
           const GemmEpilogue* ep, ThreadPool* pool) const;

  // "f32_spmm_csr__avx512 at M<=2, dense at M>=3 (90.0% zeros)".
  std::string Describe() const;

 private:
  enum class Form : uint8_t { kDense, kCsr, kNM };
  SparseMatMul() = default;
  Form FormFor(int64_t m) const;

  const SparseKernels* ks_ = nullptr;
  double zeros_ = 0;
  std::unique_ptr<CsrWeight> csr_;
  std::unique_ptr<NMWeight> nm_;
  std::vector<int64_t> probes_;
  std::vector<Form> choice_;  // per probe
};

// The same rule for the integer MatMuls (MatMulInteger, QLinearMatMul, QGemm,
// DynamicQuantizeMatMul share one kernel): a constant int8/uint8 B whose entries equal
// their zero point at least half the time; the sparse kernel produces the int32
// accumulators and the caller's epilogue (QStoreRow) finishes them.
class QSparseMatMul {
 public:
  // `b` is the constant B (K x N, or N x K when trans), `zb` its zero points; `dense` the
  // B packed for QGemm with `isa`.
  static std::unique_ptr<QSparseMatMul> Create(Isa isa, const QSource& b, int64_t k, int64_t n,
                                               const QPacked& dense,
                                               std::optional<int64_t> static_m,
                                               const std::string& node_desc);
  // Accumulators of op(A) B for `m` rows of A (uint8/int8, row-major, lda = k, zero points
  // one or per row) into acc (m x n), when the choice for m is sparse; false otherwise.
  bool Accumulate(int64_t m, const QSource& a, int32_t* acc, ThreadPool* pool) const;
  std::string Describe() const;

 private:
  QSparseMatMul() = default;
  const SparseKernels* ks_ = nullptr;
  double zeros_ = 0;
  QCsrWeight csr_;
  std::vector<int64_t> probes_;
  std::vector<bool> sparse_;  // per probe
};

}  // namespace edgepress::runtime::sparse
