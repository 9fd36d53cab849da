// The ternary weight matrix product behind edgepress::TernaryMatMul (docs/ops.md), exposed
// for the operator kernel (ternary_matmul.cc), its tests and bench/ternary_gemv_bench.cc.
//
// Weights are ir::DType::kTernary codes, 2 bits each, 4 per byte, element i of a byte in
// bits 2i..2i+1 (0b00 = 0, 0b01 = +1, 0b11 = -1; 0b10 is read as 0: bit 0 says "non-zero",
// bit 1 says "negative"). Row n of W (output channel n) holds kp codes, kp = K rounded up to
// a multiple of 16 (codes past K are 0), so every row starts on a 4-byte boundary and one
// 32-bit load yields 16 codes. Each row has one float scale: w[n][k] = scales[n] * t[n][k].
//
// TernaryMatMul computes Y[M, N] = A[M, K] x W^T (+ bias) as
//   y[m][n] = scales[n] * sum_k a[m][k] * t[n][k] + bias[n]
// without multiplying by weights:
//   kScalar  the reference: decodes each code and adds or subtracts a[k] in order.
//   kAvx2    8 codes per step: a broadcast 16-bit word shifted per lane gives each lane's
//            code; a[k] is masked by bit 0 and its sign flipped by bit 1 (and, xor, add).
//   kAvx512  16 codes per step: pext of the 32-bit word splits it into a "non-zero" and a
//            "negative" 16-bit mask, and masked adds/subtracts accumulate a[k].
// Below kTernaryGemmMinRows rows of A, a tile of columns x up to 4 rows shares each decoded
// word (the GEMV: weights are read once, from memory 16x smaller than fp32). From that many
// rows on, the kernel is compute bound: chunks of columns are dequantized (scale folded in)
// straight into the fp32 GEMM's packed-B panels and multiplied by SgemmEx.
#pragma once

#include <cstdint>

#include "ir/tensor.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

// From this many rows of A on, the SIMD entries dequantize panels and call the fp32 GEMM.
constexpr int64_t kTernaryGemmMinRows = 16;

// Codes per row rounded up to this many (one 32-bit word).
constexpr int64_t kTernaryRowAlign = 16;
inline int64_t TernaryPaddedK(int64_t k) {
  return (k + kTernaryRowAlign - 1) / kTernaryRowAlign * kTernaryRowAlign;
}

struct TernaryWeights {
  int64_t n = 0, k = 0, kp = 0;     // kp = TernaryPaddedK(k)
  const uint8_t* codes = nullptr;   // [n][kp / 4] bytes
  const float* scales = nullptr;    // [n]
};

// The packed [n, TernaryPaddedK(k)] kTernary tensor of `t` (row-major [n][k], each value
// -1, 0 or +1; anything else is an internal error).
ir::Tensor PackTernary(const int8_t* t, int64_t n, int64_t k);

// Y[m][n] as above; `isa` is kScalar, kAvx2 or kAvx512 (the caller checks the CPU).
// `pool` may be null. y rows are n floats apart.
void TernaryMatMul(Isa isa, const float* a, int64_t m, const TernaryWeights& w,
                   const float* bias, float* y, ThreadPool* pool);

// The code of element k of row n (0, +1 or -1).
inline int TernaryAt(const TernaryWeights& w, int64_t n, int64_t k) {
  const uint8_t byte = w.codes[n * (w.kp / 4) + k / 4];
  const int c = (byte >> (2 * (k % 4))) & 3;
  return (c & 1) ? ((c & 2) ? -1 : 1) : 0;
}

namespace ternary_detail {
// The GEMV tiles per ISA (ternary_gemv_avx2.cc, ternary_gemv_avx512.cc): y[r][c] for rows
// [0, m) of `a` (m <= 4, rows k floats apart) and columns [c0, c1), y rows `ldy` apart.
void GemvAvx2(const float* a, int64_t m, const TernaryWeights& w, int64_t c0, int64_t c1,
              const float* bias, float* y, int64_t ldy);
void GemvAvx512(const float* a, int64_t m, const TernaryWeights& w, int64_t c0, int64_t c1,
                const float* bias, float* y, int64_t ldy);
}  // namespace ternary_detail

}  // namespace edgepress::runtime
