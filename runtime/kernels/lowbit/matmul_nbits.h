// The 4-bit weight-only matrix product behind com.microsoft MatMulNBits, exposed for the
// operator kernel (matmul_nbits.cc), its tests and bench/int4_gemv_bench.cc.
//
// Weights stay in the operator's own layout, 4 bits per weight (the point of the format is
// memory bandwidth): B[n][block][byte], byte j of a block holding elements 2j (low nibble)
// and 2j+1 (high nibble) of that block along K. Each block has a scale s and a zero
// point z; the weight is w = (q - z) * s.
//
// Q4MatMul computes Y[M, N] = A[M, K] x W^T (+ bias):
//   kScalar  the reference: dequantizes each weight and accumulates in float.
//   kAvx2    per block, dot(a, q) with the nibbles expanded in registers (a broadcast
//            32-bit load, a variable shift and a mask give 8 nibbles in order), then
//            y += s * dot - (s * z) * sum(a over the block). Below kQ4GemmMinRows rows the
//            packed weights are streamed once per chunk of 64 columns (which stays in L2
//            while all rows use it), each expanded vector feeding up to 4 rows; from
//            kQ4GemmMinRows rows on, chunks of columns are dequantized straight into the
//            GEMM's packed-B panels (8x8 register transposes) and multiplied by Sgemm.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

// From this many rows of A on, the AVX2 path dequantizes and uses Sgemm.
constexpr int64_t kQ4GemmMinRows = 8;

// Per-block quantization parameters in float, row n of W at [n * k_blocks, ...).
struct Q4Params {
  std::vector<float> scales;
  std::vector<float> zero_points;
  std::vector<float> scaled_zero_points;  // scales[i] * zero_points[i]
};

struct Q4Weights {
  int64_t n = 0, k = 0, block_size = 0, k_blocks = 0;
  const uint8_t* packed = nullptr;  // [n][k_blocks][block_size / 2]
  const Q4Params* params = nullptr;
};

// Builds Q4Params from the operator's inputs. `zero_points_u8` (packed, two per byte, low
// nibble first, each row of W padded to whole bytes) or `zero_points_f32` ([n][k_blocks])
// may both be null: the zero point is then 8.
Q4Params MakeQ4Params(int64_t n, int64_t k_blocks, const float* scales,
                      const uint8_t* zero_points_u8, const float* zero_points_f32);

// Y[m][n] = sum_k A[m][k] * w[n][k] (+ bias[n] when bias is non-null). `isa` is kScalar or
// kAvx2 (the caller checks the CPU). `pool` may be null.
void Q4MatMul(Isa isa, const float* a, int64_t m, const Q4Weights& w, const float* bias,
              float* y, ThreadPool* pool);

// MatMulNBits accuracy_level 4 ("A may be quantized to int8") as a GEMV on B's own layout:
// rows of A quantized per block to int8, integer dot products with vpmaddubsw (exact for
// 4-bit codes), fp32 per block. Runs (and returns true) for kAvx2, M = 1 and block_size a
// multiple of 32 up to 256; otherwise returns false. The operator uses it at M = 1 on CPUs
// without VNNI and the packed int8 GEMM of nbits_int8.h everywhere else. The error against
// Q4MatMul is bounded by sum over blocks of (max|a| / 254) * sum |w| over the block.
bool Q4MatMulInt8(Isa isa, const float* a, int64_t m, const Q4Weights& w, const float* bias,
                  float* y, ThreadPool* pool);

}  // namespace edgepress::runtime
