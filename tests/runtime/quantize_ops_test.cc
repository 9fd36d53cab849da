// Quantization operators through runtime::RunNode, every registered ISA:
// - QuantizeLinear rounds half to even and saturates; per-axis parameters;
//   DequantizeLinear of int32 bias; DynamicQuantizeLinear's parameters.
// - QLinearConv (3x3 padded/strided, grouped, depthwise, 1x1 pointwise) against a float
//   reference computed here (dequantize, convolve in double, quantize): within 1 LSB.
//   Every ISA must agree with the scalar kernel exactly.
// - edgepress QLinearConv with Relu and float output; QLinearMatMul / DynamicQuantizeMatMul
//   against float references.
// - Errors: bad zero-point dtype, bias of the wrong shape name the node.
// - Tensors large enough for threads to split them (chunks cut across per-axis channels):
//   1, 2 and 3 threads give the same bytes, equal to an element-wise reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ir/error.h"
#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"

namespace edgepress::runtime {
namespace {

using ir::DType;
using ir::Tensor;

struct OneNode {
  ir::Graph g;
  ir::Node* node = nullptr;
  std::vector<Tensor> inputs;
  OneNode(const std::string& op, const std::string& domain, std::vector<Tensor> in,
          std::vector<bool> constant, std::vector<ir::Attribute> attrs)
      : inputs(std::move(in)) {
    std::vector<ir::Value*> vals;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const std::string name = "in" + std::to_string(i);
      if (inputs[i].empty())
        vals.push_back(nullptr);
      else if (i < constant.size() && constant[i])
        vals.push_back(g.AddInitializer(name, inputs[i]));
      else
        vals.push_back(g.AddInput(name, ir::ValueType::Tensor(inputs[i].dtype())));
    }
    node = g.AddNode(op, vals, {"out"}, "n0", domain);
    for (auto& a : attrs) node->set_attr(a);
  }
  Tensor Run(const KernelDef* def = nullptr, int threads = 2) {
    ThreadPool pool(threads);
    std::vector<const Tensor*> ptrs;
    for (auto& t : inputs) ptrs.push_back(t.empty() ? nullptr : &t);
    return RunNode(*node, ptrs, pool, def)[0];
  }
};

Tensor F(std::vector<int64_t> shape, std::vector<float> v) {
  return Tensor::FromVector(DType::kFloat32, std::move(shape), v);
}
Tensor ScalarF(float v) { return F({}, {v}); }
Tensor ScalarU8(uint8_t v) { return Tensor::FromVector(DType::kUInt8, {}, std::vector<uint8_t>{v}); }

template <typename T>
Tensor RandomQ(DType dt, std::vector<int64_t> shape, uint32_t seed) {
  Tensor t(dt, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
  for (uint64_t i = 0; i < t.numel(); ++i) t.mutable_data<T>()[i] = static_cast<T>(d(rng));
  return t;
}

TEST(QuantizeOpsTest, QuantizeRoundsHalfToEvenAndSaturates) {
  OneNode n("QuantizeLinear", "", {F({6}, {0.5f, 1.5f, 2.5f, -0.5f, 1000.f, -1000.f}), ScalarF(1.f),
                                   Tensor::FromVector(DType::kInt8, {}, std::vector<int8_t>{0})},
            {}, {});
  Tensor y = n.Run();
  ASSERT_EQ(y.dtype(), DType::kInt8);
  const std::vector<int8_t> want = {0, 2, 2, 0, 127, -128};
  EXPECT_EQ(std::vector<int8_t>(y.data<int8_t>(), y.data<int8_t>() + 6), want);
}

// Every QuantizeLinear entry equals the scalar one: ties (k + 0.5), saturation, NaN, a
// length that leaves a SIMD tail, uint8 and int8.
TEST(QuantizeOpsTest, QuantizeLinearIsasAgreeExactly) {
  std::vector<float> x(1003);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-40.f, 40.f);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = i % 5 == 0 ? 0.25f * static_cast<float>(static_cast<int>(i % 400) - 200) + 0.125f : d(rng);
  x[7] = NAN;
  x[9] = 1e30f;
  x[11] = -1e30f;
  for (DType dt : {DType::kUInt8, DType::kInt8}) {
    Tensor zp = dt == DType::kUInt8 ? ScalarU8(100)
                                    : Tensor::FromVector(DType::kInt8, {}, std::vector<int8_t>{-7});
    OneNode n("QuantizeLinear", "", {F({1003}, x), ScalarF(0.25f), zp}, {}, {});
    Tensor ref;
    const auto defs = KernelsFor("QuantizeLinear", "", DType::kFloat32);
    if (GetCpuFeatures().Has(Isa::kAvx2) && !ForceScalar()) {
      EXPECT_GE(defs.size(), 2u);
    }
    for (const KernelDef* def : defs) {
      Tensor y = n.Run(def);
      if (ref.empty())
        ref = y;
      else
        EXPECT_TRUE(y == ref) << def->name;
    }
  }
}

// Every DequantizeLinear entry equals the scalar one (uint8 and int8, every byte value, a
// length that leaves a SIMD tail, zero points at both ends of the range).
TEST(QuantizeOpsTest, DequantizeLinearIsasAgreeExactly) {
  const auto defs = KernelsFor("DequantizeLinear", "", DType::kUInt8);
  if (GetCpuFeatures().Has(Isa::kAvx2) && !ForceScalar()) {
    EXPECT_GE(defs.size(), 2u);
  }
  for (DType dt : {DType::kUInt8, DType::kInt8})
    for (int zpv : {0, 1, 2}) {
      Tensor x = dt == DType::kUInt8 ? RandomQ<uint8_t>(dt, {1003}, 4) : RandomQ<int8_t>(dt, {1003}, 4);
      for (int i = 0; i < 256; ++i) x.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(i);
      Tensor zp(dt, {});
      if (dt == DType::kUInt8)
        zp.mutable_data<uint8_t>()[0] = static_cast<uint8_t>(zpv == 0 ? 0 : zpv == 1 ? 131 : 255);
      else
        zp.mutable_data<int8_t>()[0] = static_cast<int8_t>(zpv == 0 ? -128 : zpv == 1 ? 3 : 127);
      OneNode n("DequantizeLinear", "", {x, ScalarF(0.0371f), zp}, {}, {});
      Tensor ref;
      for (const KernelDef* def : defs) {
        Tensor y = n.Run(def);
        if (ref.empty())
          ref = y;
        else
          EXPECT_TRUE(y == ref) << def->name << " zero point case " << zpv;
      }
    }
}

// Values at, one ulp and a few ulps either side of (k + 0.5) * scale, for scales that are
// not powers of 2 (whose reciprocals are inexact: a multiply by 1 / scale would round some
// of these the other way) and some that are extreme: every entry quantizes exactly as the
// scalar division.
TEST(QuantizeOpsTest, QuantizeLinearIsasAgreeNearTiesForManyScales) {
  const auto defs = KernelsFor("QuantizeLinear", "", DType::kFloat32);
  if (defs.size() < 2) GTEST_SKIP() << "only the scalar QuantizeLinear on this CPU";
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> e(-14.f, 4.f), off(-300.f, 300.f);
  std::vector<float> scales = {0.1f, 1.f / 255, 0.3f, 7.f, 1e-30f, 3e38f, 1e-39f /* subnormal */};
  for (int i = 0; i < 150; ++i) scales.push_back(std::exp2(e(rng)));
  int64_t checked = 0;
  for (float sc : scales) {
    std::vector<float> x;
    for (int k = -140; k < 140; k += 3) {
      float t = (static_cast<float>(k) + 0.5f) * sc;
      x.push_back(t);
      float up = t, down = t;
      for (int u = 0; u < 3; ++u) {
        up = std::nextafter(up, INFINITY);
        down = std::nextafter(down, -INFINITY);
        x.push_back(up);
        x.push_back(down);
      }
      x.push_back(off(rng) * sc);
    }
    while (x.size() % 8 != 3) x.push_back(off(rng) * sc);  // and a scalar tail
    const int64_t n = static_cast<int64_t>(x.size());
    for (DType dt : {DType::kUInt8, DType::kInt8}) {
      Tensor zp = dt == DType::kUInt8 ? ScalarU8(static_cast<uint8_t>(rng() % 256))
                                      : Tensor::FromVector(DType::kInt8, {},
                                                           std::vector<int8_t>{int8_t(rng() % 50)});
      OneNode q("QuantizeLinear", "", {F({n}, x), ScalarF(sc), zp}, {}, {});
      const Tensor ref = q.Run(defs[0], 1);
      for (size_t d = 1; d < defs.size(); ++d) {
        EXPECT_TRUE(q.Run(defs[d], 1) == ref) << defs[d]->name << " scale " << sc;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 300);
}

TEST(QuantizeOpsTest, PerAxisQuantizeAndInt32Dequantize) {
  OneNode q("QuantizeLinear", "",
            {F({2, 2}, {1.f, 2.f, 1.f, 2.f}), F({2}, {0.5f, 1.f}),
             Tensor::FromVector(DType::kUInt8, {2}, std::vector<uint8_t>{10, 20})},
            {}, {ir::Attribute::Int("axis", 0)});
  Tensor y = q.Run();
  EXPECT_EQ(std::vector<uint8_t>(y.data<uint8_t>(), y.data<uint8_t>() + 4),
            (std::vector<uint8_t>{12, 14, 21, 22}));
  OneNode dq("DequantizeLinear", "",
             {Tensor::FromVector(DType::kInt32, {2}, std::vector<int32_t>{-300, 7}), F({2}, {0.5f, 2.f})},
             {}, {ir::Attribute::Int("axis", 0)});
  Tensor f = dq.Run();
  EXPECT_EQ(f.data<float>()[0], -150.f);
  EXPECT_EQ(f.data<float>()[1], 14.f);
}

// 2 x 3 x 11001 elements, axis 1: with 2 or 3 threads the chunks (>= 16384 elements)
// start and end inside channels. Every entry, every thread count: the reference bytes.
TEST(QuantizeOpsTest, ThreadsSplittingPerAxisQuantDequantGiveTheSameBytes) {
  const std::vector<int64_t> shape = {2, 3, 11001};
  const int64_t inner = 11001, total = 2 * 3 * inner;
  std::vector<float> x(static_cast<size_t>(total));
  std::mt19937 rng(21);
  std::uniform_real_distribution<float> d(-30.f, 30.f);
  for (auto& v : x) v = d(rng);
  x[40000] = NAN;
  x[50001] = 1e30f;
  const std::vector<float> sc = {0.25f, 0.125f, 0.5f};
  const std::vector<uint8_t> zp = {100, 3, 250};
  std::vector<uint8_t> want_q(static_cast<size_t>(total));
  std::vector<float> want_dq(static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) {
    const size_t c = static_cast<size_t>(i / inner % 3);
    const float v = x[static_cast<size_t>(i)] / sc[c];
    float r = v == v ? std::nearbyint(v) + zp[c] : static_cast<float>(zp[c]);
    want_q[static_cast<size_t>(i)] = static_cast<uint8_t>(std::min(255.f, std::max(0.f, r)));
    want_dq[static_cast<size_t>(i)] =
        static_cast<float>(static_cast<int32_t>(want_q[static_cast<size_t>(i)]) - zp[c]) * sc[c];
  }
  const Tensor zpt = Tensor::FromVector(DType::kUInt8, {3}, zp);
  OneNode q("QuantizeLinear", "", {F(shape, x), F({3}, sc), zpt}, {},
            {ir::Attribute::Int("axis", 1)});
  OneNode dq("DequantizeLinear", "",
             {Tensor::FromVector(DType::kUInt8, shape, want_q), F({3}, sc), zpt}, {},
             {ir::Attribute::Int("axis", 1)});
  for (int threads : {1, 2, 3}) {
    for (const KernelDef* def : KernelsFor("QuantizeLinear", "", DType::kFloat32)) {
      const Tensor y = q.Run(def, threads);
      EXPECT_TRUE(std::equal(want_q.begin(), want_q.end(), y.data<uint8_t>()))
          << def->name << ", " << threads << " threads";
    }
    const Tensor f = dq.Run(nullptr, threads);
    EXPECT_EQ(std::memcmp(f.data<float>(), want_dq.data(), want_dq.size() * 4), 0)
        << threads << " threads";
  }
}

// DynamicQuantizeLinear and DynamicQuantizeMatMul (128 x 400 A: the min/max scan and the
// quantization are split) give the same bytes at 1, 2 and 3 threads; the extremes sit
// in the last part of the scan.
TEST(QuantizeOpsTest, ThreadsSplittingDynamicQuantizationGiveTheSameBytes) {
  const int64_t m = 128, k = 400, n = 40;
  std::vector<float> a(static_cast<size_t>(m * k));
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> d(-2.f, 3.f);
  for (auto& v : a) v = d(rng);
  a[m * k - 3] = 9.f;
  a[m * k - 2] = NAN;
  a[m * k - 1] = -7.f;
  OneNode dql("DynamicQuantizeLinear", "", {F({m, k}, a)}, {}, {});
  Tensor b = RandomQ<int8_t>(DType::kInt8, {k, n}, 7);
  std::vector<float> bs(static_cast<size_t>(n), 0.01f);
  const Tensor ref_q = dql.Run(nullptr, 1);
  // scale (9 - -7) / 255, zero point round(7 / scale) = 112
  EXPECT_EQ(ref_q.data<uint8_t>()[m * k - 1], 0);
  EXPECT_EQ(ref_q.data<uint8_t>()[m * k - 2], 112);
  EXPECT_EQ(ref_q.data<uint8_t>()[m * k - 3], 255);
  for (const KernelDef* def :
       KernelsFor("DynamicQuantizeMatMul", "com.microsoft", DType::kFloat32)) {
    OneNode mm("DynamicQuantizeMatMul", "com.microsoft",
               {F({m, k}, a), b, F({n}, bs), Tensor(DType::kInt8, {n})}, {false, true, true, true},
               {});
    const Tensor ref = mm.Run(def, 1);
    for (int threads : {2, 3}) {
      EXPECT_TRUE(dql.Run(nullptr, threads) == ref_q) << threads << " threads";
      EXPECT_TRUE(mm.Run(def, threads) == ref) << def->name << ", " << threads << " threads";
    }
  }
}

TEST(QuantizeOpsTest, ZeroPointDtypeMismatchNamesTheNode) {
  OneNode dq("DequantizeLinear", "",
             {Tensor(DType::kUInt8, {3}), ScalarF(1.f),
              Tensor::FromVector(DType::kInt8, {}, std::vector<int8_t>{0})},
             {}, {});
  try {
    dq.Run();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n0"), std::string::npos) << e.what();
  }
}

// Float reference of QLinearConv: dequantize, convolve in double, quantize (half to even).
std::vector<int> ConvReference(const Tensor& x, float sx, int zx, const Tensor& w,
                               const std::vector<float>& sw, const std::vector<int32_t>& bias,
                               float sy, int zy, int64_t group, int64_t stride, int64_t pad,
                               bool relu, std::vector<int64_t>* shape) {
  const int64_t n = x.shape()[0], c = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
  const int64_t m = w.shape()[0], cg = w.shape()[1], kh = w.shape()[2], kw = w.shape()[3];
  const int64_t oh = (h + 2 * pad - kh) / stride + 1, ow = (wd + 2 * pad - kw) / stride + 1;
  *shape = {n, m, oh, ow};
  std::vector<int> out;
  const int64_t mg = m / group;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t o = 0; o < m; ++o)
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t xx = 0; xx < ow; ++xx) {
          double acc = bias.empty() ? 0 : bias[o] * double(sx) * sw[o];
          const int64_t gi = o / mg;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t iy = y * stride - pad + i, ix = xx * stride - pad + j;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                const int xv = x.data<uint8_t>()[((b * c + gi * cg + ci) * h + iy) * wd + ix];
                const int wv = w.data<int8_t>()[((o * cg + ci) * kh + i) * kw + j];
                acc += (xv - zx) * double(sx) * (wv * double(sw[o]));
              }
          if (relu) acc = std::max(acc, 0.0);
          const double q = std::nearbyint(acc / sy) + zy;
          out.push_back(static_cast<int>(std::min(255.0, std::max(0.0, q))));
        }
  return out;
}

struct ConvCase {
  int64_t c, m, group, k, stride, pad, h;
};

TEST(QuantizeOpsTest, QLinearConvMatchesFloatReferenceWithin1Lsb) {
  const ConvCase cases[] = {
      {8, 16, 1, 3, 1, 1, 9},   // 3x3 padded
      {6, 10, 1, 3, 2, 1, 11},  // strided, odd K = 54
      {8, 8, 2, 3, 1, 0, 7},    // grouped
      {16, 16, 16, 3, 1, 1, 12},  // depthwise
      {16, 16, 16, 3, 2, 1, 13},  // depthwise strided
      {16, 16, 16, 3, 2, 1, 37},  // depthwise strided, rows of 19: vector steps + both edges
      {8, 8, 8, 5, 2, 2, 41},     // depthwise 5x5 stride 2 (MobileNetV3)
      {8, 8, 8, 5, 1, 2, 30},     // depthwise 5x5 stride 1
      {24, 7, 1, 1, 1, 0, 6},   // pointwise
      {4, 8, 1, 3, 1, 1, 35},   // rows wider than a panel: the one-row im2col path
      {3, 8, 1, 7, 2, 3, 40},   // the same, strided with a 7x7 kernel (resnet's stem)
  };
  uint32_t seed = 1;
  for (const ConvCase& cc : cases) {
    for (bool relu : {false, true}) {
      Tensor x = RandomQ<uint8_t>(DType::kUInt8, {2, cc.c, cc.h, cc.h}, seed++);
      Tensor w = RandomQ<int8_t>(DType::kInt8, {cc.m, cc.c / cc.group, cc.k, cc.k}, seed++);
      std::vector<float> sw(static_cast<size_t>(cc.m));
      std::vector<int32_t> bias(static_cast<size_t>(cc.m));
      for (int64_t i = 0; i < cc.m; ++i) {
        sw[static_cast<size_t>(i)] = 0.001f * static_cast<float>(1 + i % 4);
        bias[static_cast<size_t>(i)] = static_cast<int32_t>(i * 311 % 2000) - 1000;
      }
      const float sx = 0.02f, sy = 0.05f;
      const int zx = 120, zy = 100;
      std::vector<int64_t> shape;
      const std::vector<int> want = ConvReference(x, sx, zx, w, sw, bias, sy, zy, cc.group,
                                                  cc.stride, cc.pad, relu, &shape);
      std::vector<ir::Attribute> attrs = {
          ir::Attribute::Int("group", cc.group),
          ir::Attribute::Ints("strides", {cc.stride, cc.stride}),
          ir::Attribute::Ints("pads", {cc.pad, cc.pad, cc.pad, cc.pad})};
      if (relu) attrs.push_back(ir::Attribute::String("activation", "Relu"));
      const std::string domain = relu ? "edgepress" : "";
      OneNode node("QLinearConv", domain,
                   {x, ScalarF(sx), ScalarU8(zx), w, F({cc.m}, sw), Tensor(DType::kInt8, {cc.m}),
                    ScalarF(sy), ScalarU8(zy), Tensor::FromVector(DType::kInt32, {cc.m}, bias)},
                   {false, true, true, true, true, true, true, true, true}, attrs);
      Tensor ref;
      const auto defs = KernelsFor("QLinearConv", domain, DType::kUInt8);
      ASSERT_GE(defs.size(), 1u);
      for (const KernelDef* def : defs) {
        Tensor y = node.Run(def);
        ASSERT_EQ(y.shape(), shape);
        ASSERT_EQ(y.dtype(), DType::kUInt8);
        int worst = 0;
        for (uint64_t i = 0; i < y.numel(); ++i)
          worst = std::max(worst, std::abs(int(y.data<uint8_t>()[i]) - want[i]));
        EXPECT_LE(worst, 1) << def->name << " c=" << cc.c << " group=" << cc.group;
        if (ref.empty())
          ref = y;
        else
          EXPECT_TRUE(y == ref) << def->name << " differs from the scalar kernel";
      }
    }
  }
}

TEST(QuantizeOpsTest, EdgepressQLinearConvFloatOutput) {
  Tensor x = RandomQ<uint8_t>(DType::kUInt8, {1, 4, 5, 5}, 3);
  Tensor w = RandomQ<int8_t>(DType::kInt8, {3, 4, 3, 3}, 4);
  std::vector<float> sw = {0.01f, 0.02f, 0.03f};
  std::vector<int64_t> shape;
  // sy = 1, zy = 0 and no rounding: compare the float output with the double reference.
  OneNode node("QLinearConv", "edgepress",
               {x, ScalarF(0.1f), ScalarU8(7), w, F({3}, sw), Tensor(DType::kInt8, {3})}, {},
               {ir::Attribute::Ints("pads", {1, 1, 1, 1})});
  Tensor y = node.Run();
  ASSERT_EQ(y.dtype(), DType::kFloat32);
  for (int64_t o = 0; o < 3; ++o) {
    // One output pixel by hand: the centre (2, 2).
    double acc = 0;
    for (int c = 0; c < 4; ++c)
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
          acc += (x.data<uint8_t>()[(c * 5 + 1 + i) * 5 + 1 + j] - 7) * 0.1 *
                 (w.data<int8_t>()[((o * 4 + c) * 3 + i) * 3 + j] * double(sw[o]));
    EXPECT_NEAR(y.data<float>()[(o * 5 + 2) * 5 + 2], acc, 1e-4 * (1 + std::fabs(acc)));
  }
}

TEST(QuantizeOpsTest, QLinearConvBiasOfWrongShapeNamesTheNode) {
  OneNode node("QLinearConv", "",
               {Tensor(DType::kUInt8, {1, 2, 3, 3}), ScalarF(1.f), ScalarU8(0),
                Tensor(DType::kInt8, {4, 2, 1, 1}), ScalarF(1.f),
                Tensor::FromVector(DType::kInt8, {}, std::vector<int8_t>{0}), ScalarF(1.f),
                ScalarU8(0), Tensor(DType::kInt32, {3})},
               {}, {});
  try {
    node.Run();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'n0'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bias"), std::string::npos) << e.what();
  }
}

TEST(QuantizeOpsTest, DynamicQuantizeMatMulMatchesFloat) {
  const int64_t m = 5, k = 33, n = 19;
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> d(-2.f, 3.f);
  std::vector<float> a(static_cast<size_t>(m * k));
  for (float& v : a) v = d(rng);
  Tensor b = RandomQ<int8_t>(DType::kInt8, {k, n}, 5);
  std::vector<float> bs(static_cast<size_t>(n)), bias(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    bs[static_cast<size_t>(j)] = 0.01f + 0.001f * j;
    bias[static_cast<size_t>(j)] = 0.1f * j;
  }
  for (const KernelDef* def : KernelsFor("DynamicQuantizeMatMul", "com.microsoft", DType::kFloat32)) {
    OneNode node("DynamicQuantizeMatMul", "com.microsoft",
                 {F({m, k}, a), b, F({n}, bs), Tensor(DType::kInt8, {n}), F({n}, bias)},
                 {false, true, true, true, true}, {});
    Tensor y = node.Run(def);
    ASSERT_EQ(y.shape(), (std::vector<int64_t>{m, n}));
    // A is quantized with scale (max - min) / 255 <= 5/255: error per product <= scale/2.
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double want = bias[static_cast<size_t>(j)];
        for (int64_t kk = 0; kk < k; ++kk)
          want += a[static_cast<size_t>(i * k + kk)] * b.data<int8_t>()[kk * n + j] * double(bs[static_cast<size_t>(j)]);
        const double tol = k * (5.0 / 255 / 2) * 128 * bs[static_cast<size_t>(j)];
        EXPECT_NEAR(y.data<float>()[i * n + j], want, tol) << def->name;
      }
  }
}

}  // namespace
}  // namespace edgepress::runtime
