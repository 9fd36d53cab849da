// Pooling kernels (runtime/kernels/pool/pool.cc): every registered kernel (scalar reference and
// AVX2) against a naive loop written here from the ONNX spec, at widths around the 8-wide
// vector (7, 8, 9, 16, 17, 33), with pads, strides, dilations, ceil_mode,
// count_include_pad and auto_pad; hand-computed values; the Indices output in both storage
// orders; 1-D/3-D against their 2-D equivalents; and malformed nodes rejected with errors
// that name the node.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "ir/error.h"
#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"
#include "tests/runtime/kernel_test_util.h"

namespace edgepress::runtime {
namespace {

using ir::Attribute;
using ir::DType;
using ir::Tensor;

using test_util::ExpectNear;
using test_util::OneNode;
ir::Tensor Rand(std::vector<int64_t> shape, uint32_t seed, float lo = -2.f, float hi = 2.f) {
  return test_util::RandomF32(std::move(shape), seed, lo, hi);
}
std::vector<const KernelDef*> Defs(const std::string& op, bool want_simd = true) {
  return test_util::FloatKernels(op, want_simd);
}

struct Pool2D {
  int64_t kh, kw, sh = 1, sw = 1, dh = 1, dw = 1, pt = 0, pl = 0, pb = 0, pr = 0;
  bool ceil = false, include_pad = false;
};

// Straight from the spec: every tap of every window, bounds-checked.
std::vector<float> NaivePool(const Tensor& x, bool is_max, const Pool2D& p,
                             std::vector<int64_t>* out_shape) {
  const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  auto out_len = [&](int64_t in, int64_t k, int64_t s, int64_t d, int64_t a, int64_t b) {
    const int64_t span = in + a + b - ((k - 1) * d + 1);
    int64_t o = (p.ceil ? (span + s - 1) / s : span / s) + 1;
    if (p.ceil && (o - 1) * s >= in + a) --o;
    return o;
  };
  const int64_t OH = out_len(H, p.kh, p.sh, p.dh, p.pt, p.pb);
  const int64_t OW = out_len(W, p.kw, p.sw, p.dw, p.pl, p.pr);
  *out_shape = {N, C, OH, OW};
  std::vector<float> y;
  const float* xp = x.data<float>();
  for (int64_t nc = 0; nc < N * C; ++nc)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double acc = is_max ? -std::numeric_limits<double>::infinity() : 0;
        int64_t valid = 0, padded = 0;
        for (int64_t i = 0; i < p.kh; ++i)
          for (int64_t j = 0; j < p.kw; ++j) {
            const int64_t ih = oh * p.sh - p.pt + i * p.dh, iw = ow * p.sw - p.pl + j * p.dw;
            if (ih >= -p.pt && ih < H + p.pb && iw >= -p.pl && iw < W + p.pr) ++padded;
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            const float v = xp[(nc * H + ih) * W + iw];
            acc = is_max ? std::max(acc, static_cast<double>(v)) : acc + v;
            ++valid;
          }
        y.push_back(is_max ? static_cast<float>(acc)
                           : static_cast<float>(acc / (p.include_pad ? padded : valid)));
      }
  return y;
}

void SetPool(OneNode& n, const Pool2D& p, bool avg) {
  n.Set(Attribute::Ints("kernel_shape", {p.kh, p.kw}));
  n.Set(Attribute::Ints("strides", {p.sh, p.sw}));
  n.Set(Attribute::Ints("dilations", {p.dh, p.dw}));
  n.Set(Attribute::Ints("pads", {p.pt, p.pl, p.pb, p.pr}));
  n.Set(Attribute::Int("ceil_mode", p.ceil));
  if (avg) n.Set(Attribute::Int("count_include_pad", p.include_pad));
}

std::vector<Pool2D> Configs() {
  std::vector<Pool2D> v;
  v.push_back({2, 2, 2, 2});
  v.push_back({3, 3, 1, 1, 1, 1, 1, 1, 1, 1});
  v.push_back({3, 3, 2, 2, 1, 1, 1, 1, 1, 1});
  v.push_back({3, 3, 2, 2, 1, 1, 1, 1, 1, 1, true});
  v.push_back({3, 2, 1, 2, 2, 1, 0, 1, 2, 0});  // dilated, asymmetric pads
  v.push_back({2, 3, 3, 1, 1, 2, 1, 0, 0, 2, true});
  v.push_back({1, 5, 1, 1, 1, 1, 0, 2, 0, 2});
  return v;
}

TEST(PoolTest, MaxAndAveragePoolMatchNaiveAtVectorEdges) {
  ThreadPool pool(2);
  int seed = 0;
  for (const Pool2D& base : Configs())
    for (int64_t w : {7, 8, 9, 16, 17, 33})
      for (int64_t h : {5, 9})
        for (int kind = 0; kind < 3; ++kind) {
          Pool2D p = base;
          p.include_pad = kind == 2;
          const bool is_max = kind == 0;
          const std::string op = is_max ? "MaxPool" : "AveragePool";
          OneNode n(op, 1);
          SetPool(n, p, !is_max);
          const Tensor x = Rand({2, 3, h, w}, ++seed);
          std::vector<int64_t> shape;
          const std::vector<float> want = NaivePool(x, is_max, p, &shape);
          for (const KernelDef* def : Defs(op)) {
            auto out = RunNode(*n.node, {&x}, pool, def);
            ExpectNear(out[0], shape, want, 1e-5f,
                       std::string(def->name) + " k=" + std::to_string(p.kh) + "x" +
                           std::to_string(p.kw) + " w=" + std::to_string(w));
          }
        }
}

// The 1-D/2-D MaxPool path (f32_maxpool__avx2, f32_maxpool__avx512) reduces rows first,
// then taps along a padded row with stride-2 deinterleaves: output widths below, at and
// above the 8- and 16-lane vectors and their multiples (input widths up to 113), 3x3/2x2
// at strides 1 and 2, pads, ceil_mode, dilation and stride 3 (its scalar row loop).
TEST(PoolTest, MaxPool2DAtSixteenLaneEdges) {
  ThreadPool pool(2);
  std::vector<Pool2D> cfgs = {{3, 3, 2, 2, 1, 1, 1, 1, 1, 1},        // resnet stem
                              {3, 3, 2, 2, 1, 1, 0, 0, 0, 0, true},  // ceil_mode
                              {2, 2, 2, 2},
                              {3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
                              {2, 2, 1, 1},
                              {3, 3, 2, 2, 1, 2, 1, 2, 0, 1},        // dilated along W
                              {3, 2, 3, 3, 1, 1, 1, 1, 1, 0}};       // stride 3
  const auto names = [&] {
    std::string s;
    for (const KernelDef* d : Defs("MaxPool")) s += std::string(d->name) + " ";
    return s;
  }();
  if (GetCpuFeatures().Has(Isa::kAvx512)) {
    EXPECT_NE(names.find("f32_maxpool__avx512"), std::string::npos) << names;
  }
  int seed = 100;
  for (const Pool2D& p : cfgs)
    for (int64_t w : {1, 2, 15, 16, 17, 31, 32, 33, 34, 35, 63, 65, 112, 113})
      for (int64_t h : {1, 4, 7}) {
        if (w + p.pl + p.pr < (p.kw - 1) * p.dw + 1 || h + p.pt + p.pb < (p.kh - 1) * p.dh + 1)
          continue;  // kernel larger than the padded input
        OneNode n("MaxPool", 1);
        SetPool(n, p, false);
        const Tensor x = Rand({1, 3, h, w}, ++seed);
        std::vector<int64_t> shape;
        const std::vector<float> want = NaivePool(x, true, p, &shape);
        for (const KernelDef* def : Defs("MaxPool")) {
          auto out = RunNode(*n.node, {&x}, pool, def);
          ExpectNear(out[0], shape, want, 0.f,
                     std::string(def->name) + " k=" + std::to_string(p.kh) + "x" +
                         std::to_string(p.kw) + " s=" + std::to_string(p.sw) +
                         " h=" + std::to_string(h) + " w=" + std::to_string(w));
        }
      }
}

// Found by fuzz_epk_run: pads just under a huge kernel leave a small output, but the AVX2
// path sized its padded scratch row by the pads (4 GiB here). Such rows take the reference
// path; every kernel still gives the naive result (prefix max / prefix mean).
TEST(PoolTest, HugePadsDoNotSizeScratchRows) {
  ThreadPool pool(1);
  const int64_t k = int64_t{1} << 30;
  const Tensor x = Rand({1, 1, 4}, 7);
  const float* v = x.data<float>();
  std::vector<float> prefix_max, prefix_mean;
  float m = v[0], sum = 0;
  for (int q = 0; q < 4; ++q) {
    m = std::max(m, v[q]);
    sum += v[q];
    prefix_max.push_back(m);
    prefix_mean.push_back(sum / static_cast<float>(q + 1));
  }
  for (const std::string op : {"MaxPool", "AveragePool"}) {
    OneNode n(op, 1);
    n.Set(Attribute::Ints("kernel_shape", {k}));
    n.Set(Attribute::Ints("pads", {k - 1, 0}));
    for (const KernelDef* def : Defs(op))
      ExpectNear(RunNode(*n.node, {&x}, pool, def)[0], {1, 1, 4},
                 op == "MaxPool" ? prefix_max : prefix_mean, 1e-6f, def->name);
  }
}

TEST(PoolTest, HandComputedValues) {
  ThreadPool pool(1);
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = static_cast<float>(i);
  const Tensor x = Tensor::FromVector(DType::kFloat32, {1, 1, 4, 4}, v);
  OneNode mx("MaxPool", 1), av("AveragePool", 1);
  for (OneNode* n : {&mx, &av}) {
    n->Set(Attribute::Ints("kernel_shape", {2, 2}));
    n->Set(Attribute::Ints("strides", {2, 2}));
  }
  for (const KernelDef* def : Defs("MaxPool"))
    ExpectNear(RunNode(*mx.node, {&x}, pool, def)[0], {1, 1, 2, 2}, {5, 7, 13, 15}, 0, def->name);
  for (const KernelDef* def : Defs("AveragePool"))
    ExpectNear(RunNode(*av.node, {&x}, pool, def)[0], {1, 1, 2, 2}, {2.5f, 4.5f, 10.5f, 12.5f},
               0, def->name);
  // 3x3 window, pad 1, stride 2: the corner window sees 4 values (exclude pad) or 9 slots.
  OneNode ap("AveragePool", 1);
  ap.Set(Attribute::Ints("kernel_shape", {3, 3}));
  ap.Set(Attribute::Ints("strides", {2, 2}));
  ap.Set(Attribute::Ints("pads", {1, 1, 1, 1}));
  for (const KernelDef* def : Defs("AveragePool"))
    ExpectNear(RunNode(*ap.node, {&x}, pool, def)[0], {1, 1, 2, 2},
               {(0 + 1 + 4 + 5) / 4.f, (1 + 2 + 3 + 5 + 6 + 7) / 6.f, (4 + 5 + 8 + 9 + 12 + 13) / 6.f,
                (5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15) / 9.f},
               1e-6f, def->name);
  ap.Set(Attribute::Int("count_include_pad", 1));
  for (const KernelDef* def : Defs("AveragePool"))
    ExpectNear(RunNode(*ap.node, {&x}, pool, def)[0], {1, 1, 2, 2},
               {(0 + 1 + 4 + 5) / 9.f, (1 + 2 + 3 + 5 + 6 + 7) / 9.f, (4 + 5 + 8 + 9 + 12 + 13) / 9.f,
                (5 + 6 + 7 + 9 + 10 + 11 + 13 + 14 + 15) / 9.f},
               1e-6f, def->name);
}

TEST(PoolTest, MaxPoolIndicesInBothStorageOrders) {
  ThreadPool pool(1);
  // 2 planes of 3x4; the maximum of each 2x2 window sits at a known spot.
  std::vector<float> v = {0, 9, 1, 2,  3, 4, 5, 8,  7, 6, 0, 1,
                          5, 1, 2, 2,  0, 0, 3, 0,  0, 0, 0, 0};
  const Tensor x = Tensor::FromVector(DType::kFloat32, {1, 2, 3, 4}, v);
  OneNode n("MaxPool", 1, {"y", "idx"});
  n.Set(Attribute::Ints("kernel_shape", {2, 2}));
  n.Set(Attribute::Ints("strides", {2, 2}));
  for (const KernelDef* def : Defs("MaxPool")) {
    auto out = RunNode(*n.node, {&x}, pool, def);
    ExpectNear(out[0], {1, 2, 1, 2}, {9, 8, 5, 3}, 0, def->name);
    ASSERT_EQ(out[1].dtype(), DType::kInt64);
    EXPECT_EQ(out[1].ToInt64(), (std::vector<int64_t>{1, 7, 12, 18})) << def->name;
  }
  n.Set(Attribute::Int("storage_order", 1));  // column-major spatial index
  for (const KernelDef* def : Defs("MaxPool")) {
    auto out = RunNode(*n.node, {&x}, pool, def);
    // (h, w) -> w * H + h, plus the plane offset 12 for the second channel.
    EXPECT_EQ(out[1].ToInt64(), (std::vector<int64_t>{3, 10, 12, 12 + 7})) << def->name;
  }
}

TEST(PoolTest, AutoPadSameAndValid) {
  ThreadPool pool(2);
  const Tensor x = Rand({1, 2, 7, 10}, 7);
  struct Case { std::string auto_pad; Pool2D explicit_pads; };
  // Same: out = ceil(in / s); total pad = (out-1)*s + k - in, the odd pixel at the end
  // (SAME_UPPER) or the start (SAME_LOWER). H: out 4, total 2; W: out 5, total 1.
  const std::vector<Case> cases = {
      {"SAME_UPPER", {3, 3, 2, 2, 1, 1, 1, 0, 1, 1}},
      {"SAME_LOWER", {3, 3, 2, 2, 1, 1, 1, 1, 1, 0}},
      {"VALID", {3, 3, 2, 2, 1, 1, 0, 0, 0, 0}},
  };
  for (const Case& c : cases)
    for (const std::string op : {"MaxPool", "AveragePool"}) {
      OneNode n(op, 1);
      n.Set(Attribute::Ints("kernel_shape", {3, 3}));
      n.Set(Attribute::Ints("strides", {2, 2}));
      n.Set(Attribute::String("auto_pad", c.auto_pad));
      std::vector<int64_t> shape;
      const auto want = NaivePool(x, op == "MaxPool", c.explicit_pads, &shape);
      for (const KernelDef* def : Defs(op))
        ExpectNear(RunNode(*n.node, {&x}, pool, def)[0], shape, want, 1e-5f,
                   std::string(def->name) + " " + c.auto_pad);
    }
}

TEST(PoolTest, OneAndThreeDimensionalMatchTwoDimensional) {
  ThreadPool pool(2);
  const Tensor x2 = Rand({2, 3, 1, 19}, 11);
  Tensor x1(DType::kFloat32, {2, 3, 19}, x2.buffer());
  Tensor x3(DType::kFloat32, {2, 3, 1, 1, 19}, x2.buffer());
  for (const std::string op : {"MaxPool", "AveragePool", "LpPool"}) {
    OneNode n1(op, 1), n2(op, 1), n3(op, 1);
    n1.Set(Attribute::Ints("kernel_shape", {4}));
    n1.Set(Attribute::Ints("strides", {3}));
    n1.Set(Attribute::Ints("pads", {1, 2}));
    n2.Set(Attribute::Ints("kernel_shape", {1, 4}));
    n2.Set(Attribute::Ints("strides", {1, 3}));
    n2.Set(Attribute::Ints("pads", {0, 1, 0, 2}));
    n3.Set(Attribute::Ints("kernel_shape", {1, 1, 4}));
    n3.Set(Attribute::Ints("strides", {1, 1, 3}));
    n3.Set(Attribute::Ints("pads", {0, 0, 1, 0, 0, 2}));
    for (const KernelDef* def : KernelsFor(op, "", DType::kFloat32)) {
      const Tensor y2 = RunNode(*n2.node, {&x2}, pool, def)[0];
      const Tensor y1 = RunNode(*n1.node, {&x1}, pool, def)[0];
      const Tensor y3 = RunNode(*n3.node, {&x3}, pool, def)[0];
      ASSERT_EQ(y2.shape(), (std::vector<int64_t>{2, 3, 1, 7})) << def->name;
      ASSERT_EQ(y1.shape(), (std::vector<int64_t>{2, 3, 7})) << def->name;
      ASSERT_EQ(y3.shape(), (std::vector<int64_t>{2, 3, 1, 1, 7})) << def->name;
      for (uint64_t i = 0; i < y2.numel(); ++i) {
        EXPECT_FLOAT_EQ(y1.data<float>()[i], y2.data<float>()[i]) << def->name;
        EXPECT_FLOAT_EQ(y3.data<float>()[i], y2.data<float>()[i]) << def->name;
      }
    }
  }
}

TEST(PoolTest, ThreeDimensionalMaxPoolMatchesNaive) {
  ThreadPool pool(2);
  const Tensor x = Rand({1, 2, 5, 6, 9}, 5);
  OneNode n("MaxPool", 1);
  n.Set(Attribute::Ints("kernel_shape", {2, 3, 3}));
  n.Set(Attribute::Ints("strides", {2, 1, 2}));
  n.Set(Attribute::Ints("pads", {0, 1, 1, 0, 1, 0}));
  // D: (5-2)/2+1 = 2; H: (6+2-3)+1 = 6; W: (9+1-3)/2+1 = 4.
  std::vector<float> want;
  const float* p = x.data<float>();
  for (int c = 0; c < 2; ++c)
    for (int od = 0; od < 2; ++od)
      for (int oh = 0; oh < 6; ++oh)
        for (int ow = 0; ow < 4; ++ow) {
          float m = -std::numeric_limits<float>::infinity();
          for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 3; ++b)
              for (int e = 0; e < 3; ++e) {
                const int d = od * 2 + a, h = oh - 1 + b, w = ow * 2 - 1 + e;
                if (h < 0 || h >= 6 || w < 0 || w >= 9) continue;
                m = std::max(m, p[((c * 5 + d) * 6 + h) * 9 + w]);
              }
          want.push_back(m);
        }
  for (const KernelDef* def : Defs("MaxPool"))
    ExpectNear(RunNode(*n.node, {&x}, pool, def)[0], {1, 2, 2, 6, 4}, want, 0, def->name);
}

TEST(PoolTest, GlobalPoolsMatchNaive) {
  ThreadPool pool(2);
  for (int64_t len : {1, 7, 8, 9, 15, 16, 17, 40}) {
    const Tensor x = Rand({2, 3, len, 1}, static_cast<uint32_t>(len));
    std::vector<float> mean, mx, lp;
    for (int nc = 0; nc < 6; ++nc) {
      double s = 0, q = 0;
      float m = -1e30f;
      for (int64_t i = 0; i < len; ++i) {
        const float v = x.data<float>()[nc * len + i];
        s += v;
        q += static_cast<double>(v) * v;
        m = std::max(m, v);
      }
      mean.push_back(static_cast<float>(s / len));
      mx.push_back(m);
      lp.push_back(static_cast<float>(std::sqrt(q)));
    }
    const std::vector<std::pair<std::string, std::vector<float>*>> ops = {
        {"GlobalAveragePool", &mean}, {"GlobalMaxPool", &mx}, {"GlobalLpPool", &lp}};
    for (const auto& [op, want] : ops) {
      OneNode n(op, 1);
      for (const KernelDef* def : KernelsFor(op, "", DType::kFloat32))
        ExpectNear(RunNode(*n.node, {&x}, pool, def)[0], {2, 3, 1, 1}, *want, 1e-5f,
                   std::string(def->name) + " len=" + std::to_string(len));
    }
  }
}

TEST(PoolTest, LpPoolMatchesNaive) {
  ThreadPool pool(1);
  const Tensor x = Rand({1, 2, 4, 5}, 3);
  for (int64_t p : {1, 2, 3}) {
    OneNode n("LpPool", 1);
    n.Set(Attribute::Ints("kernel_shape", {2, 2}));
    n.Set(Attribute::Ints("pads", {1, 0, 0, 1}));
    n.Set(Attribute::Int("p", p));
    std::vector<float> want;
    for (int c = 0; c < 2; ++c)
      for (int oh = 0; oh < 4; ++oh)
        for (int ow = 0; ow < 5; ++ow) {
          double acc = 0;
          for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 2; ++b) {
              const int h = oh - 1 + a, w = ow + b;
              if (h < 0 || h >= 4 || w >= 5) continue;
              acc += std::pow(std::fabs(x.data<float>()[(c * 4 + h) * 5 + w]), p);
            }
          want.push_back(static_cast<float>(std::pow(acc, 1.0 / p)));
        }
    for (const KernelDef* def : Defs("LpPool", false))
      ExpectNear(RunNode(*n.node, {&x}, pool, def)[0], {1, 2, 4, 5}, want, 1e-5f, def->name);
  }
}

TEST(PoolTest, Uint8MaxPool) {
  ThreadPool pool(1);
  std::vector<uint8_t> v = {1, 200, 3, 4, 5, 6, 255, 8, 9};
  const Tensor x = Tensor::FromVector(DType::kUInt8, {1, 1, 3, 3}, v);
  OneNode n("MaxPool", 1);
  n.Set(Attribute::Ints("kernel_shape", {2, 2}));
  auto defs = KernelsFor("MaxPool", "", DType::kUInt8);
  ASSERT_FALSE(defs.empty());
  const Tensor y = RunNode(*n.node, {&x}, pool, defs[0])[0];
  ASSERT_EQ(y.dtype(), DType::kUInt8);
  const uint8_t* p = y.data<uint8_t>();
  EXPECT_EQ(std::vector<int>(p, p + 4), (std::vector<int>{200, 200, 255, 9}));
}

// Each malformed node must throw edgepress::Error naming the node, never crash.
TEST(PoolTest, MalformedNodesAreRejected) {
  ThreadPool pool(1);
  const Tensor x = Rand({1, 1, 4, 4}, 1);
  const Tensor x2d = Rand({4, 4}, 1);
  auto expect_error = [&](OneNode& n, const Tensor& in, const std::string& why) {
    try {
      for (const KernelDef* def : KernelsFor(n.node->op_type(), "", in.dtype()))
        RunNode(*n.node, {&in}, pool, def);
      ADD_FAILURE() << "no error for: " << why;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("test_"), std::string::npos) << e.what();
    }
  };
  {
    OneNode n("MaxPool", 1);
    expect_error(n, x, "missing kernel_shape");
  }
  struct Bad { std::string attr; std::vector<int64_t> v; const Tensor* in; };
  const std::vector<Bad> bad = {
      {"kernel_shape", {2}, &x},          {"kernel_shape", {0, 2}, &x},
      {"kernel_shape", {9, 9}, &x},       {"strides", {0, 1}, &x},
      {"pads", {-1, 0, 0, 0}, &x},        {"pads", {1, 1}, &x},
      {"dilations", {1, -2}, &x},         {"kernel_shape", {2, 2}, &x2d},
      {"pads", {5, 5, 5, 5}, &x},
  };
  for (const Bad& b : bad)
    for (const std::string op : {"MaxPool", "AveragePool", "LpPool"}) {
      OneNode n(op, 1);
      n.Set(Attribute::Ints("kernel_shape", {2, 2}));
      n.Set(Attribute::Ints(b.attr, b.v));
      expect_error(n, *b.in, op + " " + b.attr);
    }
  OneNode ap("AveragePool", 1);
  ap.Set(Attribute::Ints("kernel_shape", {2, 2}));
  ap.Set(Attribute::String("auto_pad", "SAME"));
  expect_error(ap, x, "bad auto_pad");
  OneNode g("GlobalAveragePool", 1);
  expect_error(g, x2d, "rank 2 global pool");
  const Tensor empty(DType::kFloat32, {1, 1, 0, 3});
  expect_error(g, empty, "empty spatial");
}

}  // namespace
}  // namespace edgepress::runtime
