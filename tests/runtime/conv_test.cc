// Conv, FusedConv and ConvTranspose kernels (every registered ISA) against direct naive
// convolutions written here, over groups, depthwise (incl. channel multiplier), dilations,
// strides, asymmetric pads, auto_pad, 1x1, 1-D and 3-D, constant and non-constant weights;
// plus errors that name the node for bad shapes and attributes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "ir/error.h"
#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/kernels/conv/conv_activation.h"
#include "runtime/kernels/conv/conv_direct.h"
#include "runtime/session.h"

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

std::vector<ir::Tensor> RunOne(const std::string& op, const std::string& domain,
                               const std::vector<ir::Tensor>& inputs, bool constant_weights,
                               const std::vector<ir::Attribute>& attrs, const KernelDef* def,
                               int threads = 2) {
  ir::Graph g;
  std::vector<ir::Value*> vals;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string name = "in" + std::to_string(i);
    if (i > 0 && constant_weights)
      vals.push_back(g.AddInitializer(name, inputs[i]));
    else
      vals.push_back(g.AddInput(name, ir::ValueType::Tensor(ir::DType::kFloat32)));
  }
  ir::Node* node = g.AddNode(op, vals, {"out"}, "conv_under_test", domain);
  for (const auto& a : attrs) node->set_attr(a);
  std::vector<const ir::Tensor*> ptrs;
  for (const auto& t : inputs) ptrs.push_back(&t);
  ThreadPool pool(threads);
  return RunNode(*node, ptrs, pool, def);
}

// Spatial parameters after auto_pad resolution, computed independently of the runtime.
struct Spatial {
  std::vector<int64_t> k, s, d, pb, pe, in, out;
};

struct ConvCase {
  std::string label;
  std::vector<int64_t> x, w;  // X [N, C, ...], W [M, C/group, ...]
  int64_t group = 1;
  std::vector<int64_t> strides = {}, dilations = {}, pads = {};
  std::string auto_pad = "NOTSET";
  bool bias = true;
};

Spatial ResolveConv(const ConvCase& cs) {
  Spatial sp;
  const size_t r = cs.x.size() - 2;
  for (size_t i = 0; i < r; ++i) {
    const int64_t k = cs.w[2 + i], s = cs.strides.empty() ? 1 : cs.strides[i],
                  d = cs.dilations.empty() ? 1 : cs.dilations[i], in = cs.x[2 + i];
    int64_t pb = cs.pads.empty() ? 0 : cs.pads[i], pe = cs.pads.empty() ? 0 : cs.pads[i + r];
    const int64_t ext = (k - 1) * d + 1;
    if (cs.auto_pad == "VALID") pb = pe = 0;
    if (cs.auto_pad == "SAME_UPPER" || cs.auto_pad == "SAME_LOWER") {
      const int64_t out = (in + s - 1) / s;
      const int64_t total = std::max<int64_t>(0, (out - 1) * s + ext - in);
      pb = cs.auto_pad == "SAME_UPPER" ? total / 2 : (total + 1) / 2;
      pe = total - pb;
    }
    sp.k.push_back(k);
    sp.s.push_back(s);
    sp.d.push_back(d);
    sp.pb.push_back(pb);
    sp.pe.push_back(pe);
    sp.in.push_back(in);
    sp.out.push_back((in + pb + pe - ext) / s + 1);
  }
  return sp;
}

// Direct convolution over any spatial rank, in double.
std::vector<float> NaiveConv(const ConvCase& cs, const ir::Tensor& x, const ir::Tensor& w,
                             const ir::Tensor* b, std::vector<int64_t>* out_shape) {
  const Spatial sp = ResolveConv(cs);
  const size_t r = sp.k.size();
  const int64_t n = cs.x[0], c = cs.x[1], m = cs.w[0], cg = c / cs.group, mg = m / cs.group;
  *out_shape = {n, m};
  int64_t out_size = 1, in_size = 1, ks = 1;
  for (size_t i = 0; i < r; ++i) {
    out_shape->push_back(sp.out[i]);
    out_size *= sp.out[i];
    in_size *= sp.in[i];
    ks *= sp.k[i];
  }
  std::vector<float> y(n * m * out_size);
  std::vector<int64_t> o(r), kk(r);
  for (int64_t ni = 0; ni < n; ++ni)
    for (int64_t mi = 0; mi < m; ++mi)
      for (int64_t op = 0; op < out_size; ++op) {
        int64_t rem = op;
        for (size_t i = r; i-- > 0;) o[i] = rem % sp.out[i], rem /= sp.out[i];
        double s = b ? b->data<float>()[mi] : 0.0;
        const int64_t gi = mi / mg;
        for (int64_t ci = 0; ci < cg; ++ci)
          for (int64_t kp = 0; kp < ks; ++kp) {
            int64_t krem = kp, ioff = 0;
            bool inside = true;
            for (size_t i = r; i-- > 0;) kk[i] = krem % sp.k[i], krem /= sp.k[i];
            for (size_t i = 0; i < r; ++i) {
              const int64_t pos = o[i] * sp.s[i] + kk[i] * sp.d[i] - sp.pb[i];
              if (pos < 0 || pos >= sp.in[i]) inside = false;
              ioff = ioff * sp.in[i] + pos;
            }
            if (!inside) continue;
            s += static_cast<double>(x.data<float>()[(ni * c + gi * cg + ci) * in_size + ioff]) *
                 w.data<float>()[(mi * cg + ci) * ks + kp];
          }
        y[(ni * m + mi) * out_size + op] = static_cast<float>(s);
      }
  return y;
}

std::vector<ir::Attribute> ConvAttrList(const ConvCase& cs) {
  std::vector<ir::Attribute> a;
  if (cs.group != 1) a.push_back(ir::Attribute::Int("group", cs.group));
  if (!cs.strides.empty()) a.push_back(ir::Attribute::Ints("strides", cs.strides));
  if (!cs.dilations.empty()) a.push_back(ir::Attribute::Ints("dilations", cs.dilations));
  if (!cs.pads.empty()) a.push_back(ir::Attribute::Ints("pads", cs.pads));
  if (cs.auto_pad != "NOTSET") a.push_back(ir::Attribute::String("auto_pad", cs.auto_pad));
  return a;
}

void ExpectClose(const std::vector<float>& want, const ir::Tensor& got, double k,
                 const std::string& what) {
  ASSERT_EQ(want.size(), got.numel()) << what;
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(want[i], got.data<float>()[i], 2e-6 * (k + 4) * (1 + std::fabs(want[i])))
        << what << " @" << i;
}

// Sets an environment variable read at kernel creation (EDGEPRESS_CONV_DIRECT,
// EDGEPRESS_CONV_PIXEL_MAJOR) for one scope, so a test pins the path it covers.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

std::vector<ConvCase> ConvCases() {
  return {
      {"3x3 pad1", {1, 3, 9, 9}, {8, 3, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"3x3 stride2 asym pads", {2, 4, 10, 11}, {5, 4, 3, 3}, 1, {2, 2}, {}, {0, 1, 2, 1}},
      {"stride 3x1", {1, 2, 13, 8}, {3, 2, 3, 2}, 1, {3, 1}, {}, {}},
      {"dilation2", {1, 3, 12, 12}, {4, 3, 3, 3}, 1, {}, {2, 2}, {2, 2, 2, 2}},
      {"groups2", {1, 4, 8, 8}, {6, 2, 3, 3}, 2, {}, {}, {1, 1, 1, 1}},
      {"groups3 stride2", {1, 6, 9, 7}, {9, 2, 2, 3}, 3, {2, 2}, {}, {1, 0, 0, 1}},
      // Runs of output rows inside one GEMM panel (OW not a multiple of nr), taps left of,
      // right of and wholly outside the input row (pads larger than the kernel reach).
      {"7x7 stride2 pad3", {1, 3, 37, 41}, {6, 3, 7, 7}, 1, {2, 2}, {}, {3, 3, 3, 3}},
      {"pads past the taps", {1, 2, 5, 6}, {3, 2, 3, 3}, 1, {}, {}, {4, 3, 2, 5}},
      {"stride 2x3 dilation 3x2", {1, 2, 19, 23}, {4, 2, 3, 3}, 1, {2, 3}, {3, 2}, {2, 1, 3, 4}},
      {"tile edges K>256", {1, 32, 15, 17}, {33, 32, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"depthwise s1", {1, 8, 20, 37}, {8, 1, 3, 3}, 8, {}, {}, {1, 1, 1, 1}},
      {"depthwise s2", {2, 8, 21, 40}, {8, 1, 3, 3}, 8, {2, 2}, {}, {1, 1, 1, 1}},
      {"depthwise s2 no pad", {1, 4, 17, 35}, {4, 1, 3, 3}, 4, {2, 2}, {}, {}},
      {"depthwise 5x5 dil2", {1, 4, 23, 30}, {4, 1, 5, 5}, 4, {}, {2, 2}, {4, 4, 4, 4}},
      {"depthwise s3", {1, 3, 16, 29}, {3, 1, 3, 3}, 3, {3, 3}, {}, {1, 2, 1, 2}},
      {"depthwise multiplier2", {1, 4, 10, 19}, {8, 1, 3, 3}, 4, {}, {}, {1, 1, 1, 1}},
      {"single input channel", {2, 1, 12, 14}, {7, 1, 3, 3}, 1, {}, {}, {0, 0, 0, 0}},
      {"pointwise", {1, 16, 7, 9}, {20, 16, 1, 1}, 1},
      {"pointwise stride2", {1, 16, 8, 9}, {20, 16, 1, 1}, 1, {2, 2}},
      {"pointwise groups", {2, 8, 5, 5}, {12, 4, 1, 1}, 2},
      // 1x1 plane (squeeze-excite): the GEMV path with W^T packed on first use.
      {"pointwise 1x1 plane", {2, 40, 1, 1}, {70, 40, 1, 1}, 1},
      {"same upper", {1, 3, 10, 9}, {4, 3, 4, 3}, 1, {2, 2}, {}, {}, "SAME_UPPER"},
      {"same lower", {1, 3, 10, 9}, {4, 3, 4, 3}, 1, {2, 2}, {}, {}, "SAME_LOWER"},
      {"valid", {1, 3, 10, 9}, {4, 3, 3, 3}, 1, {2, 2}, {}, {}, "VALID", false},
      {"1-D", {2, 3, 30}, {5, 3, 3}, 1, {2}, {}, {1, 1}},
      {"1-D depthwise", {1, 6, 40}, {6, 1, 5}, 6, {}, {}, {2, 2}},
      {"3-D", {1, 2, 5, 6, 7}, {4, 2, 2, 3, 3}, 1, {1, 2, 1}, {}, {0, 1, 1, 1, 0, 1}},
      {"3-D depthwise", {1, 3, 4, 5, 6}, {3, 1, 3, 3, 3}, 3, {}, {}, {1, 1, 1, 1, 1, 1}},
      {"no bias", {1, 5, 6, 6}, {7, 5, 3, 3}, 1, {}, {}, {}, "NOTSET", false},
  };
}

TEST(ConvTest, MatchesNaiveConvolution) {
  for (const ConvCase& cs : ConvCases()) {
    std::vector<ir::Tensor> in = {RandomTensor(cs.x, 1), RandomTensor(cs.w, 2)};
    if (cs.bias) in.push_back(RandomTensor({cs.w[0]}, 3));
    std::vector<int64_t> want_shape;
    const std::vector<float> want =
        NaiveConv(cs, in[0], in[1], cs.bias ? &in[2] : nullptr, &want_shape);
    int64_t kdim = 1;
    for (size_t i = 1; i < cs.w.size(); ++i) kdim *= cs.w[i];
    for (const KernelDef* def : KernelsFor("Conv", "", ir::DType::kFloat32)) {
      for (bool constant : {false, true}) {
        const std::string what = cs.label + " " + def->name + (constant ? " const" : "");
        auto out = RunOne("Conv", "", in, constant, ConvAttrList(cs), def);
        ASSERT_EQ(out[0].shape(), want_shape) << what;
        ExpectClose(want, out[0], static_cast<double>(kdim), what);
      }
    }
  }
}

// The AVX2/AVX-512 entries run 2-D convs as an implicit GEMM over a phase-split source
// (conv_implicit.h): these shapes cross its tile edges at 1, 2 and 3 threads: Cout past one
// 96-row block and not a multiple of 6, more virtual pixels than one 256-column block and
// a ragged last panel, K over several K blocks (256 rows for nr 32, 512 for nr 16), stride
// 2 onto a 7x7 plane (the phase width 8 > OW 7 drops a column per row), a 1x1 stride-2
// projection that reads one phase of four, asymmetric pads with dilation, and the cases
// that store whole panels straight into Y (on AVX-512 every panel goes straight into Y,
// its dropped columns squeezed out). The direct AVX-512 kernel is switched off here (it
// has its own test below).
TEST(ConvTest, ImplicitGemmTileEdges) {
  const ScopedEnv implicit("EDGEPRESS_CONV_DIRECT", "0");
  const std::vector<ConvCase> cases = {
      {"M 100 K 360 21x19", {1, 40, 21, 19}, {100, 40, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"stride2 onto 7x7", {1, 24, 14, 14}, {70, 24, 3, 3}, 1, {2, 2}, {}, {1, 1, 1, 1}},
      {"1x1 stride2", {1, 20, 15, 13}, {50, 20, 1, 1}, 1, {2, 2}},
      {"5x5 s2 dil2 asym", {1, 7, 30, 33}, {13, 7, 5, 5}, 1, {2, 2}, {2, 1}, {3, 0, 1, 4}},
      {"1-D wide", {1, 16, 301}, {9, 16, 5}, 1, {}, {}, {2, 2}},
      {"groups2 K blocks", {2, 64, 9, 10}, {14, 32, 3, 3}, 2, {}, {}, {1, 1, 1, 1}},
      {"K 576: blocks of 256 and 512", {1, 64, 6, 7}, {15, 64, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      // 1x1 read in place from X, whole panels stored straight into Y across K blocks...
      {"pointwise in place", {1, 300, 8, 8}, {100, 300, 1, 1}, 1},
      // ...and a ragged last panel packed without reading past X.
      {"pointwise ragged", {2, 200, 5, 7}, {13, 200, 1, 1}, 1},
      // kw = 1 without column pads: virtual pixels are Y's, stored directly from a source.
      {"3x1 direct", {1, 10, 9, 32}, {20, 10, 3, 1}, 1, {}, {}, {1, 0, 1, 0}},
      // 65 dropped columns per 70-wide row: the AVX-512 tile squeezes them out of Y, and
      // panel 1 (virtual pixels 32-63) has none to keep.
      {"wide kernel, panels of dropped columns", {1, 2, 3, 70}, {5, 2, 1, 65}, 1},
  };
  for (const ConvCase& cs : cases) {
    std::vector<ir::Tensor> in = {RandomTensor(cs.x, 4), RandomTensor(cs.w, 5),
                                  RandomTensor({cs.w[0]}, 6)};
    std::vector<int64_t> want_shape;
    const std::vector<float> want = NaiveConv(cs, in[0], in[1], &in[2], &want_shape);
    int64_t kdim = 1;
    for (size_t i = 1; i < cs.w.size(); ++i) kdim *= cs.w[i];
    for (const KernelDef* def : KernelsFor("Conv", "", ir::DType::kFloat32)) {
      for (int threads : {1, 2, 3}) {
        const std::string what = cs.label + " " + def->name + " t" + std::to_string(threads);
        auto out = RunOne("Conv", "", in, true, ConvAttrList(cs), def, threads);
        ASSERT_EQ(out[0].shape(), want_shape) << what;
        ExpectClose(want, out[0], static_cast<double>(kdim), what);
      }
    }
  }
}

// One kernel instance keeps its implicit-GEMM plan between runs: a new plane size (and a
// return to the first) must rebuild it, not reuse offsets of another geometry.
TEST(ConvTest, SessionRerunsWithNewPlaneSizes) {
  auto model = std::make_shared<ir::Model>();
  model->SetOpsetVersion("", 17);
  ir::Graph& g = *model->graph;
  const ConvCase base{"rerun", {1, 4, 9, 9}, {6, 4, 3, 3}, 1, {}, {}, {1, 1, 1, 1}};
  const ir::Tensor w = RandomTensor(base.w, 2), b = RandomTensor({6}, 3);
  ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(ir::DType::kFloat32));
  ir::Node* node = g.AddNode("Conv", {x, g.AddInitializer("w", w), g.AddInitializer("b", b)}, {"y"},
                             "conv_under_test");
  for (const auto& a : ConvAttrList(base)) node->set_attr(a);
  g.AddOutput(node->output(0));
  auto session = Session::Create(model, SessionOptions{});
  for (std::vector<int64_t> shape :
       {std::vector<int64_t>{1, 4, 9, 9}, {1, 4, 5, 12}, {2, 4, 20, 3}, {1, 4, 9, 9}}) {
    ConvCase cs = base;
    cs.x = shape;
    const ir::Tensor xt = RandomTensor(shape, 7);
    std::vector<int64_t> want_shape;
    const std::vector<float> want = NaiveConv(cs, xt, w, &b, &want_shape);
    NamedTensors out = session->Run({{"x", xt}});
    ASSERT_EQ(out[0].second.shape(), want_shape);
    ExpectClose(want, out[0].second, 36,
                "rerun " + std::to_string(shape[2]) + "x" + std::to_string(shape[3]));
  }
}

TEST(ConvTest, EveryIsaIsRegistered) {
  auto defs = KernelsFor("Conv", "", ir::DType::kFloat32);
  ASSERT_FALSE(defs.empty());
  bool has_ref = false;
  for (const KernelDef* d : defs) has_ref = has_ref || d->isa == Isa::kScalar;
  EXPECT_TRUE(has_ref);
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  EXPECT_GE(defs.size(), 2u);
}

TEST(ConvTest, FusedConvAppliesReluAndClip) {
  const ConvCase plain{"fused", {1, 4, 9, 9}, {6, 4, 3, 3}, 1, {}, {}, {1, 1, 1, 1}};
  const ConvCase dw{"fused dw", {1, 6, 9, 20}, {6, 1, 3, 3}, 6, {}, {}, {1, 1, 1, 1}};
  const ConvCase se{"fused 1x1 plane", {1, 36, 1, 1}, {40, 36, 1, 1}, 1};
  for (const ConvCase& cs : {plain, dw, se}) {
    std::vector<ir::Tensor> in = {RandomTensor(cs.x, 4), RandomTensor(cs.w, 5),
                                  RandomTensor({cs.w[0]}, 6)};
    std::vector<int64_t> shape;
    const std::vector<float> raw = NaiveConv(cs, in[0], in[1], &in[2], &shape);
    for (const KernelDef* def : KernelsFor("FusedConv", "com.microsoft", ir::DType::kFloat32)) {
      auto attrs = ConvAttrList(cs);
      attrs.push_back(ir::Attribute::String("activation", "Relu"));
      auto relu = RunOne("FusedConv", "com.microsoft", in, true, attrs, def);
      std::vector<float> want = raw;
      for (float& v : want) v = std::max(v, 0.f);
      ExpectClose(want, relu[0], 36, cs.label + " relu " + def->name);
      attrs.back() = ir::Attribute::String("activation", "Clip");
      attrs.push_back(ir::Attribute::Floats("activation_params", {-0.3f, 0.6f}));
      auto clip = RunOne("FusedConv", "com.microsoft", in, true, attrs, def);
      want = raw;
      for (float& v : want) v = std::min(std::max(v, -0.3f), 0.6f);
      ExpectClose(want, clip[0], 36, cs.label + " clip " + def->name);
    }
  }
}

// FusedConv's sum input Z: Y = activation(conv + B + Z), Z added before the clamp, on every
// path that can see it: whole panels stored into Y (the tile adds Z), ragged and dropped-
// column panels (the scatter adds it), the AVX-512 tail tile (M = 16), K blocks, groups,
// depthwise planes, the 1x1-plane GEMV and the 3-D reference GEMM; 1 and 2 threads.
TEST(ConvTest, FusedConvAddsSumBeforeTheActivation) {
  const std::vector<ConvCase> cases = {
      {"3x3 7x7 plane", {1, 24, 7, 7}, {30, 24, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"M 16 tail K blocks", {1, 64, 9, 10}, {16, 64, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"pointwise whole panels", {1, 40, 8, 8}, {26, 40, 1, 1}, 1},
      {"pointwise ragged", {2, 20, 5, 7}, {13, 20, 1, 1}, 1},
      {"1x1 stride2", {1, 20, 15, 13}, {50, 20, 1, 1}, 1, {2, 2}},
      {"3x1 direct", {1, 10, 9, 32}, {20, 10, 3, 1}, 1, {}, {}, {1, 0, 1, 0}},
      {"groups2", {2, 8, 9, 10}, {14, 4, 3, 3}, 2, {}, {}, {1, 1, 1, 1}},
      {"depthwise", {1, 6, 9, 20}, {6, 1, 3, 3}, 6, {}, {}, {1, 1, 1, 1}},
      {"1x1 plane", {2, 36, 1, 1}, {40, 36, 1, 1}, 1},
      {"3-D", {1, 2, 5, 6, 7}, {4, 2, 2, 3, 3}, 1, {1, 2, 1}, {}, {0, 1, 1, 1, 0, 1}},
      {"no bias", {1, 5, 6, 6}, {7, 5, 3, 3}, 1, {}, {}, {1, 1, 1, 1}, "NOTSET", false},
  };
  for (const ConvCase& cs : cases) {
    std::vector<ir::Tensor> in = {RandomTensor(cs.x, 4), RandomTensor(cs.w, 5)};
    in.push_back(cs.bias ? RandomTensor({cs.w[0]}, 6) : ir::Tensor());
    std::vector<int64_t> shape;
    const std::vector<float> conv = NaiveConv(cs, in[0], in[1], cs.bias ? &in[2] : nullptr, &shape);
    in.push_back(RandomTensor(shape, 7));
    int64_t kdim = 1;
    for (size_t i = 1; i < cs.w.size(); ++i) kdim *= cs.w[i];
    for (const char* act : {"", "Relu", "Clip"}) {
      std::vector<float> want = conv;
      for (size_t i = 0; i < want.size(); ++i) {
        const float v = want[i] + in[3].data<float>()[i];
        want[i] = act[0] == 'R'   ? std::max(v, 0.f)
                  : act[0] == 'C' ? std::min(std::max(v, -0.3f), 0.6f)
                                  : v;
      }
      auto attrs = ConvAttrList(cs);
      if (act[0]) attrs.push_back(ir::Attribute::String("activation", act));
      if (act[0] == 'C') attrs.push_back(ir::Attribute::Floats("activation_params", {-0.3f, 0.6f}));
      for (const KernelDef* def : KernelsFor("FusedConv", "com.microsoft", ir::DType::kFloat32))
        for (int threads : {1, 2}) {
          const std::string what =
              cs.label + " " + act + " " + def->name + " t" + std::to_string(threads);
          auto out = RunOne("FusedConv", "com.microsoft", in, threads == 1, attrs, def, threads);
          ASSERT_EQ(out[0].shape(), shape) << what;
          ExpectClose(want, out[0], static_cast<double>(kdim), what);
        }
    }
  }
}

// One conv case through the `isa` entries: FusedConv (bias + Z, then Relu or Clip) at 1,
// 2 and 3 threads (each count cuts the tiles differently, runtime/tile_split.h), and plain
// Conv with and without bias at 1, 2 and 3 threads, each against the naive convolution.
void ExpectFusedAndPlainMatchNaive(const ConvCase& cs, Isa isa) {
  const KernelDef* fused = nullptr;
  for (const KernelDef* d : KernelsFor("FusedConv", "com.microsoft", ir::DType::kFloat32))
    if (d->isa == isa) fused = d;
  ASSERT_NE(fused, nullptr);
  std::vector<ir::Tensor> in = {RandomTensor(cs.x, 4), RandomTensor(cs.w, 5),
                                RandomTensor({cs.w[0]}, 6)};
  std::vector<int64_t> shape;
  const std::vector<float> conv = NaiveConv(cs, in[0], in[1], &in[2], &shape);
  const std::vector<float> conv_nb = NaiveConv(cs, in[0], in[1], nullptr, &shape);
  in.push_back(RandomTensor(shape, 7));
  int64_t kdim = 1;
  for (size_t i = 1; i < cs.w.size(); ++i) kdim *= cs.w[i];
  for (const char* act : {"Relu", "Clip"}) {
    std::vector<float> want = conv;
    for (size_t i = 0; i < want.size(); ++i) {
      const float v = want[i] + in[3].data<float>()[i];
      want[i] = act[0] == 'R' ? std::max(v, 0.f) : std::min(std::max(v, -0.3f), 0.6f);
    }
    auto attrs = ConvAttrList(cs);
    attrs.push_back(ir::Attribute::String("activation", act));
    if (act[0] == 'C') attrs.push_back(ir::Attribute::Floats("activation_params", {-0.3f, 0.6f}));
    for (int threads : {1, 2, 3}) {
      const std::string what = cs.label + " " + act + " t" + std::to_string(threads);
      auto out = RunOne("FusedConv", "com.microsoft", in, true, attrs, fused, threads);
      ASSERT_EQ(out[0].shape(), shape) << what;
      ExpectClose(want, out[0], static_cast<double>(kdim), what);
    }
  }
  in.pop_back();
  for (const KernelDef* d : KernelsFor("Conv", "", ir::DType::kFloat32)) {
    if (d->isa != isa) continue;
    for (int threads : {1, 2, 3}) {
      const std::string t = " t" + std::to_string(threads);
      auto out = RunOne("Conv", "", in, true, ConvAttrList(cs), d, threads);
      ExpectClose(conv, out[0], static_cast<double>(kdim), cs.label + " plain" + t);
      auto out_nb = RunOne("Conv", "", {in[0], in[1]}, true, ConvAttrList(cs), d, threads);
      ExpectClose(conv_nb, out_nb[0], static_cast<double>(kdim), cs.label + " no bias" + t);
    }
  }
}

// Short K blocks (K <= 32) with >= 4 A panels pack all B panels of a tile first and run
// the A panels outer (conv_implicit.cc, `group`): a ragged last pixel panel of 1..16
// kept columns (the one-half 12x32 tile) and of 17..31, a panel group cut by the tile's
// end, an M tail panel, dropped columns of a padded 3x3 (keep masks across a group), Z,
// both activations, 1 and 2 threads, on the AVX-512 and AVX2 entries; and M = 16 (two
// panels, one per group).
TEST(ConvTest, ShortKPanelGroupsMatchNaive) {
  const ScopedEnv implicit("EDGEPRESS_CONV_DIRECT", "0");
  const ScopedEnv channel_major("EDGEPRESS_CONV_PIXEL_MAJOR", "0");
  const std::vector<ConvCase> cases = {
      {"pointwise 16 -> 96, 23x21", {1, 16, 23, 21}, {96, 16, 1, 1}, 1},
      {"pointwise 24 -> 100, 14x14 (4 kept)", {1, 24, 14, 14}, {100, 24, 1, 1}, 1},
      {"pointwise 32 -> 50, 25x11 (19 kept)", {1, 32, 25, 11}, {50, 32, 1, 1}, 1},
      {"3x3 K 27 M 61 padded", {1, 3, 17, 19}, {61, 3, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"pointwise 16 -> 16, 30x30", {1, 16, 30, 30}, {16, 16, 1, 1}, 1},
  };
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2}) {
    if (!GetCpuFeatures().Has(isa)) continue;  // the other ISA still runs
    for (const ConvCase& cs : cases) ExpectFusedAndPlainMatchNaive(cs, isa);
  }
}

// The AVX-512 entry's pixel-major tiles (conv_pixel_major.cc), forced on every 2-D shape
// here with EDGEPRESS_CONV_PIXEL_MAJOR=1 (read when a kernel is created): output widths
// below, at and above the 7-pixel panel, channels below, at and past 64 and past 8 panels
// (a tile's channel block), K over several 64-row blocks, stride 2 with a dropped phase
// column, groups, X read in place with a ragged last panel, bias, Z and both activations;
// 1 and 2 threads; K <= 384 runs channel panels outer (M 64, M 520 over two tiles of
// channel panels, the pointwise cases), K 450 and up K blocks outer. Last, shapes the
// automatic choice takes (256 channels, 7x7, K 1152; a pointwise 320 -> 300 and
// MobileNetV2's 960 -> 160 on 7x7).
TEST(ConvTest, PixelMajorTilesMatchNaive) {
  if (!GetCpuFeatures().Has(Isa::kAvx512)) GTEST_SKIP() << "CPU lacks AVX-512F";
  const ScopedEnv implicit("EDGEPRESS_CONV_DIRECT", "0");
  const std::vector<ConvCase> cases = {
      {"7x7 M 70 K 450", {1, 50, 7, 7}, {70, 50, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"9x10 M 64", {1, 16, 9, 10}, {64, 16, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"3x5 M 20", {2, 6, 3, 5}, {20, 6, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"stride2 onto 7x7 M 520", {1, 24, 14, 14}, {520, 24, 3, 3}, 1, {2, 2}, {}, {1, 1, 1, 1}},
      {"groups2", {1, 16, 8, 8}, {130, 8, 3, 3}, 2, {}, {}, {1, 1, 1, 1}},
      // AVX2 24-channel blocks (4-pixel tiles): M 24 on a plane of odd width, M 72 at
      // stride 2, M 23 (one channel short of a block) with a K past a channel block.
      {"M 24 11x13", {1, 10, 11, 13}, {24, 10, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"M 72 stride2", {1, 6, 15, 12}, {72, 6, 3, 3}, 1, {2, 2}, {}, {1, 1, 1, 1}},
      {"M 23 K past a block", {1, 17, 9, 8}, {23, 17, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"M 17 9x9 (one channel past a 16-block)",
       {1, 7, 9, 9},
       {17, 7, 3, 3},
       1,
       {},
       {},
       {1, 1, 1, 1}},
      {"pointwise ragged in place", {1, 200, 5, 9}, {66, 200, 1, 1}, 1},
      // Last channel panels of 32 and 48 channels (the 7 x 32 / 7 x 48 tiles).
      {"pointwise 7x7 M 96", {1, 40, 7, 7}, {96, 40, 1, 1}, 1},
      {"pointwise 14x14 M 176", {1, 33, 14, 14}, {176, 33, 1, 1}, 1},
      {"1-D", {1, 16, 30}, {40, 16, 5}, 1, {}, {}, {2, 2}},
  };
  const ConvCase automatic{"auto 7x7", {1, 128, 7, 7}, {256, 128, 3, 3}, 1, {}, {}, {1, 1, 1, 1}};
  // Pointwise on 7x7 with K >= 256 (MobileNetV2's tail): 300 channels end in a partial
  // 8-channel group of the vectorised transposed store and a partial 64-channel panel (44
  // channels: the 7 x 48 tile). MobileNetV2's 960 -> 160 ends in a 32-channel panel.
  const ConvCase automatic_pw{"auto pointwise 7x7", {1, 320, 7, 7}, {300, 320, 1, 1}, 1};
  ::setenv("EDGEPRESS_CONV_PIXEL_MAJOR", "1", 1);
  for (const ConvCase& cs : cases) ExpectFusedAndPlainMatchNaive(cs, Isa::kAvx512);
  ::unsetenv("EDGEPRESS_CONV_PIXEL_MAJOR");
  ExpectFusedAndPlainMatchNaive(automatic, Isa::kAvx512);
  ExpectFusedAndPlainMatchNaive(automatic_pw, Isa::kAvx512);
  ExpectFusedAndPlainMatchNaive({"auto pointwise 960 -> 160", {1, 960, 7, 7}, {160, 960, 1, 1}, 1},
                                Isa::kAvx512);
  // 9 channel panels: cut into channel blocks of 5 + 4 at 2 threads (runtime/tile_split.h).
  ExpectFusedAndPlainMatchNaive({"auto pointwise 96 -> 576", {1, 96, 7, 7}, {576, 96, 1, 1}, 1},
                                Isa::kAvx512);
}

// The direct convolution of `isa` (conv_direct.h), forced on with EDGEPRESS_CONV_DIRECT=1,
// against the naive convolution (ExpectFusedAndPlainMatchNaive). Shapes cross its edges:
// tiles of 1..6 pixels (a task's pixel count not a multiple of 6, tiles across output rows
// of small planes), output channels below, at and past a channel block (1, 17, 64, 65,
// 130), input channels past one channel block (7 for 3x3 weights: 15), 5x5 and 7x7 stride
// 2, stride 2 and a row stride of 3, asymmetric pads, pads wider than the kernel reaches,
// dilation, no padding, groups, pixel runs that start and end inside rows (a 71-wide
// plane), partial 8/16-pixel store groups and batch 2. A column stride of 3 is not handled: it must fall
// back to the implicit GEMM (weights packed per call) and still be right.
void CheckDirectConv(Isa isa) {
  const std::vector<ConvCase> cases = {
      {"56-like 13x11 M 64", {1, 15, 13, 11}, {64, 15, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"7x7 M 65", {1, 16, 7, 7}, {65, 16, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"1x1 plane M 1", {2, 3, 1, 1}, {1, 3, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      // Planes of 2, 3 and 4 pixels: one tile of that width.
      {"1x2 plane", {1, 4, 1, 2}, {9, 4, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"3x1 plane", {1, 4, 3, 1}, {9, 4, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"2x2 plane", {1, 4, 2, 2}, {9, 4, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"stride2 onto 7x7 M 130", {1, 9, 14, 14}, {130, 9, 3, 3}, 1, {2, 2}, {}, {1, 1, 1, 1}},
      {"stride2 asym pads", {2, 4, 10, 11}, {5, 4, 3, 3}, 1, {2, 2}, {}, {0, 1, 2, 1}},
      {"row stride 3", {1, 5, 13, 8}, {7, 5, 3, 2}, 1, {3, 1}, {}, {1, 0, 1, 1}},
      {"5x5 dilation2", {1, 6, 12, 17}, {11, 6, 5, 5}, 1, {}, {2, 2}, {4, 4, 4, 4}},
      {"7x7 stride2 pad3 wide", {1, 3, 21, 141}, {64, 3, 7, 7}, 1, {2, 2}, {}, {3, 3, 3, 3}},
      {"no padding", {1, 8, 9, 10}, {20, 8, 3, 3}, 1},
      {"groups2", {1, 16, 8, 8}, {130, 8, 3, 3}, 2, {}, {}, {1, 1, 1, 1}},
      // 3 channel blocks x 3 pixel runs: at 2 threads homes of 4 and 5 tasks, the second
      // starting inside a block's runs (AVX2: 9 blocks x 3 runs).
      {"9 tasks over 2 homes", {1, 6, 17, 19}, {130, 6, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      // AVX2 24-channel blocks (4-pixel tiles): M 24 on a plane of odd width, M 72 at
      // stride 2, M 23 (one channel short of a block) with a K past a channel block.
      {"M 24 11x13", {1, 10, 11, 13}, {24, 10, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"M 72 stride2", {1, 6, 15, 12}, {72, 6, 3, 3}, 1, {2, 2}, {}, {1, 1, 1, 1}},
      {"M 23 K past a block", {1, 17, 9, 8}, {23, 17, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"M 17 9x9 (one channel past a 16-block)",
       {1, 7, 9, 9},
       {17, 7, 3, 3},
       1,
       {},
       {},
       {1, 1, 1, 1}},
      {"column stride 3 falls back", {1, 2, 19, 23}, {4, 2, 3, 3}, 1, {2, 3}, {3, 2}, {2, 1, 3, 4}},
      // Pads past the kernel's reach: the outer rows and columns read no tap of X (their
      // group has no taps: bias only), the others one to three rows of taps.
      {"pads past the kernel", {1, 5, 3, 4}, {9, 5, 3, 3}, 1, {}, {}, {3, 2, 2, 3}},
      // 45 channels on a 132-pixel plane: blocks of 5 3x3 channels, or of 21 and a last of
      // 3 where the AVX-512 blocks are long (LongWeightBlocks).
      {"long channel blocks", {1, 45, 12, 11}, {64, 45, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      // A last input-channel block shorter than the others (AVX-512 blocks 5 channels of
      // 3x3, AVX2 21) under edge groups on every side.
      {"partial channel block, uneven pads",
       {1, 23, 6, 5},
       {64, 23, 3, 3},
       1,
       {},
       {},
       {2, 0, 1, 2}},
  };
  const ScopedEnv direct("EDGEPRESS_CONV_DIRECT", "1");
  for (const ConvCase& cs : cases) ExpectFusedAndPlainMatchNaive(cs, isa);
}

// AVX2 1x1 convs through the direct kernel (forced here on any plane; automatic on 7x7:
// conv_direct::PreferPointwise), weights packed on first use: a 7x7 plane with a K past
// one channel block (blocks of 78 channels on a 32 KiB L1: 78 + 78 + 44) and M one past a
// 16-block, an odd plane whose tiles cross rows, a plane of several pixel runs, a 1x3 plane
// in batch 2, groups. (The AVX-512 entry runs these cases through its implicit GEMM.)
void CheckDirectPointwise(Isa isa) {
  const std::vector<ConvCase> cases = {
      {"pointwise 7x7 K 200 M 17", {1, 200, 7, 7}, {17, 200, 1, 1}, 1},
      {"pointwise 5x9 K 7 M 33", {1, 7, 5, 9}, {33, 7, 1, 1}, 1},
      {"pointwise 12x23 (3 runs) K 70 M 32", {1, 70, 12, 23}, {32, 70, 1, 1}, 1},
      {"pointwise 1x3 batch 2", {2, 5, 1, 3}, {16, 5, 1, 1}, 1},
      {"pointwise 13x11 groups 2", {1, 16, 13, 11}, {34, 8, 1, 1}, 2},
  };
  const ScopedEnv direct("EDGEPRESS_CONV_DIRECT", "1");
  for (const ConvCase& cs : cases) ExpectFusedAndPlainMatchNaive(cs, isa);
}

TEST(ConvTest, DirectConvMatchesNaive) {
  if (!GetCpuFeatures().Has(Isa::kAvx512)) GTEST_SKIP() << "CPU lacks AVX-512F";
  CheckDirectConv(Isa::kAvx512);
}

// The AVX2 tile (6 pixels x 16 channels) and 8 x 8 store: what an AVX2-only CPU (AMD EPYC)
// runs; on an AVX-512 CPU the AVX2 entry is tested here too.
TEST(ConvTest, DirectConvAvx2MatchesNaive) {
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2/FMA";
  CheckDirectConv(Isa::kAvx2);
}

TEST(ConvTest, DirectPointwiseAvx2MatchesNaive) {
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2/FMA";
  CheckDirectPointwise(Isa::kAvx2);
}

// Small 5x5 depthwise planes eight at a time on AVX2 (depthwise::Planes8Avx2, through
// conv.cc's blocks of 8 channels of one image): full blocks and a last block of 1..7
// channels run one by one, batch 2, strides 1 and 2, FusedConv's Z and clamps, 1-3 threads;
// and the same cases one by one (EDGEPRESS_DW_PLANES8=0); 3x3 planes take the one-plane
// path either way.
TEST(ConvTest, DepthwisePlanes8Avx2MatchesNaive) {
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2/FMA";
  const std::vector<ConvCase> cases = {
      {"dw 5x5 7x9 20 ch batch 2", {2, 20, 7, 9}, {20, 1, 5, 5}, 20, {}, {}, {2, 2, 2, 2}},
      {"dw 5x5 s2 onto 7x7 16 ch", {1, 16, 14, 14}, {16, 1, 5, 5}, 16, {2, 2}, {}, {2, 2, 2, 2}},
      {"dw 5x5 7x7 9 ch", {1, 9, 7, 7}, {9, 1, 5, 5}, 9, {}, {}, {2, 2, 2, 2}},
      {"dw 5x5 14x13 asym pads 8 ch", {1, 8, 14, 13}, {8, 1, 5, 5}, 8, {}, {}, {0, 1, 2, 3}},
  };
  for (const char* on : {"1", "0"}) {
    const ScopedEnv planes8("EDGEPRESS_DW_PLANES8", on);
    for (const ConvCase& cs : cases) ExpectFusedAndPlainMatchNaive(cs, Isa::kAvx2);
  }
}

// The automatic choice for 1x1 convs: AVX2 only, unstrided and unpadded, where the
// implicit GEMM's 16-pixel panels would be mostly padding (7x7: 64 columns for 49 pixels;
// 14x14 computes 208 for 196 and keeps the GEMM) and the 7/8 channel rule holds.
TEST(ConvTest, DirectPointwisePreferredOnSmallPlanes) {
  auto geometry = [](int64_t m, int64_t c, int64_t h, int64_t w, int64_t stride) {
    conv_util::ConvGeometry g;
    g.rank = 2;
    g.n = 1;
    g.c = g.cg = c;
    g.m = g.mg = m;
    g.in[1] = h;
    g.in[2] = w;
    g.out[1] = (h - 1) / stride + 1;
    g.out[2] = (w - 1) / stride + 1;
    g.stride[1] = g.stride[2] = stride;
    return g;
  };
  EXPECT_TRUE(conv_direct::PreferPointwise(Isa::kAvx2, geometry(320, 960, 7, 7, 1)));
  EXPECT_TRUE(conv_direct::PreferPointwise(Isa::kAvx2, geometry(576, 96, 7, 7, 1)));
  EXPECT_FALSE(conv_direct::PreferPointwise(Isa::kAvx2, geometry(576, 96, 14, 14, 1)));
  EXPECT_FALSE(conv_direct::PreferPointwise(Isa::kAvx2, geometry(24, 144, 56, 56, 1)));
  EXPECT_FALSE(conv_direct::PreferPointwise(Isa::kAvx2, geometry(512, 256, 14, 14, 2)));
  EXPECT_TRUE(conv_direct::PreferPointwise(Isa::kAvx2, geometry(72, 576, 7, 7, 1)));  // 24-blocks
  EXPECT_FALSE(conv_direct::PreferPointwise(Isa::kAvx2, geometry(40, 960, 7, 7, 1)));  // 40 of 48
  EXPECT_FALSE(conv_direct::PreferPointwise(Isa::kAvx512, geometry(320, 960, 7, 7, 1)));
  conv_util::ConvGeometry three = geometry(320, 960, 7, 7, 1);
  three.k[1] = three.k[2] = 3;
  EXPECT_FALSE(conv_direct::PreferPointwise(Isa::kAvx2, three));
}

// The automatic choice: ResNet's 3x3 layers take the direct kernel; mostly-padding channel
// blocks, a short K (ResNet's 7x7 conv1 on 3 channels, unless the blocks are long) and 1x1
// convs do not.
TEST(ConvTest, DirectConvPreferredForWideKxKOnly) {
  EXPECT_TRUE(conv_direct::Prefer(Isa::kAvx512, 64, 64, 9));
  EXPECT_TRUE(conv_direct::Prefer(Isa::kAvx512, 512, 256, 9));
  EXPECT_TRUE(conv_direct::Prefer(Isa::kAvx512, 120, 32, 9));   // 120 of 128 computed channels real
  EXPECT_FALSE(conv_direct::Prefer(Isa::kAvx512, 24, 96, 9));   // 24 of 64
  EXPECT_FALSE(conv_direct::Prefer(Isa::kAvx512, 130, 64, 9));  // 130 of 192
  // K 147: only where the blocks are long (Zen 4's 32 KiB L1).
  EXPECT_EQ(conv_direct::Prefer(Isa::kAvx512, 64, 3, 49),
            conv_direct::LongWeightBlocks(Isa::kAvx512));
  EXPECT_FALSE(conv_direct::Prefer(Isa::kAvx512, 24, 3, 49));  // short K and mostly padding
  EXPECT_FALSE(conv_direct::LongWeightBlocks(Isa::kAvx2));     // 7 KiB scratch: always fits
  EXPECT_FALSE(conv_direct::Prefer(Isa::kAvx512, 64, 256, 1));  // pointwise
  // AVX2's 16- or 24-channel blocks (OcBlock): 24 and 72 whole in 24s, 120 of 128 in, 40
  // of 48 out, and a short K in.
  EXPECT_EQ(conv_direct::OcBlock(Isa::kAvx2, 64), 16);
  EXPECT_EQ(conv_direct::OcBlock(Isa::kAvx2, 48), 16);
  EXPECT_EQ(conv_direct::OcBlock(Isa::kAvx2, 24), 24);
  EXPECT_EQ(conv_direct::OcBlock(Isa::kAvx2, 72), 24);
  EXPECT_EQ(conv_direct::OcBlock(Isa::kAvx2, 17), 24);
  EXPECT_TRUE(conv_direct::Prefer(Isa::kAvx2, 64, 3, 49));
  EXPECT_TRUE(conv_direct::Prefer(Isa::kAvx2, 120, 32, 9));
  EXPECT_TRUE(conv_direct::Prefer(Isa::kAvx2, 24, 96, 9));
  EXPECT_FALSE(conv_direct::Prefer(Isa::kAvx2, 40, 96, 9));
  EXPECT_FALSE(conv_direct::Prefer(Isa::kAvx2, 64, 256, 1));
  EXPECT_FALSE(conv_direct::Prefer(Isa::kScalar, 64, 64, 9));
  // The kernel names its choice (the profile's kernel column).
  for (const KernelDef* d : KernelsFor("Conv", "", ir::DType::kFloat32)) {
    if ((d->isa != Isa::kAvx512 && d->isa != Isa::kAvx2) || !GetCpuFeatures().Has(d->isa)) continue;
    const bool avx2 = d->isa == Isa::kAvx2;
    for (int64_t m : {64, 24, 40}) {
      ir::Graph g;
      ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(ir::DType::kFloat32));
      ir::Value* w = g.AddInitializer("w", RandomTensor({m, 96, 3, 3}, 2));
      ir::Node* node = g.AddNode("Conv", {x, w}, {"y"}, "conv");
      const KernelInit init{*node, {nullptr, w->initializer()}};
      const std::string want = m == 64   ? (avx2 ? "direct 6x16" : "direct 6x64")
                               : m == 24 ? (avx2 ? "direct 4x24" : "")
                                         : "";
      EXPECT_EQ(d->create(init)->Variant(), want) << d->name << " " << m;
    }
  }
}

// The AVX-512 entry's direct stem kernel (conv_stem.h: 3x3 over 1-4 input channels,
// stride 1 or 2): output widths below and past its 16-pixel vector, channels below, at and
// past its 16-channel block, leading pads 0-2 (SAME_UPPER at stride 2 pads only the end),
// two images; FusedConv with bias, Z and each activation and plain Conv with and without
// bias at 1 and 2 threads (ExpectFusedAndPlainMatchNaive), and the same cases with
// EDGEPRESS_CONV_STEM=0 (the implicit GEMM).
TEST(ConvTest, StemDirectMatchesNaive) {
  if (!GetCpuFeatures().Has(Isa::kAvx512)) GTEST_SKIP() << "CPU lacks AVX-512F";
  const std::vector<ConvCase> cases = {
      {"3->32 s2 pad 1", {1, 3, 37, 45}, {32, 3, 3, 3}, 1, {2, 2}, {}, {1, 1, 1, 1}},
      {"1->5 s1 two images", {2, 1, 9, 17}, {5, 1, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"4->20 s2 same upper", {1, 4, 16, 33}, {20, 4, 3, 3}, 1, {2, 2}, {}, {}, "SAME_UPPER"},
      {"3->16 s2 unpadded", {1, 3, 15, 15}, {16, 3, 3, 3}, 1, {2, 2}},
      {"2->17 s1 pad 2", {1, 2, 6, 12}, {17, 2, 3, 3}, 1, {}, {}, {2, 2, 0, 0}},
  };
  for (const char* stem : {"1", "0"}) {
    const ScopedEnv env("EDGEPRESS_CONV_STEM", stem);
    for (const ConvCase& cs : cases) ExpectFusedAndPlainMatchNaive(cs, Isa::kAvx512);
  }
}

// FusedConv's HardSigmoid (activation_params alpha, beta) and HardSwish, applied after the
// bias and Z (conv_activation.h), on every lowering that applies them its own way: the
// implicit GEMM per tile (AVX-512 channel-major and pixel-major, AVX2 with its scattered
// ragged panels, K blocks, several tiles at 2 threads), depthwise planes (16-lane and 8-lane
// kernels, the padded-copy path), the 1x1-plane GEMV, and the post pass after the direct,
// stem and 3-D reference convs; every entry, with and without Z, 1 and 2 threads.
TEST(ConvTest, FusedConvAppliesHardSigmoidAndHardSwish) {
  const std::vector<ConvCase> cases = {
      {"3x3 odd plane", {1, 5, 11, 13}, {19, 5, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},
      {"pointwise 7x7 M 96", {1, 40, 7, 7}, {96, 40, 1, 1}, 1},
      {"pointwise ragged K 300", {1, 300, 5, 9}, {70, 300, 1, 1}, 1},
      {"3x3 stride2 M 130", {1, 9, 14, 14}, {130, 9, 3, 3}, 1, {2, 2}, {}, {1, 1, 1, 1}},
      {"stem 3->16 s2", {1, 3, 37, 45}, {16, 3, 3, 3}, 1, {2, 2}, {}, {1, 1, 1, 1}},
      {"depthwise 3x3 s1", {1, 6, 9, 20}, {6, 1, 3, 3}, 6, {}, {}, {1, 1, 1, 1}},
      {"depthwise 5x5 s2 7x7", {1, 5, 14, 14}, {5, 1, 5, 5}, 5, {2, 2}, {}, {2, 2, 2, 2}},
      {"depthwise 5x5 7x7 11 ch", {1, 11, 7, 7}, {11, 1, 5, 5}, 11, {}, {}, {2, 2, 2, 2}},
      {"depthwise 3x3 dil2", {1, 4, 12, 19}, {4, 1, 3, 3}, 4, {}, {2, 2}, {2, 2, 2, 2}},
      {"1x1 plane", {2, 36, 1, 1}, {40, 36, 1, 1}, 1},
      {"3-D", {1, 2, 5, 6, 7}, {4, 2, 2, 3, 3}, 1, {1, 2, 1}, {}, {0, 1, 1, 1, 0, 1}},
  };
  // Forced choices: none, the pixel-major tiles, the direct KxK kernel.
  const std::vector<std::pair<const char*, const char*>> envs = {
      {"EDGEPRESS_CONV_PIXEL_MAJOR", "0"},
      {"EDGEPRESS_CONV_PIXEL_MAJOR", "1"},
      {"EDGEPRESS_CONV_DIRECT", "1"}};
  for (const auto& [env, value] : envs) {
    const ScopedEnv scoped(env, value);
    for (const ConvCase& cs : cases) {
      std::vector<ir::Tensor> in = {RandomTensor(cs.x, 4), RandomTensor(cs.w, 5),
                                    RandomTensor({cs.w[0]}, 6)};
      std::vector<int64_t> shape;
      const std::vector<float> conv = NaiveConv(cs, in[0], in[1], &in[2], &shape);
      const ir::Tensor z = RandomTensor(shape, 7);
      int64_t kdim = 1;
      for (size_t i = 1; i < cs.w.size(); ++i) kdim *= cs.w[i];
      for (const bool with_z : {false, true})
        for (const char* act : {"HardSigmoid", "HardSwish"}) {
          const bool swish = std::string(act) == "HardSwish";
          std::vector<float> want = conv;
          for (size_t i = 0; i < want.size(); ++i) {
            const float v = want[i] + (with_z ? z.data<float>()[i] : 0.f);
            want[i] = swish ? v * std::min(std::max(v / 6.f + 0.5f, 0.f), 1.f)
                                    : std::min(std::max(0.3f * v + 0.45f, 0.f), 1.f);
          }
          auto attrs = ConvAttrList(cs);
          attrs.push_back(ir::Attribute::String("activation", act));
          if (!swish) attrs.push_back(ir::Attribute::Floats("activation_params", {0.3f, 0.45f}));
          std::vector<ir::Tensor> inputs = in;
          if (with_z) inputs.push_back(z);
          for (const KernelDef* def : KernelsFor("FusedConv", "com.microsoft", ir::DType::kFloat32))
            for (int threads : {1, 2}) {
              const std::string what = cs.label + " " + act + (with_z ? " +Z " : " ") + def->name +
                                       " t" + std::to_string(threads) + " " + env + "=" + value;
              auto out = RunOne("FusedConv", "com.microsoft", inputs, true, attrs, def, threads);
              ASSERT_EQ(out[0].shape(), shape) << what;
              ExpectClose(want, out[0], static_cast<double>(kdim), what);
            }
        }
    }
  }
}

// The SIMD loops of conv_act::Apply against its scalar loop: row lengths around the 8- and
// 16-lane vectors (masked tails), a row pitch past the row, values across the clamp knees.
TEST(ConvTest, PostActivationSimdMatchesScalar) {
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (!GetCpuFeatures().Has(isa)) continue;
    for (const auto kind : {conv_act::PostActivation::Kind::kHardSigmoid,
                            conv_act::PostActivation::Kind::kHardSwish}) {
      conv_act::PostActivation a;
      a.kind = kind;
      if (kind == conv_act::PostActivation::Kind::kHardSwish) a.alpha = 1.f / 6.f;
      for (int64_t cols : {1, 7, 8, 9, 15, 16, 17, 33, 49}) {
        const int64_t rows = 3, ld = cols + 5;
        ir::Tensor t = RandomTensor({rows * ld}, 11);
        for (uint64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] *= 8.f;
        std::vector<float> want(t.data<float>(), t.data<float>() + t.numel());
        std::vector<float> got = want;
        conv_act::Apply(Isa::kScalar, a, want.data(), rows, cols, ld);
        conv_act::Apply(isa, a, got.data(), rows, cols, ld);
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_NEAR(want[i], got[i], 1e-6f * (1.f + std::fabs(want[i])))
              << IsaName(isa) << " cols " << cols << " @" << i;
      }
    }
  }
}

TEST(ConvTest, FusedConvRejectsASumOfAnotherShape) {
  // Must fail: Z is not broadcast (onnxruntime's FusedConv requires Y's shape).
  std::vector<ir::Tensor> in = {RandomTensor({1, 3, 6, 6}, 1), RandomTensor({4, 3, 3, 3}, 2),
                                RandomTensor({4}, 3), RandomTensor({1, 4, 4, 1}, 4)};
  for (const KernelDef* def : KernelsFor("FusedConv", "com.microsoft", ir::DType::kFloat32)) {
    try {
      RunOne("FusedConv", "com.microsoft", in, true, {}, def);
      ADD_FAILURE() << def->name << " accepted Z of shape [1,4,4,1] for Y [1,4,4,4]";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("conv_under_test"), std::string::npos) << msg;
      EXPECT_NE(msg.find("sum input Z"), std::string::npos) << msg;
    }
  }
}

void ExpectConvError(const std::string& op, const std::vector<ir::Tensor>& in,
                     const std::vector<ir::Attribute>& attrs, const std::string& needle) {
  for (const KernelDef* def : KernelsFor(op, "", ir::DType::kFloat32)) {
    try {
      RunOne(op, "", in, true, attrs, def);
      ADD_FAILURE() << op << " accepted a bad configuration (" << needle << ")";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("conv_under_test"), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  }
}

TEST(ConvTest, RejectsBadShapesNamingTheNode) {
  ExpectConvError("Conv", {RandomTensor({1, 3, 8, 8}, 1), RandomTensor({4, 2, 3, 3}, 2)}, {},
                  "channel mismatch");
  ExpectConvError("Conv", {RandomTensor({1, 3, 2, 2}, 1), RandomTensor({4, 3, 3, 3}, 2)}, {},
                  "larger than the padded input");
  ExpectConvError(
      "Conv", {RandomTensor({1, 3, 5, 5}, 1), RandomTensor({4, 3, 3, 3}, 2), RandomTensor({5}, 3)},
      {}, "bias");
  ExpectConvError("Conv", {RandomTensor({1, 3, 5, 5}, 1), RandomTensor({4, 3, 3}, 2)}, {}, "rank");
  ExpectConvError("Conv", {RandomTensor({1, 4, 5, 5}, 1), RandomTensor({6, 2, 3, 3}, 2)},
                  {ir::Attribute::Int("group", 3)}, "divisible");
  ExpectConvError("Conv", {RandomTensor({1, 3, 5, 5}, 1), RandomTensor({4, 3, 3, 3}, 2)},
                  {ir::Attribute::String("auto_pad", "SAME_MIDDLE")}, "auto_pad");
  ExpectConvError("Conv", {RandomTensor({1, 3, 5, 5}, 1), RandomTensor({4, 3, 3, 3}, 2)},
                  {ir::Attribute::Ints("strides", {0, 1})}, "strides");
  ExpectConvError("Conv", {RandomTensor({1, 3, 5, 5}, 1), RandomTensor({4, 3, 3, 3}, 2)},
                  {ir::Attribute::Ints("pads", {1, 1})}, "pads");
  ExpectConvError("Conv", {RandomTensor({1, 3, 5, 5}, 1), RandomTensor({4, 3, 3, 3}, 2)},
                  {ir::Attribute::Ints("pads", {1, 1, int64_t{1} << 62, 1})}, "pads");
  ExpectConvError("Conv", {RandomTensor({1, 3, 5, 5}, 1), RandomTensor({4, 3, 3, 3}, 2)},
                  {ir::Attribute::Ints("kernel_shape", {2, 2})}, "kernel_shape");
  ExpectConvError("Conv", {RandomTensor({1, 3, 5, 5}, 1), RandomTensor({4, 3, 3, 3}, 2)},
                  {ir::Attribute::Ints("pads", {int64_t{1} << 30, int64_t{1} << 30,
                                                int64_t{1} << 30, int64_t{1} << 30})},
                  "too large");
  ExpectConvError("ConvTranspose", {RandomTensor({1, 3, 5, 5}, 1), RandomTensor({4, 2, 3, 3}, 2)},
                  {}, "channel mismatch");
  ExpectConvError("ConvTranspose", {RandomTensor({1, 2, 2, 2}, 1), RandomTensor({2, 2, 3, 3}, 2)},
                  {ir::Attribute::Ints("pads", {2, 2, 2, 2})}, "remove the whole output");
  ExpectConvError("ConvTranspose", {RandomTensor({1, 2, 30, 30}, 1), RandomTensor({2, 2, 3, 3}, 2)},
                  {ir::Attribute::Ints("strides", {int64_t{1} << 30, int64_t{1} << 30})},
                  "too large");
}

// ---- ConvTranspose ----------------------------------------------------------------

struct ConvTCase {
  std::string label;
  std::vector<int64_t> x, w;  // X [N, C, ...], W [C, M/group, ...]
  int64_t group = 1;
  std::vector<int64_t> strides = {}, dilations = {}, pads = {}, output_padding = {},
                       output_shape = {};
  std::string auto_pad = "NOTSET";
  bool bias = true;
};

std::vector<float> NaiveConvTranspose(const ConvTCase& cs, const ir::Tensor& x, const ir::Tensor& w,
                                      const ir::Tensor* b, std::vector<int64_t>* out_shape) {
  const size_t r = cs.x.size() - 2;
  const int64_t n = cs.x[0], c = cs.x[1], cg = c / cs.group, mg = cs.w[1], m = mg * cs.group;
  std::vector<int64_t> k(r), s(r), d(r), pb(r), out(r), in(r);
  for (size_t i = 0; i < r; ++i) {
    k[i] = cs.w[2 + i];
    s[i] = cs.strides.empty() ? 1 : cs.strides[i];
    d[i] = cs.dilations.empty() ? 1 : cs.dilations[i];
    in[i] = cs.x[2 + i];
    const int64_t op = cs.output_padding.empty() ? 0 : cs.output_padding[i];
    const int64_t full = s[i] * (in[i] - 1) + op + (k[i] - 1) * d[i] + 1;
    if (!cs.output_shape.empty() || cs.auto_pad == "SAME_UPPER" || cs.auto_pad == "SAME_LOWER") {
      out[i] = cs.output_shape.empty() ? in[i] * s[i] : cs.output_shape[i];
      const int64_t total = full - out[i];
      pb[i] = total < 0 ? 0 : (cs.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2);
    } else {
      pb[i] = cs.pads.empty() ? 0 : cs.pads[i];
      out[i] = full - pb[i] - (cs.pads.empty() ? 0 : cs.pads[i + r]);
    }
  }
  *out_shape = {n, m};
  int64_t out_size = 1, in_size = 1, ks = 1;
  for (size_t i = 0; i < r; ++i) {
    out_shape->push_back(out[i]);
    out_size *= out[i];
    in_size *= in[i];
    ks *= k[i];
  }
  std::vector<double> y(n * m * out_size, 0.0);
  for (int64_t ni = 0; ni < n; ++ni)
    for (int64_t mi = 0; mi < m; ++mi)
      for (int64_t p = 0; p < out_size; ++p)
        y[(ni * m + mi) * out_size + p] = b ? b->data<float>()[mi] : 0.0;
  std::vector<int64_t> ii(r), kk(r);
  for (int64_t ni = 0; ni < n; ++ni)
    for (int64_t ci = 0; ci < c; ++ci) {
      const int64_t gi = ci / cg;
      for (int64_t ip = 0; ip < in_size; ++ip) {
        int64_t rem = ip;
        for (size_t i = r; i-- > 0;) ii[i] = rem % in[i], rem /= in[i];
        const double xv = x.data<float>()[(ni * c + ci) * in_size + ip];
        for (int64_t mj = 0; mj < mg; ++mj)
          for (int64_t kp = 0; kp < ks; ++kp) {
            int64_t krem = kp, ooff = 0;
            bool inside = true;
            for (size_t i = r; i-- > 0;) kk[i] = krem % k[i], krem /= k[i];
            for (size_t i = 0; i < r; ++i) {
              const int64_t pos = ii[i] * s[i] + kk[i] * d[i] - pb[i];
              if (pos < 0 || pos >= out[i]) inside = false;
              ooff = ooff * out[i] + pos;
            }
            if (!inside) continue;
            y[(ni * m + gi * mg + mj) * out_size + ooff] +=
                xv * w.data<float>()[(ci * mg + mj) * ks + kp];
          }
      }
    }
  return std::vector<float>(y.begin(), y.end());
}

TEST(ConvTransposeTest, MatchesNaive) {
  const std::vector<ConvTCase> cases = {
      {"basic", {1, 3, 4, 5}, {3, 2, 3, 3}},
      {"stride 3x2 output_padding", {1, 2, 3, 3}, {2, 3, 3, 3}, 1, {3, 2}, {}, {}, {1, 1}},
      {"pads", {2, 2, 4, 4}, {2, 2, 3, 3}, 1, {2, 2}, {}, {1, 2, 0, 1}},
      {"dilations", {1, 2, 5, 4}, {2, 3, 3, 2}, 1, {}, {2, 2}},
      {"groups", {1, 4, 4, 4}, {4, 3, 3, 3}, 2, {2, 2}, {}, {1, 1, 1, 1}},
      {"output_shape", {1, 1, 3, 3}, {1, 2, 3, 3}, 1, {3, 2}, {}, {}, {}, {10, 8}},
      {"same upper", {1, 1, 3, 3}, {1, 2, 3, 3}, 1, {2, 2}, {}, {}, {}, {}, "SAME_UPPER"},
      {"same lower", {1, 2, 3, 4}, {2, 2, 4, 3}, 1, {2, 2}, {}, {}, {}, {}, "SAME_LOWER"},
      {"1-D", {1, 3, 7}, {3, 2, 4}, 1, {3}, {}, {1, 2}},
      {"3-D", {1, 2, 3, 4, 3}, {2, 2, 2, 3, 2}, 1, {2, 1, 2}},
      {"large", {1, 20, 9, 9}, {20, 17, 4, 4}, 1, {2, 2}, {}, {1, 1, 1, 1}},
      {"no bias", {1, 3, 4, 4}, {3, 2, 2, 2}, 1, {2, 2}, {}, {}, {}, {}, "NOTSET", false},
      // stride == kernel: each output pixel gets one tap (the disjoint col2im).
      {"disjoint 2x2 s2 groups", {2, 4, 5, 7}, {4, 3, 2, 2}, 2, {2, 2}},
      {"disjoint 3x2 s3x2", {1, 3, 4, 5}, {3, 2, 3, 2}, 1, {3, 2}},
      {"disjoint 3-D", {1, 2, 2, 3, 2}, {2, 3, 2, 2, 2}, 1, {2, 2, 2}},
      // 2x2 stride 2, the AVX-512 direct kernel (constant weights): widths below, at and
      // past its 16-pixel block, output channels below, at and past its 4-channel tile
      // (last blocks of 1, 2 and 3 channels).
      {"2x2 s2 one channel", {1, 5, 3, 16}, {5, 1, 2, 2}, 1, {2, 2}},
      {"2x2 s2 ragged", {2, 6, 4, 33}, {6, 9, 2, 2}, 1, {2, 2}},
      {"2x2 s2 two channels", {1, 3, 5, 18}, {3, 2, 2, 2}, 1, {2, 2}},
      {"2x2 s2 groups no bias", {1, 6, 2, 7}, {6, 3, 2, 2}, 3, {2, 2}, {}, {}, {}, {}, "NOTSET",
       false},
  };
  for (const ConvTCase& cs : cases) {
    std::vector<ir::Tensor> in = {RandomTensor(cs.x, 7), RandomTensor(cs.w, 8)};
    if (cs.bias) in.push_back(RandomTensor({cs.w[1] * cs.group}, 9));
    std::vector<int64_t> want_shape;
    const std::vector<float> want =
        NaiveConvTranspose(cs, in[0], in[1], cs.bias ? &in[2] : nullptr, &want_shape);
    std::vector<ir::Attribute> attrs;
    if (cs.group != 1) attrs.push_back(ir::Attribute::Int("group", cs.group));
    if (!cs.strides.empty()) attrs.push_back(ir::Attribute::Ints("strides", cs.strides));
    if (!cs.dilations.empty()) attrs.push_back(ir::Attribute::Ints("dilations", cs.dilations));
    if (!cs.pads.empty()) attrs.push_back(ir::Attribute::Ints("pads", cs.pads));
    if (!cs.output_padding.empty())
      attrs.push_back(ir::Attribute::Ints("output_padding", cs.output_padding));
    if (!cs.output_shape.empty())
      attrs.push_back(ir::Attribute::Ints("output_shape", cs.output_shape));
    if (cs.auto_pad != "NOTSET") attrs.push_back(ir::Attribute::String("auto_pad", cs.auto_pad));
    auto defs = KernelsFor("ConvTranspose", "", ir::DType::kFloat32);
    ASSERT_FALSE(defs.empty());
    for (const KernelDef* def : defs) {
      for (bool constant : {false, true}) {
        const std::string what = cs.label + " " + def->name + (constant ? " const" : "");
        auto out = RunOne("ConvTranspose", "", in, constant, attrs, def);
        ASSERT_EQ(out[0].shape(), want_shape) << what;
        ExpectClose(want, out[0], static_cast<double>(cs.x[1] * 16), what);
      }
    }
  }
}

// The example of the ONNX spec (test_convtranspose_autopad_same): exact values.
TEST(ConvTransposeTest, OnnxAutopadSameExample) {
  ir::Tensor x =
      ir::Tensor::FromVector<float>(ir::DType::kFloat32, {1, 1, 3, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8});
  ir::Tensor w =
      ir::Tensor::FromVector<float>(ir::DType::kFloat32, {1, 2, 3, 3}, std::vector<float>(18, 1.f));
  const std::vector<float> row0 = {0, 0, 1, 1, 3, 2}, row2 = {3, 3, 8, 5, 12, 7},
                           row5 = {6, 6, 13, 7, 15, 8};
  for (const KernelDef* def : KernelsFor("ConvTranspose", "", ir::DType::kFloat32)) {
    auto out = RunOne(
        "ConvTranspose", "", {x, w}, true,
        {ir::Attribute::String("auto_pad", "SAME_UPPER"), ir::Attribute::Ints("strides", {2, 2})},
        def);
    ASSERT_EQ(out[0].shape(), (std::vector<int64_t>{1, 2, 6, 6}));
    const float* y = out[0].data<float>();
    for (int j = 0; j < 6; ++j) {
      EXPECT_EQ(y[j], row0[j]) << def->name;
      EXPECT_EQ(y[2 * 6 + j], row2[j]) << def->name;
      EXPECT_EQ(y[5 * 6 + j], row5[j]) << def->name;
      EXPECT_EQ(y[36 + 5 * 6 + j], row5[j]) << def->name;
    }
  }
}

}  // namespace
}  // namespace edgepress::runtime
