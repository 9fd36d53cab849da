// MatMulNBits with int8 activations (onnxruntime's accuracy_level 4, "CompInt8"; llama.cpp's
// Q4_0 x Q8_0): each row of A is quantized per block of the weights' block size to int8
// with its own scale, and every block's dot product runs on integers.
//
// Why it is fast: the fp32 path is compute-bound from a few rows on (16 multiply-adds per
// FMA); vpdpbusd does 64 u8 x s8 multiply-adds per instruction. The weights are unpacked
// from nibbles in registers (and, shift, and), never to memory.
//
// Math, per output (row i, column n) and block b of K:
//   dot_b  = sum_k q[n][k] * aq[i][k]           (int32, exact: q in [0,15], aq in [-127,127])
//   y     += (sw[n][b] * sa[i][b]) * dot_b - (sw[n][b] * z[n][b]) * (sa[i][b] * sum_k aq[i][k])
// with both float updates fused multiply-adds. Every kernel (scalar reference, AVX2,
// AVX-VNNI, AVX-512 VNNI) computes exactly these operations in this order, so their outputs
// are bit-identical;
// the tests assert that. Against the fp32 path the error is bounded by
// sum_b max|a over b| / 254 * sum_k |w[n][k]| over b (rounding A to 127 steps).
//
// Weight layout, packed once when the weights are constant (same size as the 4-bit input):
// panels of 16 columns; per panel and block, block_size / 8 steps of 64 bytes; in a step,
// byte 4c + j holds column c's code for k = 8s + j in its low nibble and for k = 8s + 4 + j
// in its high nibble, so `raw & 15` and `(raw >> 4) & 15` are vpdpbusd's B operand for four
// consecutive k of 16 columns. Columns past N and k past K are zero.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/kernels/lowbit/matmul_nbits.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

constexpr int64_t kQ4PanelCols = 16;

struct Q4Int8Packed {
  int64_t n = 0, k = 0, block_size = 0, k_blocks = 0, panels = 0;
  std::vector<uint8_t> codes;               // [panel][block][block_size / 8][64]
  std::vector<float> scales;                // [panel][block][16]
  std::vector<float> scaled_zero_points;    // [panel][block][16]: scale * zero point

  const uint8_t* Codes(int64_t panel, int64_t block) const {
    return codes.data() + (panel * k_blocks + block) * block_size * (kQ4PanelCols / 2);
  }
  const float* Scales(int64_t panel, int64_t block) const {
    return scales.data() + (panel * k_blocks + block) * kQ4PanelCols;
  }
  const float* ScaledZeroPoints(int64_t panel, int64_t block) const {
    return scaled_zero_points.data() + (panel * k_blocks + block) * kQ4PanelCols;
  }
};

// Repacks MatMulNBits weights (B in the operator's layout, block_size a power of two >= 16).
Q4Int8Packed PackQ4Int8(const Q4Weights& w);

// Rows of A quantized per block: aq = round_half_even(a * 127 / max|a|), clamped to +-127.
struct Q8Rows {
  int64_t m = 0, kp = 0, k_blocks = 0, block_size = 0;
  std::vector<int8_t> q;      // [m][kp], kp = k_blocks * block_size, zero past K
  std::vector<float> scale;   // [m][k_blocks]: max|a| / 127
  std::vector<float> sum;     // [m][k_blocks]: scale * sum of q over the block
};

// Rows [r0, r1) of Y (leading dimension n) for the 16-column panels [p0, p1).
using Q4Int8Kernel = void (*)(const Q8Rows& a, int64_t r0, int64_t r1, const Q4Int8Packed& b,
                              int64_t p0, int64_t p1, const float* bias, float* y);

// Quantizes rows [r0, r1) of `a` (rows k apart) into `out`, already sized by the caller.
using Q8QuantizeFn = void (*)(const float* a, int64_t k, int64_t r0, int64_t r1, Q8Rows* out);

namespace nbits_detail {
void Q4Int8GemmRef(const Q8Rows& a, int64_t r0, int64_t r1, const Q4Int8Packed& b, int64_t p0,
                   int64_t p1, const float* bias, float* y);
void QuantizeQ8RowsRef(const float* a, int64_t k, int64_t r0, int64_t r1, Q8Rows* out);
#if defined(__x86_64__)
void Q4Int8GemmAvx2(const Q8Rows& a, int64_t r0, int64_t r1, const Q4Int8Packed& b, int64_t p0,
                    int64_t p1, const float* bias, float* y);
void QuantizeQ8RowsAvx2(const float* a, int64_t k, int64_t r0, int64_t r1, Q8Rows* out);
void Q4Int8GemmAvxVnni(const Q8Rows& a, int64_t r0, int64_t r1, const Q4Int8Packed& b,
                       int64_t p0, int64_t p1, const float* bias, float* y);
void Q4Int8GemmAvx512Vnni(const Q8Rows& a, int64_t r0, int64_t r1, const Q4Int8Packed& b,
                          int64_t p0, int64_t p1, const float* bias, float* y);
#endif
}  // namespace nbits_detail

// A kernel with the row quantizer it runs with.
struct Q4Int8Impl {
  Q4Int8Kernel kernel;
  Q8QuantizeFn quantize;
  const char* name;
};

// The kernel for `isa`: kAvx512Vnni (and kAmx) -> AVX-512 VNNI; kAvx2/kAvx512 -> AVX-VNNI
// where the CPU has it, else AVX2 (vpmaddubsw); anything else -> the scalar reference. The
// caller checks the CPU has `isa`.
Isa Q4Int8KernelIsa(Isa isa);
Q4Int8Impl Q4Int8ImplFor(Isa isa);
inline const char* Q4Int8KernelName(Isa isa) { return Q4Int8ImplFor(isa).name; }

// Y[m, N] = A[m, K] x W^T (+ bias) with A quantized to int8 per block (see above), threaded
// over 48-row x 32-column tasks.
void Q4Int8MatMul(const Q4Int8Impl& impl, const float* a, int64_t m, const Q4Int8Packed& b,
                  const float* bias, float* y, ThreadPool* pool);
inline void Q4Int8MatMul(Isa isa, const float* a, int64_t m, const Q4Int8Packed& b,
                         const float* bias, float* y, ThreadPool* pool) {
  Q4Int8MatMul(Q4Int8ImplFor(isa), a, m, b, bias, y, pool);
}

}  // namespace edgepress::runtime
