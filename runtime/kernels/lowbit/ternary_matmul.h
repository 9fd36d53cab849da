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
//   y[m][n] = scales[n] * sum_k a[m][k] * t[n][k] + bias[n]:
//   kScalar  the reference: decodes each code and adds or subtracts a[k] in order.
//   kAvx2    8 codes (2 bytes) per step, each byte looked up in a table of +1/0/-1 floats.
//   kAvx512  16 codes per step: pext splits the 32-bit word into "non-zero" and "negative"
//            16-bit masks; masked moves make the +1/0/-1 vector (one row: a masked xor
//            and a masked add of a[k] instead).
// A tile of columns x rows shares each decoded step; every row does one FMA with it
// (multiplying by +1/0/-1 is exact, so this is the float arithmetic of adding and
// subtracting). Weights are read from memory 16x smaller than fp32, which wins where the
// fp32 product is bandwidth bound (M up to ~8); from M ~16 on the fp32 GEMM's register
// tiling is faster (bench/ternary_gemv_bench.cc, docs/weight_quantization.md). A path that
// dequantized panels of columns into the fp32 GEMM was 3-9x slower at M 16-64 and was
// removed.
#pragma once

#include <cstdint>

#include "ir/tensor.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

// Codes per row rounded up to this many (one 32-bit word).
constexpr int64_t kTernaryRowAlign = 16;
inline int64_t TernaryPaddedK(int64_t k) {
  return (k + kTernaryRowAlign - 1) / kTernaryRowAlign * kTernaryRowAlign;
}

struct TernaryWeights {
  int64_t n = 0, k = 0, kp = 0;    // kp = TernaryPaddedK(k)
  const uint8_t* codes = nullptr;  // [n][kp / 4] bytes
  const float* scales = nullptr;   // [n]
};

// The packed [n, TernaryPaddedK(k)] kTernary tensor of `t` (row-major [n][k], each value
// -1, 0 or +1; anything else is an internal error).
ir::Tensor PackTernary(const int8_t* t, int64_t n, int64_t k);

// Y[m][n] as above; `isa` is kScalar, kAvx2 or kAvx512 (the caller checks the CPU).
// `pool` may be null. y rows are n floats apart.
void TernaryMatMul(Isa isa, const float* a, int64_t m, const TernaryWeights& w, const float* bias,
                   float* y, ThreadPool* pool);

// The code of element k of row n (0, +1 or -1).
inline int TernaryAt(const TernaryWeights& w, int64_t n, int64_t k) {
  const uint8_t byte = w.codes[n * (w.kp / 4) + k / 4];
  const int c = (byte >> (2 * (k % 4))) & 3;
  return (c & 1) ? ((c & 2) ? -1 : 1) : 0;
}

namespace ternary_detail {
// Rows of A per tile (8 rows x 2 columns on AVX-512 measured 1.3-2x slower on 768-wide
// shapes than 4 x 4).
constexpr int64_t kAvx2Rows = 4, kAvx512Rows = 4;
// The tiles per ISA (ternary_gemv_avx2.cc, ternary_gemv_avx512.cc): y[r][c] for rows
// [0, m) of `a` (m <= the ISA's rows, rows k floats apart) and columns [c0, c1), y rows
// `ldy` apart.
void GemvAvx2(const float* a, int64_t m, const TernaryWeights& w, int64_t c0, int64_t c1,
              const float* bias, float* y, int64_t ldy);
void GemvAvx512(const float* a, int64_t m, const TernaryWeights& w, int64_t c0, int64_t c1,
                const float* bias, float* y, int64_t ldy);
}  // namespace ternary_detail

}  // namespace edgepress::runtime
