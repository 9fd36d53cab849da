// Depthwise 2-D convolution of one channel plane (one input channel per group; Conv with
// group == C, and its channel multiplier), with the bias and the Relu/Clip clamp fused.
// One file per ISA: depthwise_scalar.cc (the reference, any geometry), depthwise_avx2.cc
// and depthwise_avx512.cc. 3x3 and 5x5 at strides 1 and 2 without dilation (MobileNet's)
// read the plane directly: the padding is the masked-off lanes of each tap's load, so
// there is no copy (the padded and even/odd split copies cost more than the FMAs of a
// stride-2 or 7x7 plane). Any other size, dilation and strides 1 and 2 copy the plane
// into a zero-bordered buffer (PadPlane) and take a vector loop with run-time taps; other
// strides go to the reference.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernels/conv/conv_activation.h"

namespace edgepress::runtime::depthwise {

struct DwGeometry {
  int64_t h = 0, w = 0;    // input plane
  int64_t oh = 0, ow = 0;  // output plane
  int64_t kh = 1, kw = 1, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  int64_t pad_t = 0, pad_l = 0;  // leading pads (>= 0); trailing pads follow from oh/ow
};

struct DwEpilogue {
  float bias = 0.f;
  bool clamp = false;
  float lo = 0.f, hi = 0.f;
  conv_act::PostActivation post;  // HardSigmoid/HardSwish after the clamp (FusedConv has one)
};

using PlaneFn = void (*)(const DwGeometry& g, const float* x, const float* w,
                        const DwEpilogue& ep, float* y);

// y[oh][ow] = act(bias + sum_{i,j} w[i][j] * x[oh*sh + i*dh - pt][ow*sw + j*dw - pl]),
// taps outside the plane reading zero. `w` is kh x kw row-major.
void PlaneRef(const DwGeometry& g, const float* x, const float* w, const DwEpilogue& ep,
              float* y);
#if defined(__x86_64__)
void PlaneAvx2(const DwGeometry& g, const float* x, const float* w, const DwEpilogue& ep,
               float* y);  // AVX2 + FMA, 8 columns per vector
void PlaneAvx512(const DwGeometry& g, const float* x, const float* w, const DwEpilogue& ep,
                 float* y);  // AVX-512F, 16 columns per vector
// FastPathHandles geometries with ow <= 8, AVX-512F+VL at 8 lanes (depthwise_small_avx512.cc);
// PlaneAvx512 calls it.
void PlaneSmallAvx512(const DwGeometry& g, const float* x, const float* w, const DwEpilogue& ep,
                      float* y);
// Eight planes at once, channels across the lanes (depthwise_channels_avx2.cc), for
// Planes8Handles geometries: plane i is x + i * x_stride, its kh*kw weights w + i * kh*kw,
// its bias bias[i] (ep.bias unused) and its output y + i * y_stride.
void Planes8Avx2(const DwGeometry& g, const float* x, int64_t x_stride, const float* w,
                 const float* bias, const DwEpilogue& ep, float* y, int64_t y_stride);
#endif

// Whether the SIMD kernels vectorise this geometry (else they call PlaneRef).
inline bool SimdHandles(const DwGeometry& g) {
  return (g.stride_w == 1 || g.stride_w == 2) && g.pad_t >= 0 && g.pad_l >= 0 && g.kh >= 1 &&
         g.kw >= 1 && g.oh > 0 && g.ow > 0;
}

// The zero-bordered copy of a plane the SIMD kernels read: rows [0, rows) x cols
// [0, cols) where padded (r, c) = x[r - pad_t][c - pad_l] inside the plane and 0 outside;
// `cols` covers every vector load of a row of `vec` columns (stride 2 reads 2 vectors).
// Returns the row pitch. The buffer is per thread and grows only.
int64_t PadPlane(const DwGeometry& g, const float* x, int vec, std::vector<float>* buf);

// The fast SIMD path: 3x3 or 5x5, strides 1 or 2 (the same both ways), no dilation:
// direct reads (no copy), several output rows per pass share their input row loads
// (depthwise_avx*.cc).
inline bool FastPathHandles(const DwGeometry& g) {
  return SimdHandles(g) && g.kh == g.kw && (g.kh == 3 || g.kh == 5) &&
         g.stride_h == g.stride_w && (g.stride_h == 1 || g.stride_h == 2) && g.dil_h == 1 &&
         g.dil_w == 1;
}

// Planes8Avx2's geometries: the fast path's (3x3 / 5x5, stride 1 or 2, no dilation) on
// planes of at most kPlanes8MaxWidth output columns.
constexpr int64_t kPlanes8MaxWidth = 14;
inline bool Planes8Handles(const DwGeometry& g) {
  return FastPathHandles(g) && g.ow <= kPlanes8MaxWidth;
}

// Whether conv.cc runs a plane of g eight at a time on AVX2 (it still needs one input
// channel per output channel): 5x5 kernels, whose one-plane path spills its 25 weights and
// takes 2 rows a pass. conv_bench on Zen 3, 1 thread, thread CPU time, min of 5
// interleaved rounds, one by one -> eight at a time: 5x5 576 on 7x7 0.079 -> 0.051 ms,
// 240 on 14x14 0.118 -> 0.067, 5x5/2 288 onto 7x7 0.053 -> 0.042, 96 onto 14x14 0.057 ->
// 0.051. 3x3 planes keep the one-plane path since its row tails are plain stores
// (4c42fcf): 960 on 7x7 tied (0.056 / 0.055), 576 on 14x14 lost (0.103 -> 0.112), and
// stride 2 lost before (576 onto 7x7 0.062 -> 0.068: it transposes 4 input pixels per
// output pixel for only 9 FMAs each).
inline bool Planes8Preferred(const DwGeometry& g) { return Planes8Handles(g) && g.kw == 5; }

}  // namespace edgepress::runtime::depthwise
