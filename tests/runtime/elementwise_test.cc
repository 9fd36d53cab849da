// Elementwise kernels: every SIMD entry against the scalar reference at sizes around the
// vector width (and large enough to go parallel), broadcasting shapes, the documented
// accuracy of the vector math against double-precision std:: functions, integer
// semantics that must not trap, and bad inputs that must throw edgepress::Error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "ir/error.h"
#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/kernels/elementwise/elementwise_simd.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

using ir::DType;
using ir::Tensor;

// One node with `n_in` graph inputs in a fresh graph.
struct OneNode {
  ir::Graph g;
  ir::Node* node = nullptr;
  OneNode(const std::string& op, int n_in, int n_out = 1, const std::string& domain = "") {
    std::vector<ir::Value*> ins;
    for (int i = 0; i < n_in; ++i)
      ins.push_back(g.AddInput("x" + std::to_string(i), ir::ValueType::Tensor(DType::kFloat32)));
    std::vector<std::string> outs;
    for (int i = 0; i < n_out; ++i) outs.push_back("y" + std::to_string(i));
    node = g.AddNode(op, ins, outs, "n_" + op, domain);
  }
  OneNode& Attr(ir::Attribute a) {
    node->set_attr(std::move(a));
    return *this;
  }
  std::vector<Tensor> Run(const std::vector<const Tensor*>& in, const KernelDef* def = nullptr,
                          int threads = 1) {
    ThreadPool pool(threads);
    return RunNode(*node, in, pool, def);
  }
};

Tensor Random(std::vector<int64_t> shape, float lo, float hi, uint32_t seed = 1) {
  Tensor t(DType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  float* p = t.mutable_data<float>();
  for (uint64_t i = 0; i < t.numel(); ++i) p[i] = d(rng);
  return t;
}

Tensor F32(std::vector<int64_t> shape, std::vector<float> v) {
  return Tensor::FromVector(DType::kFloat32, std::move(shape), v);
}
template <class T>
std::vector<T> Values(const Tensor& t) {
  std::vector<T> v(t.numel());
  if (!v.empty()) std::memcpy(v.data(), t.raw(), t.nbytes());
  return v;
}

const KernelDef* RefOf(const std::string& op, const std::string& domain = "") {
  for (const KernelDef* d : KernelsFor(op, domain, DType::kFloat32))
    if (d->isa == Isa::kScalar) return d;
  return nullptr;
}
std::vector<const KernelDef*> SimdOf(const std::string& op, const std::string& domain = "") {
  std::vector<const KernelDef*> out;
  for (const KernelDef* d : KernelsFor(op, domain, DType::kFloat32))
    if (d->isa != Isa::kScalar) out.push_back(d);
  return out;
}

void ExpectClose(const Tensor& got, const Tensor& want, double atol, double rtol,
                 const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  std::vector<float> g = Values<float>(got), w = Values<float>(want);
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(w[i])) {
      EXPECT_TRUE(std::isnan(g[i])) << what << " at " << i;
      continue;
    }
    ASSERT_LE(std::fabs(g[i] - w[i]), atol + rtol * std::fabs(w[i]))
        << what << " at " << i << ": got " << g[i] << " want " << w[i];
  }
}

const std::vector<int64_t> kSizes = {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 1000, 70001};

TEST(ElementwiseTest, EveryOpHasAScalarReference) {
  for (const char* op : {"Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish",
                         "Tanh", "Erf", "Gelu", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal",
                         "Not", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Tan", "Asin",
                         "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Softplus",
                         "Softsign", "Elu", "Selu", "Celu", "ThresholdedRelu", "Mish", "IsNaN",
                         "IsInf", "PRelu", "Identity", "Dropout", "Add", "Sub", "Mul", "Div",
                         "Pow", "Mod", "Min", "Max", "Sum", "Mean", "Equal", "Less", "Greater",
                         "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "BitShift", "Where"})
    EXPECT_NE(RefOf(op), nullptr) << op;
  EXPECT_NE(RefOf("Gelu", "com.microsoft"), nullptr);
}

struct UnaryCase {
  const char* op;
  float lo, hi;
  double atol, rtol;
  std::vector<ir::Attribute> attrs;
};

TEST(ElementwiseTest, UnarySimdMatchesReference) {
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  std::vector<UnaryCase> cases = {
      {"Relu", -5, 5, 0, 0, {}},
      {"LeakyRelu", -5, 5, 0, 1e-7, {ir::Attribute::Float("alpha", 0.1f)}},
      {"Clip", -5, 5, 0, 0, {ir::Attribute::Float("min", -1.5f), ir::Attribute::Float("max", 2.f)}},
      {"Sigmoid", -20, 20, 1e-7, 4e-7, {}},
      {"HardSigmoid", -6, 6, 1e-7, 1e-6, {ir::Attribute::Float("alpha", 0.3f)}},
      {"HardSwish", -6, 6, 1e-6, 1e-6, {}},
      {"Tanh", -10, 10, 5e-7, 0, {}},
      {"Erf", -5, 5, 5e-7, 0, {}},
      {"Gelu", -8, 8, 2e-6, 1e-6, {}},
      {"Gelu", -8, 8, 2e-6, 1e-6, {ir::Attribute::String("approximate", "tanh")}},
      {"Exp", -80, 80, 0, 3e-7, {}},
      {"Sqrt", 0, 100, 0, 1e-7, {}},
      {"Neg", -5, 5, 0, 0, {}},
      {"Abs", -5, 5, 0, 0, {}},
  };
  for (const auto& c : cases) {
    auto simd = SimdOf(c.op);
    ASSERT_FALSE(simd.empty()) << c.op;
    for (int64_t n : kSizes) {
      OneNode nd(c.op, 1);
      for (const auto& a : c.attrs) nd.Attr(a);
      Tensor x = Random({n}, c.lo, c.hi, static_cast<uint32_t>(n + 3));
      Tensor want = nd.Run({&x}, RefOf(c.op))[0];
      for (const KernelDef* d : simd) {
        for (int threads : {1, 2}) {
          Tensor got = nd.Run({&x}, d, threads)[0];
          ExpectClose(got, want, c.atol, c.rtol,
                      std::string(d->name) + " n=" + std::to_string(n));
        }
      }
    }
  }
  // com.microsoft Gelu is the erf form.
  OneNode ms("Gelu", 1, 1, "com.microsoft");
  Tensor x = Random({1000}, -5, 5);
  for (const KernelDef* d : SimdOf("Gelu", "com.microsoft"))
    ExpectClose(ms.Run({&x}, d)[0], ms.Run({&x}, RefOf("Gelu", "com.microsoft"))[0], 2e-6, 1e-6,
                d->name);
  // com.microsoft FastGelu is the tanh form (what fuse-gelu writes for it): every entry
  // equals ONNX Gelu(approximate=tanh)'s reference, and a bias input is refused by name.
  OneNode fast("FastGelu", 1, 1, "com.microsoft");
  OneNode tanh_gelu("Gelu", 1);
  tanh_gelu.Attr(ir::Attribute::String("approximate", "tanh"));
  const Tensor want = tanh_gelu.Run({&x}, RefOf("Gelu"))[0];
  ASSERT_NE(RefOf("FastGelu", "com.microsoft"), nullptr);
  ExpectClose(fast.Run({&x}, RefOf("FastGelu", "com.microsoft"))[0], want, 0, 0, "reference");
  for (const KernelDef* d : SimdOf("FastGelu", "com.microsoft"))
    ExpectClose(fast.Run({&x}, d)[0], want, 2e-6, 1e-6, d->name);
  OneNode biased("FastGelu", 2, 1, "com.microsoft");
  Tensor bias = Random({1000}, -1, 1);
  try {
    biased.Run({&x, &bias}, RefOf("FastGelu", "com.microsoft"));
    ADD_FAILURE() << "a FastGelu bias was ignored";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("FastGelu with a bias input is not supported"),
              std::string::npos) << e.what();
  }
}

TEST(ElementwiseTest, ClipBoundsFromInputsAndNanPassThrough) {
  OneNode nd("Clip", 3);
  Tensor x = F32({5}, {-3, -0.5f, 0.25f, 9, std::nanf("")});
  Tensor lo = F32({}, {-1}), hi = F32({}, {1});
  for (const KernelDef* d : KernelsFor("Clip", "", DType::kFloat32)) {
    std::vector<float> y = Values<float>(nd.Run({&x, &lo, &hi}, d)[0]);
    EXPECT_EQ(y[0], -1);
    EXPECT_EQ(y[1], -0.5f);
    EXPECT_EQ(y[3], 1);
    EXPECT_TRUE(std::isnan(y[4])) << d->name;
    // Only a max: min input omitted.
    std::vector<float> y2 = Values<float>(nd.Run({&x, nullptr, &hi}, d)[0]);
    EXPECT_EQ(y2[0], -3) << d->name;
    EXPECT_EQ(y2[3], 1) << d->name;
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void VecMath(const float* x, float* e, float* s, float* t,
                                                 float* r) {
  __m256 v = _mm256_loadu_ps(x);
  _mm256_storeu_ps(e, kernels::avx2::Exp256(v));
  _mm256_storeu_ps(s, kernels::avx2::Sigmoid256(v));
  _mm256_storeu_ps(t, kernels::avx2::Tanh256(v));
  _mm256_storeu_ps(r, kernels::avx2::Erf256(v));
}
#endif

// Vector math accuracy over a dense grid, against double-precision std:: functions.
TEST(ElementwiseTest, VectorMathAccuracy) {
#if defined(__x86_64__)
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  std::vector<float> xs;
  for (float x = -12.f; x < 12.f; x += 3.7e-4f) xs.push_back(x);
  while (xs.size() % 8) xs.push_back(0.5f);
  double exp_rel = 0, sig_rel = 0, tanh_abs = 0, erf_abs = 0;
  float e[8], s[8], t[8], r[8];
  for (size_t i = 0; i < xs.size(); i += 8) {
    VecMath(&xs[i], e, s, t, r);
    for (int j = 0; j < 8; ++j) {
      double x = xs[i + j];
      exp_rel = std::max(exp_rel, std::fabs(e[j] - std::exp(x)) / std::exp(x));
      double sg = 1 / (1 + std::exp(-x));
      sig_rel = std::max(sig_rel, std::fabs(s[j] - sg) / sg);
      tanh_abs = std::max(tanh_abs, std::fabs(t[j] - std::tanh(x)));
      erf_abs = std::max(erf_abs, std::fabs(r[j] - std::erf(x)));
    }
  }
  // The bounds documented in runtime/kernels/elementwise/elementwise_simd.h.
  EXPECT_LE(exp_rel, 2.4e-7);
  EXPECT_LE(sig_rel, 3.6e-7);
  EXPECT_LE(tanh_abs, 4e-7);
  EXPECT_LE(erf_abs, 4e-7);
  std::printf("max error: exp rel %.3g, sigmoid rel %.3g, tanh abs %.3g, erf abs %.3g\n",
              exp_rel, sig_rel, tanh_abs, erf_abs);
  // IEEE edge cases of the Exp kernel.
  OneNode nd("Exp", 1);
  Tensor x = F32({4}, {100.f, -200.f, std::nanf(""), 0.f});
  for (const KernelDef* d : KernelsFor("Exp", "", DType::kFloat32)) {
    std::vector<float> y = Values<float>(nd.Run({&x}, d)[0]);
    EXPECT_TRUE(std::isinf(y[0]) && y[0] > 0) << d->name;
    EXPECT_EQ(y[1], 0.f) << d->name;
    EXPECT_TRUE(std::isnan(y[2])) << d->name;
    EXPECT_EQ(y[3], 1.f) << d->name;
  }
#else
  GTEST_SKIP() << "x86-64 only";
#endif
}

TEST(ElementwiseTest, BinarySimdMatchesReferenceWithBroadcasting) {
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes;
  for (int64_t n : kSizes) shapes.push_back({{n}, {n}});
  shapes.push_back({{4, 17}, {17}});
  shapes.push_back({{4, 17}, {4, 1}});
  shapes.push_back({{17}, {4, 17}});
  shapes.push_back({{3, 1, 5}, {1, 4, 1}});
  shapes.push_back({{}, {33}});
  shapes.push_back({{33}, {}});
  shapes.push_back({{2, 3, 4, 5}, {3, 1, 1}});
  shapes.push_back({{2, 3, 4, 9}, {2, 1, 4, 9}});
  shapes.push_back({{64, 1024}, {1024}});
  shapes.push_back({{64, 1024}, {64, 1}});
  shapes.push_back({{0, 3}, {3}});
  for (const char* op : {"Add", "Sub", "Mul", "Div"}) {
    auto simd = SimdOf(op);
    ASSERT_FALSE(simd.empty()) << op;
    OneNode nd(op, 2);
    for (const auto& [sa, sb] : shapes) {
      Tensor a = Random(sa, -3, 3, 7), b = Random(sb, 0.5f, 3, 9);
      Tensor want = nd.Run({&a, &b}, RefOf(op))[0];
      for (const KernelDef* d : simd)
        for (int threads : {1, 2})
          ExpectClose(nd.Run({&a, &b}, d, threads)[0], want, 0, 0,
                      std::string(d->name) + " " + std::to_string(a.numel()) + "x" +
                          std::to_string(b.numel()));
    }
  }
}

TEST(ElementwiseTest, BroadcastValues) {
  OneNode nd("Sub", 2);
  Tensor a = F32({2, 1}, {10, 20}), b = F32({3}, {1, 2, 3});
  Tensor y = nd.Run({&a, &b})[0];
  EXPECT_EQ(y.shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(Values<float>(y), (std::vector<float>{9, 8, 7, 19, 18, 17}));
}

TEST(ElementwiseTest, IncompatibleShapesThrow) {
  for (const char* op : {"Add", "Mul", "Equal", "PRelu"}) {
    OneNode nd(op, 2);
    Tensor a = Random({3}, 0, 1), b = Random({4}, 0, 1);
    for (const KernelDef* d : KernelsFor(op, "", DType::kFloat32))
      EXPECT_THROW(nd.Run({&a, &b}, d), Error) << d->name;
  }
  OneNode nd("Add", 2);
  Tensor a = Random({3}, 0, 1);
  Tensor i = Tensor::FromVector<int64_t>(DType::kInt64, {3}, {1, 2, 3});
  EXPECT_THROW(nd.Run({&a, &i}), Error);       // dtype mismatch
  EXPECT_THROW(nd.Run({&a, nullptr}), Error);  // missing input
  OneNode w("Where", 3);
  Tensor c = Tensor::FromVector<uint8_t>(DType::kBool, {2}, {1, 0});
  EXPECT_THROW(w.Run({&c, &a, &a}), Error);
}

TEST(ElementwiseTest, IntegerArithmeticDoesNotTrap) {
  OneNode div("Div", 2);
  int32_t mn = std::numeric_limits<int32_t>::min();
  Tensor a = Tensor::FromVector<int32_t>(DType::kInt32, {4}, {7, -7, mn, 5});
  Tensor b = Tensor::FromVector<int32_t>(DType::kInt32, {4}, {2, 2, -1, 0});
  EXPECT_EQ(Values<int32_t>(div.Run({&a, &b})[0]), (std::vector<int32_t>{3, -3, mn, 0}));
  OneNode mod("Mod", 2);
  EXPECT_EQ(Values<int32_t>(mod.Run({&a, &b})[0]), (std::vector<int32_t>{1, 1, 0, 0}));
  mod.Attr(ir::Attribute::Int("fmod", 1));
  EXPECT_EQ(Values<int32_t>(mod.Run({&a, &b})[0]), (std::vector<int32_t>{1, -1, 0, 0}));
  OneNode fm("Mod", 2);
  fm.Attr(ir::Attribute::Int("fmod", 1));
  Tensor fa = F32({2}, {-7.5f, 7.5f}), fb = F32({2}, {2, -2});
  EXPECT_EQ(Values<float>(fm.Run({&fa, &fb})[0]), (std::vector<float>{-1.5f, 1.5f}));
  OneNode pw("Pow", 2);
  Tensor base = Tensor::FromVector<int64_t>(DType::kInt64, {3}, {2, 3, -2});
  Tensor ex = Tensor::FromVector<int64_t>(DType::kInt64, {3}, {10, 3, 3});
  EXPECT_EQ(Values<int64_t>(pw.Run({&base, &ex})[0]), (std::vector<int64_t>{1024, 27, -8}));
  Tensor fex = F32({3}, {2, 0.5f, 3});
  Tensor fbase = F32({3}, {3, 16, -2});
  EXPECT_EQ(Values<float>(pw.Run({&fbase, &fex})[0]), (std::vector<float>{9, 4, -8}));
  OneNode sh("BitShift", 2);
  sh.Attr(ir::Attribute::String("direction", "LEFT"));
  Tensor u = Tensor::FromVector<uint8_t>(DType::kUInt8, {3}, {1, 3, 255});
  Tensor s = Tensor::FromVector<uint8_t>(DType::kUInt8, {3}, {3, 1, 9});
  EXPECT_EQ(Values<uint8_t>(sh.Run({&u, &s})[0]), (std::vector<uint8_t>{8, 6, 0}));
  Tensor si = Tensor::FromVector<int32_t>(DType::kInt32, {1}, {1});
  EXPECT_THROW(sh.Run({&si, &si}), Error);  // signed types are not allowed
}

TEST(ElementwiseTest, ComparisonsLogicAndWhere) {
  Tensor a = F32({4}, {1, 2, 3, std::nanf("")}), b = F32({}, {2});
  auto run = [&](const char* op) { return Values<uint8_t>(OneNode(op, 2).Run({&a, &b})[0]); };
  EXPECT_EQ(run("Equal"), (std::vector<uint8_t>{0, 1, 0, 0}));
  EXPECT_EQ(run("Less"), (std::vector<uint8_t>{1, 0, 0, 0}));
  EXPECT_EQ(run("GreaterOrEqual"), (std::vector<uint8_t>{0, 1, 1, 0}));
  Tensor p = Tensor::FromVector<uint8_t>(DType::kBool, {4}, {0, 0, 1, 1});
  Tensor q = Tensor::FromVector<uint8_t>(DType::kBool, {4}, {0, 1, 0, 1});
  EXPECT_EQ(Values<uint8_t>(OneNode("Xor", 2).Run({&p, &q})[0]), (std::vector<uint8_t>{0, 1, 1, 0}));
  EXPECT_EQ(Values<uint8_t>(OneNode("And", 2).Run({&p, &q})[0]), (std::vector<uint8_t>{0, 0, 0, 1}));
  EXPECT_EQ(Values<uint8_t>(OneNode("Not", 1).Run({&p})[0]), (std::vector<uint8_t>{1, 1, 0, 0}));
  // Where with a three-way broadcast: cond [2,1], X [1,3], Y scalar.
  Tensor c = Tensor::FromVector<uint8_t>(DType::kBool, {2, 1}, {1, 0});
  Tensor x = Tensor::FromVector<int64_t>(DType::kInt64, {1, 3}, {1, 2, 3});
  Tensor y = Tensor::FromVector<int64_t>(DType::kInt64, {}, {-1});
  Tensor w = OneNode("Where", 3).Run({&c, &x, &y})[0];
  EXPECT_EQ(w.shape(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(Values<int64_t>(w), (std::vector<int64_t>{1, 2, 3, -1, -1, -1}));
}

TEST(ElementwiseTest, VariadicOps) {
  Tensor a = F32({2, 2}, {1, 5, 3, 8}), b = F32({2}, {4, 2}), c = F32({}, {3});
  EXPECT_EQ(Values<float>(OneNode("Max", 3).Run({&a, &b, &c})[0]), (std::vector<float>{4, 5, 4, 8}));
  EXPECT_EQ(Values<float>(OneNode("Min", 3).Run({&a, &b, &c})[0]), (std::vector<float>{1, 2, 3, 2}));
  EXPECT_EQ(Values<float>(OneNode("Sum", 3).Run({&a, &b, &c})[0]), (std::vector<float>{8, 10, 10, 13}));
  EXPECT_EQ(Values<float>(OneNode("Mean", 2).Run({&a, &b})[0]), (std::vector<float>{2.5f, 3.5f, 3.5f, 5}));
  EXPECT_EQ(Values<float>(OneNode("Max", 1).Run({&a})[0]), Values<float>(a));
}

TEST(ElementwiseTest, UnaryReferenceSemantics) {
  auto one = [](const char* op, float v, std::vector<ir::Attribute> attrs = {}) {
    OneNode nd(op, 1);
    for (auto& a : attrs) nd.Attr(a);
    Tensor x = F32({1}, {v});
    return Values<float>(nd.Run({&x}, RefOf(op))[0])[0];
  };
  EXPECT_EQ(one("Round", 2.5f), 2.f);
  EXPECT_EQ(one("Round", -1.5f), -2.f);
  EXPECT_NEAR(one("Selu", -1.f), 1.0507009873554805 * 1.6732632423543772 * (std::exp(-1.0) - 1), 1e-6);
  EXPECT_NEAR(one("Gelu", 1.f), 0.5 * (1 + std::erf(1 / std::sqrt(2.0))), 1e-6);
  EXPECT_NEAR(one("Softplus", 50.f), 50.f, 1e-5);
  EXPECT_NEAR(one("Softplus", -50.f), std::exp(-50.0), 1e-25);
  EXPECT_NEAR(one("Mish", 1.f), std::tanh(std::log1p(std::exp(1.0))), 1e-6);
  EXPECT_NEAR(one("HardSwish", 1.f), 1.f * (1 / 6.f + 0.5f), 1e-7);
  EXPECT_EQ(one("ThresholdedRelu", 0.5f, {ir::Attribute::Float("alpha", 1.f)}), 0.f);
  EXPECT_NEAR(one("Celu", -1.f, {ir::Attribute::Float("alpha", 2.f)}), 2 * (std::exp(-0.5) - 1), 1e-6);
  // Sign/Abs/Neg on integers, wrapping at INT_MIN instead of overflowing.
  int8_t mn = std::numeric_limits<int8_t>::min();
  Tensor i8 = Tensor::FromVector<int8_t>(DType::kInt8, {3}, {-5, 0, mn});
  EXPECT_EQ(Values<int8_t>(OneNode("Sign", 1).Run({&i8})[0]), (std::vector<int8_t>{-1, 0, -1}));
  EXPECT_EQ(Values<int8_t>(OneNode("Abs", 1).Run({&i8})[0]), (std::vector<int8_t>{5, 0, mn}));
  EXPECT_EQ(Values<int8_t>(OneNode("Neg", 1).Run({&i8})[0]), (std::vector<int8_t>{5, 0, mn}));
  // Float-only ops reject integers.
  EXPECT_THROW(OneNode("Sigmoid", 1).Run({&i8}), Error);
  // IsInf honours detect_negative/detect_positive.
  Tensor inf = F32({3}, {INFINITY, -INFINITY, 1});
  OneNode isinf("IsInf", 1);
  isinf.Attr(ir::Attribute::Int("detect_negative", 0));
  EXPECT_EQ(Values<uint8_t>(isinf.Run({&inf})[0]), (std::vector<uint8_t>{1, 0, 0}));
  Tensor nan = F32({2}, {NAN, 1});
  EXPECT_EQ(Values<uint8_t>(OneNode("IsNaN", 1).Run({&nan})[0]), (std::vector<uint8_t>{1, 0}));
}

TEST(ElementwiseTest, HalfPrecisionComputesInFloat) {
  std::vector<uint16_t> h = {ir::FloatToHalf(1.5f), ir::FloatToHalf(-2.f), ir::FloatToHalf(0.25f)};
  Tensor a = Tensor::FromVector(DType::kFloat16, {3}, h);
  Tensor y = OneNode("Add", 2).Run({&a, &a})[0];
  ASSERT_EQ(y.dtype(), DType::kFloat16);
  std::vector<uint16_t> v = Values<uint16_t>(y);
  EXPECT_EQ(ir::HalfToFloat(v[0]), 3.f);
  EXPECT_EQ(ir::HalfToFloat(v[1]), -4.f);
  Tensor r = OneNode("Relu", 1).Run({&a})[0];
  ASSERT_EQ(r.dtype(), DType::kFloat16);
  EXPECT_EQ(ir::HalfToFloat(Values<uint16_t>(r)[1]), 0.f);
  Tensor lt = OneNode("Less", 2).Run({&a, &a})[0];
  EXPECT_EQ(lt.dtype(), DType::kBool);
}

TEST(ElementwiseTest, PReluBroadcastsSlope) {
  Tensor x = F32({2, 3}, {-1, 2, -3, -4, 5, -6}), slope = F32({3}, {0.5f, 1, 2});
  EXPECT_EQ(Values<float>(OneNode("PRelu", 2).Run({&x, &slope})[0]),
            (std::vector<float>{-0.5f, 2, -6, -2, 5, -12}));
  // A per-channel slope [C] on [N, C, L] (opset 6 / PyTorch export) applies along axis 1.
  Tensor x3 = F32({1, 2, 3}, {-1, -1, -1, -1, 2, -1}), ch = F32({2}, {0.5f, 3});
  EXPECT_EQ(Values<float>(OneNode("PRelu", 2).Run({&x3, &ch})[0]),
            (std::vector<float>{-0.5f, -0.5f, -0.5f, -3, 2, -3}));
}

TEST(ElementwiseTest, DropoutIsIdentityWithAllTrueMask) {
  OneNode nd("Dropout", 1, 2);
  Tensor x = Random({5}, -1, 1);
  std::vector<Tensor> out = nd.Run({&x});
  EXPECT_EQ(Values<float>(out[0]), Values<float>(x));
  EXPECT_EQ(out[1].dtype(), DType::kBool);
  EXPECT_EQ(Values<uint8_t>(out[1]), std::vector<uint8_t>(5, 1));
  OneNode tr("Dropout", 3);
  Tensor ratio = F32({}, {0.5f});
  Tensor train = Tensor::FromVector<uint8_t>(DType::kBool, {}, {1});
  EXPECT_THROW(tr.Run({&x, &ratio, &train}), Error);
}

}  // namespace
}  // namespace edgepress::runtime
