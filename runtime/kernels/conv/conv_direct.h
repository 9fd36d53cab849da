// Direct 2-D convolution for AVX-512 with NCHW input and output (conv_direct_avx512.cc):
// no im2col, no packed B panels. For one image and group:
//  * X is copied once into a zero-padded plane per channel (only when there is padding);
//  * per block of 64 output channels and a few output rows, an L1-resident pixel-major
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
