// edgepress::TernaryConv (docs/ops.md): Conv with 2-bit ternary weights, one scale per
// output channel. Inputs: X float [N, C, ...] (1-3 spatial dims); B ternary [M, Kp] with
// K = C/group * prod(kernel_shape) codes per output channel in the order of Conv's weight
// ([M, C/group, k...] flattened), Kp = TernaryPaddedK(K); scales float [M]; bias float [M],
// optional. Attributes: those of Conv (auto_pad, dilations, group, kernel_shape, pads,
// strides) plus w_shape (ints, required), the float weight's shape, which the shared conv
// geometry (conv_util.h) validates against X exactly as Conv does.
//
// Computation: per image and group, the input patches are gathered into rows
// ([out positions][K], zero where a tap falls in the padding) and multiplied by the group's
// ternary rows with TernaryMatMul (the tiles of ternary_matmul.h), then transposed into
// NC... order. Entries: ternary_conv__ref, ternary_conv__avx2, ternary_conv__avx512 (the
// TernaryMatMul path of the same ISA).
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/conv/conv_util.h"
#include "runtime/kernels/lowbit/ternary_matmul.h"

namespace edgepress::runtime {

namespace {

using conv_util::ConvGeometry;
using gemm_util::DimsToString;

// Rows [0, out_size) x K of image `x` (one group's cg channels): patch of output position p
// in the order (channel, k0, k1, k2).
void GatherPatches(const ConvGeometry& g, const float* x, float* rows) {
  const int64_t kprod = g.k_size(), K = g.cg * kprod;
  int64_t p = 0;
  for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
    for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
      for (int64_t o2 = 0; o2 < g.out[2]; ++o2, ++p) {
        float* row = rows + p * K;
        for (int64_t c = 0; c < g.cg; ++c) {
          const float* xc = x + c * g.in_size();
          int64_t t = c * kprod;
          for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
            const int64_t i0 = o0 * g.stride[0] - g.pad_b[0] + k0 * g.dil[0];
            for (int64_t k1 = 0; k1 < g.k[1]; ++k1) {
              const int64_t i1 = o1 * g.stride[1] - g.pad_b[1] + k1 * g.dil[1];
              for (int64_t k2 = 0; k2 < g.k[2]; ++k2, ++t) {
                const int64_t i2 = o2 * g.stride[2] - g.pad_b[2] + k2 * g.dil[2];
                const bool in =
                    i0 >= 0 && i0 < g.in[0] && i1 >= 0 && i1 < g.in[1] && i2 >= 0 && i2 < g.in[2];
                row[t] = in ? xc[(i0 * g.in[1] + i1) * g.in[2] + i2] : 0.f;
              }
            }
          }
        }
      }
}

template <Isa kIsa>
class TernaryConvKernel : public Kernel {
 public:
  explicit TernaryConvKernel(const KernelInit& init)
      : attrs_(conv_util::ConvAttrs::Read(init.node)) {
    if (!init.node.has_attr("w_shape"))
      ThrowInvalid(init.node.describe() + ": TernaryConv needs the attribute w_shape");
    w_shape_ = init.node.attr_ints("w_shape");
    if (w_shape_.size() < 3 || w_shape_.size() > 5)
      ThrowInvalid(init.node.describe() + ": w_shape " + DimsToString(w_shape_) +
                   " is not the shape of a 1-D, 2-D or 3-D convolution weight");
    for (int64_t d : w_shape_)
      if (d < 1 || d > conv_util::kMaxAttr)
        ThrowInvalid(init.node.describe() + ": w_shape " + DimsToString(w_shape_) +
                     " has a dimension outside [1, 2^31]");
  }

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = gemm_util::FloatInput(ctx, 0, "X");
    const ConvGeometry g = conv_util::ConvForward(node, attrs_, x.shape(), w_shape_);
    const int64_t K = g.cg * g.k_size();
    const ir::Tensor* b = ctx.input(1);
    if (!b || b->empty()) ThrowInvalid(node.describe() + ": missing input 1 (B)");
    if (b->dtype() != ir::DType::kTernary)
      ThrowUnsupported(node.describe() + ": input 1 (B) has dtype " + ir::DTypeName(b->dtype()) +
                       ", expected ternary");
    const std::vector<int64_t> want_b = {g.m, TernaryPaddedK(K)};
    if (b->shape() != want_b)
      ThrowInvalid(node.describe() + ": input 1 (B) has shape " + DimsToString(b->shape()) +
                   ", expected " + DimsToString(want_b) + " for w_shape " + DimsToString(w_shape_));
    const ir::Tensor& scales = gemm_util::FloatInput(ctx, 2, "scales");
    if (scales.numel() != static_cast<uint64_t>(g.m))
      ThrowInvalid(node.describe() + ": input 2 (scales) has shape " +
                   DimsToString(scales.shape()) + ", expected [" + std::to_string(g.m) + "]");
    const ir::Tensor* bias = gemm_util::OptionalFloatInput(ctx, 3, "bias");
    if (bias && bias->numel() != static_cast<uint64_t>(g.m))
      ThrowInvalid(node.describe() + ": input 3 (bias) has shape " + DimsToString(bias->shape()) +
                   ", expected [" + std::to_string(g.m) + "]");
    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kFloat32, g.OutputShape());
    if (y.numel() == 0) return;
    const int64_t out = g.out_size();
    std::vector<float> rows(static_cast<size_t>(out * K)), tmp(static_cast<size_t>(out * g.mg));
    const uint8_t* codes = static_cast<const uint8_t*>(b->raw());
    const float* bd = bias ? bias->data<float>() : nullptr;
    float* yd = y.mutable_data<float>();
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t grp = 0; grp < g.group; ++grp) {
        GatherPatches(g, x.data<float>() + (n * g.c + grp * g.cg) * g.in_size(), rows.data());
        TernaryWeights w;
        w.n = g.mg;
        w.k = K;
        w.kp = TernaryPaddedK(K);
        w.codes = codes + grp * g.mg * (w.kp / 4);
        w.scales = scales.data<float>() + grp * g.mg;
        TernaryMatMul(kIsa, rows.data(), out, w, bd ? bd + grp * g.mg : nullptr, tmp.data(),
                      &ctx.pool());
        float* yg = yd + (n * g.m + grp * g.mg) * out;
        for (int64_t p = 0; p < out; ++p)
          for (int64_t j = 0; j < g.mg; ++j) yg[j * out + p] = tmp[p * g.mg + j];
      }
  }

 private:
  conv_util::ConvAttrs attrs_;
  std::vector<int64_t> w_shape_;
};

template <Isa kIsa>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  return std::make_unique<TernaryConvKernel<kIsa>>(init);
}

}  // namespace

void RegisterTernaryConvKernels(KernelRegistry& r) {
  r.Add({"TernaryConv", "edgepress", ir::DType::kFloat32, Isa::kScalar, "ternary_conv__ref",
         Create<Isa::kScalar>});
#if defined(__x86_64__)
  r.Add({"TernaryConv", "edgepress", ir::DType::kFloat32, Isa::kAvx2, "ternary_conv__avx2",
         Create<Isa::kAvx2>});
  r.Add({"TernaryConv", "edgepress", ir::DType::kFloat32, Isa::kAvx512, "ternary_conv__avx512",
         Create<Isa::kAvx512>});
#endif
}

}  // namespace edgepress::runtime
