// Direct 2-D convolution for AVX-512 with NCHW input and output (conv_direct_avx512.cc):
// no im2col, no packed B panels. For one image and group:
//  * X is copied once into a zero-padded plane per channel (only when there is padding);
//  * per block of 64 output channels and run of ~112 output pixels, an L1-resident pixel-major
//    scratch [pixels][64] accumulates over blocks of input channels: the micro-kernel
//    broadcasts input values straight from the padded rows (stride 2 steps by 2) and FMAs
//    them with 64-channel weight vectors (4 zmm), 6 pixels x 4 zmm accumulators;
//  * the scratch goes to Y's NCHW rows once, 16 x 16 transposed in registers, with bias,
//    FusedConv's sum Z and the clamp applied there.
// This is the shape of onnxruntime's MLAS NCHWc kernel without a graph layout change.
// Weights are packed at kernel creation as [oc_block][ic][kh][kw][64] (zero past Mg).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernels/conv/conv_util.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime::conv_direct {

constexpr int kOcBlock = 64;

// 2-D (trivial depth), a kernel of more than one tap, column stride 1 or 2.
inline bool Handles(const conv_util::ConvGeometry& g) {
  return g.rank <= 2 && g.k[0] == 1 && g.in[0] == 1 && g.out[0] == 1 && g.pad_b[0] == 0 &&
         g.k_size() > 1 && (g.stride[2] == 1 || g.stride[2] == 2);
}

// Whether the automatic dispatch (conv.cc) takes this kernel for a group of mg output
// channels, cg input channels and `taps` = KH*KW. Measured with bench/conv_bench.cc (thread
// CPU time, 1 thread, Xeon AVX-512, machine loaded to 4-7, interleaved runs, best of 2-3):
// ResNet-18's 3x3 layers went from 124-149 to 165-192 GFLOP/s (64->64 on 56x56 1.55 ->
// 1.38 ms, 512->512 on 7x7 1.73 -> 1.20 ms, stride 2 256->512 0.91 -> 0.64 ms), but it
// lost where a 64-channel block is mostly padding (detector 96->24: 2.19 -> 4.30 ms, the
// 16/32-channel stems) and where a short K leaves the transposed store too large a share
// (ResNet's 7x7 conv1, 3 channels x 49 taps: 1.62-1.73 -> 1.72-1.85 ms). So: at least 7/8
// of the computed channels real, and K = cg * taps >= 256.
inline bool Prefer(int64_t mg, int64_t cg, int64_t taps) {
  const int64_t computed = (mg + kOcBlock - 1) / kOcBlock * kOcBlock;
  return taps > 1 && 8 * mg >= 7 * computed && cg * taps >= 256;
}

// W of one group (mg x cg x kh x kw, ONNX order) as [ceil(mg/64)][cg][kh*kw][64], at a
// 64-byte boundary: each 64-channel row is four whole cache lines (a vector's malloc
// alignment of 16 made every weight load a split load).
struct PackedWeights {
  std::vector<float> buf;
  size_t offset = 0;  // floats from buf.data() to the aligned start
  const float* data() const { return buf.data() + offset; }
  // Move-only: a copy's buffer would have another alignment.
  PackedWeights() = default;
  PackedWeights(PackedWeights&&) noexcept = default;
  PackedWeights& operator=(PackedWeights&&) noexcept = default;
  PackedWeights(const PackedWeights&) = delete;
  PackedWeights& operator=(const PackedWeights&) = delete;
};
PackedWeights PackWeights(int64_t mg, int64_t cg, int64_t taps, const float* w);

// Y (mg channels of one image and group, NCHW) from X (cg channels, NCHW) and the weights
// packed by PackWeights. z (optional, Y's layout): FusedConv's sum, added before the clamp.
// AVX-512 only (the caller checks the CPU).
void Run(const conv_util::ConvGeometry& g, const float* x, const float* packed_w,
         const GemmEpilogue& ep, const float* bias, const float* z, float* y, ThreadPool& pool);

}  // namespace edgepress::runtime::conv_direct
