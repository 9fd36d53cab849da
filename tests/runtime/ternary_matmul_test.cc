// edgepress::TernaryMatMul and its kernels (runtime/kernels/lowbit/ternary_matmul.h): the
// scalar reference against the dequantized float product (double accumulation), every SIMD
// path against the reference at tile edges (odd K around the 8/16-code steps, N around the
// 1/2/4/8-column tiles and the 64-column chunks, M around the 4-row tiles), the operator's
// validation, and EDGEPRESS_MAX_ISA-style selection of its entries.
#include "runtime/kernels/lowbit/ternary_matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

struct Data {
  int64_t m = 0, k = 0, n = 0;
  std::vector<float> a, scales, bias;
  std::vector<int8_t> t;  // [n][k]
  ir::Tensor packed;
  TernaryWeights Weights() const {
    TernaryWeights w;
    w.n = n;
    w.k = k;
    w.kp = TernaryPaddedK(k);
    w.codes = static_cast<const uint8_t*>(packed.raw());
    w.scales = scales.data();
    return w;
  }
};

Data Make(int64_t m, int64_t k, int64_t n, uint32_t seed, bool bias = true) {
  Data d;
  d.m = m, d.k = k, d.n = n;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  std::uniform_int_distribution<int> code(-1, 1);
  d.a.resize(static_cast<size_t>(m * k));
  for (float& x : d.a) x = u(rng);
  d.t.resize(static_cast<size_t>(n * k));
  for (int8_t& x : d.t) x = static_cast<int8_t>(code(rng));
  d.scales.resize(static_cast<size_t>(n));
  for (float& x : d.scales) x = 0.01f + std::fabs(u(rng));
  if (bias) {
    d.bias.resize(static_cast<size_t>(n));
    for (float& x : d.bias) x = u(rng);
  }
  d.packed = PackTernary(d.t.data(), n, k);
  return d;
}

// The dequantized float product in double: y = sum_k a * (s * t) + bias.
std::vector<double> Dequantized(const Data& d) {
  std::vector<double> y(static_cast<size_t>(d.m * d.n));
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t c = 0; c < d.n; ++c) {
      double acc = 0;
      for (int64_t kk = 0; kk < d.k; ++kk)
        acc += double(d.a[i * d.k + kk]) * (double(d.scales[c]) * d.t[c * d.k + kk]);
      y[i * d.n + c] = acc + (d.bias.empty() ? 0.0 : d.bias[c]);
    }
  return y;
}

std::vector<float> RunIsa(Isa isa, const Data& d, ThreadPool* pool) {
  std::vector<float> y(static_cast<size_t>(d.m * d.n), NAN);
  TernaryMatMul(isa, d.a.data(), d.m, d.Weights(), d.bias.empty() ? nullptr : d.bias.data(),
                y.data(), pool);
  return y;
}

// Float error bound of a K-term sum of values up to 2 * scale: ~K ulps of the running sum.
double Tol(const Data& d, int64_t c) { return 4e-7 * double(d.k) * 2.0 * d.scales[c] + 1e-5; }

template <typename T>
void ExpectClose(const std::vector<float>& got, const std::vector<T>& want, const Data& d,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], double(want[i]), Tol(d, static_cast<int64_t>(i) % d.n))
        << what << " m=" << d.m << " k=" << d.k << " n=" << d.n << " at " << i;
}

TEST(TernaryPack, LayoutIsTheDTypesCodesWithPaddedRows) {
  const int8_t t[2 * 5] = {1, -1, 0, 1, -1, /**/ 0, 0, 1, 0, -1};
  ir::Tensor p = PackTernary(t, 2, 5);
  EXPECT_EQ(p.dtype(), ir::DType::kTernary);
  EXPECT_EQ(p.shape(), (std::vector<int64_t>{2, 16}));
  EXPECT_EQ(p.nbytes(), 8u);  // 2 rows x 16 codes / 4 per byte
  const uint8_t* b = static_cast<const uint8_t*>(p.raw());
  EXPECT_EQ(b[0], 0b01'00'11'01);  // elements 0..3 = +1, -1, 0, +1, low bits first
  EXPECT_EQ(b[1], 0b11);           // element 4 = -1, padding 0
  EXPECT_EQ(b[2], 0);
  EXPECT_EQ(b[4], 0b00'01'00'00);  // row 1 starts at byte 4
  EXPECT_EQ(b[5], 0b11);
  const int8_t bad[1] = {2};
  EXPECT_THROW(PackTernary(bad, 1, 1), Error);
}

TEST(TernaryMatMul, ScalarMatchesDequantizedFloat) {
  ThreadPool pool(2);
  for (auto [m, k, n] : {std::tuple{1, 1, 1}, {3, 17, 5}, {2, 100, 37}, {20, 64, 70}}) {
    const Data d = Make(m, k, n, 7u + static_cast<uint32_t>(k));
    ExpectClose(RunIsa(Isa::kScalar, d, nullptr), Dequantized(d), d, "scalar");
    ExpectClose(RunIsa(Isa::kScalar, d, &pool), Dequantized(d), d, "scalar 2 threads");
  }
}

TEST(TernaryMatMul, SimdMatchesScalarAtTileEdges) {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512})
    if (GetCpuFeatures().Has(isa)) isas.push_back(isa);
  if (isas.empty()) GTEST_SKIP() << "CPU lacks AVX2 and AVX-512";
  ThreadPool pool(2);
  uint32_t seed = 1;
  for (Isa isa : isas)
    for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 9, 12, 17, 33})
      for (int64_t k : {1, 7, 8, 9, 15, 16, 17, 31, 33, 130})
        for (int64_t n : {1, 3, 4, 5, 9, 65, 130}) {
          ++seed;  // one statement: the argument order of seed and seed % 3 is unspecified
          const Data d = Make(m, k, n, seed, seed % 3 != 0);
          const std::vector<float> ref = RunIsa(Isa::kScalar, d, nullptr);
          ExpectClose(RunIsa(isa, d, nullptr), ref, d, IsaName(isa));
          if (n == 130) ExpectClose(RunIsa(isa, d, &pool), Dequantized(d), d, "2 threads");
        }
}

// 0b10 is not a ternary value; every path reads it as 0 (bit 0 is "non-zero").
TEST(TernaryMatMul, InvalidCodeReadsAsZeroEverywhere) {
  for (int64_t m : {1, 3, 9}) {  // the one-row xor/add path, FMA tiles, a second tile
    Data d = Make(m, 33, 9, 5);
    auto* b = static_cast<uint8_t*>(d.packed.mutable_raw());
    const int64_t row_bytes = TernaryPaddedK(d.k) / 4;
    for (int64_t c = 0; c < d.n; ++c) {
      b[c * row_bytes] = static_cast<uint8_t>((b[c * row_bytes] & ~3) | 2);  // element 0
      d.t[c * d.k] = 0;
    }
    for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
      if (isa == Isa::kScalar || GetCpuFeatures().Has(isa))
        ExpectClose(RunIsa(isa, d, nullptr), Dequantized(d), d, IsaName(isa));
  }
}

// ---- the operator ----

struct OpNode {
  ir::Graph g;
  ir::Node* node = nullptr;
  std::vector<ir::Tensor> tensors;
  OpNode(const Data& d, std::vector<int64_t> a_shape) {
    std::vector<ir::Value*> ins;
    for (const char* name : {"A", "B", "scales", "bias"})
      ins.push_back(g.AddInput(name, ir::ValueType::Tensor(ir::DType::kFloat32)));
    node = g.AddNode("TernaryMatMul", ins, {"Y"}, "tmm", "edgepress");
    node->set_attr(ir::Attribute::Int("K", d.k));
    node->set_attr(ir::Attribute::Int("N", d.n));
    ir::Tensor a(ir::DType::kFloat32, std::move(a_shape));
    std::copy(d.a.begin(), d.a.end(), a.mutable_data<float>());
    tensors = {
        a, d.packed, ir::Tensor::FromVector(ir::DType::kFloat32, {d.n}, d.scales),
        d.bias.empty() ? ir::Tensor() : ir::Tensor::FromVector(ir::DType::kFloat32, {d.n}, d.bias)};
  }
  std::vector<ir::Tensor> Run(const KernelDef* def, ThreadPool& pool) {
    std::vector<const ir::Tensor*> ptrs;
    for (const ir::Tensor& t : tensors) ptrs.push_back(t.empty() ? nullptr : &t);
    return RunNode(*node, ptrs, pool, def);
  }
};

TEST(TernaryMatMulOp, EveryKernelMatchesDequantizedFloat) {
  const auto defs = KernelsFor("TernaryMatMul", "edgepress", ir::DType::kFloat32);
  ASSERT_FALSE(defs.empty());
  ThreadPool pool(2);
  for (const KernelDef* def : defs)
    for (auto [m, a_shape, bias] :
         {std::tuple{int64_t{1}, std::vector<int64_t>{50}, true},  // rank-1 A
          std::tuple{int64_t{6}, std::vector<int64_t>{2, 3, 50}, false},
          std::tuple{int64_t{24}, std::vector<int64_t>{4, 6, 50}, true}}) {
      const Data d = Make(m, 50, 19, 11, bias);
      std::vector<int64_t> y_shape = a_shape;
      y_shape.back() = d.n;
      std::vector<ir::Tensor> out = OpNode(d, a_shape).Run(def, pool);
      ASSERT_EQ(out.size(), 1u);
      EXPECT_EQ(out[0].shape(), y_shape) << def->name;
      ExpectClose(std::vector<float>(out[0].data<float>(), out[0].data<float>() + out[0].numel()),
                  Dequantized(d), d, def->name);
    }
}

TEST(TernaryMatMulOp, RejectsBadInputsNamingNodeAndInput) {
  ThreadPool pool(1);
  const Data d = Make(2, 20, 3, 3);
  auto expect_error = [&](OpNode& op, const std::string& needle) {
    try {
      op.Run(nullptr, pool);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("tmm"), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  {
    OpNode op(d, {2, 20});
    op.tensors[1] = ir::Tensor(ir::DType::kInt8, {3, 20});
    expect_error(op, "input 1 (B) has dtype i8, expected ternary");
  }
  {
    OpNode op(d, {2, 20});
    op.tensors[1] = ir::Tensor(ir::DType::kTernary, {3, 20});  // rows not padded
    expect_error(op, "expected [3,32]");
  }
  {
    OpNode op(d, {2, 20});
    op.tensors[2] = ir::Tensor(ir::DType::kFloat32, {2});
    expect_error(op, "input 2 (scales)");
  }
  {
    OpNode op(d, {2, 20});
    op.tensors[3] = ir::Tensor(ir::DType::kFloat32, {4});
    expect_error(op, "input 3 (bias)");
  }
  {
    OpNode op(d, {2, 10, 2});
    expect_error(op, "last dimension must be K=20");
  }
  {
    OpNode op(d, {2, 20});
    op.node->set_attr(ir::Attribute::Int("K", 0));
    expect_error(op, "K=0");
  }
}

// EDGEPRESS_MAX_ISA=avx2 (AMD Zen 2/3) must pick the AVX2 entry, scalar the reference,
// and the unlimited CPU its best entry.
TEST(TernaryMatMulOp, MaxIsaSelectsTheEntry) {
  const KernelRegistry& reg = GlobalKernelRegistry();
  auto pick = [&](const char* level) -> std::string {
    CpuFeatures f = GetCpuFeatures();
    if (level) {
      EXPECT_TRUE(LimitCpuFeatures(&f, level));
    }
    const KernelDef* def = reg.Find("TernaryMatMul", "edgepress", ir::DType::kFloat32, f, false);
    return def ? def->name : "none";
  };
  EXPECT_EQ(pick("scalar"), "ternary_matmul__ref");
  if (GetCpuFeatures().Has(Isa::kAvx2)) {
    EXPECT_EQ(pick("avx2"), "ternary_matmul__avx2");
  }
  if (GetCpuFeatures().Has(Isa::kAvx512)) {
    EXPECT_EQ(pick(nullptr), "ternary_matmul__avx512");
  }
}

}  // namespace
}  // namespace edgepress::runtime
