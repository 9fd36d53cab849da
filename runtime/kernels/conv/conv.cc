// Conv (1-D/2-D/3-D, NCHW, groups, dilations, strides, pads, auto_pad, bias) and
// com.microsoft FusedConv (Conv + Relu/Clip, or HardSigmoid/HardSwish: conv_activation.h),
// as GEMMs per image and group:
//   Y_g[Mg, out] = W_g[Mg, Cg*kprod] x patches[Cg*kprod, out]  (+ bias, activation)
// The weights are constant in real models, so create() packs each W_g once as the GEMM's
// A operand. Lowerings:
//  * AVX2/AVX-512, 1-D and 2-D: implicit GEMM (conv_implicit.h) over a zero-padded,
//    stride-phase-split copy of X; no im2col matrix. AVX-512 uses its own 12x32 tile.
//    A 1x1 stride-1 unpadded conv reads X in place (no copy); on a 1x1 plane
//    (squeeze-excite) it is a GEMV with W^T instead (RunOnePixel). On AVX-512 a geometry
//    with >= 256 output channels whose 12x32 tiles would compute 25% more padding than 7x64
//    pixel-major tiles (7x7 planes) runs those (conv_pixel_major.cc), W^T packed on first
//    use; pointwise convs by their own rule there (PreferPixelMajor).
//    EDGEPRESS_CONV_PIXEL_MAJOR=0 / =1 forces the choice (tests, benchmarks).
//    Both layouts prefetch the next weights while a tile runs (inside a model they come
//    from L3); EDGEPRESS_CONV_PREFETCH=0 turns that off (A/B runs).
//    KxK convs with >= 64-ish output channels and K >= 256 on AVX-512, any K on AVX2
//    (conv_direct::Prefer: ResNet's 3x3 layers) run the direct kernel instead
//    (conv_direct.h: NCHW in and out, weights packed at creation, no per-call packing).
//    On AVX2, 1x1 convs whose plane leaves the 16-pixel panels mostly padding (7x7) run it
//    too (conv_direct::PreferPointwise), their weights packed on first use.
//    EDGEPRESS_CONV_DIRECT=0 / =1 forces it off / on wherever its geometry allows.
//  * AVX-512, a 3x3 stem over 1-4 input channels (conv_stem.h) that the direct kernel does
//    not take: direct, no GEMM (EDGEPRESS_CONV_STEM=0 sends it to the implicit GEMM).
//  * depthwise (one input channel per group, rank <= 2): direct planes (depthwise.h); on
//    AVX2, 5x5 planes of <= 14 columns eight at a time, channels across the lanes
//    (depthwise::Planes8Preferred; EDGEPRESS_DW_PLANES8=0: one by one).
//  * otherwise (the reference entry, 3-D): im2col written straight into the GEMM's packed-B
//    panels, so the tests compare the implicit path with an independent lowering.
// Bias and activation are the GEMM epilogue, so Y is written once. FusedConv's optional
// sum input Z (Y's shape; Y = activation(conv + B + Z), as onnxruntime defines it) is added
// in the implicit path's tile store; the reference GEMM starts from a copy of Z (beta = 1),
// depthwise planes add it after the plane.
// Entries: f32_conv__ref (portable micro-kernel and direct loops), f32_conv__avx2_6x16,
// f32_conv__avx512_12x32.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/conv/conv_activation.h"
#include "runtime/kernels/conv/conv_direct.h"
#include "runtime/kernels/conv/conv_implicit.h"
#include "runtime/kernels/conv/conv_stem.h"
#include "runtime/kernels/conv/conv_util.h"
#include "runtime/kernels/conv/depthwise/depthwise.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/gemm/gemm_op_util.h"
#include "runtime/thread_pool.h"

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

template <Isa kIsa>
class ConvKernel : public Kernel {
 public:
  explicit ConvKernel(const KernelInit& init)
      : attrs_(ConvAttrs::Read(init.node)),
        act_(conv_act::ParseConvActivation(init.node, &post_)) {
    if (const char* st = std::getenv("EDGEPRESS_CONV_STEM"); st && *st == '0') stem_direct_ = false;
    if (const char* p8 = std::getenv("EDGEPRESS_DW_PLANES8"); p8 && *p8 == '0') planes8_ = false;
    const ir::Tensor* w = init.constant_inputs.size() > 1 ? init.constant_inputs[1] : nullptr;
    if (!w || w->dtype() != ir::DType::kFloat32 || w->rank() < 3 || w->numel() == 0) return;
    const int64_t group = attrs_.group;
    const int64_t m = w->shape()[0];
    if (group < 1 || m % group != 0) return;  // Run() reports the error with the shapes
    const int64_t mg = m / group;
    const int64_t kdim = static_cast<int64_t>(w->numel()) / m;
    if (w->shape()[1] == 1 && w->rank() <= 4) return;  // depthwise-capable: read W directly
    // 1-D/2-D convs take the implicit GEMM, whose A panels have their own row count on
    // AVX-512.
    implicit_layout_ = kIsa != Isa::kScalar && w->rank() <= 4;
    if (const char* pm = std::getenv("EDGEPRESS_CONV_PIXEL_MAJOR"); pm && (*pm == '0' || *pm == '1'))
      pixel_major_env_ = *pm == '1' ? 1 : 0;
    if (const char* d = std::getenv("EDGEPRESS_CONV_DIRECT"); d && (*d == '0' || *d == '1'))
      direct_env_ = *d == '1' ? 1 : 0;
    // A 2-D KxK conv on AVX-512 or AVX2 that conv_direct::Prefer picks (or any, under
    // EDGEPRESS_CONV_DIRECT=1) runs the direct kernel: only its weight layout is packed
    // (Run falls back to the implicit GEMM with per-call packing for a geometry the direct
    // kernel does not handle, e.g. a column stride of 3).
    const int64_t taps = w->rank() == 4 ? w->shape()[2] * w->shape()[3] : 1;
    const bool direct = direct_env_ == 1 ? taps > 1
                                         : direct_env_ == -1 &&
                                               conv_direct::Prefer(kIsa, mg, w->shape()[1], taps);
    if (conv_direct::OcBlock(kIsa, mg) > 0 && w->rank() == 4 && direct) {
      for (int64_t gi = 0; gi < group; ++gi)
        packed_direct_.push_back(conv_direct::PackWeights(kIsa, mg, w->shape()[1], taps,
                                                          w->data<float>() + gi * mg * kdim));
      packed_shape_ = w->shape();
      return;
    }
    for (int64_t gi = 0; gi < group; ++gi) {
      const float* wg = w->data<float>() + gi * mg * kdim;
      packed_w_.push_back(implicit_layout_ ? conv_implicit::PackWeights(kIsa, mg, kdim, wg)
                                           : PackA(kIsa, false, mg, kdim, wg, kdim));
    }
    packed_shape_ = w->shape();
  }

  // The profile and Session::Kernels() name the direct kernel where creation chose it.
  std::string Variant() const override {
    if (packed_direct_.empty() && !pw_direct_used_) return std::string();
    const int block = !packed_direct_.empty() ? packed_direct_[0].oc_block
                                              : packed_pw_direct_[0].oc_block;
    return std::string(block == 24 ? "direct 4x" : "direct 6x") + std::to_string(block);
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
    const float* zd = SumInput(ctx, g);
    ThreadPool& pool = ctx.pool();

    if (g.cg == 1 && g.rank <= 2) {
      RunDepthwise(g, xd, wd, bd, zd, yd, pool);
      return;
    }
    const int64_t kdim = g.cg * g.k_size();
    const int64_t out_size = g.out_size(), in_size = g.in_size();
    const bool pointwise = g.k_size() == 1 && g.stride[0] == 1 && g.stride[1] == 1 &&
                           g.stride[2] == 1 && g.pad_b[0] == 0 && g.pad_b[1] == 0 &&
                           g.pad_b[2] == 0 && out_size == in_size;
    const bool packed_for_shape = !packed_w_.empty() && w.shape() == packed_shape_;
    if (pointwise && out_size == 1 && g.group == 1 && packed_for_shape) {
      RunOnePixel(g, xd, wd, bd, zd, yd, pool);
      conv_act::Apply(kIsa, post_, yd, 1, g.n * g.m, g.n * g.m);  // a few hundred floats
      return;
    }
    if (!packed_direct_.empty() && w.shape() == packed_shape_ && conv_direct::Handles(g)) {
      RunDirect(g, packed_direct_, xd, bd, zd, yd, pool);
      return;
    }
    // AVX2 1x1 convs on small planes (conv_direct::PreferPointwise): the direct kernel, its
    // weights packed on the first such call (the plane size is not known at creation).
    if (kIsa == Isa::kAvx2 && pointwise && packed_for_shape && implicit_layout_ &&
        direct_env_ != 0 &&
        (direct_env_ == 1 ? conv_direct::Handles(g) : conv_direct::PreferPointwise(kIsa, g))) {
      std::call_once(pw_direct_once_, [&] {
        for (int64_t gi = 0; gi < g.group; ++gi)
          packed_pw_direct_.push_back(
              conv_direct::PackWeights(kIsa, g.mg, g.cg, 1, wd + gi * g.mg * g.cg));
        pw_direct_used_ = true;
      });
      RunDirect(g, packed_pw_direct_, xd, bd, zd, yd, pool);
      return;
    }
#if defined(__x86_64__)
    if (kIsa == Isa::kAvx512 && stem_direct_ && conv_stem::Handles(g)) {
      conv_stem::RunAvx512(g, xd, wd, bd, zd, act_, yd, pool, post_);
      return;
    }
#endif
    if (kIsa != Isa::kScalar && conv_implicit::Handles(g)) {
      RunImplicit(g, xd, wd, bd, zd, packed_for_shape && implicit_layout_, pointwise, yd, pool);
      return;
    }
    const bool use_packed = packed_for_shape && !implicit_layout_;
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
        float beta = 0.f;
        if (zd) {
          const float* zg = zd + (n * g.m + gi * g.mg) * out_size;
          std::copy(zg, zg + g.mg * out_size, yg);
          beta = 1.f;
        }
        SgemmEx(kIsa, g.mg, out_size, kdim, 1.f, oa, ob, beta, yg, out_size, &pool, &ep);
      }
    }
    PostPass(g, yd, pool);
  }

 private:
  // The direct kernel (conv_direct.h) with weights packed for it, per image and group.
  void RunDirect(const ConvGeometry& g, const std::vector<conv_direct::PackedWeights>& packed,
                 const float* xd, const float* bd, const float* zd, float* yd,
                 ThreadPool& pool) const {
    const int64_t in_size = g.in_size(), out_size = g.out_size();
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t gi = 0; gi < g.group; ++gi)
        conv_direct::Run(kIsa, g, xd + (n * g.c + gi * g.cg) * in_size, packed[gi], act_, post_,
                         bd ? bd + gi * g.mg : nullptr,
                         zd ? zd + (n * g.m + gi * g.mg) * out_size : nullptr,
                         yd + (n * g.m + gi * g.mg) * out_size, pool);
  }

  // HardSigmoid/HardSwish over all of Y after a lowering that does not apply them per
  // block (the im2col reference): one more pass over Y, split over threads.
  void PostPass(const ConvGeometry& g, float* yd, ThreadPool& pool) const {
    if (!post_.any()) return;
    const int64_t rows = g.n * g.m, out_size = g.out_size();
    pool.ParallelFor(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, out_size)),
                     [&](int64_t lo, int64_t hi) {
                       conv_act::Apply(kIsa, post_, yd + lo * out_size, hi - lo, out_size,
                                       out_size);
                     });
  }

  // FusedConv's optional fourth input Z, checked against Y's shape (no broadcasting).
  const float* SumInput(KernelContext& ctx, const ConvGeometry& g) const {
    const ir::Tensor* z = gemm_util::OptionalFloatInput(ctx, 3, "Z");
    if (!z) return nullptr;
    if (z->shape() != g.OutputShape())
      ThrowInvalid(ctx.node().describe() + ": sum input Z of shape " + DimsToString(z->shape()) +
                   " does not match the output shape " + DimsToString(g.OutputShape()));
    return z->data<float>();
  }

  // A 1x1 conv on a 1x1 plane (squeeze-excite blocks after GlobalAveragePool) is a GEMV,
  // y = W x. As Y = W X it had N = 1 and the GEMM padded that to a full 16/32-column
  // panel; as y^T = x^T W^T it takes the GEMM's M = 1 path, streaming W^T once. W^T is
  // packed on the first such call (the plane size is not known at creation), and only
  // for these convs.
  void RunOnePixel(const ConvGeometry& g, const float* xd, const float* wd, const float* bd,
                   const float* zd, float* yd, ThreadPool& pool) {
    const int64_t kdim = g.cg;
    std::call_once(wt_once_, [&] { packed_wt_ = PackB(kIsa, true, kdim, g.m, wd, kdim); });
    GemmEpilogue ep = act_;
    if (bd) {
      ep.bias_kind = GemmEpilogue::Bias::kPerCol;
      ep.bias = bd;
    }
    if (zd) std::copy(zd, zd + g.n * g.m, yd);
    for (int64_t n = 0; n < g.n; ++n)
      SgemmEx(kIsa, 1, g.m, kdim, 1.f, GemmOperand::Raw(xd + n * g.c, kdim),
              GemmOperand::Packed(packed_wt_), zd ? 1.f : 0.f, yd + n * g.m, g.m, &pool, &ep);
  }

  // The AVX2/AVX-512 path for 1-D and 2-D convs (conv_implicit.h); the reference entry
  // keeps the im2col path above, so the tests compare two independent lowerings.
  void RunImplicit(const ConvGeometry& g, const float* xd, const float* wd, const float* bd,
                   const float* zd, bool use_packed, bool pointwise, float* yd,
                   ThreadPool& pool) const {
    const int64_t kdim = g.cg * g.k_size(), in_size = g.in_size(), out_size = g.out_size();
    const std::shared_ptr<const conv_implicit::Plan> plan_ptr = PlanFor(g, pointwise);
    const conv_implicit::Plan& plan = *plan_ptr;
    thread_local std::vector<float> source;
    std::vector<PackedMatrix> local_w;
    if (!use_packed)  // weights computed at run time: packed per call
      for (int64_t gi = 0; gi < g.group; ++gi)
        local_w.push_back(conv_implicit::PackWeights(kIsa, g.mg, kdim, wd + gi * g.mg * kdim));
    const std::vector<PackedMatrix>& pw = use_packed ? packed_w_ : local_w;
    const bool pixel_major = use_packed && conv_implicit::ConvNr(kIsa) == 32 &&
                             (pixel_major_env_ >= 0 ? pixel_major_env_ == 1
                                                    : conv_implicit::PreferPixelMajor(kIsa, g, plan));
    if (pixel_major)
      std::call_once(pm_once_, [&] {
        for (int64_t gi = 0; gi < g.group; ++gi)
          packed_pm_.push_back(
              conv_implicit::PackWeightsPixelMajor(g.mg, kdim, wd + gi * g.mg * kdim));
      });
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t gi = 0; gi < g.group; ++gi)
        conv_implicit::Run(kIsa, g, plan, xd + (n * g.c + gi * g.cg) * in_size, pw[gi], act_,
                           bd ? bd + gi * g.mg : nullptr,
                           zd ? zd + (n * g.m + gi * g.mg) * out_size : nullptr,
                           yd + (n * g.m + gi * g.mg) * out_size, &source, pool,
                           pixel_major ? &packed_pm_[gi] : nullptr, post_);
  }

  // The plan depends only on the shapes, which rarely change between runs: kept, and
  // rebuilt when they do (ResNet-18's layer4 rebuilt a 4608-entry offset table per call).
  std::shared_ptr<const conv_implicit::Plan> PlanFor(const ConvGeometry& g, bool pointwise) const {
    auto same = [](const ConvGeometry& a, const ConvGeometry& b) {
      for (int d = 0; d < 3; ++d)
        if (a.in[d] != b.in[d] || a.out[d] != b.out[d] || a.k[d] != b.k[d] ||
            a.stride[d] != b.stride[d] || a.dil[d] != b.dil[d] || a.pad_b[d] != b.pad_b[d])
          return false;
      return a.cg == b.cg;
    };
    std::lock_guard<std::mutex> lock(plan_mu_);
    if (!plan_ || !same(plan_geometry_, g) || plan_pointwise_ != pointwise) {
      plan_ = std::make_shared<const conv_implicit::Plan>(
          pointwise ? conv_implicit::MakePointwisePlan(g)
                    : conv_implicit::MakePlan(g, conv_implicit::ConvNr(kIsa)));
      plan_geometry_ = g;
      plan_pointwise_ = pointwise;
    }
    return plan_;
  }

  void RunDepthwise(const ConvGeometry& g, const float* xd, const float* wd, const float* bd,
                    const float* zd, float* yd, ThreadPool& pool) const {
    const int64_t planes = g.n * g.m;
    const int64_t in_size = g.in_size(), out_size = g.out_size(), ks = g.k_size();
    depthwise::DwGeometry dg;
    dg.h = g.in[1];
    dg.w = g.in[2];
    dg.oh = g.out[1];
    dg.ow = g.out[2];
    dg.kh = g.k[1];
    dg.kw = g.k[2];
    dg.stride_h = g.stride[1];
    dg.stride_w = g.stride[2];
    dg.dil_h = g.dil[1];
    dg.dil_w = g.dil[2];
    dg.pad_t = g.pad_b[1];
    dg.pad_l = g.pad_b[2];
    depthwise::PlaneFn plane = depthwise::PlaneRef;
#if defined(__x86_64__)
    if (kIsa == Isa::kAvx2) plane = depthwise::PlaneAvx2;
    if (kIsa == Isa::kAvx512) plane = depthwise::PlaneAvx512;
#endif
    depthwise::DwEpilogue ep;
    ep.clamp = act_.clamp && !zd;  // with Z: clamped after the sum (AddSum)
    ep.lo = act_.lo;
    ep.hi = act_.hi;
    if (!zd) ep.post = post_;
    // AVX2, small planes of one input channel each: eight planes at a time, channels across
    // the lanes (depthwise::Planes8Avx2), in blocks of 8 channels of one image.
    bool planes8 = false;
#if defined(__x86_64__)
    planes8 = kIsa == Isa::kAvx2 && g.mg == 1 && planes8_ && depthwise::Planes8Preferred(dg);
#endif
    if (planes8) {
      const int64_t blocks = (g.m + 7) / 8;
      const int64_t grain = std::max<int64_t>(1, 512 / std::max<int64_t>(1, out_size * ks));
      pool.ParallelFor(g.n * blocks, grain, [&](int64_t lo, int64_t hi) {
        for (int64_t b = lo; b < hi; ++b) {
          const int64_t n = b / blocks, c0 = (b % blocks) * 8, t0 = n * g.m + c0;
          if (c0 + 8 > g.m) {  // the last 1..7 channels: one plane at a time
            PlanesOneByOne(g, dg, ep, xd, wd, bd, zd, yd, t0, n * g.m + g.m, plane);
            continue;
          }
          float bias8[8] = {};
          if (bd) std::copy(bd + c0, bd + c0 + 8, bias8);
#if defined(__x86_64__)
          depthwise::Planes8Avx2(dg, xd + (n * g.c + c0) * in_size, in_size, wd + c0 * ks, bias8,
                                 ep, yd + t0 * out_size, out_size);
#endif
          if (zd)
            for (int64_t t = t0; t < t0 + 8; ++t) AddSum(zd + t * out_size, out_size, yd + t * out_size);
        }
      });
      return;
    }
    // A few planes per chunk: one MobileNet plane can be as small as 7x7.
    const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, out_size * ks));
    pool.ParallelFor(planes, grain, [&](int64_t lo, int64_t hi) {
      PlanesOneByOne(g, dg, ep, xd, wd, bd, zd, yd, lo, hi, plane);
    });
  }

  // Depthwise planes [t0, t1) (t = image * M + channel), each by `plane`.
  void PlanesOneByOne(const ConvGeometry& g, const depthwise::DwGeometry& dg,
                      depthwise::DwEpilogue ep, const float* xd, const float* wd,
                      const float* bd, const float* zd, float* yd, int64_t t0, int64_t t1,
                      depthwise::PlaneFn plane) const {
    const int64_t in_size = g.in_size(), out_size = g.out_size(), ks = g.k_size();
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n = t / g.m, m = t % g.m, gi = m / g.mg;
      ep.bias = bd ? bd[m] : 0.f;
      float* yp = yd + t * out_size;
      plane(dg, xd + (n * g.c + gi) * in_size, wd + m * ks, ep, yp);
      if (zd) AddSum(zd + t * out_size, out_size, yp);  // the plane is still in L1/L2
    }
  }

  // FusedConv's sum Z into one depthwise plane, then the clamp and post-activation.
  void AddSum(const float* zp, int64_t out_size, float* yp) const {
    for (int64_t i = 0; i < out_size; ++i) {
      const float v = yp[i] + zp[i];
      yp[i] = act_.clamp ? std::min(std::max(v, act_.lo), act_.hi) : v;
    }
    conv_act::Apply(kIsa, post_, yp, 1, out_size, out_size);
  }

  ConvAttrs attrs_;
  conv_act::PostActivation post_;  // set by act_'s initializer: declared before it
  GemmEpilogue act_;
  std::vector<PackedMatrix> packed_w_;  // per group; for conv_implicit if implicit_layout_
  std::vector<int64_t> packed_shape_;
  bool implicit_layout_ = false;
  std::once_flag wt_once_;
  mutable std::mutex plan_mu_;
  mutable std::shared_ptr<const conv_implicit::Plan> plan_;
  mutable ConvGeometry plan_geometry_;
  mutable bool plan_pointwise_ = false;
  PackedMatrix packed_wt_;  // W^T as a packed B, for RunOnePixel
  std::vector<conv_direct::PackedWeights> packed_direct_;  // per group, conv_direct::PackWeights
  int direct_env_ = -1;       // EDGEPRESS_CONV_DIRECT: -1 automatic, 0 off, 1 forced
  int pixel_major_env_ = -1;  // EDGEPRESS_CONV_PIXEL_MAJOR: -1 automatic, 0 off, 1 forced
  bool stem_direct_ = true;   // EDGEPRESS_CONV_STEM=0: stems take the implicit GEMM
  bool planes8_ = true;       // EDGEPRESS_DW_PLANES8=0: small depthwise planes one by one
  std::once_flag pw_direct_once_;
  std::vector<conv_direct::PackedWeights> packed_pw_direct_;  // per group, 1x1 on AVX2
  std::atomic<bool> pw_direct_used_{false};  // for Variant(): packed_pw_direct_ is filled
  mutable std::once_flag pm_once_;
  mutable std::vector<PackedMatrix> packed_pm_;  // per group, conv_pixel_major.cc's W^T
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
  r.Add({"Conv", "", DType::kFloat32, Isa::kAvx512, "f32_conv__avx512_12x32",
         CreateConv<Isa::kAvx512>});
  r.Add({"FusedConv", "com.microsoft", DType::kFloat32, Isa::kAvx512,
         "f32_fused_conv__avx512_12x32", CreateConv<Isa::kAvx512>});
#endif
  RegisterConvTransposeKernels(r);
}

}  // namespace edgepress::runtime
