// Reference depthwise plane kernel (any geometry) and the zero-bordered plane copy the
// SIMD kernels share; see depthwise.h.
#include <algorithm>
#include <cstring>

#include "runtime/kernels/conv/depthwise.h"

namespace edgepress::runtime::depthwise {

void PlaneRef(const DwGeometry& g, const float* x, const float* w, const DwEpilogue& ep,
              float* y) {
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    for (int64_t ow = 0; ow < g.ow; ++ow) {
      float s = 0.f;
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = oh * g.stride_h + i * g.dil_h - g.pad_t;
        if (ih < 0 || ih >= g.h) continue;
        for (int64_t j = 0; j < g.kw; ++j) {
          const int64_t iw = ow * g.stride_w + j * g.dil_w - g.pad_l;
          if (iw < 0 || iw >= g.w) continue;
          s += w[i * g.kw + j] * x[ih * g.w + iw];
        }
      }
      s += ep.bias;
      if (ep.clamp) s = std::min(std::max(s, ep.lo), ep.hi);
      y[oh * g.ow + ow] = s;
    }
  }
}

int64_t PadPlane(const DwGeometry& g, const float* x, int vec, std::vector<float>* buf) {
  const int64_t ow_vec = (g.ow + vec - 1) / vec * vec;
  const int64_t rows = (g.oh - 1) * g.stride_h + (g.kh - 1) * g.dil_h + 1;
  // Last vector starts at column (ow_vec - vec) * sw + (kw - 1) * dw and reads vec * sw.
  const int64_t cols = (ow_vec - vec) * g.stride_w + (g.kw - 1) * g.dil_w + vec * g.stride_w;
  const size_t need = static_cast<size_t>(rows * cols);
  if (buf->size() < need) buf->resize(need);
  float* d = buf->data();
  // Input columns [c0, c1) land at padded columns [c0 + pad_l, c1 + pad_l) < cols.
  const int64_t c1 = std::min(g.w, cols - g.pad_l);
  for (int64_t r = 0; r < rows; ++r) {
    float* dr = d + r * cols;
    const int64_t ih = r - g.pad_t;
    if (ih < 0 || ih >= g.h || c1 <= 0) {
      std::fill(dr, dr + cols, 0.f);
      continue;
    }
    std::fill(dr, dr + g.pad_l, 0.f);
    std::memcpy(dr + g.pad_l, x + ih * g.w, sizeof(float) * c1);
    std::fill(dr + g.pad_l + c1, dr + cols, 0.f);
  }
  return cols;
}

int64_t PadPlaneSplit(const DwGeometry& g, const float* x, int vec, std::vector<float>* buf,
                      int64_t* half, SplitFn split) {
  const int64_t ow_vec = (g.ow + vec - 1) / vec * vec;
  const int64_t rows = (g.oh - 1) * g.stride_h + (g.kh - 1) * g.dil_h + 1;
  // Tap j of the vector at ow reads half-columns ow + (j * dw) / 2 .. + vec - 1.
  const int64_t hw = ow_vec + (g.kw - 1) * g.dil_w / 2;
  const int64_t pitch = 2 * hw;
  const size_t need = static_cast<size_t>(rows * pitch);
  if (buf->size() < need) buf->resize(need);
  float* d = buf->data();
  for (int64_t r = 0; r < rows; ++r) {
    float* even = d + r * pitch;
    float* odd = even + hw;
    const int64_t ih = r - g.pad_t;
    if (ih < 0 || ih >= g.h) {
      std::fill(even, even + pitch, 0.f);
      continue;
    }
    const float* xr = x + ih * g.w;
    // Half-columns [c0, c1) have both input columns 2c - pad_l and 2c + 1 - pad_l inside;
    // the few at the borders take the checked loop.
    const int64_t c0 = std::min(hw, (g.pad_l + 1) / 2);
    const int64_t c1 = std::max(c0, std::min(hw, (g.w - 1 + g.pad_l) / 2));
    auto edge = [&](int64_t c) {
      const int64_t i0 = 2 * c - g.pad_l, i1 = i0 + 1;
      even[c] = i0 >= 0 && i0 < g.w ? xr[i0] : 0.f;
      odd[c] = i1 >= 0 && i1 < g.w ? xr[i1] : 0.f;
    };
    for (int64_t c = 0; c < c0; ++c) edge(c);
    const float* xi = xr - g.pad_l;
    if (split) {
      split(xi + 2 * c0, c1 - c0, even + c0, odd + c0);
    } else {
      for (int64_t c = c0; c < c1; ++c) {
        even[c] = xi[2 * c];
        odd[c] = xi[2 * c + 1];
      }
    }
    for (int64_t c = c1; c < hw; ++c) edge(c);
  }
  *half = hw;
  return pitch;
}

}  // namespace edgepress::runtime::depthwise
