// Reference depthwise plane kernel (any geometry) and the zero-bordered plane copy the
// SIMD kernels share; see depthwise.h.
#include <algorithm>
#include <cstring>

#include "runtime/kernels/conv/depthwise/depthwise.h"

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
      if (ep.post.any()) s = conv_act::ApplyOne(ep.post, s);
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

}  // namespace edgepress::runtime::depthwise
