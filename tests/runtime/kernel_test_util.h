// Helpers shared by the kernel tests that run one node through runtime::RunNode: random
// float tensors, a one-node graph, the float32 kernel entries of an op, and an elementwise
// comparison with a relative tolerance.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"

namespace edgepress::test_util {

inline ir::Tensor RandomF32(std::vector<int64_t> shape, uint32_t seed, float lo = -2.f,
                            float hi = 2.f) {
  ir::Tensor t(ir::DType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  float* p = t.mutable_data<float>();
  for (uint64_t i = 0; i < t.numel(); ++i) p[i] = u(rng);
  return t;
}

// One node in its own graph with float32 inputs x0..; `present[i]` false leaves input i
// omitted (an empty name in ONNX).
struct OneNode {
  ir::Graph g;
  ir::Node* node = nullptr;
  OneNode(const std::string& op, int n_in, std::vector<std::string> outs = {"y0"})
      : OneNode(op, std::vector<bool>(n_in, true), std::move(outs)) {}
  OneNode(const std::string& op, std::vector<bool> present, std::vector<std::string> outs = {"y0"}) {
    std::vector<ir::Value*> ins;
    for (size_t i = 0; i < present.size(); ++i)
      ins.push_back(present[i] ? g.AddInput("x" + std::to_string(i),
                                            ir::ValueType::Tensor(ir::DType::kFloat32))
                               : nullptr);
    node = g.AddNode(op, ins, outs, "test_" + op);
  }
  void Set(ir::Attribute a) { node->set_attr(std::move(a)); }
};

// The float32 kernels registered for `op`; with `want_simd`, also checks that an AVX2 entry
// exists on a CPU that has AVX2.
inline std::vector<const runtime::KernelDef*> FloatKernels(const std::string& op,
                                                           bool want_simd = true) {
  auto defs = runtime::KernelsFor(op, "", ir::DType::kFloat32);
  EXPECT_FALSE(defs.empty()) << op;
  if (want_simd && runtime::GetCpuFeatures().Has(runtime::Isa::kAvx2)) {
    bool has_simd = false;
    for (auto* d : defs) has_simd |= d->isa == runtime::Isa::kAvx2;
    EXPECT_TRUE(has_simd) << op << " has no AVX2 kernel";
  }
  return defs;
}

// |got - want| <= tol * (1 + |want|) everywhere, and the shape matches.
template <typename T>
void ExpectNear(const ir::Tensor& got, const std::vector<int64_t>& shape,
                const std::vector<T>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.shape(), shape) << what;
  ASSERT_EQ(got.numel(), want.size()) << what;
  const float* p = got.data<float>();
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(p[i], want[i], tol * (1 + std::fabs(static_cast<double>(want[i]))))
        << what << " at " << i;
}
// Braced lists ({1, 2.5f}) land here.
inline void ExpectNear(const ir::Tensor& got, const std::vector<int64_t>& shape,
                       const std::vector<double>& want, double tol, const std::string& what) {
  ExpectNear<double>(got, shape, want, tol, what);
}

}  // namespace edgepress::test_util
