// fuse-qdq's table and multiply rewrites, and the kernels behind them:
// - DQ -> f -> Q for every element-wise function quantize-static leaves between Q/DQ
//   becomes one edgepress QLinearLookup whose outputs equal the QDQ graph's exactly
//   (uint8 and int8, asymmetric zero points);
// - DQ(a), DQ(b) -> Mul -> Q becomes com.microsoft QLinearMul, within 1 LSB of the QDQ
//   graph, for equal shapes, a squeeze-excite gate [1, C, 1, 1] on either side, and a
//   general broadcast;
// - must not fire: a per-channel DQ, a function whose output has a float reader;
// - the QLinearLookup kernels the CPU has equal the scalar reference at every length
//   around the 64-byte step, and the kernel dispatch chose is printed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include "pass_test_util.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/kernels/quant/qlinear_lookup.h"

namespace edgepress::passes {
namespace {

using ir::Attribute;
using ir::DType;
using ir::Tensor;
using testing::Apply;
using testing::CountOps;
using testing::Evaluate;

Tensor Scalar(float v) { return Tensor::FromVector(DType::kFloat32, {}, std::vector<float>{v}); }
Tensor Zp(DType t, int v) {
  Tensor z(t, {});
  if (t == DType::kUInt8) z.mutable_data<uint8_t>()[0] = static_cast<uint8_t>(v);
  else z.mutable_data<int8_t>()[0] = static_cast<int8_t>(v);
  return z;
}

int Count(const ir::Model& m, const std::string& op, const std::string& domain) {
  int n = 0;
  for (ir::Node* node : m.graph->nodes()) n += node->op_type() == op && node->domain() == domain;
  return n;
}

struct Q {
  ir::GraphBuilder& b;
  DType type;
  int id = 0;
  ir::Value* Qdq(ir::Value* v, float scale, int zp) {
    const std::string k = std::to_string(id++);
    ir::Value* s = b.Const("s" + k, Scalar(scale));
    ir::Value* z = b.Const("z" + k, Zp(type, zp));
    return b.Op("DequantizeLinear", {b.Op("QuantizeLinear", {v, s, z}), s, z});
  }
};

std::unique_ptr<ir::Model> FunctionGraph(const std::string& op, std::vector<Attribute> attrs,
                                         DType type, bool float_reader = false) {
  ir::GraphBuilder b;
  Q q{b, type};
  const bool u8 = type == DType::kUInt8;
  auto* x = b.Input("x", DType::kFloat32, {2, 3, 17});
  auto* xd = q.Qdq(b.Op("Neg", {x}), 0.05f, u8 ? 140 : 9);
  auto* y = b.Op(op, {xd}, std::move(attrs));
  if (float_reader) b.Output(b.Op("Abs", {y}));
  b.Output(q.Qdq(y, 0.01f, u8 ? 30 : -100));
  auto m = b.Build();
  m->SetOpsetVersion("", 14);
  return m;
}

TEST(FuseQdqLookup, EveryFunctionBecomesAnExactTable) {
  const std::vector<std::pair<std::string, std::vector<Attribute>>> fns = {
      {"Sigmoid", {}}, {"Tanh", {}}, {"HardSwish", {}},
      {"HardSigmoid", {Attribute::Float("alpha", 1.f / 6.f), Attribute::Float("beta", 0.5f)}},
      {"LeakyRelu", {Attribute::Float("alpha", 0.1f)}}, {"Elu", {}}};
  for (DType type : {DType::kUInt8, DType::kInt8}) {
    for (const auto& [op, attrs] : fns) {
      SCOPED_TRACE(op + (type == DType::kUInt8 ? " uint8" : " int8"));
      auto m = FunctionGraph(op, attrs, type);
      std::vector<PassRun> runs;
      auto f = Apply(*m, "fuse-qdq,eliminate-dead-nodes", &runs);
      EXPECT_EQ(runs[0].stats["fused-lookup"], 1);
      EXPECT_EQ(Count(*f, "QLinearLookup", "edgepress"), 1);
      EXPECT_EQ(CountOps(*f, op), 0);
      EXPECT_EQ(CountOps(*f, "QuantizeLinear"), 1);  // the input's
      EXPECT_EQ(f->OpsetVersion("edgepress"), 1);
      std::map<std::string, Tensor> feeds{{"x", testing::RandomTensor({2, 3, 17}, 5, -7, 7)}};
      auto want = Evaluate(*m, feeds), got = Evaluate(*f, feeds);
      ASSERT_EQ(got.size(), 1u);
      const Tensor& a = got.begin()->second;
      const Tensor& e = want.begin()->second;
      ASSERT_EQ(a.numel(), e.numel());
      for (uint64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data<float>()[i], e.data<float>()[i]) << i;
    }
  }
}

TEST(FuseQdqLookup, DoesNotFireWithAFloatReader) {
  std::vector<PassRun> runs;
  Apply(*FunctionGraph("Sigmoid", {}, DType::kUInt8, /*float_reader=*/true), "fuse-qdq", &runs);
  EXPECT_EQ(runs[0].stats["fused-lookup"], 0);
}

std::unique_ptr<ir::Model> MulGraph(std::vector<int64_t> a_shape, std::vector<int64_t> b_shape) {
  ir::GraphBuilder b;
  Q q{b, DType::kUInt8};
  auto* a = b.Input("a", DType::kFloat32, a_shape);
  auto* g = b.Input("g", DType::kFloat32, b_shape);
  auto* ad = q.Qdq(b.Op("Relu", {a}), 0.02f, 0);
  auto* gd = q.Qdq(b.Op("Sigmoid", {g}), 1.f / 255.f, 0);
  b.Output(q.Qdq(b.Op("Mul", {ad, gd}), 0.015f, 3));
  return b.Build();
}

TEST(FuseQdqLookup, MulBecomesQLinearMulWithin1Lsb) {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{1, 8, 5, 7}, {1, 8, 5, 7}},  // equal
      {{1, 8, 5, 7}, {1, 8, 1, 1}},  // squeeze-excite gate
      {{1, 8, 1, 1}, {1, 8, 5, 7}},  // the gate first
      {{2, 8, 5, 7}, {8, 1, 7}},     // general broadcast
  };
  for (const auto& [as, bs] : shapes) {
    auto m = MulGraph(as, bs);
    std::vector<PassRun> runs;
    auto f = Apply(*m, "fuse-qdq,eliminate-dead-nodes", &runs);
    EXPECT_EQ(runs[0].stats["fused-mul"], 1);
    EXPECT_EQ(Count(*f, "QLinearMul", "com.microsoft"), 1);
    EXPECT_EQ(CountOps(*f, "Mul"), 0);
    std::map<std::string, Tensor> feeds{{"a", testing::RandomTensor(as, 8, -1, 4)},
                                        {"g", testing::RandomTensor(bs, 9, -4, 4)}};
    auto want = Evaluate(*m, feeds), got = Evaluate(*f, feeds);
    const Tensor& x = got.begin()->second;
    const Tensor& e = want.begin()->second;
    ASSERT_EQ(x.shape(), e.shape());
    double worst = 0;
    for (uint64_t i = 0; i < x.numel(); ++i)
      worst = std::max(worst, std::fabs(double(x.data<float>()[i]) - e.data<float>()[i]));
    EXPECT_LE(worst, 0.015 * 1.0001) << "more than 1 LSB";
  }
}

TEST(FuseQdqLookup, KernelsEqualScalarReference) {
  const char* name = nullptr;
  runtime::BestLookupFn(&name);
  std::printf("[dispatch] QLinearLookup -> %s\n", name);
  std::mt19937 rng(3);
  uint8_t table[256];
  for (uint8_t& t : table) t = static_cast<uint8_t>(rng());
  std::vector<uint8_t> x(300), want(300), got(300);
  for (uint8_t& v : x) v = static_cast<uint8_t>(rng());
  x[0] = 0, x[1] = 127, x[2] = 128, x[3] = 255;  // both table halves and their edges
  for (int v = 0; v < 256; ++v) x[static_cast<size_t>(4 + v)] = static_cast<uint8_t>(v);
  auto check = [&](runtime::LookupFn fn, const char* what) {
    for (int64_t n : {0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 200, 300}) {
      runtime::LookupBytesScalar(x.data(), table, want.data(), n);
      std::fill(got.begin(), got.end(), 0);
      fn(x.data(), table, got.data(), n);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(got[i], want[i]) << what << " n=" << n << " i=" << i << " x=" << int(x[i]);
      for (int64_t i = n; i < 300; ++i) ASSERT_EQ(got[i], 0) << what << " wrote past n=" << n;
    }
  };
#if defined(__x86_64__)
  if (runtime::GetCpuFeatures().Has(runtime::Isa::kAvx2)) check(runtime::LookupBytesAvx2, "avx2");
  if (runtime::GetCpuFeatures().avx512vbmi && runtime::GetCpuFeatures().Has(runtime::Isa::kAvx512))
    check(runtime::LookupBytesAvx512Vbmi, "avx512vbmi");
  else
    std::printf("[skip] q8_lookup__avx512vbmi: this CPU lacks AVX-512 VBMI\n");
#else
  GTEST_SKIP() << "no x86 SIMD lookups on this architecture";
#endif
}

// Every registered QLinearMul kernel equals the scalar one exactly: squeeze-excite blocks
// (the gate on either side, blocks of 49 = 3 vector steps + a tail), equal shapes with a
// tail, and a general broadcast; uint8 and int8 with extreme zero points.
TEST(FuseQdqLookup, QLinearMulKernelsEqualScalar) {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{1, 24, 7, 7}, {1, 24, 1, 1}}, {{1, 24, 1, 1}, {1, 24, 7, 7}},
      {{1, 5, 37}, {1, 5, 37}}, {{2, 3, 5}, {3, 1}}};
  std::mt19937 rng(11);
  const auto defs = runtime::KernelsFor("QLinearMul", "com.microsoft", DType::kUndefined);
  ASSERT_GE(defs.size(), 1u);
  for (const runtime::KernelDef* d : defs) std::printf("[dispatch] QLinearMul kernel: %s\n", d->name);
  for (DType t : {DType::kUInt8, DType::kInt8}) {
    for (const auto& [as, bs] : shapes) {
      auto rand8 = [&](const std::vector<int64_t>& shape) {
        Tensor x(t, shape);
        for (uint64_t i = 0; i < x.numel(); ++i)
          static_cast<uint8_t*>(x.mutable_raw())[i] = static_cast<uint8_t>(rng());
        return x;
      };
      Tensor a = rand8(as), b = rand8(bs);
      const bool u8 = t == DType::kUInt8;
      Tensor sa = Scalar(0.031f), sb = Scalar(0.0047f), sc = Scalar(0.0093f);
      Tensor za = Zp(t, u8 ? 255 : -128), zb = Zp(t, u8 ? 3 : 127), zc = Zp(t, u8 ? 128 : 0);
      ir::Graph g;
      std::vector<ir::Value*> ins;
      for (int i = 0; i < 8; ++i)
        ins.push_back(g.AddInput("i" + std::to_string(i), ir::ValueType::Tensor(DType::kFloat32)));
      ir::Node* node = g.AddNode("QLinearMul", ins, {"c"}, "mul", "com.microsoft");
      std::vector<const Tensor*> feeds = {&a, &sa, &za, &b, &sb, &zb, &sc, &zc};
      runtime::ThreadPool pool(1);
      const Tensor want = runtime::RunNode(*node, feeds, pool, defs[0])[0];
      for (const runtime::KernelDef* d : defs) {
        const Tensor got = runtime::RunNode(*node, feeds, pool, d)[0];
        ASSERT_EQ(got.shape(), want.shape());
        EXPECT_EQ(std::memcmp(got.raw(), want.raw(), got.nbytes()), 0)
            << d->name << " differs from " << defs[0]->name;
      }
    }
  }
}

}  // namespace
}  // namespace edgepress::passes
