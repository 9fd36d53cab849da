// QLinearAdd (com.microsoft and edgepress with a fused Relu / Clip) and QLinearMul on every
// registered kernel (AVX2, AVX-512 where the CPU has them) against the reference kernel,
// byte for byte, on 1 and 2 threads: same shapes (the vector loops, lengths around 16 and
// thread splits), the squeeze-excite gate, broadcasting (reference loop), uint8 and int8,
// scales that put many results on .5 (round half to even) and saturate both ways.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
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

struct Case {
  const char* op;      // QLinearAdd or QLinearMul
  const char* domain;  // com.microsoft or edgepress
  DType dt;
  std::vector<int64_t> a, b;
  float sa, sb, sc;
  const char* activation = "";  // edgepress QLinearAdd: "", Relu or Clip (-1, 2)
};

std::string Describe(const Case& c) {
  auto dims = [](const std::vector<int64_t>& d) {
    std::string s = "[";
    for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
    return s + "]";
  };
  char sc[64];
  std::snprintf(sc, sizeof sc, " scales %g/%g/%g ", c.sa, c.sb, c.sc);
  return std::string(c.domain) + "::" + c.op + " " + ir::DTypeName(c.dt) + " " + dims(c.a) +
         " x " + dims(c.b) + sc + c.activation;
}

// Runs `c` on the reference kernel and on every other kernel the CPU has, on 1 and 2
// threads, and expects the same bytes; returns the reference output. Zero points are
// off-centre (a: +3, b: -5, c: +1 around 128 or 0). A and B are random unless given.
Tensor ExpectEveryKernelMatches(const Case& c, uint32_t seed, const Tensor* a = nullptr,
                                const Tensor* b = nullptr) {
  const bool u8 = c.dt == DType::kUInt8;
  auto random = [&](const std::vector<int64_t>& shape, uint32_t s) {
    return u8 ? RandomQ<uint8_t>(c.dt, shape, s) : RandomQ<int8_t>(c.dt, shape, s);
  };
  auto zp = [&](int v) { return u8 ? Scalar<uint8_t>(c.dt, static_cast<uint8_t>(128 + v))
                                   : Scalar<int8_t>(c.dt, static_cast<int8_t>(v)); };
  const std::vector<Tensor> in = {a ? *a : random(c.a, seed), Scalar<float>(DType::kFloat32, c.sa),
                                  zp(3), b ? *b : random(c.b, seed + 7919),
                                  Scalar<float>(DType::kFloat32, c.sb), zp(-5),
                                  Scalar<float>(DType::kFloat32, c.sc), zp(1)};
  ir::Graph g;
  std::vector<ir::Value*> vals;
  for (size_t i = 0; i < in.size(); ++i) {
    const std::string name = "in" + std::to_string(i);
    vals.push_back(i == 0 || i == 3 ? g.AddInput(name, ir::ValueType::Tensor(c.dt))
                                    : g.AddInitializer(name, in[i]));
  }
  ir::Node* node = g.AddNode(c.op, vals, {"out"}, "node0", c.domain);
  if (*c.activation) node->set_attr(ir::Attribute::String("activation", c.activation));
  if (std::string(c.activation) == "Clip")
    node->set_attr(ir::Attribute::Floats("activation_params", {-1.f, 2.f}));
  std::vector<const Tensor*> ptrs;
  for (const auto& t : in) ptrs.push_back(&t);
  const auto defs = KernelsFor(c.op, c.domain, c.dt);
  EXPECT_GE(defs.size(), 1u);
  if (defs.empty()) return Tensor();
  EXPECT_EQ(defs[0]->isa, Isa::kScalar) << defs[0]->name;
  if (GetCpuFeatures().Has(Isa::kAvx2)) {
    bool has_avx2 = false;
    for (const KernelDef* d : defs) has_avx2 |= d->isa == Isa::kAvx2;
    EXPECT_TRUE(has_avx2) << c.domain << "::" << c.op << " has no AVX2 kernel";
  }
  ThreadPool pool1(1), pool2(2);
  const Tensor ref = RunNode(*node, ptrs, pool1, defs[0])[0];
  for (const KernelDef* d : defs)
    for (ThreadPool* pool : {&pool1, &pool2}) {
      const Tensor y = RunNode(*node, ptrs, *pool, d)[0];
      EXPECT_EQ(y.shape(), ref.shape()) << d->name;
      EXPECT_TRUE(y == ref) << d->name << " differs from " << defs[0]->name << " on "
                            << Describe(c) << " (" << pool->num_threads() << " threads)";
    }
  return ref;
}

// ra = 0.5 and rb = 1.5 put many sums exactly on .5; 2.0 saturates both ways.
const float kScales[][3] = {{0.05f, 0.15f, 0.1f}, {0.2f, 0.2f, 0.1f}, {0.013f, 0.07f, 0.031f}};

TEST(QLinearAddTest, EveryKernelMatchesReference) {
  struct Shapes {
    std::vector<int64_t> a, b;
  };
  const Shapes shapes[] = {{{1, 7}, {1, 7}},           {{1, 16}, {1, 16}},
                           {{3, 33}, {3, 33}},         {{1, 64, 56, 56}, {1, 64, 56, 56}},
                           {{2, 3, 5}, {3, 1}},        {{4, 8}, {8}}};
  uint32_t seed = 1;
  bool printed = false;
  for (const char* domain : {"com.microsoft", "edgepress"})
    for (DType dt : {DType::kUInt8, DType::kInt8})
      for (const Shapes& sh : shapes)
        for (const auto& sc : kScales) {
          if (!printed) {
            std::printf("QLinearAdd kernels:");
            for (const KernelDef* d : KernelsFor("QLinearAdd", domain, dt)) std::printf(" %s", d->name);
            std::printf("\n");
            printed = true;
          }
          const char* act = std::string(domain) == "edgepress" ? "Relu" : "";
          ExpectEveryKernelMatches({"QLinearAdd", domain, dt, sh.a, sh.b, sc[0], sc[1], sc[2], act},
                                   seed += 2);
        }
}

// The vector loops' edges: lengths around the 16-element step (the tail runs on a copy),
// a thread split of the 16384-element shares with a ragged end, every fused activation,
// and outputs that saturate at both ends of uint8 and int8.
TEST(QLinearAddTest, SimdTailsThreadSplitsAndSaturation) {
  const int64_t lengths[] = {1, 8, 15, 17, 31, 32, 33, 47, 2 * 16384 + 21};
  uint32_t seed = 100;
  for (DType dt : {DType::kUInt8, DType::kInt8})
    for (int64_t n : lengths)
      for (const char* act : {"", "Relu", "Clip"}) {
        const char* domain = *act ? "edgepress" : "com.microsoft";
        const Tensor ref = ExpectEveryKernelMatches(
            {"QLinearAdd", domain, dt, {1, n}, {1, n}, 0.2f, 0.2f, 0.1f, act}, seed += 2);
        if (*act || n < 1000) continue;
        // ra = rb = 2: the random inputs reach both ends of the type.
        const bool u8 = dt == DType::kUInt8;
        int lo = 0, hi = 0;
        for (int64_t i = 0; i < n; ++i) {
          const int v = u8 ? ref.data<uint8_t>()[i] : ref.data<int8_t>()[i];
          lo += v == (u8 ? 0 : -128);
          hi += v == (u8 ? 255 : 127);
        }
        EXPECT_GT(lo, 0) << ir::DTypeName(dt);
        EXPECT_GT(hi, 0) << ir::DTypeName(dt);
      }
}

// Every pair of 8-bit values, with ra = fl(1/3) and rb = 0.5: 3 * ra rounds to 1.0, so
// (a - za) = 3, (b - zb) = -1 sums to exactly 0.5 (rounds to 0) in the reference, while a
// fused multiply-add would see 0.5 + 3e-8 and round to 1. This fails a vector loop that
// let the compiler contract its multiply and add.
TEST(QLinearAddTest, AllPairsNoFusedMultiplyAdd) {
  const float scales[][3] = {{1.f, 1.5f, 3.f}, {1.5f, 1.f, 3.f}, {0.013f, 0.07f, 0.031f}};
  for (DType dt : {DType::kUInt8, DType::kInt8}) {
    Tensor a(dt, {256, 256}), b(dt, {256, 256});
    for (int i = 0; i < 256 * 256; ++i) {  // raw bytes: every (a, b) pair once
      static_cast<uint8_t*>(a.mutable_raw())[i] = static_cast<uint8_t>(i >> 8);
      static_cast<uint8_t*>(b.mutable_raw())[i] = static_cast<uint8_t>(i);
    }
    for (const auto& sc : scales)
      ExpectEveryKernelMatches({"QLinearAdd", "com.microsoft", dt, {256, 256}, {256, 256}, sc[0],
                                sc[1], sc[2]}, 0, &a, &b);
  }
}

// QLinearMul: same shapes (lengths around the 16-element step and a thread split), the
// squeeze-excite gate [N, C, 1, 1] on either side with blocks of odd sizes (one vector
// loop per block), and a general broadcast (reference loop on every kernel).
TEST(QLinearMulTest, EveryKernelMatchesReference) {
  struct Shapes {
    std::vector<int64_t> a, b;
  };
  const Shapes shapes[] = {{{1, 1}, {1, 1}},
                           {{3, 17}, {3, 17}},
                           {{1, 33}, {1, 33}},
                           {{1, 2 * 16384 + 9}, {1, 2 * 16384 + 9}},
                           {{1, 16, 20, 20}, {1, 16, 1, 1}},
                           {{2, 5, 1, 1}, {2, 5, 7, 5}},
                           {{1, 24, 3, 5}, {1, 24, 1, 1}},
                           {{1, 576, 10, 10}, {1, 576, 1, 1}},
                           {{2, 3, 5}, {3, 1}}};
  // sa * sb / sc: 0.025 (many products on .5 at 20 * 1 and odd multiples), 0.4 and 0.03
  // saturate both ways.
  const float scales[][3] = {{0.05f, 0.05f, 0.1f}, {0.2f, 0.2f, 0.1f}, {0.013f, 0.07f, 0.031f}};
  uint32_t seed = 300;
  for (DType dt : {DType::kUInt8, DType::kInt8})
    for (const Shapes& sh : shapes)
      for (const auto& sc : scales)
        ExpectEveryKernelMatches({"QLinearMul", "com.microsoft", dt, sh.a, sh.b, sc[0], sc[1], sc[2]},
                                 seed += 2);
}

// QLinearGlobalAveragePool (com.microsoft, same file): each plane's mean requantized, on
// every kernel (the AVX2 one sums 32 bytes per vpsadbw), against a direct computation, on
// 1, 2 and 3 threads (planes split in contiguous shares once there are 16 KiB of input):
// mobilenet_v2's head (1280 planes of 7x7), an uneven split (1001 planes of 5x7 over 3
// threads), a small input that stays on one thread, planes around the 32-byte step, and
// the detector's first squeeze-excite input.
TEST(QLinearGlobalAveragePoolTest, ThreadSplitsMatchDirectMean) {
  struct Case {
    std::vector<int64_t> shape;
    const char* what;
  } cases[] = {{{1, 1280, 7, 7}, "mobilenet_v2 head"},
               {{2, 1001, 5, 7}, "batch 2, uneven shares"},
               {{1, 24, 3, 3}, "small: one thread"},
               {{1, 9, 1, 31}, "31 per plane"},
               {{1, 9, 4, 8}, "32 per plane"},
               {{3, 5, 1, 65}, "65 per plane"},
               {{1, 6, 1, 1}, "1 per plane"},
               {{1, 16, 80, 80}, "detector se"}};
  uint32_t seed = 40;
  for (const Case& c : cases)
    for (DType dt : {DType::kUInt8, DType::kInt8}) {
      const bool u8 = dt == DType::kUInt8;
      const Tensor x =
          u8 ? RandomQ<uint8_t>(dt, c.shape, ++seed) : RandomQ<int8_t>(dt, c.shape, ++seed);
      const float xs = 0.05f, ys = 0.011f;
      const int32_t zx = u8 ? 131 : -9, zy = u8 ? 120 : 4;
      const std::vector<Tensor> in = {
          x, Scalar<float>(DType::kFloat32, xs),
          u8 ? Scalar<uint8_t>(dt, static_cast<uint8_t>(zx)) : Scalar<int8_t>(dt, static_cast<int8_t>(zx)),
          Scalar<float>(DType::kFloat32, ys),
          u8 ? Scalar<uint8_t>(dt, static_cast<uint8_t>(zy)) : Scalar<int8_t>(dt, static_cast<int8_t>(zy))};
      ir::Graph g;
      std::vector<ir::Value*> vals = {g.AddInput("x", ir::ValueType::Tensor(dt))};
      for (size_t i = 1; i < in.size(); ++i)
        vals.push_back(g.AddInitializer("c" + std::to_string(i), in[i]));
      ir::Node* node = g.AddNode("QLinearGlobalAveragePool", vals, {"y"}, "gap0", "com.microsoft");
      std::vector<const Tensor*> ptrs;
      for (const Tensor& t : in) ptrs.push_back(&t);
      const int64_t hw = c.shape[2] * c.shape[3], planes = c.shape[0] * c.shape[1];
      const float mult = xs / (ys * static_cast<float>(hw));
      const auto defs = KernelsFor("QLinearGlobalAveragePool", "com.microsoft", dt);
      if (GetCpuFeatures().Has(Isa::kAvx2)) {
        ASSERT_EQ(defs.back()->isa, Isa::kAvx2);
      }
      int saturated = 0;
      for (const KernelDef* d : defs)
        for (int threads : {1, 2, 3}) {
          ThreadPool pool(threads);
          const Tensor y = RunNode(*node, ptrs, pool, d)[0];
          ASSERT_EQ(y.shape(), (std::vector<int64_t>{c.shape[0], c.shape[1], 1, 1})) << c.what;
          for (int64_t p = 0; p < planes; ++p) {
            int64_t s = 0;
            for (int64_t i = 0; i < hw; ++i)
              s += u8 ? x.data<uint8_t>()[p * hw + i] : x.data<int8_t>()[p * hw + i];
            const float v = static_cast<float>(s - static_cast<int64_t>(zx) * hw) * mult;
            const int32_t lo = u8 ? 0 : -128, hi = u8 ? 255 : 127;
            const int32_t q = std::min(hi, std::max(lo, static_cast<int32_t>(std::nearbyint(v)) + zy));
            const int32_t got = u8 ? y.data<uint8_t>()[p] : y.data<int8_t>()[p];
            ASSERT_EQ(got, q) << d->name << ", " << c.what << " plane " << p << " (" << threads
                              << " threads)";
            saturated += q == lo || q == hi;
          }
        }
      // The random planes' means sit near the zero point: the values are not all clipped.
      EXPECT_LT(saturated, planes * 3 * static_cast<int>(defs.size())) << c.what;
    }
}

}  // namespace
}  // namespace edgepress::runtime
