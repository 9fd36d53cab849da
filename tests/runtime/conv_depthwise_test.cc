// The depthwise Conv paths of each registered Conv kernel (AVX2 and AVX-512 plane kernels
// of runtime/kernels/conv/depthwise/depthwise_*.cc) against the scalar reference kernel
// f32_conv__ref at plane edges: heights odd and even, widths below, at and above one and two 8- and 16-wide
// vectors, symmetric and asymmetric pads (taps reading the zero border),
// bias, Relu/Clip activations through FusedConv, batch > 1 and a
// channel multiplier. Tolerance 1e-5 relative to the sum of |w * x| over the taps.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"

namespace edgepress::runtime {
namespace {

ir::Tensor Random(std::vector<int64_t> shape, uint32_t seed) {
  ir::Tensor t(ir::DType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  for (uint64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = d(rng);
  return t;
}

struct DwCase {
  int64_t n, c, mult, h, w, k, stride;
  std::vector<int64_t> pads;  // top, left, bottom, right
  int64_t dil = 1;
  const char* act = "";
};

std::string Name(const DwCase& cs) {
  std::string s = "n" + std::to_string(cs.n) + " c" + std::to_string(cs.c) + "x" +
                  std::to_string(cs.mult) + " " + std::to_string(cs.h) + "x" +
                  std::to_string(cs.w) + " k" + std::to_string(cs.k) + " s" +
                  std::to_string(cs.stride) + " d" + std::to_string(cs.dil) + " pads";
  for (int64_t p : cs.pads) s += " " + std::to_string(p);
  return s + " " + cs.act;
}

std::vector<ir::Tensor> RunConv(const DwCase& cs, const KernelDef* def, ThreadPool& pool) {
  const ir::Tensor x = Random({cs.n, cs.c, cs.h, cs.w}, 1);
  const ir::Tensor w = Random({cs.c * cs.mult, 1, cs.k, cs.k}, 2);
  const ir::Tensor b = Random({cs.c * cs.mult}, 3);
  ir::Graph g;
  ir::Value* xv = g.AddInput("x", ir::ValueType::Tensor(ir::DType::kFloat32));
  ir::Value* wv = g.AddInitializer("w", w);
  ir::Value* bv = g.AddInitializer("b", b);
  const bool fused = std::string(cs.act) != "";
  ir::Node* node = g.AddNode(fused ? "FusedConv" : "Conv", {xv, wv, bv}, {"y"}, "dw",
                             fused ? "com.microsoft" : "");
  node->set_attr(ir::Attribute::Int("group", cs.c));
  node->set_attr(ir::Attribute::Ints("strides", {cs.stride, cs.stride}));
  node->set_attr(ir::Attribute::Ints("dilations", {cs.dil, cs.dil}));
  node->set_attr(ir::Attribute::Ints("pads", cs.pads));
  if (fused) {
    node->set_attr(ir::Attribute::String("activation", cs.act));
    if (std::string(cs.act) == "Clip")
      node->set_attr(ir::Attribute::Floats("activation_params", {-0.5f, 0.75f}));
  }
  return RunNode(*node, {&x, &w, &b}, pool, def);
}

const KernelDef* Find(const std::string& op, const std::string& domain, Isa isa) {
  for (const KernelDef* d : KernelsFor(op, domain, ir::DType::kFloat32))
    if (d->isa == isa) return d;
  return nullptr;
}

void CheckConvIsaAtEdges(Isa isa) {
  std::vector<DwCase> cases;
  for (int64_t stride : {1, 2})
    for (int64_t h : {1, 2, 3, 4, 7, 12})
      for (int64_t w : {3, 7, 8, 9, 16, 17, 25, 40})
        for (const std::vector<int64_t>& pads :
             {std::vector<int64_t>{1, 1, 1, 1}, {0, 0, 0, 0}, {2, 0, 1, 2}, {0, 1, 2, 0}})
          cases.push_back({1, 2, 1, h, w, 3, stride, pads});
  cases.push_back({2, 3, 2, 13, 30, 3, 1, {1, 1, 1, 1}});   // batch 2, multiplier 2
  cases.push_back({1, 4, 1, 15, 33, 3, 2, {1, 1, 1, 1}, 1, "Relu"});
  cases.push_back({1, 4, 1, 14, 33, 3, 1, {1, 1, 1, 1}, 1, "Clip"});
  cases.push_back({1, 3, 1, 11, 29, 3, 1, {2, 2, 2, 2}, 2});  // dilated: general kernel
  cases.push_back({1, 3, 1, 12, 31, 5, 2, {2, 2, 2, 2}});     // 5x5: general kernel
  ThreadPool pool(2);
  for (const DwCase& cs : cases) {
    const bool fused = std::string(cs.act) != "";
    const std::string op = fused ? "FusedConv" : "Conv", dom = fused ? "com.microsoft" : "";
    const KernelDef* ref = Find(op, dom, Isa::kScalar);
    const KernelDef* simd = Find(op, dom, isa);
    ASSERT_TRUE(ref && simd);
    if (cs.h + cs.pads[0] + cs.pads[2] < (cs.k - 1) * cs.dil + 1 ||
        cs.w + cs.pads[1] + cs.pads[3] < (cs.k - 1) * cs.dil + 1)
      continue;  // no output
    const ir::Tensor want = RunConv(cs, ref, pool)[0];
    const ir::Tensor got = RunConv(cs, simd, pool)[0];
    ASSERT_EQ(got.shape(), want.shape()) << Name(cs);
    // Inputs and weights are in [-1, 1]: |sum| <= k*k + 1 (bias).
    const double tol = 1e-5 * (cs.k * cs.k + 1);
    for (uint64_t i = 0; i < want.numel(); ++i)
      ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], tol)
          << simd->name << " " << Name(cs) << " @" << i;
  }
}

TEST(DepthwiseConv, Avx2MatchesReferenceAtEdges) {
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  CheckConvIsaAtEdges(Isa::kAvx2);
}

TEST(DepthwiseConv, Avx512MatchesReferenceAtEdges) {
  if (!GetCpuFeatures().Has(Isa::kAvx512)) GTEST_SKIP() << "CPU lacks AVX-512F";
  CheckConvIsaAtEdges(Isa::kAvx512);
}

}  // namespace
}  // namespace edgepress::runtime
