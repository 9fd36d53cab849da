// fuse-qdq: a small QDQ network (conv+relu, maxpool, 1x1 conv, residual add+relu, global
// average pool, flatten, gemm with float output, matmul) built with the IR builder, as
// quantize-static writes it. The pass must turn it into integer ops (op counts), and the
// fused model must agree with the unfused QDQ model: within 1 LSB of the output scale for
// quantized outputs, and within a small relative error for the float output (the QDQ
// graph accumulates in float, the fused one in exact int32). Must-not-fire cases: a
// non-constant weight scale, a data-movement op whose Q has other parameters than its DQ,
// and an output with a float reader besides its Q (which gets the float-output form).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "pass_test_util.h"

namespace edgepress::passes {
namespace {

using ir::Attribute;
using ir::DType;
using ir::Tensor;
using testing::Apply;
using testing::CountOps;
using testing::Evaluate;

Tensor Scalar(float v) { return Tensor::FromVector(DType::kFloat32, {}, std::vector<float>{v}); }
Tensor U8(uint8_t v) { return Tensor::FromVector(DType::kUInt8, {}, std::vector<uint8_t>{v}); }

struct QdqBuilder {
  ir::GraphBuilder b;
  std::mt19937 rng{7};
  int id = 0;

  std::string Name(const std::string& s) { return s + std::to_string(id++); }
  // Q then DQ of an activation, per-tensor uint8.
  ir::Value* Qdq(ir::Value* v, float scale, uint8_t zp) {
    ir::Value* s = b.Const(Name("s"), Scalar(scale));
    ir::Value* z = b.Const(Name("z"), U8(zp));
    ir::Value* q = b.Op("QuantizeLinear", {v, s, z});
    return b.Op("DequantizeLinear", {q, s, z});
  }
  // A DQ'd int8 weight, per-channel along `axis`.
  ir::Value* Weight(std::vector<int64_t> shape, int axis, std::vector<float>* scales_out) {
    Tensor w(DType::kInt8, shape);
    std::uniform_int_distribution<int> d(-127, 127);
    for (uint64_t i = 0; i < w.numel(); ++i) w.mutable_data<int8_t>()[i] = static_cast<int8_t>(d(rng));
    const int64_t ch = shape[static_cast<size_t>(axis)];
    std::vector<float> sc(static_cast<size_t>(ch));
    std::uniform_real_distribution<float> ds(0.002f, 0.01f);
    for (float& s : sc) s = ds(rng);
    *scales_out = sc;
    ir::Value* wv = b.Const(Name("w_quantized"), w);
    ir::Value* sv = b.Const(Name("w_scale"), Tensor::FromVector(DType::kFloat32, {ch}, sc));
    ir::Value* zv = b.Const(Name("w_zero_point"),
                            Tensor(DType::kInt8, {ch}));
    return b.Op("DequantizeLinear", {wv, sv, zv}, {Attribute::Int("axis", axis)});
  }
  ir::Value* Bias(float sx, const std::vector<float>& sw) {
    const int64_t n = static_cast<int64_t>(sw.size());
    std::vector<int32_t> v(sw.size());
    std::uniform_int_distribution<int> d(-2000, 2000);
    for (int32_t& x : v) x = d(rng);
    std::vector<float> sc(sw.size());
    for (size_t i = 0; i < sw.size(); ++i) sc[i] = sx * sw[i];
    ir::Value* bv = b.Const(Name("b_quantized"), Tensor::FromVector(DType::kInt32, {n}, v));
    ir::Value* sv = b.Const(Name("b_scale"), Tensor::FromVector(DType::kFloat32, {n}, sc));
    return b.Op("DequantizeLinear", {bv, sv}, {Attribute::Int("axis", 0)});
  }
};

// The network; returns the model. Scales are chosen so the values use most of uint8.
std::unique_ptr<ir::Model> BuildNet() {
  QdqBuilder q;
  auto& b = q.b;
  ir::Value* x = b.Input("x", DType::kFloat32, {1, 8, 10, 10});
  const float sx = 0.01f, s1 = 0.02f, s2 = 0.015f, s3 = 0.02f, s4 = 0.01f, s5 = 0.02f;
  ir::Value* xd = q.Qdq(x, sx, 128);
  std::vector<float> sw1, sw2, sw3, sw4;
  ir::Value* w1 = q.Weight({16, 8, 3, 3}, 0, &sw1);
  ir::Value* c1 = b.Op("Conv", {xd, w1, q.Bias(sx, sw1)},
                       {Attribute::Ints("pads", {1, 1, 1, 1})}, "conv1");
  ir::Value* r1 = b.Op("Relu", {c1});
  ir::Value* a1 = q.Qdq(r1, s1, 0);
  ir::Value* p1 = b.Op("MaxPool", {a1}, {Attribute::Ints("kernel_shape", {2, 2}),
                                         Attribute::Ints("strides", {2, 2})}, "pool");
  // The pool output shares its input's parameters (quantize-static's data-movement rule).
  ir::Value* p1d = q.Qdq(p1, s1, 0);
  ir::Value* w2 = q.Weight({16, 16, 1, 1}, 0, &sw2);
  ir::Value* c2 = b.Op("Conv", {p1d, w2, q.Bias(s1, sw2)}, {}, "conv2");
  ir::Value* c2d = q.Qdq(c2, s2, 120);
  ir::Value* add = b.Op("Add", {c2d, p1d}, {}, "add");
  ir::Value* r2 = b.Op("Relu", {add});
  ir::Value* a2 = q.Qdq(r2, s3, 0);
  ir::Value* gap = b.Op("GlobalAveragePool", {a2}, {}, "gap");
  ir::Value* gd = q.Qdq(gap, s4, 0);
  ir::Value* fl = b.Op("Flatten", {gd}, {Attribute::Int("axis", 1)}, "flatten");
  ir::Value* fd = q.Qdq(fl, s4, 0);
  ir::Value* w3 = q.Weight({10, 16}, 0, &sw3);
  ir::Value* gm = b.Op("Gemm", {fd, w3, q.Bias(s4, sw3)}, {Attribute::Int("transB", 1)}, "fc");
  b.Output(gm);  // float output: fuse-qdq uses the integer op with a float epilogue
  ir::Value* mm = b.Op("MatMul", {fd, q.Weight({16, 12}, 1, &sw4)}, {}, "mm");
  ir::Value* md = q.Qdq(mm, s5, 100);
  b.Output(md);
  return b.Build();
}

std::map<std::string, Tensor> Feeds(uint32_t seed) {
  return {{"x", testing::RandomTensor({1, 8, 10, 10}, seed, -1.2f, 1.3f)}};
}

double MaxAbsDiff(const Tensor& a, const Tensor& b) {
  double d = 0;
  for (uint64_t i = 0; i < a.numel(); ++i)
    d = std::max(d, std::fabs(double(a.data<float>()[i]) - b.data<float>()[i]));
  return d;
}

int CountDomainOps(const ir::Model& m, const std::string& op, const std::string& domain) {
  int n = 0;
  for (ir::Node* node : m.graph->nodes()) n += node->op_type() == op && node->domain() == domain;
  return n;
}

TEST(FuseQdqTest, QdqNetworkBecomesIntegerAndAgreesWithin1Lsb) {
  auto m = BuildNet();
  ASSERT_NO_THROW(ir::Verify(*m->graph));
  std::vector<PassRun> runs;
  auto f = Apply(*m, "fuse-qdq,eliminate-dead-nodes", &runs);
  EXPECT_TRUE(runs[0].changed);
  // Only the input's Q and the MatMul output's DQ stay.
  EXPECT_EQ(CountOps(*f, "QuantizeLinear"), 1);
  EXPECT_EQ(CountOps(*f, "DequantizeLinear"), 1);
  EXPECT_EQ(CountOps(*f, "Conv") + CountOps(*f, "Gemm") + CountOps(*f, "MatMul") +
                CountOps(*f, "Add") + CountOps(*f, "Relu"),
            0);
  EXPECT_EQ(CountDomainOps(*f, "QLinearConv", "edgepress"), 1);  // conv1 + relu
  EXPECT_EQ(CountDomainOps(*f, "QLinearConv", ""), 1);           // conv2
  EXPECT_EQ(CountDomainOps(*f, "QLinearAdd", "edgepress"), 1);   // add + relu
  EXPECT_EQ(CountDomainOps(*f, "QLinearGlobalAveragePool", "com.microsoft"), 1);
  EXPECT_EQ(CountDomainOps(*f, "QGemm", "edgepress"), 1);        // fc, float output
  EXPECT_EQ(CountOps(*f, "QLinearMatMul"), 1);
  EXPECT_EQ(CountOps(*f, "MaxPool"), 1);
  EXPECT_EQ(CountOps(*f, "Flatten"), 1);
  EXPECT_EQ(runs[0].stats["fused-quantized"], 3);
  EXPECT_EQ(runs[0].stats["fused-float-output"], 1);
  EXPECT_EQ(runs[0].stats["fused-data-movement"], 2);

  for (uint32_t seed : {1u, 2u, 3u}) {
    auto want = Evaluate(*m, Feeds(seed));
    auto got = Evaluate(*f, Feeds(seed));
    ASSERT_EQ(got.size(), want.size());
    const std::string mm_name = m->graph->outputs()[1]->name();
    const std::string fc_name = m->graph->outputs()[0]->name();
    // Quantized output (MatMul -> Q -> DQ, scale 0.02): at most 1 LSB.
    EXPECT_LE(MaxAbsDiff(got.at(mm_name), want.at(mm_name)), 0.02 * 1.0001) << "seed " << seed;
    // Float output: float vs exact accumulation differ by ~1e-6, but the fc input itself
    // is quantized (scale 0.01) and may differ by 1 LSB upstream (a rounding tie decided
    // differently), which moves an fc output by at most 0.01 * max|w| = 0.01 * 127 * 0.01.
    EXPECT_LE(MaxAbsDiff(got.at(fc_name), want.at(fc_name)), 0.01 * 127 * 0.01) << "seed " << seed;
  }
}

TEST(FuseQdqTest, RunsInTheDefaultPipeline) {
  auto m = BuildNet();
  auto f = Apply(*m, kDefaultOptimizePipeline);
  EXPECT_EQ(CountOps(*f, "Conv") + CountOps(*f, "FusedConv"), 0);
  EXPECT_EQ(CountOps(*f, "QLinearConv"), 2);
}

// Must not fire: the weight scale is a graph input (not constant).
TEST(FuseQdqTest, NonConstantScaleDoesNotFire) {
  ir::GraphBuilder b;
  ir::Value* x = b.Input("x", DType::kFloat32, {1, 2, 4, 4});
  ir::Value* ws = b.Input("w_scale", DType::kFloat32, {});
  ir::Value* s = b.Const("s", Scalar(0.1f));
  ir::Value* z = b.Const("z", U8(128));
  ir::Value* xd = b.Op("DequantizeLinear", {b.Op("QuantizeLinear", {x, s, z}), s, z});
  ir::Value* w = b.Const("w", Tensor(DType::kInt8, {3, 2, 1, 1}));
  ir::Value* wd = b.Op("DequantizeLinear", {w, ws});
  ir::Value* c = b.Op("Conv", {xd, wd});
  b.Output(b.Op("DequantizeLinear", {b.Op("QuantizeLinear", {c, s, z}), s, z}));
  auto m = b.Build();
  std::vector<PassRun> runs;
  auto f = Apply(*m, "fuse-qdq", &runs);
  EXPECT_FALSE(runs[0].changed);
  EXPECT_EQ(CountOps(*f, "Conv"), 1);
}

// Must not fire: Reshape's Q has a different scale than its DQ (it would requantize).
TEST(FuseQdqTest, DataMovementWithOtherParamsDoesNotFire) {
  ir::GraphBuilder b;
  ir::Value* x = b.Input("x", DType::kFloat32, {2, 6});
  ir::Value* s = b.Const("s", Scalar(0.1f));
  ir::Value* s2 = b.Const("s2", Scalar(0.2f));
  ir::Value* z = b.Const("z", U8(128));
  ir::Value* xd = b.Op("DequantizeLinear", {b.Op("QuantizeLinear", {x, s, z}), s, z});
  ir::Value* shape = b.Const("shape", Tensor::FromVector(DType::kInt64, {2}, std::vector<int64_t>{3, 4}));
  ir::Value* r = b.Op("Reshape", {xd, shape});
  b.Output(b.Op("DequantizeLinear", {b.Op("QuantizeLinear", {r, s2, z}), s2, z}));
  auto m = b.Build();
  std::vector<PassRun> runs;
  auto f = Apply(*m, "fuse-qdq", &runs);
  EXPECT_FALSE(runs[0].changed);
  EXPECT_EQ(CountOps(*f, "QuantizeLinear"), 2);
}

// The conv output is also a graph output (a float reader): the Q cannot take over, so the
// float-output integer form is used and the Q stays, reading it.
TEST(FuseQdqTest, FloatReaderKeepsQAndUsesFloatOutput) {
  ir::GraphBuilder b;
  ir::Value* x = b.Input("x", DType::kFloat32, {1, 2, 4, 4});
  ir::Value* s = b.Const("s", Scalar(0.05f));
  ir::Value* z = b.Const("z", U8(128));
  ir::Value* xd = b.Op("DequantizeLinear", {b.Op("QuantizeLinear", {x, s, z}), s, z});
  Tensor wt(DType::kInt8, {3, 2, 1, 1});
  for (uint64_t i = 0; i < wt.numel(); ++i) wt.mutable_data<int8_t>()[i] = static_cast<int8_t>(i * 7 - 20);
  ir::Value* w = b.Const("w", wt);
  ir::Value* wd = b.Op("DequantizeLinear", {w, b.Const("ws", Scalar(0.01f))});
  ir::Value* c = b.Op("Conv", {xd, wd});
  b.Output(c);
  b.Output(b.Op("DequantizeLinear", {b.Op("QuantizeLinear", {c, s, z}), s, z}));
  auto m = b.Build();
  std::vector<PassRun> runs;
  auto f = Apply(*m, "fuse-qdq,eliminate-dead-nodes", &runs);
  EXPECT_EQ(runs[0].stats["fused-float-output"], 1);
  EXPECT_EQ(CountOps(*f, "Conv"), 0);
  EXPECT_EQ(CountOps(*f, "QuantizeLinear"), 2);
  auto feeds = std::map<std::string, Tensor>{{"x", testing::RandomTensor({1, 2, 4, 4}, 5)}};
  auto want = Evaluate(*m, feeds), got = Evaluate(*f, feeds);
  const std::string cname = m->graph->outputs()[0]->name();
  EXPECT_EQ(f->graph->outputs()[0]->name(), cname);
  EXPECT_LE(MaxAbsDiff(got.at(cname), want.at(cname)), 1e-5);
}

// A transformer projection as quantize-static leaves it: DQ(x[1,5,16]) x DQ(w) -> MatMul ->
// Add(bias [12]) with a float reader. The bias goes into the float-output QGemm as its
// float C (no Add left), and the result matches the QDQ graph's.
// DQ(Q(x[1,5,16])) x DQ(w[16,12]) -> MatMul "mm": the projection the bias-Add cases share.
ir::Value* QdqProjection(QdqBuilder& q) {
  ir::Value* x = q.b.Input("x", DType::kFloat32, {1, 5, 16});
  std::vector<float> sw;
  return q.b.Op("MatMul", {q.Qdq(x, 0.01f, 128), q.Weight({16, 12}, 1, &sw)}, {}, "mm");
}

TEST(FuseQdqTest, MatMulBiasAddBecomesTheFloatC) {
  QdqBuilder q;
  auto& b = q.b;
  ir::Value* mm = QdqProjection(q);
  std::vector<float> bias(12);
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.1f * static_cast<float>(i) - 0.5f;
  ir::Value* bv = b.Const("bias", Tensor::FromVector(DType::kFloat32, {12}, bias));
  b.Output(b.Op("Tanh", {b.Op("Add", {bv, mm}, {}, "add")}));
  auto m = b.Build();
  std::vector<PassRun> runs;
  auto f = Apply(*m, "fuse-qdq,eliminate-dead-nodes", &runs);
  EXPECT_EQ(runs[0].stats["fused-float-bias"], 1);
  EXPECT_EQ(CountDomainOps(*f, "QGemm", "edgepress"), 1);
  EXPECT_EQ(CountOps(*f, "Add"), 0);
  EXPECT_EQ(CountOps(*f, "MatMul"), 0);
  auto feeds = std::map<std::string, Tensor>{{"x", testing::RandomTensor({1, 5, 16}, 9, -1.2f, 1.2f)}};
  const std::string out = m->graph->outputs()[0]->name();
  auto want = Evaluate(*m, feeds), got = Evaluate(*f, feeds);
  EXPECT_LE(MaxAbsDiff(got.at(out), want.at(out)), 1e-5);
}

// Must not fire: the MatMul's output has a second reader, so the Add cannot be absorbed.
TEST(FuseQdqTest, BiasAddWithOtherReaderStays) {
  QdqBuilder q;
  auto& b = q.b;
  ir::Value* mm = QdqProjection(q);
  ir::Value* bv = b.Const("bias", Tensor::FromVector(DType::kFloat32, {12}, std::vector<float>(12, 0.5f)));
  b.Output(b.Op("Add", {mm, bv}, {}, "add"));
  b.Output(b.Op("Relu", {mm}));
  auto m = b.Build();
  std::vector<PassRun> runs;
  auto f = Apply(*m, "fuse-qdq,eliminate-dead-nodes", &runs);
  EXPECT_EQ(runs[0].stats["fused-float-bias"], 0);
  EXPECT_EQ(CountOps(*f, "Add"), 1);
}

}  // namespace
}  // namespace edgepress::passes
