// The sparse path end to end through a Session: MatMul and Gemm models with pruned
// constant weights give the same outputs with the sparse kernels forced on
// (EDGEPRESS_SPARSE=on), off, and left to the measured choice; the choice is listed by
// Session::Kernels(); dense weights never get a sparse variant. No timing is asserted.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/kernel.h"
#include "runtime/session.h"

namespace edgepress::runtime {
namespace {

ir::Tensor Weight(int64_t k, int64_t n, double zeros, bool two_four, uint32_t seed) {
  ir::Tensor t(ir::DType::kFloat32, {k, n});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::uniform_real_distribution<double> u(0, 1);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < k * n; ++i) p[i] = u(rng) < zeros ? 0.f : d(rng);
  if (two_four)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t g = 0; g < k; g += 4)
        for (int s = 0; s < 4; ++s)
          if ((s + j + g / 4) % 4 >= 2) p[(g + s) * n + j] = 0.f;
  return t;
}

// [K, N] -> [N, K], for Gemm's transB.
ir::Tensor Transposed(const ir::Tensor& kn) {
  const int64_t k = kn.shape()[0], n = kn.shape()[1];
  ir::Tensor nk(ir::DType::kFloat32, {n, k});
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t j = 0; j < n; ++j) nk.mutable_data<float>()[j * k + kk] = kn.data<float>()[kk * n + j];
  return nk;
}

// x[batch, 256] -> MatMul(W1 90% zeros) -> Relu -> Gemm(W2 2:4 along K, transB, bias) -> y.
std::shared_ptr<ir::Model> SparseMlp(bool dense) {
  auto m = std::make_shared<ir::Model>();
  m->opsets = {{"", 17}};
  ir::Graph& g = *m->graph;
  ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(
                                     ir::DType::kFloat32,
                                     ir::Shape{ir::Dim::Symbol("batch"), ir::Dim::Known(256)}));
  ir::Value* w1 = g.AddInitializer("w1", Weight(256, 96, dense ? 0.0 : 0.9, false, 1));
  ir::Value* w2 = g.AddInitializer("w2", Transposed(Weight(96, 64, 0.0, !dense, 2)));
  ir::Tensor bias(ir::DType::kFloat32, {64});
  for (int i = 0; i < 64; ++i) bias.mutable_data<float>()[i] = 0.01f * i;
  ir::Value* b2 = g.AddInitializer("b2", bias);
  ir::Value* h = g.AddNode("MatMul", {x, w1}, {"h"}, "fc1")->output(0);
  ir::Value* r = g.AddNode("Relu", {h}, {"r"}, "relu")->output(0);
  // Declared types let the planner pick fc2's kernel (and list it) at creation.
  h->type = r->type = ir::ValueType::Tensor(ir::DType::kFloat32);
  ir::Node* gemm = g.AddNode("Gemm", {r, w2, b2}, {"y"}, "fc2");
  gemm->set_attr(ir::Attribute::Int("transB", 1));
  g.AddOutput(gemm->output(0));
  return m;
}

std::vector<float> RunWith(const std::shared_ptr<ir::Model>& m, const char* mode, int64_t batch,
                           std::vector<NodeKernelInfo>* kernels = nullptr) {
  if (mode)
    setenv("EDGEPRESS_SPARSE", mode, 1);
  else
    unsetenv("EDGEPRESS_SPARSE");
  SessionOptions opts;
  opts.threads = 2;
  auto s = Session::Create(m, opts);
  unsetenv("EDGEPRESS_SPARSE");
  if (kernels) *kernels = s->Kernels();
  ir::Tensor x(ir::DType::kFloat32, {batch, 256});
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  for (uint64_t i = 0; i < x.numel(); ++i) x.mutable_data<float>()[i] = d(rng);
  NamedTensors out = s->Run({{"x", x}});
  const ir::Tensor& y = out.at(0).second;
  return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

std::string KernelOf(const std::vector<NodeKernelInfo>& ks, const std::string& node) {
  for (const auto& k : ks)
    if (k.node == node) return k.kernel;
  return "";
}

void ExpectClose(const std::vector<float>& want, const std::vector<float>& got,
                 const std::string& what) {
  ASSERT_EQ(want.size(), got.size()) << what;
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(want[i], got[i], 1e-4 * (1 + std::fabs(want[i]))) << what << " @" << i;
}

TEST(SparseMatMulTest, SameOutputsWithAndWithoutTheSparsePath) {
  if (ForceScalar()) GTEST_SKIP() << "EDGEPRESS_FORCE_SCALAR=1 keeps the dense references";
  auto model = SparseMlp(false);
  for (int64_t batch : {1, 3, 16, 37}) {
    std::vector<NodeKernelInfo> on_kernels, off_kernels;
    const std::vector<float> off = RunWith(model, "off", batch, &off_kernels);
    const std::vector<float> on = RunWith(model, "on", batch, &on_kernels);
    const std::vector<float> measured = RunWith(model, nullptr, batch);
    ExpectClose(off, on, "forced sparse, batch " + std::to_string(batch));
    ExpectClose(off, measured, "measured choice, batch " + std::to_string(batch));
    // The choice is visible: the kernel listing names the sparse form.
    EXPECT_NE(KernelOf(on_kernels, "fc1").find("f32_spmm_csr"), std::string::npos)
        << KernelOf(on_kernels, "fc1");
    EXPECT_NE(KernelOf(on_kernels, "fc2").find("f32_spmm_nm"), std::string::npos)
        << KernelOf(on_kernels, "fc2");
    EXPECT_NE(KernelOf(on_kernels, "fc2").find("2:4"), std::string::npos);
    EXPECT_EQ(KernelOf(off_kernels, "fc1").find('['), std::string::npos);
  }
}

TEST(SparseMatMulTest, DenseWeightsNeverGetASparseVariant) {
  // Must not fire: weights with (almost) no zeros, even when sparse kernels are forced on.
  std::vector<NodeKernelInfo> ks;
  RunWith(SparseMlp(true), "on", 4, &ks);
  EXPECT_EQ(KernelOf(ks, "fc1").find('['), std::string::npos) << KernelOf(ks, "fc1");
  EXPECT_EQ(KernelOf(ks, "fc2").find('['), std::string::npos) << KernelOf(ks, "fc2");
}

// x uint8 [batch, 128] -> QLinearMatMul with an int8 weight [128, 48], 90% zeros (per-
// column scales) -> uint8 y; and MatMulInteger on the same operands -> int32.
std::shared_ptr<ir::Model> QuantModel(const std::string& op) {
  auto m = std::make_shared<ir::Model>();
  m->opsets = {{"", 17}};
  ir::Graph& g = *m->graph;
  ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(
                                     ir::DType::kUInt8,
                                     ir::Shape{ir::Dim::Symbol("batch"), ir::Dim::Known(128)}));
  ir::Tensor w(ir::DType::kInt8, {128, 48});
  std::mt19937 rng(9);
  for (uint64_t i = 0; i < w.numel(); ++i)
    w.mutable_data<int8_t>()[i] = rng() % 10 == 0 ? static_cast<int8_t>(rng() % 255 - 127) : 0;
  ir::Value* wv = g.AddInitializer("w", w);
  auto scalar = [&](const std::string& name, ir::DType dt, double v) {
    ir::Tensor t(dt, {});
    if (dt == ir::DType::kFloat32) t.mutable_data<float>()[0] = static_cast<float>(v);
    if (dt == ir::DType::kUInt8) t.mutable_data<uint8_t>()[0] = static_cast<uint8_t>(v);
    return g.AddInitializer(name, t);
  };
  ir::Node* n;
  if (op == "MatMulInteger") {
    n = g.AddNode(op, {x, wv, scalar("xz", ir::DType::kUInt8, 120)}, {"y"}, "qmm");
  } else {
    ir::Tensor ws(ir::DType::kFloat32, {48});
    for (int j = 0; j < 48; ++j) ws.mutable_data<float>()[j] = 0.01f + 0.001f * j;
    ir::Tensor wz(ir::DType::kInt8, {48});
    n = g.AddNode(op,
                  {x, scalar("xs", ir::DType::kFloat32, 0.02), scalar("xz", ir::DType::kUInt8, 120), wv,
                   g.AddInitializer("ws", ws), g.AddInitializer("wz", wz),
                   scalar("ys", ir::DType::kFloat32, 0.05), scalar("yz", ir::DType::kUInt8, 128)},
                  {"y"}, "qmm");
  }
  g.AddOutput(n->output(0));
  return m;
}

TEST(SparseMatMulTest, Int8PathIsExact) {
  if (ForceScalar()) GTEST_SKIP() << "EDGEPRESS_FORCE_SCALAR=1 keeps the dense references";
  for (const std::string op : {"MatMulInteger", "QLinearMatMul"})
    for (int64_t batch : {1, 5, 20}) {
      ir::Tensor x(ir::DType::kUInt8, {batch, 128});
      std::mt19937 rng(3);
      for (uint64_t i = 0; i < x.numel(); ++i) x.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(rng());
      std::vector<ir::Tensor> outs;
      std::vector<std::string> kernels;
      for (const char* mode : {"off", "on"}) {
        setenv("EDGEPRESS_SPARSE", mode, 1);
        auto s = Session::Create(QuantModel(op), {});
        unsetenv("EDGEPRESS_SPARSE");
        kernels.push_back(KernelOf(s->Kernels(), "qmm"));
        outs.push_back(s->Run({{"x", x}}).at(0).second);
      }
      EXPECT_EQ(outs[0], outs[1]) << op << " batch " << batch;
      EXPECT_EQ(kernels[0].find('['), std::string::npos) << kernels[0];
      EXPECT_NE(kernels[1].find("q8_spmm_csr"), std::string::npos) << kernels[1];
    }
}

}  // namespace
}  // namespace edgepress::runtime
