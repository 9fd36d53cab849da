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
// Two packed layouts, chosen by ISA (QGemmBytes):
//
// int16 pairs (kScalar, kAvx2 without AVX-VNNI, kAvx512): both operands are packed with
// their zero points already subtracted and widened to int16 (|value| <= 255), two
// consecutive k values per 32-bit lane; vpmaddwd (int16 x int16 -> int32, pairs summed)
// is exact. The faster-looking vpmaddubsw (uint8 x int8) adds its two products into a
// *saturating* int16: 255*127 + 255*127 = 64770 overflows, so results would silently clip
// (onnxruntime's quantizer restricts weights to 7 bits, "reduce_range", for this reason).
// No correction terms are needed and conv padding is simply 0.
//   A panel p: rows [p*mr, p*mr+mr) as K2 = ceil(K/2) groups of mr int32 pairs.
//   B panel q: columns [q*nr, q*nr+nr) as K2 groups of nr int16 pairs.
//
// uint8 x int8 bytes (kAvx512Vnni, kAmx, and kAvx2 on a CPU with AVX-VNNI): vpdpbusd /
// tdpbusd multiply 4 consecutive k of uint8 A by int8 B and add the four products into
// an int32 lane without any intermediate saturation, so they are exact too, at twice
// the multiplies per instruction of vpdpwssd. A is always stored as uint8 and B as int8:
// a source of the other signedness is flipped by 128 (x ^ 0x80) and its zero point moved
// by the same 128, which leaves every (x - zp) unchanged. Zero points are then applied as
//   acc = sum(a*b) - za*colsum(b) - zb*rowsum(a) + K*za*zb
// with the sums taken at packing time (weights: once at load; activations: per call).
// The AVX-512 VNNI and AMX tiles store raw dots and the requantizing store applies the
// correction (qgemm_internal.h, QStoreTileAvx512): with one zero point for all rows and
// one for all columns, as in a conv, that is one subtraction per vector. AMX tiles are
// configured for ceil(K/4) groups below K = 64, so small K costs no padded multiplies.
// All int32 arithmetic wraps, so the result is exact whenever the true result fits.
//   A panel p: K4 = ceil(K/4) groups of mr x 4 bytes (row r, k = 4g..4g+3 at (g*mr+r)*4);
//              under kAmx (mr = 16, one tile) row-major per 64 k: 16 rows x 64 bytes.
//   B panel q: K4 groups of nr x 4 bytes. Under kAmx, K4 is rounded up to a multiple of
//              16 (one 64-byte tile row) for both operands.
//   After the panels: int32 zero point (shifted) per row/column, then int32 sum per
//   row/column; k past K is 0 in A (and in B packed by QPackB) and excluded from the sums.
// Conv's im2col fills a row-major panel of bytes and QPackBPanelFromRows interleaves it.
// Micro-kernels: "qs16_gemm__scalar_6x16", "qs16_gemm__avx2_6x16", "qs16_gemm__avx512_6x32",
// "qu8s8_gemm__avxvnni_6x16", "qu8s8_gemm__avx512vnni_8x32", "qu8s8_gemm__avx512vnni_16x32"
// (kAmx below QGemmAmxMinM), "qu8s8_gemm__amx_32x32".
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "ir/dtype.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

// The integer GEMM ISAs: kScalar, kAvx2, kAvx512 (AVX-512BW), kAvx512Vnni and kAmx; kAvx2
// selects the AVX-VNNI byte kernel where the CPU has it. kAmx runs the tile kernel for
// m >= QGemmAmxMinM() and the AVX-512 VNNI kernel below (same B layout), and is only
// "supported" once the OS granted the tile state (see qgemm_amx.cc).
Isa BestQGemmIsa();
bool QGemmIsaSupported(Isa isa);
int QGemmMr(Isa isa);
int QGemmNr(Isa isa);
// The micro-kernel a product of m rows runs (kAmx: the VNNI one below QGemmAmxMinM()).
const char* QGemmKernelName(Isa isa, int64_t m = 1 << 30);
// True for the uint8 x int8 byte layouts.
bool QGemmBytes(Isa isa);
int64_t QGemmAmxMinM();

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

// DynamicQuantizeMatMul's A: float rows quantized straight into the packed panels, in one
// pass while they are in cache. True where QPackAPanelsQuantized runs (the AVX-512 VNNI
// byte layout, and AVX2's int16 pairs on CPUs without AVX-VNNI); elsewhere callers
// quantize into bytes and use QPackAPanels.
bool QGemmQuantizesInPack(Isa isa);
// Packs rows [p0*mr, p1*mr) of A[i][kk] = saturate_u8(round_half_even(x[i*ld + kk] / scale)
// + zp) (NaN -> zp: DynamicQuantizeLinear's bytes) into panels p0..p1-1 of `dst`, with A's
// zero point zp. Throws Error(kInternal) unless QGemmQuantizesInPack(isa).
void QPackAPanelsQuantized(Isa isa, int64_t m, int64_t k, const float* x, int64_t ld,
                           float scale, int32_t zp, int64_t p0, int64_t p1, int16_t* dst);

// Byte layouts only, for writers of B panels (conv im2col): packs B panel q from `rows`,
// this panel's nr columns of op(B) row-major (rows[kk * nr + j], kk < k, as int8: a uint8
// source already shifted by -128, its zero point `zp` too), adding the column sums and
// zero points. Columns past n must hold 0 in `rows`. `stride` (0: nr) is the distance of
// the rows and `flip` is xored into every byte, so that a pointwise conv packs X's uint8
// rows directly. Under kAmx only the K4 = ceil(k/4) groups holding data are written; the
// padding groups up to AMX's 64 k are left as they are (A's are zero).
void QPackBPanelFromRows(Isa isa, int64_t k, int64_t n, int32_t zp, int64_t q,
                         const int8_t* rows, int16_t* dst, int64_t stride = 0,
                         uint8_t flip = 0);

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

  // kUInt8 / kInt8: the bounds of round(acc * scale) before the zero point is added, i.e.
  // the output type's range intersected with [q_lo, q_hi], minus zero_point (the SIMD
  // epilogues clamp in float there, then add the zero point).
  float ClampLo() const {
    const int32_t qmin = kind == Kind::kUInt8 ? 0 : -128;
    return static_cast<float>(std::max(qmin, q_lo)) - static_cast<float>(zero_point);
  }
  float ClampHi() const {
    const int32_t qmax = kind == Kind::kUInt8 ? 255 : 127;
    return static_cast<float>(std::min(qmax, q_hi)) - static_cast<float>(zero_point);
  }
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
// With parts > 1 only the rows of part `part` are computed: the kernel's row tiles
// [part * T / parts, (part + 1) * T / parts) of its T, so that callers with few column
// panels (conv on 14x14 and 7x7) can split the rows across threads too. Every output
// element comes from the same tile code whatever the split, so the bytes are identical.
void QGemm(Isa isa, int64_t m, int64_t n, int64_t k, const QOperand& a, const QOperand& b,
           const QOutput& out, ThreadPool* pool, int part = 0, int parts = 1);

// Naive triple loop over the raw sources with the same epilogue: the test oracle.
void QGemmReference(int64_t m, int64_t n, int64_t k, const QSource& a, const QSource& b,
                    const QOutput& out);

// The epilogue for one row segment: acc[0..cols) belongs to row `row`, columns from `col0`.
void QStoreRow(const int32_t* acc, int cols, int64_t row, int64_t col0, const QOutput& out);
// The same, vectorised as the GEMM of `isa` runs it (identical results; for other integer
// kernels such as depthwise conv).
void QStoreRowIsa(Isa isa, const int32_t* acc, int cols, int64_t row, int64_t col0,
                  const QOutput& out);

}  // namespace edgepress::runtime
