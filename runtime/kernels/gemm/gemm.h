// Single-precision GEMM for the native runtime: C = alpha * op(A) * op(B) + beta * C,
// row-major, followed by an optional fused epilogue (bias per row or per column, then a
// clamp that covers Relu and Clip). MatMul, Gemm, Conv, ConvTranspose, LSTM/GRU and the
// quantization work all call it.
//
// The driver packs op(A) into panels of `mr` rows and op(B) into panels of `nr` columns
// (zero-padded at the edges), blocks K so that one B panel stays in L1 and one A block in
// L2, and runs a register-tiled micro-kernel per mr x nr tile (Goto/BLIS structure, as in
// MLAS and XNNPACK). Micro-kernels: "f32_gemm__avx2_6x16" (AVX2+FMA), "f32_gemm__avx512_12x32"
// (AVX-512F, used only where the CPU has it) and "f32_gemm__scalar_6x16" (portable C++).
// The AVX-512 tile also reads a raw non-transposed A in place, unpacked (as MLAS does).
// Constant operands (weights) can be packed once with PackA/PackB and reused.
// M <= 4 (decoder steps, batch-1 Linear layers) takes a GEMV path instead: no packing, one
// pass over B (packed panels or raw row-major) in column blocks split across the pool, with
// M rows x nr columns accumulated per block (gemv_*.cc).
// Denormal operands are flushed to zero while the kernels run (MXCSR restored after).
// SgemmReference is the naive triple loop the tests compare against.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

// Applied after alpha/beta, in this order: bias add, then clamp to [lo, hi].
struct GemmEpilogue {
  enum class Bias : uint8_t { kNone, kPerRow, kPerCol };
  Bias bias_kind = Bias::kNone;
  const float* bias = nullptr;  // M floats (kPerRow) or N floats (kPerCol)
  bool clamp = false;           // Relu: lo = 0, hi = +inf; Clip: min/max
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();
};

// The ISA the GEMM uses by default: the best the CPU has among kAvx512, kAvx2 and kScalar,
// or kScalar under EDGEPRESS_FORCE_SCALAR=1.
Isa BestGemmIsa();
// Tile of the micro-kernel for an ISA (kScalar for an ISA without one).
int GemmMr(Isa isa);
int GemmNr(Isa isa);
// "f32_gemm__avx2_6x16" etc.
const char* GemmKernelName(Isa isa);

// op(A) (M x K) packed for one ISA's micro-kernel: panel p holds rows [p*mr, p*mr+mr) as
// K groups of mr floats (rows past M are zero). Likewise op(B) (K x N) packed into panels
// of nr columns: panel q holds K groups of nr floats.
struct PackedMatrix {
  Isa isa = Isa::kScalar;
  bool is_a = true;
  int64_t rows_or_cols = 0;  // M for A, N for B
  int64_t k = 0;
  std::vector<float> data;
};
PackedMatrix PackA(Isa isa, bool trans_a, int64_t m, int64_t k, const float* a, int64_t lda);
PackedMatrix PackB(Isa isa, bool trans_b, int64_t k, int64_t n, const float* b, int64_t ldb);
// Floats a packed B of k x n takes for `isa` (ceil(n / nr) * nr * k).
int64_t PackedBSize(Isa isa, int64_t k, int64_t n);

// One GEMM operand: either raw row-major memory (with leading dimension and transpose
// flag) or a matrix packed beforehand for the same ISA as the call.
struct GemmOperand {
  const float* data = nullptr;
  int64_t ld = 0;
  bool trans = false;
  const PackedMatrix* packed = nullptr;
  // Alternatively, caller-owned memory already in the packed layout of `view_isa` (e.g.
  // Conv's im2col writes its columns straight into B panels), for `view_k` x `view_dim`.
  const float* view = nullptr;
  Isa view_isa = Isa::kScalar;
  int64_t view_dim = 0, view_k = 0;
  static GemmOperand Raw(const float* data, int64_t ld, bool trans = false) {
    GemmOperand o;
    o.data = data;
    o.ld = ld;
    o.trans = trans;
    return o;
  }
  static GemmOperand Packed(const PackedMatrix& p) {
    GemmOperand o;
    o.packed = &p;
    return o;
  }
  static GemmOperand PackedView(const float* data, Isa isa, int64_t dim, int64_t k) {
    GemmOperand o;
    o.view = data;
    o.view_isa = isa;
    o.view_dim = dim;
    o.view_k = k;
    return o;
  }
};

// The general entry point. `pool` may be nullptr (single-threaded). With beta == 0, C is
// not read (it may hold NaN). Sizes must be non-negative and the pointers valid for them;
// callers validate user input before calling (this function does not throw on valid
// sizes, and throws Error(kInternal) on a packed operand of the wrong ISA or shape).
void SgemmEx(Isa isa, int64_t m, int64_t n, int64_t k, float alpha, const GemmOperand& a,
             const GemmOperand& b, float beta, float* c, int64_t ldc, ThreadPool* pool,
             const GemmEpilogue* epilogue = nullptr);

// BLAS-style convenience: row-major, op(A) is M x K, op(B) is K x N, best ISA.
void Sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc, ThreadPool* pool = nullptr, const GemmEpilogue* epilogue = nullptr);

// Naive triple loop with the same semantics (accumulates in double): the test oracle.
void SgemmReference(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                    float* c, int64_t ldc, const GemmEpilogue* epilogue = nullptr);

}  // namespace edgepress::runtime
