// Direct 2-D convolution with NCHW input and output: no im2col, no packed B panels. The
// driver (conv_direct.cc) is shared; each ISA supplies a tile and a transposed store
// (IsaOps: conv_direct_avx512.cc, conv_direct_avx2.cc). For one image and group:
//  * per block of B output channels (64 on AVX-512, 16 or 24 on AVX2) and run of ~112 output
//    pixels, an L1-resident pixel-major scratch [pixels][B] accumulates over blocks of input
//    channels: the micro-kernel broadcasts input values straight from X's rows (stride 2
//    steps by 2) and FMAs them with B-channel weight vectors, 6 pixels x B/16 zmm
//    (AVX-512) or 6 pixels x 2 ymm (AVX2) accumulators;
//  * padding is never read: the run's pixels are grouped by the taps that fall inside X
//    (interior, each edge, each corner: a contiguous range of kh and of kw), and a group's
//    tiles run over its taps only, so no padded copy of X is made and no FMA multiplies a
//    padding zero (18% of the taps of a 3x3 pad-1 conv on 7x7, 2% on 56x56);
//  * the scratch goes to Y's NCHW rows once, transposed in registers (16 x 16 / 8 x 8),
//    with bias, FusedConv's sum Z and the clamp applied there.
// This is the shape of onnxruntime's MLAS NCHWc kernel without a graph layout change.
// Weights are packed at kernel creation as [oc_block][ic][kh][kw][B] (zero past Mg).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernels/conv/conv_activation.h"
#include "runtime/kernels/conv/conv_util.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime::conv_direct {

// Output channels per block (the tile's width and the packed weights' row) for a group of
// mg output channels: 64 on AVX-512; on AVX2 16, or 24 where that computes fewer padding
// channels (24, 72, 120: the detector's 96 -> 24 3x3 convs); 0 where there is no direct
// kernel.
inline int OcBlock(Isa isa, int64_t mg) {
  if (isa == Isa::kAvx512) return 64;
  if (isa != Isa::kAvx2) return 0;
  return (mg + 23) / 24 * 24 < (mg + 15) / 16 * 16 ? 24 : 16;
}

// 2-D (trivial depth), column stride 1 or 2. (conv.cc sends a kernel of one tap here only
// where PreferPointwise picks it.)
inline bool Handles(const conv_util::ConvGeometry& g) {
  return g.rank <= 2 && g.k[0] == 1 && g.in[0] == 1 && g.out[0] == 1 && g.pad_b[0] == 0 &&
         (g.stride[2] == 1 || g.stride[2] == 2);
}

// Whether the automatic dispatch (conv.cc) takes this kernel on `isa` for a group of mg
// output channels, cg input channels and `taps` = KH*KW. Measured with bench/conv_bench.cc (thread
// CPU time, 1 thread, Xeon AVX-512, machine loaded to 4-7, interleaved runs, best of 2-3):
// ResNet-18's 3x3 layers went from 124-149 to 165-192 GFLOP/s (64->64 on 56x56 1.55 ->
// 1.38 ms, 512->512 on 7x7 1.73 -> 1.20 ms, stride 2 256->512 0.91 -> 0.64 ms), but it
// lost where a 64-channel block is mostly padding (detector 96->24: 2.19 -> 4.30 ms, the
// 16/32-channel stems) and where a short K leaves the transposed store too large a share
// (ResNet's 7x7 conv1, 3 channels x 49 taps: 1.62-1.73 -> 1.72-1.85 ms). So: at least 7/8
// of the computed channels real, and K = cg * taps >= 256 unless the CPU takes long weight
// blocks (LongWeightBlocks: then conv1 wins too, numbers in conv_direct.cc).
// On AVX2 (16-channel blocks) any K wins; only the 7/8 rule holds (numbers at PreferAvx2
// in conv_direct.cc).
bool Prefer(Isa isa, int64_t mg, int64_t cg, int64_t taps);

// Whether a 1x1 unstrided, unpadded conv of geometry g takes the direct kernel on `isa`
// (AVX2 only): where the implicit GEMM's 16-pixel panels would compute more than 8/7 of the
// plane (7x7: 64 columns for 49 pixels) and the 7/8 channel rule of Prefer holds. The plane
// size is known at run time only, so conv.cc packs these weights on first use.
bool PreferPointwise(Isa isa, const conv_util::ConvGeometry& g);

// Whether `isa`'s input-channel blocks are long on this CPU: a task's scratch (112 pixels x
// OcBlock) and a block of IsaOps::weight_floats do not fit its L1 data cache together
// (AVX-512 on Zen 4's 32 KiB; not on the Xeon's 48 KiB, nor AVX2), so the weights come from
// L2 anyway and blocks 4x as long save accumulator round trips through the scratch.
bool LongWeightBlocks(Isa isa);

// W of one group (mg x cg x kh x kw, ONNX order) as [ceil(mg/B)][cg][kh*kw][B] for
// B = OcBlock(isa, mg), at a 64-byte boundary: each row is whole cache lines (a vector's malloc
// alignment of 16 made every weight load a split load).
struct PackedWeights {
  std::vector<float> buf;
  size_t offset = 0;  // floats from buf.data() to the aligned start
  int oc_block = 0;   // B: OcBlock(isa, mg)
  const float* data() const { return buf.data() + offset; }
  // Move-only: a copy's buffer would have another alignment.
  PackedWeights() = default;
  PackedWeights(PackedWeights&&) noexcept = default;
  PackedWeights& operator=(PackedWeights&&) noexcept = default;
  PackedWeights(const PackedWeights&) = delete;
  PackedWeights& operator=(const PackedWeights&) = delete;
};
PackedWeights PackWeights(Isa isa, int64_t mg, int64_t cg, int64_t taps, const float* w);

// Y (mg channels of one image and group, NCHW) from X (cg channels, NCHW) and the weights
// packed by PackWeights for the same isa and mg. z (optional, Y's layout): FusedConv's sum,
// added before the clamp; post (HardSigmoid/HardSwish) after it, over each task's rows of
// Y right after their store (still in L1). isa is kAvx512 or kAvx2 (the caller checks the
// CPU).
void Run(Isa isa, const conv_util::ConvGeometry& g, const float* x, const PackedWeights& w,
         const GemmEpilogue& ep, const conv_act::PostActivation& post, const float* bias,
         const float* z, float* y, ThreadPool& pool);

// One ISA's pieces of the driver.
// Tile: N output pixels x oc_block output channels: px[i] + x_off is pixel i's source at
// the first channel and its first tap (pixels may lie on different output rows: a 7x7
// plane's interior is 5 tiles of 5 pixels, not 5 rows of 5). tab holds k (source offset,
// weight offset) pairs, one per (input channel, tap) the tile runs over: each multiplies
// the value at p + tab[2e] by the oc_block weights at w + tab[2e + 1] (one flat list, so a
// tile may skip taps and the loop keeps few pointers live). acc[i]: pixel i's oc_block
// floats of the scratch. init: for the first channel block, the oc_block floats every
// pixel starts from (the block's bias, or zeros), else nullptr to accumulate onto acc.
// pf, pf_lines: 64-byte lines of the next weight block to prefetch (at most one per pair).
using TileFn = void (*)(const float* const* px, int64_t x_off, const int64_t* tab, int64_t k,
                        const float* w, float* const* acc, const float* init, const float* pf,
                        int64_t pf_lines);
// Store: npix consecutive pixels of one block from the scratch [pixels][oc_block]
// (allocated to a multiple of 16 pixels; the bias is already in it) into Y: channel co's
// pixels at y + co * ld; nch (<= oc_block) channels exist; z (optional) is at the block's
// first channel and first pixel; ep's clamp applied when set.
using StoreFn = void (*)(const float* scratch, int64_t npix, int64_t nch, const float* z,
                         int64_t ld, const GemmEpilogue& ep, float* y);
struct IsaOps {
  int oc_block;            // B
  int tile_pixels;         // tiles[n - 1] computes n pixels, n <= tile_pixels
  int64_t weight_floats;   // a channel block's weights where L1 holds them (ChannelsPerBlock)
  TileFn tiles[8];
  StoreFn store[2][2];     // [z given][clamp]
};
const IsaOps& Avx512Ops();  // conv_direct_avx512.cc
const IsaOps& Avx2Ops(int oc_block);  // conv_direct_avx2.cc: 16 or 24

}  // namespace edgepress::runtime::conv_direct
