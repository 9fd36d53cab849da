// edgepress::TernaryConv (runtime/kernels/conv/ternary_conv.cc) against the float Conv
// kernel on the dequantized weights (scale * t): 1-D, 2-D and 3-D, pads, strides,
// dilations, auto_pad, groups, K around the 16-code row padding, every registered entry;
// and its input validation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/kernels/lowbit/ternary_matmul.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

struct Case {
  std::vector<int64_t> x_shape, w_shape;  // w: [M, C/group, k...]
  std::vector<ir::Attribute> attrs;
  bool bias = true;
};

struct Built {
  ir::Tensor x, w_float, codes, scales, bias;
};

Built Make(const Case& c, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::uniform_int_distribution<int> code(-1, 1);
  Built b;
  b.x = ir::Tensor(ir::DType::kFloat32, c.x_shape);
  for (uint64_t i = 0; i < b.x.numel(); ++i) b.x.mutable_data<float>()[i] = u(rng);
  const int64_t m = c.w_shape[0];
  b.w_float = ir::Tensor(ir::DType::kFloat32, c.w_shape);
  const int64_t k = static_cast<int64_t>(b.w_float.numel()) / m;
  std::vector<int8_t> t(static_cast<size_t>(m * k));
  std::vector<float> s(static_cast<size_t>(m));
  for (int8_t& v : t) v = static_cast<int8_t>(code(rng));
  for (float& v : s) v = 0.05f + std::fabs(u(rng));
  for (int64_t i = 0; i < m * k; ++i) b.w_float.mutable_data<float>()[i] = s[i / k] * t[i];
  b.codes = PackTernary(t.data(), m, k);
  b.scales = ir::Tensor::FromVector(ir::DType::kFloat32, {m}, s);
  if (c.bias) {
    b.bias = ir::Tensor(ir::DType::kFloat32, {m});
    for (int64_t i = 0; i < m; ++i) b.bias.mutable_data<float>()[i] = u(rng);
  }
  return b;
}

std::vector<ir::Tensor> RunOne(const std::string& op, const std::string& domain,
                               const std::vector<ir::Attribute>& attrs,
                               const std::vector<const ir::Tensor*>& ins, const KernelDef* def) {
  ir::Graph g;
  std::vector<ir::Value*> vs;
  for (size_t i = 0; i < ins.size(); ++i)
    vs.push_back(g.AddInput("i" + std::to_string(i), ir::ValueType::Tensor(ir::DType::kFloat32)));
  ir::Node* n = g.AddNode(op, vs, {"y"}, "tconv", domain);
  for (const ir::Attribute& a : attrs) n->set_attr(a);
  ThreadPool pool(2);
  return RunNode(*n, ins, pool, def);
}

std::vector<Case> Cases() {
  using A = ir::Attribute;
  return {
      {{1, 3, 7, 9}, {5, 3, 3, 3}, {A::Ints("pads", {1, 1, 1, 1})}},                   // K = 27
      {{2, 4, 8, 8}, {6, 2, 3, 3}, {A::Int("group", 2), A::Ints("strides", {2, 2})}},  // K = 18
      {{1, 16, 5, 6}, {9, 16, 1, 1}, {}, false},  // K = 16 exactly
      {{1, 2, 9, 9},
       {3, 2, 3, 3},
       {A::Ints("dilations", {2, 2}), A::String("auto_pad", "SAME_UPPER")}},
      {{1, 5, 11}, {4, 5, 3}, {A::Ints("pads", {2, 0}), A::Ints("strides", {2})}},  // 1-D, K = 15
      {{1, 2, 3, 4, 5}, {3, 2, 2, 2, 3}, {A::Ints("pads", {0, 1, 1, 0, 1, 1})}},    // 3-D
      {{1, 8, 6, 6},
       {8, 1, 3, 3},
       {A::Int("group", 8), A::Ints("pads", {1, 1, 1, 1})}},  // depthwise
  };
}

TEST(TernaryConv, EveryKernelMatchesFloatConvOnTheDequantizedWeights) {
  const auto defs = KernelsFor("TernaryConv", "edgepress", ir::DType::kFloat32);
  ASSERT_FALSE(defs.empty());
  uint32_t seed = 1;
  for (const Case& c : Cases()) {
    const Built b = Make(c, ++seed);
    const ir::Tensor want =
        RunOne("Conv", "", c.attrs, {&b.x, &b.w_float, c.bias ? &b.bias : nullptr}, nullptr)[0];
    std::vector<ir::Attribute> attrs = c.attrs;
    attrs.push_back(ir::Attribute::Ints("w_shape", c.w_shape));
    for (const KernelDef* def : defs) {
      const ir::Tensor got =
          RunOne("TernaryConv", "edgepress", attrs,
                 {&b.x, &b.codes, &b.scales, c.bias ? &b.bias : nullptr}, def)[0];
      ASSERT_EQ(got.shape(), want.shape()) << def->name;
      const int64_t k = static_cast<int64_t>(b.w_float.numel()) / c.w_shape[0];
      for (uint64_t i = 0; i < got.numel(); ++i)
        ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-6 * double(k) * 4 + 1e-5)
            << def->name << " case x" << c.x_shape.size() << " w" << c.w_shape[0] << " at " << i;
    }
  }
}

TEST(TernaryConv, RejectsBadInputsNamingNodeAndInput) {
  const Case c = Cases()[0];
  const Built b = Make(c, 3);
  auto expect_error = [&](std::vector<ir::Attribute> attrs,
                          const std::vector<const ir::Tensor*>& ins, const std::string& needle) {
    try {
      RunOne("TernaryConv", "edgepress", attrs, ins, nullptr);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("tconv"), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  std::vector<ir::Attribute> attrs = c.attrs;
  expect_error(attrs, {&b.x, &b.codes, &b.scales}, "needs the attribute w_shape");
  attrs.push_back(ir::Attribute::Ints("w_shape", {5, 4, 3, 3}));  // X has 3 channels
  expect_error(attrs, {&b.x, &b.codes, &b.scales}, "channel mismatch");
  attrs.back() = ir::Attribute::Ints("w_shape", c.w_shape);
  const ir::Tensor wrong(ir::DType::kTernary, {5, 16});
  expect_error(attrs, {&b.x, &wrong, &b.scales}, "input 1 (B) has shape [5,16], expected [5,32]");
  expect_error(attrs, {&b.x, &b.w_float, &b.scales}, "expected ternary");
  const ir::Tensor short_scales(ir::DType::kFloat32, {4});
  expect_error(attrs, {&b.x, &b.codes, &short_scales}, "input 2 (scales)");
}

}  // namespace
}  // namespace edgepress::runtime
