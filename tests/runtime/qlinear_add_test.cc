// QLinearAdd (com.microsoft and edgepress with a fused Relu) on every registered kernel
// against the reference kernel, exactly: same shapes (the vectorised residual-Add path,
// lengths around 16 and thread splits), broadcasting (reference loop), uint8 and int8,
// scales that put many sums on .5 (round half to even) and saturate both ways.
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

TEST(QLinearAddTest, EveryKernelMatchesReference) {
  struct Shapes {
    std::vector<int64_t> a, b;
  };
  const Shapes shapes[] = {{{1, 7}, {1, 7}},           {{1, 16}, {1, 16}},
                           {{3, 33}, {3, 33}},         {{1, 64, 56, 56}, {1, 64, 56, 56}},
                           {{2, 3, 5}, {3, 1}},        {{4, 8}, {8}}};
  // ra = 0.5 and rb = 1.5 put many sums exactly on .5; 2.0 saturates.
  const float scales[][3] = {{0.05f, 0.15f, 0.1f}, {0.2f, 0.2f, 0.1f}, {0.013f, 0.07f, 0.031f}};
  uint32_t seed = 1;
  for (const char* domain : {"com.microsoft", "edgepress"})
    for (DType dt : {DType::kUInt8, DType::kInt8})
      for (const Shapes& sh : shapes)
        for (const auto& sc : scales) {
          const bool u8 = dt == DType::kUInt8;
          const Tensor a = u8 ? RandomQ<uint8_t>(dt, sh.a, ++seed) : RandomQ<int8_t>(dt, sh.a, ++seed);
          const Tensor b = u8 ? RandomQ<uint8_t>(dt, sh.b, ++seed) : RandomQ<int8_t>(dt, sh.b, ++seed);
          auto zp = [&](int v) { return u8 ? Scalar<uint8_t>(dt, static_cast<uint8_t>(128 + v))
                                           : Scalar<int8_t>(dt, static_cast<int8_t>(v)); };
          const std::vector<Tensor> in = {a, Scalar<float>(DType::kFloat32, sc[0]), zp(3), b,
                                          Scalar<float>(DType::kFloat32, sc[1]), zp(-5),
                                          Scalar<float>(DType::kFloat32, sc[2]), zp(1)};
          ir::Graph g;
          std::vector<ir::Value*> vals;
          for (size_t i = 0; i < in.size(); ++i) {
            const std::string name = "in" + std::to_string(i);
            vals.push_back(i == 0 || i == 3 ? g.AddInput(name, ir::ValueType::Tensor(dt))
                                            : g.AddInitializer(name, in[i]));
          }
          ir::Node* node = g.AddNode("QLinearAdd", vals, {"out"}, "add0", domain);
          if (std::string(domain) == "edgepress")
            node->set_attr(ir::Attribute::String("activation", "Relu"));
          std::vector<const Tensor*> ptrs;
          for (const auto& t : in) ptrs.push_back(&t);
          const auto defs = KernelsFor("QLinearAdd", domain, dt);
          ASSERT_GE(defs.size(), 1u);
          ASSERT_EQ(defs[0]->isa, Isa::kScalar);
          if (seed == 3) {
            std::printf("QLinearAdd kernels:");
            for (const KernelDef* d : defs) std::printf(" %s", d->name);
            std::printf("\n");
          }
          ThreadPool pool(2);
          const Tensor ref = RunNode(*node, ptrs, pool, defs[0])[0];
          for (const KernelDef* d : defs) {
            const Tensor y = RunNode(*node, ptrs, pool, d)[0];
            ASSERT_EQ(y.shape(), ref.shape()) << d->name;
            EXPECT_TRUE(y == ref) << d->name << " differs from " << defs[0]->name << " ("
                                  << domain << ", " << ir::DTypeName(dt) << ", scales "
                                  << sc[0] << "/" << sc[1] << "/" << sc[2] << ")";
          }
        }
}

// QLinearGlobalAveragePool (com.microsoft, same file): each plane's mean requantized,
// against a direct computation, on 1, 2 and 3 threads (planes split in contiguous shares
// once there are 16 KiB of input): mobilenet_v2's head (1280 planes of 7x7), an uneven
// split (1001 planes of 5x7 over 3 threads), and a small input that stays on one thread.
TEST(QLinearGlobalAveragePoolTest, ThreadSplitsMatchDirectMean) {
  struct Case {
    std::vector<int64_t> shape;
    const char* what;
  } cases[] = {{{1, 1280, 7, 7}, "mobilenet_v2 head"},
               {{2, 1001, 5, 7}, "batch 2, uneven shares"},
               {{1, 24, 3, 3}, "small: one thread"}};
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
      int saturated = 0;
      for (int threads : {1, 2, 3}) {
        ThreadPool pool(threads);
        const Tensor y = RunNode(*node, ptrs, pool)[0];
        ASSERT_EQ(y.shape(), (std::vector<int64_t>{c.shape[0], c.shape[1], 1, 1})) << c.what;
        for (int64_t p = 0; p < planes; ++p) {
          int64_t s = 0;
          for (int64_t i = 0; i < hw; ++i)
            s += u8 ? x.data<uint8_t>()[p * hw + i] : x.data<int8_t>()[p * hw + i];
          const float v = static_cast<float>(s - static_cast<int64_t>(zx) * hw) * mult;
          const int32_t lo = u8 ? 0 : -128, hi = u8 ? 255 : 127;
          const int32_t q = std::min(hi, std::max(lo, static_cast<int32_t>(std::nearbyint(v)) + zy));
          const int32_t got = u8 ? y.data<uint8_t>()[p] : y.data<int8_t>()[p];
          ASSERT_EQ(got, q) << c.what << " plane " << p << " (" << threads << " threads)";
          saturated += q == lo || q == hi;
        }
      }
      // The random planes' means sit near the zero point: the values are not all clipped.
      EXPECT_LT(saturated, planes * 3) << c.what;
    }
}

}  // namespace
}  // namespace edgepress::runtime
