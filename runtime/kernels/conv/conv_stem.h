// The first convolution of an image network (a "stem": 3x3 over 1-4 input channels, stride
// 1 or 2, e.g. MobileNet's 3 -> 32 3x3/2 on 224x224) computed directly on AVX-512F, NCHW:
// a tile is 16 output channels x 16 output pixels of one row, 16 accumulators; each of the
// Cin * 9 taps is one input vector (stride 2: the even lanes of two masked loads, one
// vpermt2ps; image borders are masked-off lanes, no padded copy) feeding 16 FMAs with the
// weights broadcast from a per-call packed [channel block][tap][16] copy. The implicit GEMM
// it replaces has K = Cin * 9 = 27: packing each 32-pixel B panel of the phase-split copy
// cost about as much as the one or two 12-row tiles that read it (about 55 GFLOP/s).
// Bias, FusedConv's sum Z and the clamp are applied at the store.
#pragma once

#include "runtime/kernels/conv/conv_activation.h"
#include "runtime/kernels/conv/conv_util.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime::conv_stem {

// 2-D, one group, 1-4 input channels, 3x3, equal strides 1 or 2, no dilation, leading
// pads 0..2 (the trailing pads follow from the output size).
bool Handles(const conv_util::ConvGeometry& g);
#if defined(__x86_64__)
// X [N, C, H, W], W [M, C, 3, 3] (raw), bias [M] or null, z Y's shape or null (added
// before the clamp of `ep`; must not alias y); `post` (HardSigmoid/HardSwish) after it.
void RunAvx512(const conv_util::ConvGeometry& g, const float* x, const float* w,
               const float* bias, const float* z, const GemmEpilogue& ep, float* y,
               ThreadPool& pool, const conv_act::PostActivation& post = {});
#endif

}  // namespace edgepress::runtime::conv_stem
