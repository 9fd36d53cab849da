// Integer GEMM for the quantized operators (MatMulInteger, QLinearMatMul, ConvInteger,
// QLinearConv, QGemm, DynamicQuantizeMatMul):
//
//   acc[i][j] = sum_k (A[i][k] - za[i]) * (B[k][j] - zb[j])      (exact, int32)
//
// with A and B uint8 or int8 and zero points per row of A / per column of B (or one for
// all), followed by an epilogue that adds an int32 bias per channel and either stores
// int32, or scales to float (y = acc * scale[ch] (+ float bias)), or requantizes
// (y = saturate(round_half_even(acc * scale[ch]) + zy)), optionally clamped for a fused
// Relu/Clip. The channel is the row (conv: output channels are rows) or the column
// (matmul: output features are columns).
//
// Why int16 pairs: both operands are packed with their zero points already subtracted
// and widened to int16 (|value| <= 255), two consecutive k values per 32-bit lane. The
// AVX2 micro-kernel then multiplies with vpmaddwd (int16 x int16 -> int32, pairs summed),
// which is exact. The faster-looking vpmaddubsw (uint8 x int8) adds its two products into
// a *saturating* int16: 255*127 + 255*127 = 64770 overflows, so results would silently
// clip (onnxruntime's quantizer restricts weights to 7 bits, "reduce_range", for this
// reason). Subtracting the zero points at packing time also means that no correction
// terms (row/column sums) are needed and that conv padding is simply 0. AVX-512 VNNI and
// AVX-VNNI fuse vpmaddwd + vpaddd into one vpdpwssd on the same layout.
//
// Packed layouts (K2 = ceil(K / 2), pairs past K are zero):
//   A panel p: rows [p*mr, p*mr+mr) as K2 groups of mr int32 pairs (rows past M zero).
//   B panel q: columns [q*nr, q*nr+nr) as K2 groups of nr int16 pairs.
// Micro-kernels: "qs16_gemm__scalar_6x16", "qs16_gemm__avx2_6x16",
// "qs16_gemm__avx512_6x32", "qs16_gemm__avxvnni_6x16", "qs16_gemm__avx512vnni_6x32".
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "ir/dtype.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

// The integer GEMM ISAs: kScalar, kAvx2, kAvx512 (AVX-512BW) and kAvx512Vnni; kAvx2 also
// selects the AVX-VNNI kernel where the CPU has it.
Isa BestQGemmIsa();
bool QGemmIsaSupported(Isa isa);
int QGemmMr(Isa isa);
int QGemmNr(Isa isa);
const char* QGemmKernelName(Isa isa);

// A uint8 or int8 source matrix with its zero points (one, or one per row of A / column
// of B; nullptr means 0).
struct QSource {
  const void* data = nullptr;
  ir::DType dtype = ir::DType::kUInt8;  // kUInt8 or kInt8
  int64_t ld = 0;
  bool trans = false;  // op(X)[i][k] = X[k * ld + i]
  const int32_t* zero_points = nullptr;
  bool per_channel_zp = false;
};

struct QPacked {
  Isa isa = Isa::kScalar;
  bool is_a = true;
  int64_t rows_or_cols = 0, k = 0;
  std::vector<int16_t> data;
};
QPacked QPackA(Isa isa, int64_t m, int64_t k, const QSource& a);
QPacked QPackB(Isa isa, int64_t k, int64_t n, const QSource& b);
// int16 elements that a packed A of m x k / B of k x n takes.
int64_t QPackedASize(Isa isa, int64_t m, int64_t k);
int64_t QPackedBSize(Isa isa, int64_t k, int64_t n);
// Packs rows [p0*mr, p1*mr) of A into panels p0..p1-1 of `dst`.
void QPackAPanels(Isa isa, int64_t m, int64_t k, const QSource& a, int64_t p0, int64_t p1,
                  int16_t* dst);
// Packs columns [q0*nr, q1*nr) of B into panels q0..q1-1 of `dst` (for callers that pack
// per call and want to split the work).
void QPackBPanels(Isa isa, int64_t k, int64_t n, const QSource& b, int64_t q0, int64_t q1,
                  int16_t* dst);

struct QOutput {
  enum class Kind : uint8_t { kInt32, kFloat, kUInt8, kInt8 };
  Kind kind = Kind::kInt32;
  void* data = nullptr;
  int64_t ld = 0;
  bool per_row = false;                // channel = row (true) or column (false)
  const int32_t* bias = nullptr;       // int32 per channel, added to acc (nullptr: none)
  const float* scale = nullptr;        // per channel, or scale[0] when !per_channel_scale
  bool per_channel_scale = false;
  const float* float_bias = nullptr;   // kFloat: added after scaling, per channel
  int32_t zero_point = 0;              // kUInt8 / kInt8
  // A fused activation (Relu, Clip): kFloat clamps y to [lo, hi]; quantized outputs clamp
  // q to [q_lo, q_hi], the bounds mapped through the output quantization (exact, since
  // quantization is monotonic: Q(clip(v, lo, hi)) = clip(Q(v), Q(lo), Q(hi))).
  float lo = -std::numeric_limits<float>::infinity();
  float hi = std::numeric_limits<float>::infinity();
  int32_t q_lo = std::numeric_limits<int32_t>::min();
  int32_t q_hi = std::numeric_limits<int32_t>::max();
};

// One operand: packed beforehand (for the same ISA) or a raw view already in the packed
// layout (conv's im2col writes B panels directly).
struct QOperand {
  const int16_t* data = nullptr;
  Isa isa = Isa::kScalar;
  int64_t dim = 0, k = 0;
  static QOperand Of(const QPacked& p) { return {p.data.data(), p.isa, p.rows_or_cols, p.k}; }
};

// C = epilogue(op(A) op(B)); pool may be nullptr. Throws Error(kInternal) when a packed
// operand does not match (m, n, k, isa); callers validate user input first.
void QGemm(Isa isa, int64_t m, int64_t n, int64_t k, const QOperand& a, const QOperand& b,
           const QOutput& out, ThreadPool* pool);

// Naive triple loop over the raw sources with the same epilogue: the test oracle.
void QGemmReference(int64_t m, int64_t n, int64_t k, const QSource& a, const QSource& b,
                    const QOutput& out);

// The epilogue for one row segment: acc[0..cols) belongs to row `row`, columns from `col0`.
void QStoreRow(const int32_t* acc, int cols, int64_t row, int64_t col0, const QOutput& out);

}  // namespace edgepress::runtime
