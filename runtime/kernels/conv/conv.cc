// Conv (1-D/2-D/3-D, NCHW, groups, dilations, strides, pads, auto_pad, bias) and
// com.microsoft FusedConv (Conv + Relu/Clip), as GEMMs per image and group:
//   Y_g[Mg, out] = W_g[Mg, Cg*kprod] x col[Cg*kprod, out]  (+ bias, activation)
// The weights are constant in real models, so create() packs each W_g once as the GEMM's
// A operand. `col` is written by im2col straight into the GEMM's packed-B panels (no
// separate im2col matrix and packing pass); a 1x1 stride-1 unpadded conv skips im2col
// and hands X to the GEMM as B. Depthwise convs (one input channel per group, rank <= 2)
// take a direct path instead: a GEMM with one row per group would waste the tiles.
// Bias and activation are the GEMM epilogue, so Y is written once.
// Entries: f32_conv__ref (portable micro-kernel and direct loops), f32_conv__avx2_6x16,
// f32_conv__avx512_6x32.
#include <algorithm>
#include <memory>
#include <vector>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/conv/conv_util.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/gemm/gemm_op_util.h"
#include "runtime/thread_pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime {

namespace {

using conv_util::ConvAttrs;
using conv_util::ConvGeometry;
using gemm_util::DimsToString;

// Offsets of each im2col row kk = ((c * KD + kd) * KH + kh) * KW + kw: the channel's
// offset in X and the dilated kernel offsets per spatial dim.
struct Im2ColRows {
  std::vector<int64_t> c_off, d_off, h_off, w_off;
  explicit Im2ColRows(const ConvGeometry& g) {
    const int64_t kdim = g.cg * g.k_size();
    c_off.resize(kdim);
    d_off.resize(kdim);
    h_off.resize(kdim);
    w_off.resize(kdim);
    for (int64_t kk = 0; kk < kdim; ++kk) {
      int64_t rem = kk;
      w_off[kk] = (rem % g.k[2]) * g.dil[2];
      rem /= g.k[2];
      h_off[kk] = (rem % g.k[1]) * g.dil[1];
      rem /= g.k[1];
      d_off[kk] = (rem % g.k[0]) * g.dil[0];
      c_off[kk] = (rem / g.k[0]) * g.in_size();
    }
  }
};

// Writes im2col(x) for one image and group straight into packed-B panels [q0, q1) of
// width nr (panel q holds output pixels [q*nr, q*nr+nr) as kdim rows of nr floats, zero
// past the last pixel). Panel-major order keeps the writes sequential and lets threads
// split the panels; out-of-image taps read as zero (the padding).
void Im2ColPanels(const ConvGeometry& g, const Im2ColRows& rows, const float* x, int64_t q0,
                  int64_t q1, int nr, float* dst) {
  constexpr int kMaxNr = 64;
  const int64_t kdim = static_cast<int64_t>(rows.c_off.size());
  const int64_t out_size = g.out_size();
  const uint64_t in_d = g.in[0], in_h = g.in[1], in_w = g.in[2];
  int64_t bd[kMaxNr], bh[kMaxNr], bw[kMaxNr];
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t p0 = q * nr;
    const int cnt = static_cast<int>(std::min<int64_t>(nr, out_size - p0));
    int64_t ow = p0 % g.out[2], oh = (p0 / g.out[2]) % g.out[1], od = p0 / (g.out[2] * g.out[1]);
    for (int t = 0; t < cnt; ++t) {
      bd[t] = od * g.stride[0] - g.pad_b[0];
      bh[t] = oh * g.stride[1] - g.pad_b[1];
      bw[t] = ow * g.stride[2] - g.pad_b[2];
      if (++ow == g.out[2]) {
        ow = 0;
        if (++oh == g.out[1]) {
          oh = 0;
          ++od;
        }
      }
    }
    float* d = dst + q * kdim * nr;
    for (int64_t kk = 0; kk < kdim; ++kk, d += nr) {
      const float* xc = x + rows.c_off[kk];
      const int64_t dk = rows.d_off[kk], hk = rows.h_off[kk], wk = rows.w_off[kk];
      for (int t = 0; t < cnt; ++t) {
        const int64_t id = bd[t] + dk, ih = bh[t] + hk, iw = bw[t] + wk;
        const bool inside = static_cast<uint64_t>(id) < in_d &&
                            static_cast<uint64_t>(ih) < in_h && static_cast<uint64_t>(iw) < in_w;
        d[t] = inside ? xc[(id * g.in[1] + ih) * g.in[2] + iw] : 0.f;
      }
      for (int t = cnt; t < nr; ++t) d[t] = 0.f;
    }
  }
}

// Im2ColPanels for rank <= 2 (the depth dim is trivial), same output. A panel's pixels
// split into runs that share an output row; for each im2col row and run, the taps that land
// inside the input row are one strided (stride 1: contiguous) read, the rest zero. No
// per-element bounds check or index division: ResNet-18 spent 25% of its time in the
// generic loop above.
void Im2ColPanels2D(const ConvGeometry& g, const float* x, int64_t q0, int64_t q1, int nr,
                    float* dst) {
  constexpr int kMaxNr = 64;
  struct Run {
    int t0, t1;
    int64_t oh, ow0;
  };
  Run runs[kMaxNr];
  const int64_t kdim = g.cg * g.k_size();
  const int64_t out_size = g.out_size(), H = g.in[1], W = g.in[2], OW = g.out[2];
  const int64_t sh = g.stride[1], sw = g.stride[2], dh = g.dil[1], dwl = g.dil[2];
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t p0 = q * nr;
    const int cnt = static_cast<int>(std::min<int64_t>(nr, out_size - p0));
    int nruns = 0;
    for (int t = 0; t < cnt;) {
      const int64_t oh = (p0 + t) / OW, ow0 = (p0 + t) % OW;
      const int len = static_cast<int>(std::min<int64_t>(cnt - t, OW - ow0));
      runs[nruns++] = Run{t, t + len, oh, ow0};
      t += len;
    }
    float* d = dst + q * kdim * nr;
    for (int64_t c = 0; c < g.cg; ++c) {
      const float* xc = x + c * H * W;
      for (int64_t kh = 0; kh < g.k[1]; ++kh) {
        for (int64_t kw = 0; kw < g.k[2]; ++kw, d += nr) {
          for (int r = 0; r < nruns; ++r) {
            const Run& run = runs[r];
            const int len = run.t1 - run.t0;
            float* dr = d + run.t0;
            const int64_t ih = run.oh * sh - g.pad_b[1] + kh * dh;
            if (ih < 0 || ih >= H) {
              std::fill(dr, dr + len, 0.f);
              continue;
            }
            // iw(j) = iw0 + j * sw is inside [0, W) for j in [j0, j1).
            const int64_t iw0 = run.ow0 * sw - g.pad_b[2] + kw * dwl;
            const int64_t j0 = std::min<int64_t>(len, iw0 >= 0 ? 0 : (-iw0 + sw - 1) / sw);
            const int64_t j1 =
                std::max<int64_t>(j0, std::min<int64_t>(len, iw0 >= W ? 0 : (W - 1 - iw0) / sw + 1));
            std::fill(dr, dr + j0, 0.f);
            const float* xr = xc + ih * W + iw0;
            if (sw == 1) {
              std::copy(xr + j0, xr + j1, dr + j0);
            } else {
              for (int64_t j = j0; j < j1; ++j) dr[j] = xr[j * sw];
            }
            std::fill(dr + j1, dr + len, 0.f);
          }
          std::fill(d + cnt, d + nr, 0.f);
        }
      }
    }
  }
}

// ---- depthwise (one input channel per group), rank <= 2 --------------------------------

struct DwPlane {
  const ConvGeometry* g;
  const float* x;  // input plane [H][W]
  const float* w;  // kernel [KH][KW]
  float bias;
  const GemmEpilogue* act;
  float* y;  // output plane [OH][OW]
};

inline float DwPixel(const DwPlane& p, int64_t oh, int64_t ow) {
  const ConvGeometry& g = *p.g;
  float s = 0.f;
  for (int64_t kh = 0; kh < g.k[1]; ++kh) {
    const int64_t ih = oh * g.stride[1] + kh * g.dil[1] - g.pad_b[1];
    if (ih < 0 || ih >= g.in[1]) continue;
    for (int64_t kw = 0; kw < g.k[2]; ++kw) {
      const int64_t iw = ow * g.stride[2] + kw * g.dil[2] - g.pad_b[2];
      if (iw < 0 || iw >= g.in[2]) continue;
      s += p.w[kh * g.k[2] + kw] * p.x[ih * g.in[2] + iw];
    }
  }
  s += p.bias;
  if (p.act->clamp) s = std::min(std::max(s, p.act->lo), p.act->hi);
  return s;
}

// Output columns [lo, hi) for which every kernel column reads inside the row.
void DwInterior(const ConvGeometry& g, int64_t* lo, int64_t* hi) {
  const int64_t last = (g.k[2] - 1) * g.dil[2];
  *lo = g.pad_b[2] <= 0 ? 0 : (g.pad_b[2] + g.stride[2] - 1) / g.stride[2];
  const int64_t lim = g.in[2] - 1 - last + g.pad_b[2];  // need ow*s <= lim
  *hi = lim < 0 ? 0 : lim / g.stride[2] + 1;
  *hi = std::min(*hi, g.out[2]);
  *lo = std::min(*lo, *hi);
}

void DwPlaneScalar(const DwPlane& p) {
  const ConvGeometry& g = *p.g;
  for (int64_t oh = 0; oh < g.out[1]; ++oh)
    for (int64_t ow = 0; ow < g.out[2]; ++ow) p.y[oh * g.out[2] + ow] = DwPixel(p, oh, ow);
}

#if defined(__x86_64__)
// One output row of the vector path below (all columns).
template <int kS, int kKw>
__attribute__((target("avx2,fma"))) void DwRowAvx2T(const DwPlane& p, int64_t oh, int64_t lo,
                                                    int64_t last_vec) {
  const ConvGeometry& g = *p.g;
  const int64_t kw_n = kKw > 0 ? kKw : g.k[2];
  const int64_t dw = g.dil[2];
  const __m256 vbias = _mm256_set1_ps(p.bias);
  const __m256 vlo = _mm256_set1_ps(p.act->lo), vhi = _mm256_set1_ps(p.act->hi);
  const bool clamp = p.act->clamp;
  float* yr = p.y + oh * g.out[2];
  if (last_vec < lo) {
    for (int64_t ow = 0; ow < g.out[2]; ++ow) yr[ow] = DwPixel(p, oh, ow);
    return;
  }
  int64_t kh0 = 0, kh1 = g.k[1];
  const int64_t ih0 = oh * g.stride[1] - g.pad_b[1];
  while (kh0 < kh1 && ih0 + kh0 * g.dil[1] < 0) ++kh0;
  while (kh1 > kh0 && ih0 + (kh1 - 1) * g.dil[1] >= g.in[1]) --kh1;
  for (int64_t ow = 0; ow < lo; ++ow) yr[ow] = DwPixel(p, oh, ow);
  for (int64_t ow = lo;; ow += 8) {
    if (ow > last_vec) ow = last_vec;
    __m256 acc = vbias;
    for (int64_t kh = kh0; kh < kh1; ++kh) {
      const float* xr = p.x + (ih0 + kh * g.dil[1]) * g.in[2] + (ow * kS - g.pad_b[2]);
      const float* wr = p.w + kh * kw_n;
      for (int64_t kw = 0; kw < kw_n; ++kw) {
        const float* src = xr + kw * dw;
        __m256 v;
        if (kS == 1) {
          v = _mm256_loadu_ps(src);
        } else {
          const __m256 a = _mm256_loadu_ps(src), b = _mm256_loadu_ps(src + 8);
          v = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
          v = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8));
        }
        acc = _mm256_fmadd_ps(_mm256_broadcast_ss(wr + kw), v, acc);
      }
    }
    if (clamp) acc = _mm256_min_ps(_mm256_max_ps(acc, vlo), vhi);
    _mm256_storeu_ps(yr + ow, acc);
    if (ow == last_vec) break;
  }
  for (int64_t ow = last_vec + 8; ow < g.out[2]; ++ow) yr[ow] = DwPixel(p, oh, ow);
}

// Eight output columns at a time, accumulated in a register over all kernel taps. kS is the
// horizontal stride (1, or 2 de-interleaving two loads); kKw > 0 fixes the kernel width at
// compile time, 0 reads it at run time. Columns whose taps leave the row use DwPixel; the
// last interior vector is placed to end exactly at the interior's end (overlapping the
// previous one) instead of leaving a scalar tail.
template <int kS, int kKw>
__attribute__((target("avx2,fma"))) void DwPlaneAvx2T(const DwPlane& p) {
  const ConvGeometry& g = *p.g;
  int64_t lo, hi;
  DwInterior(g, &lo, &hi);
  // A stride-2 vector reads 16 floats from its first input column; the 16th is only
  // inside the row when the next output column is interior too.
  const int64_t last_vec = kS == 1 ? hi - 8 : hi - 9;
  for (int64_t oh = 0; oh < g.out[1]; ++oh) DwRowAvx2T<kS, kKw>(p, oh, lo, last_vec);
}

// Columns 0, 2, ..., 14 of src (8 floats) and the odd ones, from two loads.
__attribute__((target("avx2,fma"))) inline void Deinterleave(const float* src, __m256* even,
                                                             __m256* odd) {
  const __m256 a = _mm256_loadu_ps(src), b = _mm256_loadu_ps(src + 8);
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(
      _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8));
}

// 3x3, dilation 1 (MobileNet's depthwise): two output rows per pass with the nine weights
// held in registers, so every input vector loaded feeds both rows (stride 1: 4 input rows
// for 2 output rows instead of 6; stride 2: 5 instead of 6, and the kw = 0 / 1 taps share
// one de-interleave). Rows whose taps leave the plane, and a last unpaired row, take
// DwRowAvx2T.
template <int kS>
__attribute__((target("avx2,fma"))) void DwPlane3x3Avx2(const DwPlane& p) {
  const ConvGeometry& g = *p.g;
  int64_t lo, hi;
  DwInterior(g, &lo, &hi);
  const int64_t last_vec = kS == 1 ? hi - 8 : hi - 9;
  if (last_vec < lo) return DwPlaneAvx2T<kS, 3>(p);
  __m256 w[9];
  for (int i = 0; i < 9; ++i) w[i] = _mm256_broadcast_ss(p.w + i);
  const __m256 vbias = _mm256_set1_ps(p.bias);
  const bool clamp = p.act->clamp;
  const int64_t W = g.in[2], OW = g.out[2], sh = g.stride[1];
  constexpr int kRows = 3 + kS;  // input rows feeding two output rows
  for (int64_t oh = 0; oh < g.out[1];) {
    const int64_t ih0 = oh * sh - g.pad_b[1];
    const bool pair = oh + 1 < g.out[1] && sh == kS && ih0 >= 0 && ih0 + kRows - 1 < g.in[1];
    if (!pair) {
      DwRowAvx2T<kS, 3>(p, oh, lo, last_vec);
      ++oh;
      continue;
    }
    float* y0 = p.y + oh * OW;
    float* y1 = y0 + OW;
    for (int64_t ow = 0; ow < lo; ++ow) {
      y0[ow] = DwPixel(p, oh, ow);
      y1[ow] = DwPixel(p, oh + 1, ow);
    }
    for (int64_t ow = lo;; ow += 8) {
      if (ow > last_vec) ow = last_vec;
      __m256 acc0 = vbias, acc1 = vbias;
      const float* x0 = p.x + ih0 * W + (ow * kS - g.pad_b[2]);
      for (int r = 0; r < kRows; ++r) {
        const float* xr = x0 + r * W;
        __m256 v[3];
        if (kS == 1) {
          v[0] = _mm256_loadu_ps(xr);
          v[1] = _mm256_loadu_ps(xr + 1);
          v[2] = _mm256_loadu_ps(xr + 2);
        } else {
          __m256 unused;
          Deinterleave(xr, &v[0], &v[1]);
          Deinterleave(xr + 2, &v[2], &unused);
        }
        if (r < 3)
          for (int kw = 0; kw < 3; ++kw) acc0 = _mm256_fmadd_ps(w[r * 3 + kw], v[kw], acc0);
        if (r >= kS)
          for (int kw = 0; kw < 3; ++kw)
            acc1 = _mm256_fmadd_ps(w[(r - kS) * 3 + kw], v[kw], acc1);
      }
      if (clamp) {
        const __m256 vlo = _mm256_set1_ps(p.act->lo), vhi = _mm256_set1_ps(p.act->hi);
        acc0 = _mm256_min_ps(_mm256_max_ps(acc0, vlo), vhi);
        acc1 = _mm256_min_ps(_mm256_max_ps(acc1, vlo), vhi);
      }
      _mm256_storeu_ps(y0 + ow, acc0);
      _mm256_storeu_ps(y1 + ow, acc1);
      if (ow == last_vec) break;
    }
    for (int64_t ow = last_vec + 8; ow < OW; ++ow) {
      y0[ow] = DwPixel(p, oh, ow);
      y1[ow] = DwPixel(p, oh + 1, ow);
    }
    oh += 2;
  }
}

void DwPlaneAvx2(const DwPlane& p) {
  const ConvGeometry& g = *p.g;
  const bool k3 = g.k[2] == 3;
  const bool k3x3 = k3 && g.k[1] == 3 && g.dil[1] == 1 && g.dil[2] == 1;
  if (g.stride[2] == 1) {
    if (k3x3 && g.stride[1] == 1) return DwPlane3x3Avx2<1>(p);
    return k3 ? DwPlaneAvx2T<1, 3>(p) : DwPlaneAvx2T<1, 0>(p);
  }
  if (g.stride[2] == 2) {
    if (k3x3 && g.stride[1] == 2) return DwPlane3x3Avx2<2>(p);
    return k3 ? DwPlaneAvx2T<2, 3>(p) : DwPlaneAvx2T<2, 0>(p);
  }
  DwPlaneScalar(p);
}
#endif

template <Isa kIsa>
class ConvKernel : public Kernel {
 public:
  explicit ConvKernel(const KernelInit& init)
      : attrs_(ConvAttrs::Read(init.node)), act_(gemm_util::ParseActivation(init.node)) {
    const ir::Tensor* w = init.constant_inputs.size() > 1 ? init.constant_inputs[1] : nullptr;
    if (!w || w->dtype() != ir::DType::kFloat32 || w->rank() < 3 || w->numel() == 0) return;
    const int64_t group = attrs_.group;
    const int64_t m = w->shape()[0];
    if (group < 1 || m % group != 0) return;  // Run() reports the error with the shapes
    const int64_t mg = m / group;
    const int64_t kdim = static_cast<int64_t>(w->numel()) / m;
    if (w->shape()[1] == 1 && w->rank() <= 4) return;  // depthwise-capable: read W directly
    for (int64_t gi = 0; gi < group; ++gi)
      packed_w_.push_back(PackA(kIsa, false, mg, kdim, w->data<float>() + gi * mg * kdim, kdim));
    packed_shape_ = w->shape();
  }

  void Run(KernelContext& ctx) override {
    const conv_util::FloatConvIo io = conv_util::BindFloatConv(ctx, attrs_, conv_util::ConvForward);
    if (!io.y) return;
    const ConvGeometry& g = io.g;
    const ir::Tensor& w = *io.w;
    float* yd = io.y;
    const float* xd = io.x;
    const float* wd = io.wd;
    const float* bd = io.b;
    ThreadPool& pool = ctx.pool();

    if (g.cg == 1 && g.rank <= 2) {
      RunDepthwise(g, xd, wd, bd, yd, pool);
      return;
    }
    const int64_t kdim = g.cg * g.k_size();
    const int64_t out_size = g.out_size(), in_size = g.in_size();
    const bool pointwise = g.k_size() == 1 && g.stride[0] == 1 && g.stride[1] == 1 &&
                           g.stride[2] == 1 && g.pad_b[0] == 0 && g.pad_b[1] == 0 &&
                           g.pad_b[2] == 0 && out_size == in_size;
    const bool use_packed = !packed_w_.empty() && w.shape() == packed_shape_;
    const int nr = GemmNr(kIsa);
    thread_local std::vector<float> col;
    const Im2ColRows rows(pointwise ? ConvGeometry{} : g);
    if (!pointwise) {
      const int64_t need = PackedBSize(kIsa, kdim, out_size);
      if (col.size() < static_cast<size_t>(need)) col.resize(static_cast<size_t>(need));
    }
    for (int64_t n = 0; n < g.n; ++n) {
      for (int64_t gi = 0; gi < g.group; ++gi) {
        const float* xg = xd + (n * g.c + gi * g.cg) * in_size;
        float* yg = yd + (n * g.m + gi * g.mg) * out_size;
        GemmEpilogue ep = act_;
        if (bd) {
          ep.bias_kind = GemmEpilogue::Bias::kPerRow;
          ep.bias = bd + gi * g.mg;
        }
        const GemmOperand oa = use_packed ? GemmOperand::Packed(packed_w_[gi])
                                          : GemmOperand::Raw(wd + gi * g.mg * kdim, kdim);
        GemmOperand ob;
        if (pointwise) {
          ob = GemmOperand::Raw(xg, in_size);
        } else {
          float* dst = col.data();
          const int64_t panels = (out_size + nr - 1) / nr;
          pool.ParallelFor(panels, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, kdim * nr)),
                           [&](int64_t lo, int64_t hi) {
                             if (g.rank <= 2)
                               Im2ColPanels2D(g, xg, lo, hi, nr, dst);
                             else
                               Im2ColPanels(g, rows, xg, lo, hi, nr, dst);
                           });
          ob = GemmOperand::PackedView(dst, kIsa, out_size, kdim);
        }
        SgemmEx(kIsa, g.mg, out_size, kdim, 1.f, oa, ob, 0.f, yg, out_size, &pool, &ep);
      }
    }
  }

 private:
  void RunDepthwise(const ConvGeometry& g, const float* xd, const float* wd, const float* bd,
                    float* yd, ThreadPool& pool) const {
    const int64_t planes = g.n * g.m;
    const int64_t in_size = g.in_size(), out_size = g.out_size(), ks = g.k_size();
    const GemmEpilogue* act = &act_;
    pool.ParallelFor(planes, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t n = t / g.m, m = t % g.m, gi = m / g.mg;
        DwPlane p{&g, xd + (n * g.c + gi) * in_size, wd + m * ks, bd ? bd[m] : 0.f, act,
                  yd + t * out_size};
#if defined(__x86_64__)
        if (kIsa != Isa::kScalar) {
          DwPlaneAvx2(p);
          continue;
        }
#endif
        DwPlaneScalar(p);
      }
    });
  }

  ConvAttrs attrs_;
  GemmEpilogue act_;
  std::vector<PackedMatrix> packed_w_;
  std::vector<int64_t> packed_shape_;
};

template <Isa kIsa>
std::unique_ptr<Kernel> CreateConv(const KernelInit& init) {
  return std::make_unique<ConvKernel<kIsa>>(init);
}

}  // namespace

void RegisterConvTransposeKernels(KernelRegistry& r);

void RegisterConvKernels(KernelRegistry& r) {
  using ir::DType;
  r.Add({"Conv", "", DType::kFloat32, Isa::kScalar, "f32_conv__ref", CreateConv<Isa::kScalar>});
  r.Add({"FusedConv", "com.microsoft", DType::kFloat32, Isa::kScalar, "f32_fused_conv__ref",
         CreateConv<Isa::kScalar>});
#if defined(__x86_64__)
  r.Add({"Conv", "", DType::kFloat32, Isa::kAvx2, "f32_conv__avx2_6x16",
         CreateConv<Isa::kAvx2>});
  r.Add({"FusedConv", "com.microsoft", DType::kFloat32, Isa::kAvx2,
         "f32_fused_conv__avx2_6x16", CreateConv<Isa::kAvx2>});
  r.Add({"Conv", "", DType::kFloat32, Isa::kAvx512, "f32_conv__avx512_6x32",
         CreateConv<Isa::kAvx512>});
  r.Add({"FusedConv", "com.microsoft", DType::kFloat32, Isa::kAvx512,
         "f32_fused_conv__avx512_6x32", CreateConv<Isa::kAvx512>});
#endif
  RegisterConvTransposeKernels(r);
}

}  // namespace edgepress::runtime
