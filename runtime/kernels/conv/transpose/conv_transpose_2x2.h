// ConvTranspose with a 2x2 kernel and stride 2, unpadded, undilated, 2-D (the upsampling
// heads of segmentation and text-detection models), computed directly on AVX-512F:
//   Y[co][2i+a][2j+b] = bias[co] + sum_ci W[ci][co][a][b] * X[ci][i][j]
// Every output pixel gets exactly one tap, so there is no col buffer and no col2im: a
// tile of 4 output channels x 16 input pixels keeps 16 accumulators (4 channels x 4 taps)
// fed by one X load per input channel, and the two taps of each output row are
// interleaved in registers into 32 output floats. The GEMM + col2im lowering it replaces
// packed B per call at K = Cin (24 on the detector) and, for one output channel, ran four
// 12-row tiles with one real row.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernels/conv/conv_util.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime::conv_transpose_2x2 {

// Whether the direct kernel takes this geometry (2-D, kernel 2x2 == stride, no pads).
bool Handles(const conv_util::ConvGeometry& g);
// W [C, Mg, 2, 2] (ONNX ConvTranspose layout) repacked per group as [Mg/4 blocks][Cg][4
// channels][4 taps] (channels past Mg zero).
std::vector<float> PackWeights(int64_t c, int64_t group, int64_t mg, const float* w);
#if defined(__x86_64__)
void RunAvx512(const conv_util::ConvGeometry& g, const float* x, const float* packed,
               const float* bias, float* y, ThreadPool& pool);
#endif

}  // namespace edgepress::runtime::conv_transpose_2x2
