// ConvTranspose (1-D/2-D/3-D, groups, dilations, strides, pads, output_padding,
// output_shape, auto_pad, bias) as a GEMM followed by col2im, per image and group:
//   col[Mg*kprod, in] = W_g^T[Mg*kprod, Cg] x X_g[Cg, in]
// then every col entry is added to the output position it maps to (the transpose of
// Conv's im2col gather). Constant weights are packed once, already transposed.
// Entries: f32_conv_transpose__ref, __avx2_6x16, __avx512_6x32.
#include <algorithm>
#include <memory>
#include <vector>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/conv/conv_util.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/gemm/gemm_op_util.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

namespace {

using conv_util::ConvAttrs;
using conv_util::ConvGeometry;
using gemm_util::DimsToString;

// Col2Im for conv_util::TapsTileOutput geometries with the bias folded in: each output row is
// written once from KW col rows interleaved (no zero fill, no read-modify-write; the
// scattered += loop was most of a 2x2 stride-2 ConvTranspose's time).
void Col2ImDisjoint(const ConvGeometry& g, const float* col, const float* bias, int64_t m0,
                    int64_t m1, float* y) {
  const int64_t ks = g.k_size(), in_size = g.in_size(), out_size = g.out_size();
  const int64_t KH = g.k[1], KW = g.k[2], W = g.in[2], OW = g.out[2];
  for (int64_t m = m0; m < m1; ++m) {
    const float b = bias ? bias[m] : 0.f;
    for (int64_t kd = 0; kd < g.k[0]; ++kd) {
      for (int64_t id = 0; id < g.in[0]; ++id) {
        for (int64_t ih = 0; ih < g.in[1]; ++ih) {
          for (int64_t kh = 0; kh < KH; ++kh) {
            const int64_t od = id * g.k[0] + kd, oh = ih * KH + kh;
            float* dst = y + m * out_size + (od * g.out[1] + oh) * OW;
            const float* src =
                col + (m * ks + (kd * KH + kh) * KW) * in_size + (id * g.in[1] + ih) * W;
            if (KW == 2) {
              const float* s1 = src + in_size;
              for (int64_t iw = 0; iw < W; ++iw) {
                dst[2 * iw] = src[iw] + b;
                dst[2 * iw + 1] = s1[iw] + b;
              }
            } else {
              for (int64_t kw = 0; kw < KW; ++kw)
                for (int64_t iw = 0; iw < W; ++iw) dst[iw * KW + kw] = src[kw * in_size + iw] + b;
            }
          }
        }
      }
    }
  }
}

template <Isa kIsa>
class ConvTransposeKernel : public Kernel {
 public:
  explicit ConvTransposeKernel(const KernelInit& init) : attrs_(ConvAttrs::Read(init.node)) {
    const ir::Tensor* w = init.constant_inputs.size() > 1 ? init.constant_inputs[1] : nullptr;
    if (!w || w->dtype() != ir::DType::kFloat32 || w->rank() < 3 || w->numel() == 0) return;
    const int64_t group = attrs_.group, c = w->shape()[0];
    if (group < 1 || c % group != 0) return;  // Run() reports the error with the shapes
    const int64_t cg = c / group, rows = static_cast<int64_t>(w->numel()) / c;
    for (int64_t gi = 0; gi < group; ++gi)
      packed_w_.push_back(PackA(kIsa, true, rows, cg, w->data<float>() + gi * cg * rows, rows));
    packed_shape_ = w->shape();
  }

  void Run(KernelContext& ctx) override {
    const conv_util::FloatConvIo io = conv_util::BindFloatConv(ctx, attrs_, conv_util::ConvTransposeForward);
    if (!io.y) return;
    const ConvGeometry& g = io.g;
    const ir::Tensor& w = *io.w;
    float* yd = io.y;
    const float* xd = io.x;
    const float* wd = io.wd;
    const float* bd = io.b;
    const int64_t out_size = g.out_size(), in_size = g.in_size();
    const bool disjoint = conv_util::TapsTileOutput(g) && in_size > 0 && g.cg > 0;
    for (int64_t nm = 0; nm < g.n * g.m && !disjoint; ++nm)
      std::fill(yd + nm * out_size, yd + (nm + 1) * out_size, bd ? bd[nm % g.m] : 0.f);
    if (in_size == 0 || g.cg == 0) return;
    const int64_t rows = g.mg * g.k_size();
    const bool use_packed = !packed_w_.empty() && w.shape() == packed_shape_;
    thread_local std::vector<float> col;
    if (col.size() < static_cast<size_t>(rows * in_size))
      col.resize(static_cast<size_t>(rows * in_size));
    ThreadPool& pool = ctx.pool();
    for (int64_t n = 0; n < g.n; ++n) {
      for (int64_t gi = 0; gi < g.group; ++gi) {
        const float* xg = xd + (n * g.c + gi * g.cg) * in_size;
        float* yg = yd + (n * g.m + gi * g.mg) * out_size;
        const GemmOperand oa = use_packed ? GemmOperand::Packed(packed_w_[gi])
                                          : GemmOperand::Raw(wd + gi * g.cg * rows, rows, true);
        SgemmEx(kIsa, rows, in_size, g.cg, 1.f, oa, GemmOperand::Raw(xg, in_size), 0.f,
                col.data(), in_size, &pool);
        const float* cd = col.data();
        const float* bg = bd ? bd + gi * g.mg : nullptr;
        pool.ParallelFor(g.mg, 1, [&](int64_t lo, int64_t hi) {
          if (disjoint)
            Col2ImDisjoint(g, cd, bg, lo, hi, yg);
          else
            conv_util::Col2ImAdd(g, cd, lo, hi, yg);
        });
      }
    }
  }

 private:
  ConvAttrs attrs_;
  std::vector<PackedMatrix> packed_w_;
  std::vector<int64_t> packed_shape_;
};

template <Isa kIsa>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  return std::make_unique<ConvTransposeKernel<kIsa>>(init);
}

}  // namespace

// Called from RegisterConvKernels (conv.cc), so all_kernels lists one conv family.
void RegisterConvTransposeKernels(KernelRegistry& r) {
  using ir::DType;
  r.Add({"ConvTranspose", "", DType::kFloat32, Isa::kScalar, "f32_conv_transpose__ref",
         Create<Isa::kScalar>});
#if defined(__x86_64__)
  r.Add({"ConvTranspose", "", DType::kFloat32, Isa::kAvx2, "f32_conv_transpose__avx2_6x16",
         Create<Isa::kAvx2>});
  r.Add({"ConvTranspose", "", DType::kFloat32, Isa::kAvx512, "f32_conv_transpose__avx512_6x32",
         Create<Isa::kAvx512>});
#endif
}

}  // namespace edgepress::runtime
