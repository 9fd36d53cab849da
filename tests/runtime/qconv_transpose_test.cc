// QLinearConvTranspose (runtime/kernels/conv/transpose/qconv_transpose.cc): every
// registered kernel equals the scalar reference exactly, and the reference agrees within 1 LSB with the QDQ
// definition (dequantize x and w, float ConvTranspose with the float bias, quantize y) at
// the detector's 2x2 stride-2 upsampling, 3x3 stride 2 with pads and output_padding,
// groups, dilation, 1-D, disjoint windows (kernel = stride: epilogue before the scatter)
// and overlapping ones (int32 col2im), inputs of several L2 chunks, per-channel weight zero points, uint8/int8 x, values at both
// ends of the range (saturation), a fused Relu, and the edgepress float-output form.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

using ir::DType;
using ir::Tensor;

template <typename T>
Tensor Scalar(DType dt, T v) {
  return Tensor::FromVector(dt, {}, std::vector<T>{v});
}

struct Case {
  int64_t c, m, group;
  std::vector<int64_t> in, k, strides, pads, out_pad, dil;
  const char* what;
};

template <typename X>
void RunCase(DType xt, const Case& s, bool relu, bool float_out, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int64_t> xshape = {1, s.c};
  xshape.insert(xshape.end(), s.in.begin(), s.in.end());
  std::vector<int64_t> wshape = {s.c, s.m / s.group};
  wshape.insert(wshape.end(), s.k.begin(), s.k.end());
  Tensor x(xt, xshape), w(DType::kInt8, wshape);
  std::uniform_int_distribution<int> dx(-128, 255), dw(-127, 127);
  for (uint64_t i = 0; i < x.numel(); ++i) x.mutable_data<X>()[i] = static_cast<X>(dx(rng));
  for (uint64_t i = 0; i < x.numel() / 8; ++i)  // a run of extremes: saturation
    x.mutable_data<X>()[i] = i % 2 ? std::numeric_limits<X>::max() : std::numeric_limits<X>::min();
  for (uint64_t i = 0; i < w.numel(); ++i) w.mutable_data<int8_t>()[i] = static_cast<int8_t>(dw(rng));
  const int64_t mg = s.m / s.group;
  std::vector<float> ws(static_cast<size_t>(mg));
  std::vector<int8_t> wz(static_cast<size_t>(mg));
  std::vector<int32_t> bias(static_cast<size_t>(s.m));
  for (int64_t i = 0; i < mg; ++i) {
    ws[static_cast<size_t>(i)] = 0.002f * static_cast<float>(1 + i % 3);
    wz[static_cast<size_t>(i)] = static_cast<int8_t>(i % 2 ? 3 : 0);
  }
  for (int64_t i = 0; i < s.m; ++i) bias[static_cast<size_t>(i)] = static_cast<int32_t>(i * 331 % 4000) - 2000;
  const bool s8 = xt == DType::kInt8;
  const float xs = 0.03f, ys = 0.4f;
  const int32_t xzp = s8 ? -5 : 130, yzp = s8 ? 3 : 110;
  std::vector<Tensor> in = {x,
                            Scalar<float>(DType::kFloat32, xs),
                            s8 ? Scalar<int8_t>(DType::kInt8, static_cast<int8_t>(xzp))
                               : Scalar<uint8_t>(DType::kUInt8, static_cast<uint8_t>(xzp)),
                            w,
                            Tensor::FromVector(DType::kFloat32, {mg}, ws),
                            Tensor::FromVector(DType::kInt8, {mg}, wz),
                            Scalar<float>(DType::kFloat32, ys),
                            s8 ? Scalar<int8_t>(DType::kInt8, static_cast<int8_t>(yzp))
                               : Scalar<uint8_t>(DType::kUInt8, static_cast<uint8_t>(yzp)),
                            Tensor::FromVector(DType::kInt32, {s.m}, bias)};
  if (float_out) in[6] = in[7] = Tensor();
  const std::string domain = relu || float_out ? "edgepress" : "com.microsoft";
  ir::Graph g;
  std::vector<ir::Value*> vals;
  for (size_t i = 0; i < in.size(); ++i)
    vals.push_back(in[i].empty() ? nullptr
                   : i == 0      ? g.AddInput("x", ir::ValueType::Tensor(xt))
                                 : g.AddInitializer("c" + std::to_string(i), in[i]));
  ir::Node* n = g.AddNode("QLinearConvTranspose", vals, {"y"}, "up", domain);
  n->set_attr(ir::Attribute::Int("group", s.group));
  n->set_attr(ir::Attribute::Ints("kernel_shape", s.k));
  n->set_attr(ir::Attribute::Ints("strides", s.strides));
  n->set_attr(ir::Attribute::Ints("pads", s.pads));
  n->set_attr(ir::Attribute::Ints("dilations", s.dil));
  if (!s.out_pad.empty()) n->set_attr(ir::Attribute::Ints("output_padding", s.out_pad));
  if (relu) n->set_attr(ir::Attribute::String("activation", "Relu"));
  std::vector<const Tensor*> ptrs;
  for (const Tensor& t : in) ptrs.push_back(t.empty() ? nullptr : &t);
  const auto defs = KernelsFor("QLinearConvTranspose", domain, xt);
  ASSERT_GE(defs.size(), 1u);
  ASSERT_EQ(defs[0]->isa, Isa::kScalar);
  const std::string what = std::string(s.what) + (s8 ? " int8 x" : " uint8 x") +
                           (relu ? " relu" : "") + (float_out ? " float out" : "");
  ThreadPool pool(2);
  const Tensor ref = RunNode(*n, ptrs, pool, defs[0])[0];
  for (const KernelDef* d : defs) {
    const Tensor y = RunNode(*n, ptrs, pool, d)[0];
    EXPECT_TRUE(y == ref) << d->name << " differs from " << defs[0]->name << ": " << what;
  }

  // The QDQ definition in float.
  Tensor xf(DType::kFloat32, x.shape()), wf(DType::kFloat32, w.shape()), bf(DType::kFloat32, {s.m});
  for (uint64_t i = 0; i < x.numel(); ++i)
    xf.mutable_data<float>()[i] = (static_cast<float>(x.data<X>()[i]) - xzp) * xs;
  const int64_t ks = static_cast<int64_t>(w.numel()) / (s.c * mg);
  for (uint64_t i = 0; i < w.numel(); ++i) {
    const size_t oc = static_cast<size_t>((static_cast<int64_t>(i) / ks) % mg);
    wf.mutable_data<float>()[i] = (static_cast<float>(w.data<int8_t>()[i]) - wz[oc]) * ws[oc];
  }
  for (int64_t m = 0; m < s.m; ++m)
    bf.mutable_data<float>()[m] = static_cast<float>(bias[static_cast<size_t>(m)]) * xs * ws[static_cast<size_t>(m % mg)];
  ir::Graph fg;
  ir::Node* fn = fg.AddNode("ConvTranspose", {fg.AddInput("x", ir::ValueType::Tensor(DType::kFloat32)),
                                             fg.AddInput("w", ir::ValueType::Tensor(DType::kFloat32)),
                                             fg.AddInput("b", ir::ValueType::Tensor(DType::kFloat32))},
                            {"y"}, "ref", "");
  for (const ir::Attribute& a : n->attributes())
    if (a.name != "activation") fn->set_attr(a);
  const Tensor yf = RunNode(*fn, {&xf, &wf, &bf}, pool)[0];
  ASSERT_EQ(yf.shape(), ref.shape()) << what;
  const double lo = s8 ? -128 : 0, hi = s8 ? 127 : 255;
  double worst = 0;
  for (uint64_t i = 0; i < yf.numel(); ++i) {
    double v = yf.data<float>()[i];
    if (relu) v = std::max(0.0, v);
    if (float_out) {
      // In units of the smallest accumulator step x_scale * w_scale: the integer sum is
      // exact, so only the float reference's own rounding (below half a step; its scalar
      // and SIMD kernels sum in different orders) may remain.
      worst = std::max(worst, std::fabs(ref.data<float>()[i] - v) / (xs * 0.002));
      continue;
    }
    const double q = std::min(hi, std::max(lo, std::nearbyint(v / ys) + yzp));
    const double got = s8 ? ref.data<int8_t>()[i] : ref.data<uint8_t>()[i];
    worst = std::max(worst, std::fabs(got - q));
  }
  EXPECT_LE(worst, float_out ? 0.5 : 1.0) << what;
}

TEST(QConvTransposeTest, EveryKernelMatchesScalarAndTheQdqDefinition) {
  const Case cases[] = {
      {24, 24, 1, {9, 11}, {2, 2}, {2, 2}, {0, 0, 0, 0}, {}, {1, 1}, "detector 2x2 s2"},
      {24, 1, 1, {7, 5}, {2, 2}, {2, 2}, {0, 0, 0, 0}, {}, {1, 1}, "2x2 s2 to one channel"},
      {6, 10, 2, {5, 6}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, {1, 1}, "grouped 3x3 s2, output_padding"},
      {5, 7, 1, {4, 4}, {3, 3}, {1, 1}, {0, 1, 2, 0}, {}, {2, 2}, "dilation 2, asymmetric pads"},
      {37, 33, 1, {3, 40}, {2, 2}, {2, 2}, {0, 0, 0, 0}, {}, {1, 1}, "odd channels past the tiles"},
      {4, 6, 1, {17}, {4}, {3}, {1, 1}, {}, {1}, "1-D"},
      {4, 6, 1, {9}, {3}, {3}, {0, 0}, {}, {1}, "1-D, disjoint windows of 3"},
      {64, 8, 1, {50, 50}, {2, 2}, {2, 2}, {0, 0, 0, 0}, {}, {1, 1}, "2x2 s2, several L2 chunks"},
      {64, 6, 1, {45, 47}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {}, {1, 1}, "3x3 s2 overlapping, several chunks"},
  };
  uint32_t seed = 10;
  for (const Case& c : cases)
    for (int variant = 0; variant < 3; ++variant) {
      RunCase<uint8_t>(DType::kUInt8, c, variant == 1, variant == 2, ++seed);
      RunCase<int8_t>(DType::kInt8, c, variant == 1, variant == 2, ++seed);
    }
}

}  // namespace
}  // namespace edgepress::runtime
