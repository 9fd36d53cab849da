// Integer convolutions on every registered kernel (scalar, AVX2/AVX-VNNI, AVX-512, AVX-512
// VNNI bytes, AMX) against the scalar kernel, exactly: the shapes the byte im2col and the
// AVX-512 depthwise path branch on (rows wider than a 32-pixel panel and narrower ones,
// strides 1/2/3, dilation, asymmetric pads, 5x5), int8 and uint8 activations, int8 weights
// with per-channel zero points and uint8 weights (ConvInteger, int32 output). The scalar
// kernel itself is checked against a float reference in quantize_ops_test.cc.
#include <gtest/gtest.h>

#include <cstdio>
#include <limits>
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
Tensor RandomQ(DType dt, std::vector<int64_t> shape, uint32_t seed) {
  Tensor t(dt, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
  for (uint64_t i = 0; i < t.numel(); ++i) t.mutable_data<T>()[i] = static_cast<T>(d(rng));
  return t;
}

template <typename T>
Tensor Scalar(DType dt, T v) {
  return Tensor::FromVector(dt, {}, std::vector<T>{v});
}

// Runs `op` with `inputs` (weights and quantization parameters as initializers, x as a
// graph input) on every registered kernel; all must equal the first (scalar) one.
void ExpectAllKernelsAgree(const std::string& op, const std::vector<Tensor>& inputs,
                           const std::vector<ir::Attribute>& attrs, const std::string& what) {
  ir::Graph g;
  std::vector<ir::Value*> vals;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string name = "in" + std::to_string(i);
    if (inputs[i].empty())
      vals.push_back(nullptr);
    else if (i == 0)
      vals.push_back(g.AddInput(name, ir::ValueType::Tensor(inputs[i].dtype())));
    else
      vals.push_back(g.AddInitializer(name, inputs[i]));
  }
  ir::Node* node = g.AddNode(op, vals, {"out"}, "n0", "");
  for (const auto& a : attrs) node->set_attr(a);
  std::vector<const Tensor*> ptrs;
  for (const auto& t : inputs) ptrs.push_back(t.empty() ? nullptr : &t);
  const auto defs = KernelsFor(op, "", inputs[0].dtype());
  ASSERT_GE(defs.size(), 1u);
  ASSERT_EQ(defs[0]->isa, Isa::kScalar);
  // One thread takes the conv's fused im2col+GEMM chunks, two threads split them or (few
  // chunks) fall back to the whole-matrix path.
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    const Tensor ref = RunNode(*node, ptrs, pool, defs[0])[0];
    for (const KernelDef* def : defs) {
      const Tensor y = RunNode(*node, ptrs, pool, def)[0];
      ASSERT_EQ(y.shape(), ref.shape()) << def->name << " " << what;
      EXPECT_TRUE(y == ref) << def->name << " differs from " << defs[0]->name << ": " << what
                            << " (" << threads << " threads)";
    }
  }
}

struct Shape {
  int64_t c, m, group, k, stride, dil, h, w;
  std::vector<int64_t> pads;
  const char* what;
  int64_t n = 1;  // batch
};

std::vector<Shape> Shapes() {
  return {
      {16, 16, 16, 3, 1, 1, 33, 35, {1, 1, 1, 1}, "depthwise 3x3 s1, rows of 3 vectors"},
      {8, 8, 8, 3, 2, 1, 57, 57, {1, 1, 1, 1}, "depthwise 3x3 s2"},
      {8, 8, 8, 5, 2, 1, 20, 21, {2, 2, 2, 2}, "depthwise 5x5 s2"},
      {8, 8, 8, 3, 1, 2, 18, 18, {2, 2, 2, 2}, "depthwise 3x3 dilation 2"},
      {8, 8, 8, 3, 3, 1, 23, 40, {1, 0, 0, 1}, "depthwise 3x3 s3, asymmetric pads"},
      {16, 16, 16, 3, 1, 1, 7, 7, {1, 1, 1, 1}, "depthwise 3x3 on 7x7: rows are masked tails"},
      {33, 33, 33, 3, 1, 1, 7, 7, {1, 1, 1, 1}, "dw 33ch batch 3: blocks of 16 + tail", 3},
      {40, 40, 40, 3, 2, 1, 28, 28, {0, 0, 1, 1}, "dw s2 28x28, end pads, batch 2", 2},
      {8, 8, 8, 3, 2, 1, 14, 14, {1, 1, 1, 1}, "depthwise 3x3 s2 on 14x14"},
      {8, 8, 8, 5, 1, 1, 10, 31, {2, 2, 2, 2}, "depthwise 5x5, a vector and a tail a row"},
      {16, 40, 1, 3, 1, 1, 15, 15, {1, 1, 1, 1}, "3x3 s1, panels across output rows"},
      {8, 16, 1, 3, 2, 1, 14, 70, {0, 1, 1, 0}, "3x3 s2 wide, asymmetric pads"},
      {12, 20, 2, 3, 1, 1, 9, 9, {1, 1, 1, 1}, "grouped 3x3"},
      {24, 36, 1, 1, 1, 1, 9, 9, {0, 0, 0, 0}, "pointwise"},
      {24, 36, 1, 1, 2, 1, 9, 9, {0, 0, 0, 0}, "1x1 stride 2"},
      {5, 24, 1, 3, 1, 2, 7, 7, {2, 2, 2, 2}, "3x3 dilation 2 on 7x7, 5 row segments a panel"},
      {3, 8, 1, 5, 2, 1, 4, 3, {3, 3, 3, 3}, "5x5 s2 larger than the input, taps off the plane"},
      {7, 9, 1, 3, 1, 1, 2, 37, {1, 1, 1, 1}, "3x3 s1 two rows of 37: panels straddle rows"},
      {6, 10, 1, 3, 2, 1, 5, 2, {1, 1, 1, 1}, "3x3 s2 on width 2: one pixel a segment"},
      {96, 24, 1, 3, 1, 1, 50, 61, {1, 1, 1, 1}, "96->24 3x3: many L2 chunks, ragged last"},
      {3, 32, 1, 3, 2, 1, 75, 77, {1, 1, 1, 1}, "3->32 3x3 s2 stem: one L2 chunk, 2 threads a share each"},
      {8, 16, 1, 3, 2, 1, 9, 32, {1, 1, 1, 1},
       "3x3 s2 on width 32: 16-pixel rows whose last tap is the row's last byte"},
      {6, 8, 1, 7, 2, 1, 40, 64, {3, 3, 3, 3}, "7x7 s2 stem-like: taps past both row ends"},
  };
}

// `clip`: weight zero points all 0 (the implicit-GEMM path where it applies) and a fused
// Clip whose bounds both bite (the requantizing stores' clamps).
template <typename X>
void QLinearConvCase(DType xt, const Shape& s, uint32_t seed, bool clip = false) {
  const Tensor x = RandomQ<X>(xt, {s.n, s.c, s.h, s.w}, seed);
  const Tensor w = RandomQ<int8_t>(DType::kInt8, {s.m, s.c / s.group, s.k, s.k}, seed + 1);
  std::vector<float> ws(static_cast<size_t>(s.m));
  std::vector<int8_t> wz(static_cast<size_t>(s.m));
  std::vector<int32_t> bias(static_cast<size_t>(s.m));
  for (int64_t i = 0; i < s.m; ++i) {
    ws[static_cast<size_t>(i)] = 0.0005f * static_cast<float>(1 + i % 5);
    wz[static_cast<size_t>(i)] = static_cast<int8_t>(i % 3 == 0 || clip ? 0 : (i % 7) - 3);
    bias[static_cast<size_t>(i)] = static_cast<int32_t>(i * 97 % 3000) - 1500;
  }
  const bool s8 = xt == DType::kInt8;
  const std::vector<Tensor> in = {
      x,
      Scalar<float>(DType::kFloat32, 0.02f),
      s8 ? Scalar<int8_t>(DType::kInt8, -7) : Scalar<uint8_t>(DType::kUInt8, 131),
      w,
      Tensor::FromVector(DType::kFloat32, {s.m}, ws),
      Tensor::FromVector(DType::kInt8, {s.m}, wz),
      Scalar<float>(DType::kFloat32, 0.04f),
      s8 ? Scalar<int8_t>(DType::kInt8, 5) : Scalar<uint8_t>(DType::kUInt8, 120),
      Tensor::FromVector(DType::kInt32, {s.m}, bias)};
  std::vector<ir::Attribute> attrs = {
      ir::Attribute::Int("group", s.group), ir::Attribute::Ints("strides", {s.stride, s.stride}),
      ir::Attribute::Ints("dilations", {s.dil, s.dil}), ir::Attribute::Ints("pads", s.pads)};
  if (clip) {
    // y_scale 0.04: quantized bounds zp - 25 and zp + 50.
    attrs.push_back(ir::Attribute::String("activation", "Clip"));
    attrs.push_back(ir::Attribute::Floats("activation_params", {-1.f, 2.f}));
  }
  ExpectAllKernelsAgree("QLinearConv", in, attrs,
                        std::string(s.what) + (s8 ? " (int8 x)" : " (uint8 x)") +
                            (clip ? ", Clip" : ""));
}

TEST(QConvIsaTest, QLinearConvEveryKernelMatchesScalar) {
  std::printf("QLinearConv kernels:");
  for (const KernelDef* d : KernelsFor("QLinearConv", "", DType::kUInt8)) std::printf(" %s", d->name);
  std::printf("\n");
  uint32_t seed = 1;
  for (const Shape& s : Shapes()) {
    QLinearConvCase<uint8_t>(DType::kUInt8, s, seed += 2);
    QLinearConvCase<int8_t>(DType::kInt8, s, seed += 2);
  }
}

// A fused Clip clamping both ways, on every path of the shapes above (pointwise and im2col
// GEMM tiles, implicit-GEMM row and pixel tiles, depthwise planes and channel blocks).
TEST(QConvIsaTest, QLinearConvFusedClipEveryKernelMatchesScalar) {
  uint32_t seed = 900;
  for (const Shape& s : Shapes()) {
    QLinearConvCase<uint8_t>(DType::kUInt8, s, seed += 2, true);
    QLinearConvCase<int8_t>(DType::kInt8, s, seed += 2, true);
  }
  const Shape implicit[] = {
      {8, 32, 1, 3, 1, 1, 13, 14, {1, 1, 1, 1}, "3x3 13x14, 32 channels: pixel tiles"},
      {16, 24, 1, 3, 1, 1, 15, 15, {1, 1, 1, 1}, "3x3 15x15: row tiles across rows"},
      {16, 64, 1, 3, 2, 1, 14, 14, {1, 1, 1, 1}, "3x3 s2 14x14: stride-2 pixel tiles"},
  };
  for (const Shape& s : implicit) {
    QLinearConvCase<uint8_t>(DType::kUInt8, s, seed += 2, true);
    QLinearConvCase<int8_t>(DType::kInt8, s, seed += 2, true);
  }
}

// Weight zero points all 0 (quantize-static's symmetric weights): k x k convs with pads
// (k-1)/2, stride 1 or 2 and channels a multiple of 4 take the implicit-GEMM path on AVX-512
// VNNI (qconv_implicit.h). Wide-pixel panels that straddle rows, tails of 1..7 rows and half
// panels (channels not a multiple of 32); pixel tiles of 4..8 pixels (32-channel panels,
// also stride 2); per-tensor and per-channel scales, 3x3 and 5x5, batches; and three that
// must fall back (width below 6, a store bound that does not hold, stride 2 without whole
// 32-channel panels). Checked against the scalar kernel, with saturating outputs.
TEST(QConvIsaTest, QLinearConvSymmetricWeightsEveryKernelMatchesScalar) {
  struct Case {
    int64_t c, m, k, h, w, n;
    float y_scale;
    const char* what;
    bool per_tensor_scale = false;
    int64_t stride = 1;
  };
  const Case cases[] = {
      {16, 24, 3, 15, 15, 1, 0.04f, "3x3 15x15: panels across rows"},
      {8, 13, 3, 7, 7, 1, 0.04f, "3x3 7x7: 5 rows a panel, a 5-row tile"},
      {12, 9, 5, 9, 11, 1, 0.04f, "5x5 9x11, a 1-row tile"},
      {4, 8, 3, 6, 37, 2, 0.04f, "3x3 rows wider than a panel, batch 2"},
      {16, 16, 3, 2, 6, 1, 0.04f, "3x3 2x6: one half panel"},
      {8, 32, 3, 13, 14, 1, 0.04f, "3x3 13x14, 32 channels: pixel tiles of 7"},
      {8, 24, 3, 13, 14, 1, 0.04f, "3x3 13x14, 24 channels: a 3-pixel last panel"},
      {64, 64, 3, 14, 14, 1, 4.0f, "64->64 3x3 14x14, K = 576, no saturation"},
      {16, 64, 3, 7, 7, 2, 2.0f, "16->64 3x3 7x7 batch 2: 7-pixel tiles", true},
      {12, 64, 5, 9, 11, 1, 0.04f, "5x5 9x11, 64 channels: pixel tiles of 5 and 6"},
      {4, 32, 3, 3, 16, 1, 0.04f, "3x3 3x16: pixel tiles of 8"},
      {8, 32, 3, 5, 9, 1, 0.04f, "3x3 5x9: pixel tiles of 4 and 5", true},
      {8, 32, 3, 6, 17, 1, 0.04f, "3x3 6x17: pixel tiles of 5 and 6"},
      {4, 64, 3, 3, 40, 1, 0.04f, "3x3 3x40: 5 pixel tiles of 8 a row"},
      {16, 64, 3, 14, 14, 1, 0.04f, "3x3 s2 14x14 -> 7x7", false, 2},
      {8, 32, 3, 13, 15, 2, 0.04f, "3x3 s2 13x15 -> 7x8, batch 2", true, 2},
      {12, 32, 5, 11, 20, 1, 0.04f, "5x5 s2 11x20 -> 6x10: tiles of 5", false, 2},
      {16, 24, 3, 14, 14, 1, 0.04f, "3x3 s2, 24 channels: falls back", false, 2},
      {8, 8, 3, 5, 5, 1, 0.04f, "width 5: falls back"},
      {8, 8, 3, 9, 9, 1, 1e-9f, "requantized values past 2^30: falls back"},
  };
  uint32_t seed = 300;
  for (const Case& cs : cases) {
    for (DType xt : {DType::kUInt8, DType::kInt8}) {
      const bool s8 = xt == DType::kInt8;
      const Tensor x = s8 ? RandomQ<int8_t>(xt, {cs.n, cs.c, cs.h, cs.w}, ++seed)
                          : RandomQ<uint8_t>(xt, {cs.n, cs.c, cs.h, cs.w}, ++seed);
      const Tensor w = RandomQ<int8_t>(DType::kInt8, {cs.m, cs.c, cs.k, cs.k}, ++seed);
      std::vector<float> ws(static_cast<size_t>(cs.m));
      std::vector<int32_t> bias(static_cast<size_t>(cs.m));
      for (int64_t i = 0; i < cs.m; ++i) {
        ws[static_cast<size_t>(i)] = 0.0005f * static_cast<float>(1 + i % 5);
        bias[static_cast<size_t>(i)] = static_cast<int32_t>(i * 97 % 3000) - 1500;
      }
      const std::vector<Tensor> in = {
          x,
          Scalar<float>(DType::kFloat32, 0.02f),
          s8 ? Scalar<int8_t>(DType::kInt8, -7) : Scalar<uint8_t>(DType::kUInt8, 131),
          w,
          cs.per_tensor_scale ? Scalar<float>(DType::kFloat32, 0.0015f)
                              : Tensor::FromVector(DType::kFloat32, {cs.m}, ws),
          Tensor::FromVector(DType::kInt8, {cs.m},
                             std::vector<int8_t>(static_cast<size_t>(cs.m), 0)),
          Scalar<float>(DType::kFloat32, cs.y_scale),
          s8 ? Scalar<int8_t>(DType::kInt8, 5) : Scalar<uint8_t>(DType::kUInt8, 120),
          Tensor::FromVector(DType::kInt32, {cs.m}, bias)};
      const int64_t p = (cs.k - 1) / 2;
      const std::vector<ir::Attribute> attrs = {
          ir::Attribute::Ints("pads", {p, p, p, p}),
          ir::Attribute::Ints("strides", {cs.stride, cs.stride})};
      ExpectAllKernelsAgree("QLinearConv", in, attrs,
                            std::string(cs.what) + (s8 ? " (int8 x)" : " (uint8 x)"));
    }
  }
}

// uint8 weights with a zero point (flipped to int8 by the byte kernels' packing) and int32
// outputs, where no requantization could hide an off-by-one.
TEST(QConvIsaTest, ConvIntegerUint8WeightsEveryKernelMatchesScalar) {
  uint32_t seed = 100;
  for (const Shape& s : Shapes()) {
    for (DType xt : {DType::kUInt8, DType::kInt8}) {
      const Tensor x = xt == DType::kUInt8 ? RandomQ<uint8_t>(xt, {s.n, s.c, s.h, s.w}, ++seed)
                                            : RandomQ<int8_t>(xt, {s.n, s.c, s.h, s.w}, ++seed);
      const Tensor w = RandomQ<uint8_t>(DType::kUInt8, {s.m, s.c / s.group, s.k, s.k}, ++seed);
      const Tensor xz = xt == DType::kUInt8 ? Scalar<uint8_t>(xt, 255) : Scalar<int8_t>(xt, -128);
      const std::vector<Tensor> in = {x, w, xz, Scalar<uint8_t>(DType::kUInt8, 200)};
      const std::vector<ir::Attribute> attrs = {
          ir::Attribute::Int("group", s.group),
          ir::Attribute::Ints("strides", {s.stride, s.stride}),
          ir::Attribute::Ints("dilations", {s.dil, s.dil}), ir::Attribute::Ints("pads", s.pads)};
      ExpectAllKernelsAgree("ConvInteger", in, attrs, std::string(s.what) + " ConvInteger");
    }
  }
}

}  // namespace
}  // namespace edgepress::runtime
