// Kernel choice when a node's input has no declared type. Exported ONNX models often carry
// no value_info for intermediates, so at planning time only the "any"-dtype reference
// entries match; the planner must then leave the choice to run time so the f32 AVX2
// kernels (Clip, Softmax, Erf, Add...) are used, not the scalar references. The results
// must match a session forced to the scalar kernels.
#include <gtest/gtest.h>

#include <cstdlib>

#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "runtime/kernel.h"
#include "runtime/session.h"
#include "tests/runtime/session_test_kernels.h"

namespace edgepress::runtime {
namespace {

using testing::F32;

// x (declared f32) -> Neg -> [untyped] -> Clip(min, max) -> Softmax -> Erf -> Add(bias).
std::shared_ptr<ir::Model> UntypedChain(int64_t rows, int64_t cols) {
  auto m = std::make_shared<ir::Model>();
  m->SetOpsetVersion("", 17);
  ir::Graph& g = *m->graph;
  ir::Value* x =
      g.AddInput("x", ir::ValueType::Tensor(ir::DType::kFloat32, ir::MakeShape({rows, cols})));
  ir::Value* lo = g.AddInitializer("lo", F32({}, {-2.0f}));
  ir::Value* hi = g.AddInitializer("hi", F32({}, {3.0f}));
  std::vector<float> bias(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i) bias[i] = 0.01f * static_cast<float>(i) - 0.1f;
  ir::Value* b = g.AddInitializer("bias", F32({cols}, bias));
  ir::Value* t = g.AddNode("Neg", {x}, {"t"})->output(0);
  ir::Value* c = g.AddNode("Clip", {t, lo, hi}, {"c"})->output(0);
  ir::Value* s = g.AddNode("Softmax", {c}, {"s"})->output(0);
  ir::Value* e = g.AddNode("Erf", {s}, {"e"})->output(0);
  ir::Value* y = g.AddNode("Add", {e, b}, {"y"})->output(0);
  g.AddOutput(y);
  return m;
}

TEST(KernelDispatch, UntypedIntermediatesUseTheBestIsaAtRunTime) {
  if (!GetCpuFeatures().Has(Isa::kAvx2) || ForceScalar())
    GTEST_SKIP() << "needs AVX2 and EDGEPRESS_FORCE_SCALAR unset";
  const int64_t rows = 3, cols = 37;
  auto model = UntypedChain(rows, cols);
  ASSERT_FALSE(model->graph->nodes()[1]->input(0)->type.is_tensor())
      << "the test needs an untyped intermediate";

  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-5.0f, 5.0f);
  std::vector<float> xv(static_cast<size_t>(rows * cols));
  for (float& v : xv) v = dist(rng);
  NamedTensors in{{"x", F32({rows, cols}, xv)}};

  SessionOptions fast_opts;
  auto fast = Session::Create(model, fast_opts);
  NamedTensors fast_out = fast->Run(in);
  SessionOptions ref_opts;
  ref_opts.force_scalar = true;
  auto ref = Session::Create(model, ref_opts);
  NamedTensors ref_out = ref->Run(in);

  for (const NodeKernelInfo& k : fast->Kernels()) {
    SCOPED_TRACE(k.op + " -> " + k.kernel);
    // The best entry this CPU has for the op (AVX2, or AVX-512 where one exists).
    const KernelDef* best =
        GlobalKernelRegistry().Find(k.op, "", ir::DType::kFloat32, GetCpuFeatures(), false);
    ASSERT_NE(best, nullptr);
    EXPECT_NE(k.isa, Isa::kScalar);
    EXPECT_EQ(k.isa, best->isa);
    EXPECT_EQ(k.kernel.find("f32_"), 0u);
  }
  for (const NodeKernelInfo& k : ref->Kernels()) EXPECT_EQ(k.isa, Isa::kScalar) << k.kernel;

  ASSERT_EQ(fast_out.size(), 1u);
  ASSERT_EQ(ref_out.size(), 1u);
  const ir::Tensor& a = fast_out[0].second;
  const ir::Tensor& r = ref_out[0].second;
  ASSERT_EQ(a.shape(), r.shape());
  ASSERT_EQ(a.numel(), static_cast<uint64_t>(rows * cols));
  for (size_t i = 0; i < a.numel(); ++i)
    EXPECT_NEAR(a.data<float>()[i], r.data<float>()[i], 1e-5f) << "element " << i;
}

// EDGEPRESS_MAX_ISA runs a newer CPU as an older one would: each level keeps exactly the
// features such a CPU has, and never adds one.
TEST(KernelDispatch, MaxIsaLevelsKeepWhatThatCpuHas) {
  CpuFeatures all;
  all.avx2 = all.fma = all.f16c = true;
  all.avx512f = all.avx512bw = all.avx512vl = all.avx512dq = true;
  all.avx512vnni = all.avxvnni = all.avx512vbmi = all.amx_int8 = all.amx_tile = true;
  auto at = [&](const char* level) {
    CpuFeatures f = all;
    EXPECT_TRUE(LimitCpuFeatures(&f, level)) << level;
    return f;
  };
  CpuFeatures f = at("avx2");  // AMD EPYC Zen 2/3
  EXPECT_TRUE(f.Has(Isa::kAvx2) && f.f16c);
  EXPECT_FALSE(f.Has(Isa::kAvx512) || f.avxvnni || f.Has(Isa::kAvx512Vnni) || f.Has(Isa::kAmx) || f.avx512vbmi);
  f = at("avxvnni");
  EXPECT_TRUE(f.Has(Isa::kAvx2) && f.avxvnni);
  EXPECT_FALSE(f.Has(Isa::kAvx512));
  f = at("avx512");  // Skylake-X
  EXPECT_TRUE(f.Has(Isa::kAvx512));
  EXPECT_FALSE(f.avxvnni || f.Has(Isa::kAvx512Vnni) || f.avx512vbmi || f.Has(Isa::kAmx));
  f = at("avx512vnni");  // Cascade Lake
  EXPECT_TRUE(f.Has(Isa::kAvx512Vnni));
  EXPECT_FALSE(f.avxvnni || f.Has(Isa::kAmx));
  f = at("amx");
  EXPECT_TRUE(f.Has(Isa::kAmx) && f.avxvnni && f.avx512vbmi);
  f = at("scalar");
  EXPECT_FALSE(f.Has(Isa::kAvx2) || f.f16c);
  CpuFeatures none;  // a level never adds what the CPU lacks
  EXPECT_TRUE(LimitCpuFeatures(&none, "amx"));
  EXPECT_FALSE(none.Has(Isa::kAvx2));
  EXPECT_FALSE(LimitCpuFeatures(&f, "avx1024"));
}

// Prints the kernel dispatch picks on this CPU for every op and dtype of the registry (the
// Makefile's `test` target shows this test's output, so CI logs name the kernels that ran),
// and checks the choice: an ISA the CPU has, none more capable left unused, and a scalar
// reference behind every choice (what EDGEPRESS_FORCE_SCALAR=1 runs).
TEST(KernelDispatch, PrintsTheChoiceForEveryOp) {
  const CpuFeatures& cpu = GetCpuFeatures();
  const KernelRegistry& reg = GlobalKernelRegistry();
  std::string isas;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni, Isa::kAmx, Isa::kNeon})
    if (cpu.Has(isa)) isas += std::string(" ") + IsaName(isa);
  const char* limit = std::getenv("EDGEPRESS_MAX_ISA");
  if (cpu.avxvnni) isas += " avxvnni";
  std::printf("kernel dispatch on %s (ISAs:%s)%s%s%s\n",
              cpu.model_name.empty() ? "an unknown CPU" : cpu.model_name.c_str(),
              isas.empty() ? " none" : isas.c_str(),
              ForceScalar() ? ", EDGEPRESS_FORCE_SCALAR=1" : "",
              limit && *limit ? ", limited by EDGEPRESS_MAX_ISA=" : "", limit && *limit ? limit : "");
  // (domain, op) -> dtypes with an entry of their own; kUndefined = an "any" entry.
  std::map<std::pair<std::string, std::string>, std::set<ir::DType>> ops;
  for (const KernelDef& d : reg.defs()) ops[{d.domain, d.op_type}].insert(d.dtype);
  int above_scalar = 0;
  for (const auto& [key, dtypes] : ops) {
    const auto& [domain, op] = key;
    const std::string qualified = domain.empty() ? op : domain + "::" + op;
    std::string line;
    for (ir::DType dt : dtypes) {
      // An "any" entry is asked for with f32, the dtype most models feed it.
      const ir::DType ask = dt == ir::DType::kUndefined ? ir::DType::kFloat32 : dt;
      SCOPED_TRACE(qualified + " " + ir::DTypeName(ask));
      const KernelDef* best = reg.Find(op, domain, ask, cpu, ForceScalar());
      ASSERT_NE(best, nullptr);
      EXPECT_TRUE(best->isa == Isa::kScalar || cpu.Has(best->isa)) << best->name;
      for (const KernelDef& d : reg.defs()) {
        if (op == d.op_type && domain == d.domain && cpu.Has(d.isa) && !ForceScalar() &&
            (d.dtype == ask || d.dtype == ir::DType::kUndefined)) {
          EXPECT_LE(d.isa, best->isa) << d.name << " is more capable than " << best->name;
        }
      }
      const KernelDef* ref = reg.Find(op, domain, ask, cpu, /*force_scalar=*/true);
      ASSERT_NE(ref, nullptr) << "no scalar reference";
      EXPECT_EQ(ref->isa, Isa::kScalar);
      if (best->isa != Isa::kScalar) ++above_scalar;
      if (dt != ir::DType::kUndefined || dtypes.size() == 1)
        line += std::string(line.empty() ? "" : ", ") +
                (dt == ir::DType::kUndefined ? "any" : ir::DTypeName(dt)) + " -> " + best->name;
    }
    std::printf("  %-40s %s\n", qualified.c_str(), line.c_str());
  }
  // A CPU with AVX2 runs the float Conv/MatMul/Gemm on SIMD kernels, not the references.
  if (cpu.Has(Isa::kAvx2) && !ForceScalar()) {
    EXPECT_GT(above_scalar, 0);
    for (const char* op : {"Conv", "MatMul", "Gemm"}) {
      const KernelDef* d = reg.Find(op, "", ir::DType::kFloat32, cpu, false);
      ASSERT_NE(d, nullptr) << op;
      EXPECT_NE(d->isa, Isa::kScalar) << op << " -> " << d->name;
    }
  }
}

}  // namespace
}  // namespace edgepress::runtime
