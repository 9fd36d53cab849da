// Weight-only quantization of one matrix, the math behind `quantize-weights`.
//
// A weight is seen as W[K][N] (K = input channels, reduced by the matmul; N = output
// channels), the layout of MatMul's B. Each output column n is cut into blocks of
// `group` consecutive rows along K (the whole column for int8 per-channel), each block with
// its own scale and zero point:
//   int8:  codes in [-127, 127] (symmetric, zero point 0) or [-128, 127] (asymmetric);
//          params from the block's min/max (quant::ChooseQParams).
//   int4:  unsigned codes in [0, 15], dequantized as (code - zero_point) * scale, the
//          MatMulNBits convention. Symmetric blocks use zero point 8 and
//          scale = m / -8 where m is the block's value of largest magnitude (so m maps to
//          code 0 exactly and the scale may be negative), as onnxruntime's own quantizer
//          does; asymmetric blocks use scale = (max - min) / 15 over a range that includes 0.
//
// RTN rounds each value to its nearest code. GPTQ (Frantar et al., 2022) quantizes the
// rows of W (input channels) in order and spreads each row's rounding error over the rows
// not yet quantized, weighted by the inverse Hessian H = XᵀX of the layer input, which
// minimises ||X·W - X·Q||² greedily; block params are chosen when the first row of a block
// is reached, from the already-updated weights. AWQ (Lin et al., 2023) searches a per input
// channel scale s = mean|x|^α that protects the channels with large activations:
// W' = diag(s)·W is quantized and the input is divided by s.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/tensor.h"
#include "passes/quant/quant_util.h"

namespace edgepress::passes::wq {

struct Scheme {
  int bits = 8;           // 8 or 4
  int64_t group = 0;      // rows per block along K; 0 = the whole column (per-channel)
  bool symmetric = true;
};

struct QuantizedMatrix {
  int64_t K = 0, N = 0;
  int64_t group = 0;                 // rows per block (== K for per-channel)
  int bits = 8;
  bool symmetric = true;
  std::vector<int32_t> codes;        // [K][N]
  std::vector<float> scales;         // [N][blocks]
  std::vector<int32_t> zero_points;  // [N][blocks]
  int64_t blocks() const { return (K + group - 1) / group; }
  // The float matrix [K][N] the codes stand for.
  std::vector<float> Dequantize() const;
};

// Round-to-nearest quantization of w[K][N] (row-major).
QuantizedMatrix QuantizeRtn(const float* w, int64_t K, int64_t N, const Scheme& s);

// GPTQ. `h` is the K×K (row-major) second moment of the layer input, Σ x·xᵀ over the
// calibration rows (any positive multiple of it gives the same result). `damp` is the
// share of the mean diagonal added to the diagonal; when the damped matrix is still not
// positive definite the damping grows tenfold up to four times, and when that fails RTN
// is used and `*fell_back` is set.
QuantizedMatrix QuantizeGptq(const float* w, int64_t K, int64_t N, const Scheme& s,
                             std::vector<double> h, double damp = 0.01,
                             bool* fell_back = nullptr);

// U (upper triangular, row-major n×n) with (H + d·I)⁻¹ = Uᵀ·U, the factor GPTQ and
// SparseGPT read their updates from (row i of U, scaled by 1/U[i][i], spreads row i's error
// over the later rows). d = damp · mean diag(H); zero diagonal entries (dead inputs) are set
// to 1 first. When the damped matrix is not positive definite (Eigen's LLT fails) the
// damping grows tenfold, up to four times; false when that still fails.
bool DampedInverseCholesky(std::vector<double> h, int64_t n, double damp,
                           std::vector<double>* u);

// ||X·(W - D)||² / ||X·W||² summed over the rows of x[rows][K], for D = dequantized q.
// (The normalised output error used by the tests and by the AWQ search.)
double OutputError(const float* w, const std::vector<float>& dq, int64_t K, int64_t N,
                   const float* x, int64_t rows);

struct AwqChoice {
  std::vector<float> s;  // per input channel; the input is divided by it
  double alpha = 0;      // chosen exponent (0 = plain RTN)
  double error = 0;      // output error (OutputError) of the choice
  double rtn_error = 0;  // output error of plain RTN (alpha = 0)
};
// Tries α = 0, 1/grid, ..., 1 with s = mean_abs_x^α (normalised to geometric mean 1 over
// its extremes, clamped away from 0) and keeps the α whose quantized diag(s)·W, with the
// input divided by s, has the least output error on the rows x[rows][K]. α = 0 is
// plain RTN, so the choice is never worse than RTN on these rows.
AwqChoice SearchAwq(const float* w, int64_t K, int64_t N, const Scheme& s,
                    const std::vector<double>& mean_abs_x, const float* x, int64_t rows,
                    int grid = 20);

// com.microsoft MatMulNBits initializers for a 4-bit matrix: B uint8 [N, blocks,
// group/2] (codes along K, low nibble first, a partial last block padded with the zero
// point), scales float [N*blocks], zero points uint8 [N*ceil(blocks/2)] (low nibble first,
// each column padded to whole bytes, as onnxruntime's kernels read them), left empty for
// symmetric matrices (MatMulNBits's default zero point is 8).
struct NBitsTensors {
  ir::Tensor b, scales, zero_points;
};
NBitsTensors PackMatMulNBits(const QuantizedMatrix& q);
// The float [K][N] that MatMulNBits computes with; `zero_points` may be nullptr. Throws
// Error(kInvalidInput) when the tensor sizes do not match K, N and the block size.
std::vector<float> UnpackMatMulNBits(const ir::Tensor& b, const ir::Tensor& scales,
                                     const ir::Tensor* zero_points, int64_t K, int64_t N,
                                     int64_t block_size);

// An 8-bit per-channel matrix as DequantizeLinear inputs: int8 data [K, N] with axis 1, or
// with `transposed` data [N, K] with axis 0 (Gemm transB=1).
quant::QuantizedTensor ToPerChannelInt8(const QuantizedMatrix& q, bool transposed);

}  // namespace edgepress::passes::wq
