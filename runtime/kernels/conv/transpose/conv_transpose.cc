// ConvTranspose (1-D/2-D/3-D, groups, dilations, strides, pads, output_padding,
// output_shape, auto_pad, bias) as a GEMM followed by col2im, per image and group:
//   col[Mg*kprod, in] = W_g^T[Mg*kprod, Cg] x X_g[Cg, in]
// then every col entry is added to the output position it maps to (the transpose of
// Conv's im2col gather). Constant weights are packed once, already transposed. A 2-D
// ConvTranspose whose taps tile the output (kernel == stride, no pads) runs GEMM and store
// per chunk of input rows instead (RunDisjointChunks), the store vectorised for 2x2; on
// AVX-512 a 2x2 stride-2 one with constant weights is computed directly
// (conv_transpose_2x2.h), no GEMM.
// Entries: f32_conv_transpose__ref, __avx2_6x16, __avx512_6x32.
#include <algorithm>
#include <memory>
#include <vector>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/conv/transpose/conv_transpose_2x2.h"
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

// Output rows of input rows [ih0, ih1) of a 2-D TapsTileOutput geometry from a col block
// holding only those input rows' pixels (row stride ld), bias folded in: the row-chunked
// path below. KW == 2 (the FPN/segmentation-head upsampler) interleaves with AVX2 shuffles.
void Col2ImRows2D(const ConvGeometry& g, const float* col, int64_t ld, const float* bias,
                  int64_t ih0, int64_t ih1, bool simd, float* y);

#if defined(__x86_64__)
__attribute__((target("avx2"))) void InterleavePairsAvx2(const float* s0, const float* s1,
                                                        int64_t w, float b, float* dst) {
  const __m256 vb = _mm256_set1_ps(b);
  int64_t iw = 0;
  for (; iw + 8 <= w; iw += 8) {
    const __m256 a = _mm256_add_ps(_mm256_loadu_ps(s0 + iw), vb);
    const __m256 c = _mm256_add_ps(_mm256_loadu_ps(s1 + iw), vb);
    const __m256 lo = _mm256_unpacklo_ps(a, c), hi = _mm256_unpackhi_ps(a, c);
    _mm256_storeu_ps(dst + 2 * iw, _mm256_permute2f128_ps(lo, hi, 0x20));
    _mm256_storeu_ps(dst + 2 * iw + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
  }
  for (; iw < w; ++iw) {
    dst[2 * iw] = s0[iw] + b;
    dst[2 * iw + 1] = s1[iw] + b;
  }
}
#endif

void Col2ImRows2D(const ConvGeometry& g, const float* col, int64_t ld, const float* bias,
                  int64_t ih0, int64_t ih1, bool simd, float* y) {
  const int64_t ks = g.k_size(), out_size = g.out_size();
  const int64_t KH = g.k[1], KW = g.k[2], W = g.in[2], OW = g.out[2];
  for (int64_t m = 0; m < g.mg; ++m) {
    const float b = bias ? bias[m] : 0.f;
    for (int64_t ih = ih0; ih < ih1; ++ih) {
      for (int64_t kh = 0; kh < KH; ++kh) {
        float* dst = y + m * out_size + (ih * KH + kh) * OW;
        const float* src = col + (m * ks + kh * KW) * ld + (ih - ih0) * W;
#if defined(__x86_64__)
        if (simd && KW == 2) {
          InterleavePairsAvx2(src, src + ld, W, b, dst);
          continue;
        }
#endif
        (void)simd;
        for (int64_t kw = 0; kw < KW; ++kw)
          for (int64_t iw = 0; iw < W; ++iw) dst[iw * KW + kw] = src[kw * ld + iw] + b;
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
    if (kIsa == Isa::kAvx512 && w->rank() == 4 && w->shape()[2] == 2 && w->shape()[3] == 2)
      packed_2x2_ = conv_transpose_2x2::PackWeights(c, group, w->shape()[1], w->data<float>());
  }

  // 2-D kernel == stride, unpadded: the GEMM and the interleaving store run per chunk of
  // input rows, so each chunk's col block (<= 256 KiB) is still in L2 when it is stored,
  // and threads split the chunks. The whole-plane col of the detector's 2x2/2 head
  // (24 -> 24 channels on 80x80) was 2.4 MiB written and read back.
  void RunDisjointChunks(const ConvGeometry& g, const float* xd, const float* wd,
                         const float* bd, bool use_packed, float* yd, ThreadPool& pool) const {
    const int64_t rows = g.mg * g.k_size(), in_size = g.in_size(), out_size = g.out_size();
    const int64_t H = g.in[1], W = g.in[2];
    const int64_t rows_per_chunk =
        std::max<int64_t>(1, std::min<int64_t>(H, 65536 / std::max<int64_t>(1, rows * W)));
    const int64_t chunks = (H + rows_per_chunk - 1) / rows_per_chunk;
    for (int64_t n = 0; n < g.n; ++n) {
      for (int64_t gi = 0; gi < g.group; ++gi) {
        const float* xg = xd + (n * g.c + gi * g.cg) * in_size;
        float* yg = yd + (n * g.m + gi * g.mg) * out_size;
        const float* bg = bd ? bd + gi * g.mg : nullptr;
        const GemmOperand oa = use_packed ? GemmOperand::Packed(packed_w_[gi])
                                          : GemmOperand::Raw(wd + gi * g.cg * rows, rows, true);
        pool.ParallelFor(chunks, 1, [&](int64_t lo, int64_t hi) {
          thread_local std::vector<float> col;
          if (col.size() < static_cast<size_t>(rows * rows_per_chunk * W))
            col.resize(static_cast<size_t>(rows * rows_per_chunk * W));
          for (int64_t c = lo; c < hi; ++c) {
            const int64_t ih0 = c * rows_per_chunk, ih1 = std::min(H, ih0 + rows_per_chunk);
            const int64_t pix = (ih1 - ih0) * W;
            SgemmEx(kIsa, rows, pix, g.cg, 1.f, oa, GemmOperand::Raw(xg + ih0 * W, in_size), 0.f,
                    col.data(), pix, nullptr);
            Col2ImRows2D(g, col.data(), pix, bg, ih0, ih1, kIsa != Isa::kScalar, yg);
          }
        });
      }
    }
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
    ThreadPool& pool = ctx.pool();
    // The direct 2x2 kernel needs no column buffer: taken before it is sized.
#if defined(__x86_64__)
    if (use_packed && !packed_2x2_.empty() && conv_transpose_2x2::Handles(g)) {
      conv_transpose_2x2::RunAvx512(g, xd, packed_2x2_.data(), bd, yd, pool);
      return;
    }
#endif
    thread_local std::vector<float> col;
    if (col.size() < static_cast<size_t>(rows * in_size))
      col.resize(static_cast<size_t>(rows * in_size));
    if (disjoint && g.rank == 2 && g.in[0] == 1) {
      RunDisjointChunks(g, xd, wd, bd, use_packed, yd, pool);
      return;
    }
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
  std::vector<float> packed_2x2_;  // conv_transpose_2x2's layout (AVX-512, 2x2 weights)
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
