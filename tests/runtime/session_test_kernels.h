// A tiny kernel table for Session and control-flow tests (f32 Add/Mul/Sub with scalar
// broadcast, Relu, Identity, Neg, plus the real control-flow kernels), so those tests do
// not depend on the production kernel families and a wrong session shows up unambiguously.
#pragma once

#include <cstring>
#include <memory>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/all_kernels.h"

namespace edgepress::runtime::testing {

enum class BinOp { kAdd, kSub, kMul };

template <BinOp kOp>
class TestBinary : public Kernel {
 public:
  void Run(KernelContext& ctx) override {
    const ir::Tensor& a = *ctx.input(0);
    const ir::Tensor& b = *ctx.input(1);
    if (b.numel() != 1 && b.shape() != a.shape())
      ThrowUnsupported("test kernel: only same-shape or scalar broadcast");
    const float* pa = a.data<float>();
    const float* pb = b.data<float>();
    ir::Tensor& out = ctx.AllocateOutput(0, ir::DType::kFloat32, a.shape());
    float* po = out.mutable_data<float>();
    for (uint64_t i = 0; i < a.numel(); ++i) {
      float y = pb[b.numel() == 1 ? 0 : i];
      po[i] = kOp == BinOp::kAdd ? pa[i] + y : kOp == BinOp::kSub ? pa[i] - y : pa[i] * y;
    }
  }
};

class TestRelu : public Kernel {
 public:
  void Run(KernelContext& ctx) override {
    const ir::Tensor& a = *ctx.input(0);
    const float* pa = a.data<float>();
    ir::Tensor& out = ctx.AllocateOutput(0, ir::DType::kFloat32, a.shape());
    float* po = out.mutable_data<float>();
    for (uint64_t i = 0; i < a.numel(); ++i) po[i] = pa[i] > 0 ? pa[i] : 0;
  }
};

class TestIdentity : public Kernel {
 public:
  void Run(KernelContext& ctx) override { ctx.SetOutput(0, *ctx.input(0)); }
};

template <typename K>
std::unique_ptr<Kernel> MakeTestKernel(const KernelInit&) {
  return std::make_unique<K>();
}

inline const KernelRegistry& TestRegistry() {
  static const KernelRegistry reg = [] {
    KernelRegistry r;
    r.Add({"Add", "", ir::DType::kFloat32, Isa::kScalar, "f32_add__test",
           &MakeTestKernel<TestBinary<BinOp::kAdd>>});
    r.Add({"Sub", "", ir::DType::kFloat32, Isa::kScalar, "f32_sub__test",
           &MakeTestKernel<TestBinary<BinOp::kSub>>});
    r.Add({"Mul", "", ir::DType::kFloat32, Isa::kScalar, "f32_mul__test",
           &MakeTestKernel<TestBinary<BinOp::kMul>>});
    r.Add({"Relu", "", ir::DType::kFloat32, Isa::kScalar, "f32_relu__test",
           &MakeTestKernel<TestRelu>});
    r.Add({"Identity", "", ir::DType::kUndefined, Isa::kScalar, "any_identity__test",
           &MakeTestKernel<TestIdentity>});
    RegisterControlFlowKernels(r);
    return r;
  }();
  return reg;
}

inline ir::Tensor F32(std::vector<int64_t> shape, std::vector<float> v) {
  return ir::Tensor::FromVector<float>(ir::DType::kFloat32, std::move(shape), v);
}

inline std::vector<float> Values(const ir::Tensor& t) {
  const float* p = t.data<float>();
  return std::vector<float>(p, p + t.numel());
}

}  // namespace edgepress::runtime::testing
