// 8-bit MaxPool (the integer pipeline's pool after fuse-qdq): every registered kernel
// against the reference kernel, exactly, at strides 1/2/3, padding (which must never
// win), dilation, ceil_mode (windows reaching past the padding), asymmetric pads, 1-D,
// and uint8/int8 values down to the type's lowest.
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
  // A plane that is the type's lowest everywhere: padding must still not leak in.
  for (uint64_t i = 0; i < t.numel() / 4; ++i) t.mutable_data<T>()[i] = std::numeric_limits<T>::lowest();
  return t;
}

struct Case {
  std::vector<int64_t> shape, kernel, strides, pads, dilations;
  int64_t ceil_mode;
  const char* what;
};

TEST(QPoolTest, MaxPool8BitEveryKernelMatchesReference) {
  const Case cases[] = {
      {{1, 8, 112, 112}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 0, "resnet stem 3x3 s2 p1"},
      {{2, 4, 9, 10}, {2, 2}, {2, 2}, {0, 0, 0, 0}, {1, 1}, 0, "2x2 s2, odd width"},
      {{1, 4, 13, 17}, {3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 0, "3x3 s1 p1"},
      {{1, 4, 15, 15}, {3, 3}, {2, 2}, {0, 1, 2, 0}, {2, 2}, 1, "dilation 2, ceil_mode, asymmetric"},
      {{1, 3, 11, 11}, {3, 2}, {3, 3}, {1, 0, 1, 1}, {1, 1}, 1, "stride 3, ceil_mode"},
      {{1, 5, 40}, {3}, {2}, {1, 1}, {1}, 0, "1-D"},
      {{1, 3, 5, 97}, {2, 3}, {1, 1}, {0, 1, 1, 1}, {1, 1}, 0, "s1, 3 vectors and a tail"},
      {{1, 3, 6, 67}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 3}, 0, "s2, odd tap offsets"},
      {{1, 2, 4, 64}, {1, 2}, {1, 2}, {0, 0, 0, 0}, {1, 1}, 0, "s2, exactly two vectors"},
      {{1, 2, 3, 2}, {3, 5}, {2, 2}, {2, 2, 2, 2}, {1, 1}, 1, "window wider than the plane"},
  };
  uint32_t seed = 1;
  for (const Case& c : cases)
    for (DType dt : {DType::kUInt8, DType::kInt8}) {
      const Tensor x = dt == DType::kUInt8 ? RandomQ<uint8_t>(dt, c.shape, ++seed)
                                           : RandomQ<int8_t>(dt, c.shape, ++seed);
      ir::Graph g;
      ir::Node* node = g.AddNode("MaxPool", {g.AddInput("x", ir::ValueType::Tensor(dt))}, {"y"},
                                 "pool0", "");
      node->set_attr(ir::Attribute::Ints("kernel_shape", c.kernel));
      node->set_attr(ir::Attribute::Ints("strides", c.strides));
      node->set_attr(ir::Attribute::Ints("pads", c.pads));
      node->set_attr(ir::Attribute::Ints("dilations", c.dilations));
      node->set_attr(ir::Attribute::Int("ceil_mode", c.ceil_mode));
      const auto defs = KernelsFor("MaxPool", "", dt);
      ASSERT_GE(defs.size(), 1u);
      ASSERT_EQ(defs[0]->isa, Isa::kScalar);
      if (seed == 2) {
        std::printf("MaxPool 8-bit kernels:");
        for (const KernelDef* d : defs) std::printf(" %s", d->name);
        std::printf("\n");
      }
      ThreadPool pool(2);
      const Tensor ref = RunNode(*node, {&x}, pool, defs[0])[0];
      for (const KernelDef* d : defs) {
        const Tensor y = RunNode(*node, {&x}, pool, d)[0];
        ASSERT_EQ(y.shape(), ref.shape()) << d->name << " " << c.what;
        EXPECT_TRUE(y == ref) << d->name << " differs from " << defs[0]->name << ": " << c.what;
      }
    }
}

}  // namespace
}  // namespace edgepress::runtime
