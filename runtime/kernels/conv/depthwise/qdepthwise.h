// Integer depthwise 2-D convolution of one channel plane (QLinearConv/ConvInteger with one
// input and one output channel per group), int32 accumulators, the requantize epilogue of
// qgemm.h (QStoreRowIsa: per-channel multiplier, bias, y_zp, saturation, fused Relu, or
// float/int32 output).
// One file per ISA: qdepthwise.cc (the driver, the quad plane, the scalar reference for any
// geometry), qdepthwise_avx2.cc (AVX2, 8 columns) and qdepthwise_avx512.cc (AVX-512BW and
// AVX-512 VNNI, 16 columns).
//
// The SIMD kernels keep the data in bytes. The plane is padded once with the input zero
// point (uint8 after flipping int8 x by 0x80), so that
//   sum_t w_t * (x_t - zx) = sum_t w_t * xu_t - zxu * sum_t w_t
// exactly, the second term a per-channel constant the accumulators start from. Each padded
// row is then rewritten as a "quad row": dword j holds the four bytes
//   xp[s*j], xp[s*j + d], xp[s*j + 2d], xp[s*j + 3d]   (s = stride, d = dilation)
// so that four horizontally adjacent taps of output column j are one dword and a vector of
// output columns is one unit-stride load for any stride: a 3x3 row of taps is one
// vpdpbusd (u8 x s8, the 4th weight 0), a 5x5 row two (taps 4.. read dword j + 4d/s).
// Without VNNI the dword is split into two int16 pairs (bytes 0,2 and 1,3) for vpmaddwd;
// both are exact (no saturating vpmaddubsw).
#pragma once

#include <cstdint>

#include "runtime/kernel.h"
#include "runtime/kernels/qgemm/qgemm.h"

namespace edgepress::runtime::qdw {

struct Geometry {
  int64_t h = 0, w = 0;    // input plane
  int64_t oh = 0, ow = 0;  // output plane
  int64_t kh = 1, kw = 1, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  int64_t pad_t = 0, pad_l = 0;  // leading pads; trailing pads follow from oh/ow
};

struct Plane {
  const Geometry* g = nullptr;
  const void* x = nullptr;  // input plane, h x w
  bool x_s8 = false;        // int8 (else uint8)
  int32_t x_zp = 0;
  const int16_t* w = nullptr;  // (w - w_zp) as int16, kh x kw row-major
  const QOutput* out = nullptr;  // per_row; `channel` is the row for scale/bias lookups
  int64_t channel = 0;
  void* y = nullptr;  // output plane, oh x ow, of out->kind
};

// The reference: direct loop, any geometry (pads may be negative), scalar epilogue.
void PlaneRef(const Plane& p);

// Whether the SIMD kernels take this plane: strides 1 or 2 horizontally, non-negative pads,
// weights (w - w_zp) in int8 range. Otherwise they call PlaneRef.
bool SimdHandles(const Plane& p);

#if defined(__x86_64__)
void PlaneAvx2(const Plane& p);          // AVX2, vpmaddwd
void PlaneAvx512(const Plane& p);        // AVX-512BW, vpmaddwd
void PlaneAvx512Vnni(const Plane& p);    // AVX-512 VNNI, vpdpbusd
#endif

// The kernel for `isa` (what the QLinearConv/ConvInteger entry of that ISA runs).
void RunPlane(Isa isa, const Plane& p);
// Its name for profiles ("avx512vnni_quad", "ref"): what RunPlane(isa, p) uses.
const char* PlaneKernelName(Isa isa, const Plane& p);

// ---- shared by the SIMD files (qdepthwise.cc) ----------------------------------------------

// The quad rows of p, built on demand in a ring of at least (kh - 1) * dil_h + 1 +
// stride_h rows (two output rows' taps; a power of 2: a division per row showed in
// profiles) that stays in L1 (a whole 112-column plane of quads would not), with the
// per-channel constant -zxu * sum(w) and the weights as int8, 4 per (kernel row, group),
// zero padded.
// `build(src, n, stride, dst)` writes n quads of dilation 1 from the padded byte row src
// (rounded up to whole blocks of 16); dilated planes use the scalar loop.
using BuildQuadsFn = void (*)(const uint8_t* src, int64_t n, int64_t stride, uint32_t* dst);
// The same straight from input row `x` (w bytes, flipped by `flip`), padding included:
// padded byte c is x[c - pad_l] where inside, else `pad` (AVX-512BW masked loads).
struct DirectRow {
  const uint8_t* x;
  int64_t w, pad_l;
  uint8_t pad, flip;
};
using BuildQuadsDirectFn = void (*)(const DirectRow& row, int64_t n, int64_t stride, uint32_t* dst);
class QuadRows {
 public:
  static constexpr int kMaxQuads = 64;
  // False (nothing built) when !SimdHandles(p). `vec`: output columns per vector, a power
  // of 2 (each row holds quads for ow rounded up to it, plus the later groups' offsets).
  // `direct` (optional) replaces the padded byte row copy plus `build` at dilation 1.
  // With `whole_max_bytes` > 0 and `direct`, a plane whose rows all fit in that many bytes
  // is held whole instead (whole()): the caller fills every row (mutable_row) and calls
  // MarkBuilt() before Row(), so small planes (7x7 to 56x56) pay no call per row.
  bool Init(const Plane& p, int vec, BuildQuadsFn build, BuildQuadsDirectFn direct = nullptr,
            int64_t whole_max_bytes = 0);
  // Padded row r, built on first use; r may be up to (kh - 1) * dil_h + stride_h below
  // the highest row built so far (two output rows' taps), and a returned row stays valid
  // until a row that many above it is built.
  const uint32_t* Row(int64_t r) {
    while (next_ <= r) BuildRow(next_++);
    return data_ + (r & (ring_ - 1)) * pitch_;
  }
  bool whole() const { return whole_; }
  // A whole plane at stride 1 with one group a row (3x3): rows are ow quads apart, so
  // the plane's output pixels p = oh * ow + c are one run, reading quads p + i * ow.
  bool linear() const { return linear_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  uint32_t* mutable_row(int64_t r) { return data_ + r * pitch_; }
  uint8_t pad() const { return pad_; }
  uint8_t flip() const { return flip_; }
  void MarkBuilt() { next_ = rows_; }
  int32_t corr() const { return corr_; }
  int64_t groups() const { return groups_; }
  int64_t group_step() const { return group_step_; }  // dwords between groups: 4 * dil_w / stride_w
  const int8_t* w8() const { return w8_; }

 private:
  void BuildRow(int64_t r);
  const Plane* p_ = nullptr;
  BuildQuadsFn build_ = nullptr;
  BuildQuadsDirectFn direct_ = nullptr;
  int32_t corr_ = 0;
  int64_t groups_ = 0, group_step_ = 0, cols_ = 0, pitch_ = 0, ring_ = 1, next_ = 0, xlen_ = 0;
  int64_t rows_ = 0;
  bool whole_ = false, linear_ = false;
  uint8_t pad_ = 0, flip_ = 0;
  uint32_t* data_ = nullptr;
  uint8_t* xrow_ = nullptr;
  int8_t w8_[kMaxQuads * 4] = {};
};

// ---- channel blocks: small planes, 16 channels a vector (qdepthwise_block_avx512.cc) ----
// A 7x7 plane is four vectors of work, so one plane per call is mostly call, quad-build and
// epilogue overhead; up to 112x112 blocks are still faster (bench/
// qdepthwise_block_bench.cc: 0.25x of the plane kernels' time at 7x7, 0.5x at 14x14 and
// 28x28 s2, 0.7x at 56x56 and 112x112 s1, 0.83x at 112x112 s2, whose padded plane is
// 208 KiB). A block
// instead holds 16 channels as the vector lanes: their planes are transposed once into a
// channel-interleaved padded byte plane (16 bytes a pixel), a
// quad (4 adjacent taps of 16 channels) is then one 64-byte load and one vpermb, a kernel
// row of 4 taps one vpdpbusd with per-channel weight dwords, and the accumulators are
// requantized with per-channel vectors and transposed back to the NCHW output bytes.
// Channels [0, channels) of contiguous planes: x + c * h * w in, y + c * oh * ow out; the
// output channel (scale, bias) of plane c is channel0 + c.
struct Block {
  const Geometry* g = nullptr;
  const void* x = nullptr;
  bool x_s8 = false;
  int32_t x_zp = 0;
  const int16_t* w = nullptr;  // (w - w_zp) as int16, kh * kw a channel
  const QOutput* out = nullptr;
  int64_t channel0 = 0, channels = 0;
  void* y = nullptr;
  // Set by callers that checked the weights once (a kernel's constant weights): BlockHandles
  // then skips its scan of every weight, which cost 1-2% of an int8 mobilenet's run.
  bool w_in_int8 = false;
};
// Whether RunBlock(isa, b) takes these planes: AVX-512 VNNI with VBMI, output planes of at
// most kBlockMaxPixels and padded input planes of at most kBlockMaxPadded pixels (16 bytes
// each: 256 KiB, in L2), dilation 1 across, horizontal stride 1 or 2, non-negative pads,
// uint8/int8 output, weights in int8 range. Otherwise the caller runs planes (RunPlane).
constexpr int64_t kBlockMaxPixels = 112 * 112;
constexpr int64_t kBlockMaxPadded = 128 * 128;
bool BlockHandles(Isa isa, const Block& b);
void RunBlock(Isa isa, const Block& b);
#if defined(__x86_64__)
// The AVX2 blocks (qdepthwise_block_avx2.cc), which BlockHandles/RunBlock take for kAvx2:
// output planes of at most 28x28, padded planes of at most 60x60, any stride and dilation,
// non-negative pads, up to 49 taps, uint8/int8 output, weights in int8 range.
bool BlockHandlesAvx2(const Block& b);
void RunBlockAvx2(const Block& b);
#endif

// The epilogue for the whole plane: `acc` holds oh * ow accumulators, rows ow apart.
void StorePlane(Isa isa, const Plane& p, const int32_t* acc);

}  // namespace edgepress::runtime::qdw
