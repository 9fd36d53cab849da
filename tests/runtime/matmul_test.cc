// MatMul and Gemm kernels (every registered ISA) against a naive reference written here:
// batched broadcasting, 1-D operands, constant (prepacked) B, Gemm transposes, alpha/beta,
// C broadcasting, FusedGemm activations, and errors that name the node.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ir/error.h"
#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"

namespace edgepress::runtime {
namespace {

ir::Tensor RandomTensor(std::vector<int64_t> shape, uint32_t seed) {
  ir::Tensor t(ir::DType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  float* p = t.mutable_data<float>();
  for (uint64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
  return t;
}

// A one-node graph; inputs flagged constant become initializers (so create() sees them).
struct OneNode {
  ir::Graph g;
  ir::Node* node = nullptr;
  std::vector<ir::Tensor> inputs;
  OneNode(const std::string& op, const std::string& domain, std::vector<ir::Tensor> in,
          std::vector<bool> constant, std::vector<ir::Attribute> attrs)
      : inputs(std::move(in)) {
    std::vector<ir::Value*> vals;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const std::string name = "in" + std::to_string(i);
      if (i < constant.size() && constant[i])
        vals.push_back(g.AddInitializer(name, inputs[i]));
      else
        vals.push_back(g.AddInput(name, ir::ValueType::Tensor(ir::DType::kFloat32)));
    }
    node = g.AddNode(op, vals, {"out"}, "n0", domain);
    for (auto& a : attrs) node->set_attr(a);
  }
  std::vector<ir::Tensor> Run(const KernelDef* def, ThreadPool& pool) {
    std::vector<const ir::Tensor*> ptrs;
    for (auto& t : inputs) ptrs.push_back(&t);
    return RunNode(*node, ptrs, pool, def);
  }
};

std::vector<const KernelDef*> Kernels(const std::string& op, const std::string& domain = "") {
  auto defs = KernelsFor(op, domain, ir::DType::kFloat32);
  EXPECT_FALSE(defs.empty()) << "no kernel for " << op;
  return defs;
}

void ExpectClose(const std::vector<float>& want, const ir::Tensor& got, double k,
                 const std::string& what) {
  ASSERT_EQ(want.size(), got.numel()) << what;
  const float* g = got.data<float>();
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(want[i], g[i], 2e-6 * (k + 4) * (1 + std::fabs(want[i]))) << what << " @" << i;
}

// Naive numpy matmul for 2-D-or-more after promotion, with broadcasting.
std::vector<float> NaiveMatMul(const ir::Tensor& a, const ir::Tensor& b,
                               std::vector<int64_t>* out_shape) {
  std::vector<int64_t> as = a.shape(), bs = b.shape();
  const bool a1 = as.size() == 1, b1 = bs.size() == 1;
  if (a1) as.insert(as.begin(), 1);
  if (b1) bs.push_back(1);
  const int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  const size_t r = std::max(as.size(), bs.size()) - 2;
  std::vector<int64_t> ab(r, 1), bb(r, 1), ob(r);
  for (size_t i = 0; i < as.size() - 2; ++i) ab[r - (as.size() - 2) + i] = as[i];
  for (size_t i = 0; i < bs.size() - 2; ++i) bb[r - (bs.size() - 2) + i] = bs[i];
  int64_t total = 1;
  for (size_t i = 0; i < r; ++i) total *= (ob[i] = std::max(ab[i], bb[i]));
  *out_shape = ob;
  if (!a1) out_shape->push_back(m);
  if (!b1) out_shape->push_back(n);
  std::vector<float> out(total * m * n);
  for (int64_t t = 0; t < total; ++t) {
    int64_t rem = t, ai = 0, bi = 0, astr = 1, bstr = 1;
    for (size_t i = r; i-- > 0;) {
      const int64_t p = rem % ob[i];
      rem /= ob[i];
      ai += (ab[i] == 1 ? 0 : p) * astr;
      bi += (bb[i] == 1 ? 0 : p) * bstr;
      astr *= ab[i];
      bstr *= bb[i];
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t q = 0; q < k; ++q)
          s += static_cast<double>(a.data<float>()[ai * m * k + i * k + q]) *
               b.data<float>()[bi * k * n + q * n + j];
        out[t * m * n + i * n + j] = static_cast<float>(s);
      }
  }
  return out;
}

TEST(MatMulTest, BroadcastingAndOneDOperands) {
  ThreadPool pool(2);
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> cases = {
      {{3, 4}, {4, 5}},          {{7}, {7, 9}},           {{2, 6, 7}, {7}},
      {{7}, {7}},                {{2, 3, 5, 17}, {17, 33}}, {{2, 1, 5, 8}, {3, 8, 6}},
      {{4, 1, 16}, {1, 16, 31}}, {{1, 128, 64}, {64, 100}}, {{3, 2, 6, 5}, {3, 2, 5, 7}},
      {{12, 20, 8}, {12, 8, 20}}, {{2, 3, 0}, {0, 4}},       {{1, 300}, {300, 65}},
  };
  for (const auto& [sa, sb] : cases) {
    for (bool constant_b : {false, true}) {
      for (const KernelDef* def : Kernels("MatMul")) {
        OneNode n("MatMul", "", {RandomTensor(sa, 1), RandomTensor(sb, 2)}, {false, constant_b},
                  {});
        std::vector<int64_t> want_shape;
        std::vector<float> want = NaiveMatMul(n.inputs[0], n.inputs[1], &want_shape);
        auto out = n.Run(def, pool);
        ASSERT_EQ(out.size(), 1u);
        EXPECT_EQ(out[0].shape(), want_shape) << def->name;
        ExpectClose(want, out[0], static_cast<double>(sa.back()), def->name);
      }
    }
  }
}

TEST(MatMulTest, RejectsBadShapesNamingTheNode) {
  ThreadPool pool(1);
  for (const KernelDef* def : Kernels("MatMul")) {
    OneNode inner("MatMul", "", {RandomTensor({3, 4}, 1), RandomTensor({5, 6}, 2)}, {}, {});
    try {
      inner.Run(def, pool);
      FAIL() << "accepted mismatched inner dimensions";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("n0"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("inner"), std::string::npos) << e.what();
    }
    OneNode batch("MatMul", "", {RandomTensor({2, 3, 4}, 1), RandomTensor({3, 4, 6}, 2)}, {}, {});
    EXPECT_THROW(batch.Run(def, pool), Error);
    OneNode scalar("MatMul", "", {RandomTensor({}, 1), RandomTensor({3}, 2)}, {}, {});
    EXPECT_THROW(scalar.Run(def, pool), Error);
  }
}

struct GemmCase {
  int64_t m, n, k;
  bool ta, tb;
  float alpha, beta;
  std::vector<int64_t> c_shape;  // empty rank -1: no C; use {-1}
};

TEST(GemmOpTest, MatchesNaive) {
  ThreadPool pool(2);
  const std::vector<GemmCase> cases = {
      {5, 7, 3, false, false, 1.f, 1.f, {7}},      {5, 7, 3, true, false, 0.5f, 1.f, {5, 7}},
      {17, 33, 65, false, true, 1.f, 1.f, {1, 33}}, {17, 33, 65, true, true, 2.f, 0.5f, {17, 1}},
      {1, 1000, 512, false, true, 1.f, 1.f, {1000}}, {6, 16, 1, false, false, 1.f, 0.f, {16}},
      {31, 9, 20, false, false, 1.f, 2.f, {}},      {31, 9, 20, false, false, 1.f, 1.f, {-1}},
      {8, 8, 8, false, false, -1.f, 1.f, {8, 1}},
  };
  for (const GemmCase& cs : cases) {
    for (bool constant_b : {false, true}) {
      for (const KernelDef* def : Kernels("Gemm")) {
        std::vector<ir::Tensor> in = {
            RandomTensor(cs.ta ? std::vector<int64_t>{cs.k, cs.m} : std::vector<int64_t>{cs.m, cs.k}, 3),
            RandomTensor(cs.tb ? std::vector<int64_t>{cs.n, cs.k} : std::vector<int64_t>{cs.k, cs.n}, 4)};
        const bool has_c = cs.c_shape != std::vector<int64_t>{-1};
        if (has_c) in.push_back(RandomTensor(cs.c_shape, 5));
        OneNode n("Gemm", "", in, {false, constant_b, constant_b},
                  {ir::Attribute::Int("transA", cs.ta), ir::Attribute::Int("transB", cs.tb),
                   ir::Attribute::Float("alpha", cs.alpha), ir::Attribute::Float("beta", cs.beta)});
        const float* a = n.inputs[0].data<float>();
        const float* b = n.inputs[1].data<float>();
        std::vector<float> want(cs.m * cs.n);
        for (int64_t i = 0; i < cs.m; ++i)
          for (int64_t j = 0; j < cs.n; ++j) {
            double s = 0;
            for (int64_t q = 0; q < cs.k; ++q)
              s += static_cast<double>(cs.ta ? a[q * cs.m + i] : a[i * cs.k + q]) *
                   (cs.tb ? b[j * cs.k + q] : b[q * cs.n + j]);
            double v = cs.alpha * s;
            if (has_c) {
              const ir::Tensor& c = n.inputs[2];
              const int64_t cm = c.rank() == 2 ? c.shape()[0] : 1;
              const int64_t cn = c.rank() >= 1 ? c.shape().back() : 1;
              v += cs.beta * c.data<float>()[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)];
            }
            want[i * cs.n + j] = static_cast<float>(v);
          }
        auto out = n.Run(def, pool);
        EXPECT_EQ(out[0].shape(), (std::vector<int64_t>{cs.m, cs.n}));
        ExpectClose(want, out[0], static_cast<double>(cs.k), def->name);
      }
    }
  }
}

TEST(GemmOpTest, FusedGemmAppliesActivation) {
  ThreadPool pool(1);
  for (const KernelDef* def : Kernels("FusedGemm", "com.microsoft")) {
    OneNode plain("Gemm", "", {RandomTensor({9, 20}, 6), RandomTensor({20, 17}, 7), RandomTensor({17}, 8)},
                  {}, {});
    OneNode fused("FusedGemm", "com.microsoft", plain.inputs, {false, true, true},
                  {ir::Attribute::String("activation", "Clip"),
                   ir::Attribute::Floats("activation_params", {-0.5f, 0.5f})});
    auto want = plain.Run(nullptr, pool);
    auto got = fused.Run(def, pool);
    std::vector<float> clipped(want[0].data<float>(), want[0].data<float>() + want[0].numel());
    for (float& v : clipped) v = std::min(std::max(v, -0.5f), 0.5f);
    ExpectClose(clipped, got[0], 20, def->name);
    OneNode bad("FusedGemm", "com.microsoft", plain.inputs, {},
                {ir::Attribute::String("activation", "Softsign")});
    EXPECT_THROW(bad.Run(def, pool), Error);
  }
}

TEST(GemmOpTest, RejectsBadShapes) {
  ThreadPool pool(1);
  for (const KernelDef* def : Kernels("Gemm")) {
    OneNode inner("Gemm", "", {RandomTensor({3, 4}, 1), RandomTensor({5, 6}, 2)}, {}, {});
    EXPECT_THROW(inner.Run(def, pool), Error);
    OneNode c("Gemm", "", {RandomTensor({3, 4}, 1), RandomTensor({4, 6}, 2), RandomTensor({2, 6}, 3)},
              {}, {});
    EXPECT_THROW(c.Run(def, pool), Error);
    OneNode rank("Gemm", "", {RandomTensor({2, 3, 4}, 1), RandomTensor({4, 6}, 2)}, {}, {});
    EXPECT_THROW(rank.Run(def, pool), Error);
  }
}

}  // namespace
}  // namespace edgepress::runtime
