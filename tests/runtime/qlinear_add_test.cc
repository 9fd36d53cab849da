// QLinearAdd (com.microsoft and edgepress with a fused Relu) on every registered kernel
// against the reference kernel, exactly: same shapes (the vectorised residual-Add path,
// lengths around 16 and thread splits), broadcasting (reference loop), uint8 and int8,
// scales that put many sums on .5 (round half to even) and saturate both ways.
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

}  // namespace
}  // namespace edgepress::runtime
