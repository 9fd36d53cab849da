// Implicit-GEMM int8 convolution for AVX-512 VNNI (qconv.cc's QLinearConv): k x k (k odd),
// pads (k-1)/2, stride 1, or stride 2 with a multiple of 32 output channels, one group, int8
// weights with zero point 0 (what quantize-static and onnxruntime's quantizer write),
// channels a multiple of 4, uint8/int8 output.
//
// The byte im2col (qconv_im2col.h) copies every input byte k*k times into B panels and then
// interleaves the panels into groups of 4 k: on ResNet's 3x3 convs a fifth of the conv's
// time. Here the input is rewritten once per call into channel quads, x4[c/4][pixel][4]
// (4 consecutive channels of one pixel in one 32-bit lane), on a plane padded with the
// zero point: each row holds W pixels and then p = (k-1)/2 pad pixels, which also serve as
// the next row's left pads, and p pad rows precede and follow. Output pixel (oh, ow) is
// "wide" pixel P = oh * (W + p) + ow, and its tap (kh, kw) reads plane position P +
// kh * (W + p) + kw for every channel quad: 32 consecutive wide pixels are one 128-byte
// load per group of 4 k, at an offset that depends only on the group (QImplicitTile). The
// p wide pixels past each row's end are computed and not stored (1/57 of the work at
// 56x56). When the output channels fill 32-row panels, tiles of up to 8 pixels of one
// output row broadcast the pixels' bytes instead (qgemm_internal.h, QImplicitPixelTile): no
// pad columns, and a stride (2) is a step between the broadcasts.
//
// The weights are the broadcast (signed) operand and the pixels the unsigned vector one,
// so with weight zero point 0 the sum needs no per-pixel correction: sum((x - zx) w) =
// sum(x w) - zx sum(w), the second term folded into the per-channel bias, and padding
// (x = zx) adds nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/tensor.h"
#include "runtime/kernel.h"
#include "runtime/kernels/conv/conv_util.h"
#include "runtime/kernels/qgemm/qgemm.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime::qimplicit {

struct PackedWeights {
  int64_t m = 0, c = 0, k = 0;  // output channels, input channels, kernel size (k x k)
  int64_t k4 = 0;               // groups of 4 k: c / 4 * k * k
  std::vector<int8_t> w;        // ceil(m / 8) panels of k4 x 8 rows x 4 bytes
  std::vector<int32_t> wsum;    // sum of each output channel's weights
};

// Packs int8 weights [m, c, k, k] whose zero points are all 0, for `isa`; false (nothing
// packed) when the conv cannot take this path whatever its input.
bool PackWeights(Isa isa, const ir::Tensor& w, const std::vector<int32_t>& w_zp, int64_t group,
                 PackedWeights* out);

// Runs the conv when its geometry and output qualify (see the top of this file); false
// when they do not, with nothing written.
bool Run(ThreadPool& pool, const conv_util::ConvGeometry& g, const ir::Tensor& x, int32_t x_zp,
         const PackedWeights& pw, const QOutput& out, ir::Tensor& y);

}  // namespace edgepress::runtime::qimplicit
