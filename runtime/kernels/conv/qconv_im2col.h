// im2col for the integer convolutions (qconv.cc): one image and group of NCHW uint8/int8
// input written as the int8 GEMM's B panels (qgemm.h), in the int16-pair layout
// (QIm2ColPanels) or the byte layouts of VNNI/AMX CPUs (QIm2ColBytes, with an AVX-512
// path for 32-pixel panels). Padding stores the zero point, so (x - x_zp) is 0 there.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/kernels/conv/conv_util.h"

namespace edgepress::runtime::qim2col {

// Offsets of each im2col row kk = ((c * KD + kd) * KH + kh) * KW + kw.
struct Im2ColRows {
  std::vector<int64_t> c_off, d_off, h_off, w_off;
  explicit Im2ColRows(const conv_util::ConvGeometry& g);
};

// im2col of (x - zp) for one image and group into int16-pair B panels [q0, q1) of width
// nr: panel q holds pixels [q*nr, q*nr+nr) as K2 groups of nr pairs (k even, k odd).
template <typename T>
void QIm2ColPanels(const conv_util::ConvGeometry& g, const Im2ColRows& rows, const T* x, int32_t zp,
                   int64_t q0, int64_t q1, int nr, int16_t* dst);

// im2col for the byte layouts (QGemmBytes, qgemm.h): B is int8, so uint8 x is stored as
// x ^ 0x80 (x - 128) and the zero point moves with it; padding stores that zero point
// (its (x - zp) is 0). Each panel of nr pixels is first written row-major ([kk][nr]
// bytes: contiguous runs, copied) and then interleaved into groups of 4 k with the
// column sums by QPackBPanelFromRows. A pointwise conv (rows = nullptr) copies X's rows.
// Panels [q0, q1) are written from dst on as panels q - q_base of an n_pack-column B.
template <typename T>
void QIm2ColBytes(Isa isa, const conv_util::ConvGeometry& g, const Im2ColRows* rows, const T* x,
                  int8_t pad, int64_t kdim, int64_t q0, int64_t q1, int nr, int16_t* dst,
                  int64_t q_base, int64_t n_pack);

}  // namespace edgepress::runtime::qim2col
