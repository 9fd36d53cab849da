// Reduction and softmax kernels: the AVX2 entries against the scalar reference over
// row lengths around the vector width and every axis layout (last axis, middle block,
// non-contiguous axes that need a transpose), keepdims/noop/negative axes, axes as
// attribute vs input, values of every reduce op against a naive double computation,
// opset-11 vs opset-13 Softmax semantics, and bad axes that must throw.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <cstring>
#include <map>
#include <memory>
#include <random>

#include "ir/error.h"
#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

using ir::DType;
using ir::Tensor;
using Shape = std::vector<int64_t>;

struct OneNode {
  ir::Graph g;
  ir::Node* node = nullptr;
  OneNode(const std::string& op, int n_in) {
    std::vector<ir::Value*> ins;
    for (int i = 0; i < n_in; ++i)
      ins.push_back(g.AddInput("x" + std::to_string(i), ir::ValueType::Tensor(DType::kFloat32)));
    node = g.AddNode(op, ins, {"y"}, "n_" + op);
  }
  OneNode& Attr(ir::Attribute a) {
    node->set_attr(std::move(a));
    return *this;
  }
  Tensor Run(const std::vector<const Tensor*>& in, const KernelDef* def = nullptr,
             int threads = 1) {
    ThreadPool pool(threads);
    return RunNode(*node, in, pool, def)[0];
  }
};

Tensor Random(Shape shape, float lo, float hi, uint32_t seed = 1) {
  Tensor t(DType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  float* p = t.mutable_data<float>();
  for (uint64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
  return t;
}
Tensor I64(Shape shape, std::vector<int64_t> v) {
  return Tensor::FromVector(DType::kInt64, std::move(shape), v);
}
std::vector<float> Values(const Tensor& t) {
  std::vector<float> v(t.numel());
  if (!v.empty()) std::memcpy(v.data(), t.raw(), t.nbytes());
  return v;
}
const KernelDef* RefOf(const std::string& op) {
  for (const KernelDef* d : KernelsFor(op, "", DType::kFloat32))
    if (d->isa == Isa::kScalar) return d;
  return nullptr;
}
std::vector<const KernelDef*> SimdOf(const std::string& op) {
  std::vector<const KernelDef*> out;
  for (const KernelDef* d : KernelsFor(op, "", DType::kFloat32))
    if (d->isa != Isa::kScalar) out.push_back(d);
  return out;
}
void ExpectClose(const Tensor& got, const Tensor& want, double atol, double rtol,
                 const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  std::vector<float> g = Values(got), w = Values(want);
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_LE(std::fabs(g[i] - w[i]), atol + rtol * std::fabs(w[i]))
        << what << " at " << i << ": got " << g[i] << " want " << w[i];
}

TEST(ReduceTest, SimdMatchesReference) {
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  struct Case {
    Shape shape;
    std::vector<int64_t> axes;
  };
  std::vector<Case> cases;
  for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 31, 33, 1000})
    cases.push_back({{3, n}, {-1}});                         // last axis
  cases.push_back({{4, 17, 9}, {1}});                        // middle block
  cases.push_back({{2, 5, 33}, {0}});                        // leading axis
  cases.push_back({{2, 3, 4, 5}, {1, 2}});                   // middle block of two
  cases.push_back({{2, 3, 4, 5}, {0, 2}});                   // needs a transpose
  cases.push_back({{2, 3, 4, 5}, {}});                       // all
  cases.push_back({{1, 3, 1, 7}, {0, 3}});                   // size-1 dims ignored
  cases.push_back({{256, 1024}, {1}});                       // parallel rows
  cases.push_back({{8, 196, 64}, {1}});                      // global-average-pool shape
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"}) {
    auto simd = SimdOf(op);
    ASSERT_FALSE(simd.empty()) << op;
    for (const auto& c : cases) {
      for (int keep : {0, 1}) {
        OneNode nd(op, 1);
        nd.Attr(ir::Attribute::Int("keepdims", keep));
        if (!c.axes.empty()) nd.Attr(ir::Attribute::Ints("axes", c.axes));
        Tensor x = Random(c.shape, -2, 2, static_cast<uint32_t>(c.shape.back()));
        Tensor want = nd.Run({&x}, RefOf(op));
        for (const KernelDef* d : simd)
          for (int threads : {1, 2})
            ExpectClose(nd.Run({&x}, d, threads), want, 1e-5, 1e-5,
                        std::string(d->name) + " last dim " + std::to_string(c.shape.back()));
      }
    }
  }
}

// Naive double-precision reduction over the last axis of a [rows, n] tensor.
std::vector<double> Naive(const std::string& op, const std::vector<float>& x, int64_t rows,
                          int64_t n) {
  std::vector<double> out;
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0, p = 1, l1 = 0, sq = 0, mx = -INFINITY, mn = INFINITY;
    for (int64_t k = 0; k < n; ++k) {
      double v = x[r * n + k];
      s += v, p *= v, l1 += std::fabs(v), sq += v * v;
      mx = std::max(mx, v), mn = std::min(mn, v);
    }
    double lse = 0;
    for (int64_t k = 0; k < n; ++k) lse += std::exp(x[r * n + k] - mx);
    std::map<std::string, double> v = {
        {"ReduceSum", s},     {"ReduceMean", s / n},          {"ReduceProd", p},
        {"ReduceL1", l1},     {"ReduceL2", std::sqrt(sq)},    {"ReduceSumSquare", sq},
        {"ReduceMax", mx},    {"ReduceMin", mn},              {"ReduceLogSum", std::log(s)},
        {"ReduceLogSumExp", mx + std::log(lse)}};
    out.push_back(v.at(op));
  }
  return out;
}

TEST(ReduceTest, EveryOpMatchesNaiveDouble) {
  Tensor x = Random({5, 13}, 0.5f, 1.5f, 3);
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceSumSquare", "ReduceMax", "ReduceMin", "ReduceLogSum",
                         "ReduceLogSumExp"}) {
    std::vector<double> want = Naive(op, Values(x), 5, 13);
    for (const KernelDef* d : KernelsFor(op, "", DType::kFloat32)) {
      OneNode nd(op, 2);
      nd.Attr(ir::Attribute::Int("keepdims", 0));
      Tensor axes = I64({1}, {1});
      Tensor y = nd.Run({&x, &axes}, d);  // axes as an input (opset 18 form)
      ASSERT_EQ(y.shape(), (Shape{5})) << d->name;
      std::vector<float> g = Values(y);
      for (int i = 0; i < 5; ++i) EXPECT_NEAR(g[i], want[i], 1e-5 * std::fabs(want[i]) + 1e-6) << d->name;
    }
  }
}

TEST(ReduceTest, AxesKeepdimsNoopAndErrors) {
  Tensor x = Random({2, 3, 4}, -1, 1);
  OneNode all("ReduceSum", 1);
  EXPECT_EQ(all.Run({&x}).shape(), (Shape{1, 1, 1}));
  OneNode noop("ReduceSum", 2);
  noop.Attr(ir::Attribute::Int("noop_with_empty_axes", 1));
  Tensor empty = I64({0}, {});
  Tensor same = noop.Run({&x, &empty});
  EXPECT_EQ(Values(same), Values(x));
  OneNode neg("ReduceMean", 1);
  neg.Attr(ir::Attribute::Ints("axes", {-1, 0}));
  neg.Attr(ir::Attribute::Int("keepdims", 0));
  Tensor m = neg.Run({&x});
  EXPECT_EQ(m.shape(), (Shape{3}));
  // Integer ReduceSum and ReduceMax.
  Tensor i = I64({2, 2}, {1, 7, -3, 4});
  OneNode is("ReduceSum", 1);
  is.Attr(ir::Attribute::Ints("axes", {0}));
  Tensor iy = is.Run({&i});
  ASSERT_EQ(iy.dtype(), DType::kInt64);
  EXPECT_EQ(iy.data<int64_t>()[0], -2);
  EXPECT_EQ(iy.data<int64_t>()[1], 11);
  for (const char* op : {"ReduceSum", "ReduceMax", "ReduceLogSumExp"}) {
    for (const KernelDef* d : KernelsFor(op, "", DType::kFloat32)) {
      OneNode bad(op, 1);
      bad.Attr(ir::Attribute::Ints("axes", {3}));
      EXPECT_THROW(bad.Run({&x}, d), Error) << d->name;
      OneNode dup(op, 1);
      dup.Attr(ir::Attribute::Ints("axes", {1, -2}));
      EXPECT_THROW(dup.Run({&x}, d), Error) << d->name;
    }
  }
  // Reducing an empty axis: sum 0, max -inf.
  Tensor e(DType::kFloat32, {2, 0});
  OneNode es("ReduceSum", 1);
  es.Attr(ir::Attribute::Ints("axes", {1}));
  EXPECT_EQ(Values(es.Run({&e})), (std::vector<float>{0, 0}));
  OneNode em("ReduceMax", 1);
  em.Attr(ir::Attribute::Ints("axes", {1}));
  for (const KernelDef* d : KernelsFor("ReduceMax", "", DType::kFloat32))
    EXPECT_TRUE(std::isinf(Values(em.Run({&e}, d))[0])) << d->name;
}

// Found by the epk_run fuzzer: ReduceLogSum of int64 zeros is log(0) = -inf, which was
// converted to int64 (undefined behaviour, UBSan's report). Integer results saturate; an
// empty LogSumExp (-inf) too.
TEST(ReduceTest, IntegerResultsOutsideTheTypeSaturate) {
  Tensor zeros = I64({2, 3}, {0, 0, 0, 1, 1, 1});
  OneNode ls("ReduceLogSum", 1);
  ls.Attr(ir::Attribute::Ints("axes", {1}));
  Tensor y = ls.Run({&zeros});
  ASSERT_EQ(y.dtype(), DType::kInt64);
  EXPECT_EQ(y.data<int64_t>()[0], std::numeric_limits<int64_t>::lowest());
  EXPECT_EQ(y.data<int64_t>()[1], 1);  // log(3) = 1.0986 truncates to 1
  Tensor empty(DType::kInt32, {2, 0});
  OneNode lse("ReduceLogSumExp", 1);
  lse.Attr(ir::Attribute::Ints("axes", {1}));
  Tensor e = lse.Run({&empty});
  ASSERT_EQ(e.dtype(), DType::kInt32);
  EXPECT_EQ(e.data<int32_t>()[0], std::numeric_limits<int32_t>::lowest());
}

TEST(SoftmaxTest, SimdMatchesReference) {
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  for (const char* op : {"Softmax", "LogSoftmax"}) {
    auto simd = SimdOf(op);
    ASSERT_FALSE(simd.empty()) << op;
    for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 31, 33, 1000, 30000}) {
      for (int64_t axis : {-1, 0}) {
        OneNode nd(op, 1);
        nd.Attr(ir::Attribute::Int("axis", axis));
        Tensor x = Random({4, n}, -20, 20, static_cast<uint32_t>(n));
        Tensor want = nd.Run({&x}, RefOf(op));
        for (const KernelDef* d : simd)
          for (int threads : {1, 2})
            ExpectClose(nd.Run({&x}, d, threads), want, 1e-6, 2e-6,
                        std::string(d->name) + " n=" + std::to_string(n));
      }
    }
  }
}

TEST(SoftmaxTest, MaskedEntriesAreExactZerosNotDenormals) {
  // An attention mask adds -1e4, -1e9 or -inf; those probabilities must be 0, not the
  // 4e-39 denormal a clamped exp gives (denormals slow the next MatMul down by 2x and more).
  std::vector<float> row(21, 0.f);
  for (int i = 0; i < 21; ++i) row[i] = 0.1f * static_cast<float>(i);
  row[2] = -1e4f, row[9] = -1e9f, row[17] = -std::numeric_limits<float>::infinity();
  row[20] = -95.f;  // exp(-95 - max) underflows too
  Tensor x = Tensor::FromVector<float>(DType::kFloat32, {1, 21}, row);
  OneNode sm("Softmax", 1);
  for (const KernelDef* d : KernelsFor("Softmax", "", DType::kFloat32)) {
    std::vector<float> y = Values(sm.Run({&x}, d));
    for (int i : {2, 9, 17}) EXPECT_EQ(y[i], 0.f) << d->name << " entry " << i;
    if (d->isa == Isa::kScalar) continue;  // the reference rounds exp(-97) to a denormal, as IEEE does
    for (float v : y) EXPECT_TRUE(v == 0.f || std::fpclassify(v) == FP_NORMAL) << d->name;
  }
}

TEST(SoftmaxTest, ValuesAndOpsetSemantics) {
  Tensor x = Tensor::FromVector<float>(DType::kFloat32, {2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 1000});
  OneNode sm("Softmax", 1);
  sm.Attr(ir::Attribute::Int("axis", 1));
  std::vector<float> y = Values(sm.Run({&x}));
  // Opset 13: along axis 1 only; pairs (0,2), (1,3), (4,6), (5,1000).
  EXPECT_NEAR(y[0], 1 / (1 + std::exp(2.0)), 1e-6);
  EXPECT_NEAR(y[3] + y[1], 1.0, 1e-6);
  EXPECT_NEAR(y[7], 1.0, 1e-6);  // large inputs do not overflow
  // Opset 11: coerce to [2, 4] and normalise whole rows.
  KernelInit init{*sm.node, {}, 11};
  const KernelDef* ref = RefOf("Softmax");
  ThreadPool pool(1);
  for (const KernelDef* d : KernelsFor("Softmax", "", DType::kFloat32)) {
    std::unique_ptr<Kernel> k = d->create(init);
    struct Ctx : KernelContext {
      const ir::Node& n;
      const Tensor& in;
      ThreadPool& p;
      Tensor out;
      Ctx(const ir::Node& n, const Tensor& in, ThreadPool& p) : n(n), in(in), p(p) {}
      const ir::Node& node() const override { return n; }
      size_t num_inputs() const override { return 1; }
      const Tensor* input(size_t i) const override { return i == 0 ? &in : nullptr; }
      size_t num_outputs() const override { return 1; }
      bool output_requested(size_t) const override { return true; }
      Tensor& AllocateOutput(size_t, DType dt, std::vector<int64_t> s) override {
        out = Tensor(dt, std::move(s));
        return out;
      }
      void SetOutput(size_t, Tensor t) override { out = std::move(t); }
      ThreadPool& pool() override { return p; }
      std::vector<Tensor> RunSubgraph(const ir::Graph&, const std::vector<Tensor>&) override {
        return {};
      }
    } ctx(*sm.node, x, pool);
    k->Run(ctx);
    std::vector<float> v = Values(ctx.out);
    EXPECT_NEAR(v[0] + v[1] + v[2] + v[3], 1.0, 1e-6) << d->name;
    EXPECT_NEAR(v[3] / v[0], std::exp(3.0), 1e-3) << d->name;
  }
  (void)ref;
  OneNode ls("LogSoftmax", 1);
  Tensor r = Tensor::FromVector<float>(DType::kFloat32, {3}, {1, 2, 3});
  std::vector<float> l = Values(ls.Run({&r}));
  double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_NEAR(l[0], 1 - lse, 1e-6);
  OneNode hm("Hardmax", 1);
  Tensor h = Tensor::FromVector<float>(DType::kFloat32, {2, 3}, {1, 3, 3, -1, -2, -3});
  EXPECT_EQ(Values(hm.Run({&h})), (std::vector<float>{0, 1, 0, 1, 0, 0}));
  OneNode bad("Softmax", 1);
  bad.Attr(ir::Attribute::Int("axis", 3));
  for (const KernelDef* d : KernelsFor("Softmax", "", DType::kFloat32))
    EXPECT_THROW(bad.Run({&h}, d), Error) << d->name;
  Tensor ints = I64({2}, {1, 2});
  EXPECT_THROW(OneNode("Softmax", 1).Run({&ints}), Error);
}

}  // namespace
}  // namespace edgepress::runtime
