// quantize-static on small graphs: where Q/DQ go (op counts, shared data-movement
// params, Relu fused into the producer's range, no Q->DQ on values only float ops read,
// Add only with two activation inputs), int32 bias and per-channel weights, int8
// activations, a residual block whose Add gets Q/DQ on both inputs and its output and
// runs as QLinearConv + QLinearAdd after fuse-qdq, opset raise, NMSE of the outputs against fp32 under declared bounds,
// SmoothQuant (function kept exactly; lower int8 error on outlier channels), and the
// must-not-fire and error cases.
#include <gtest/gtest.h>

#include "calibrate/dataset.h"
#include "ir/error.h"
#include "ir/shape_inference.h"
#include "passes/quant/smooth_quant.h"
#include "qdq_test_util.h"

namespace edgepress::passes {
namespace {

using ir::Attribute;
using ir::DType;
using ir::GraphBuilder;
using qtest::ApplyWithData;
using qtest::Count;
using qtest::Gaussian;
using qtest::Nmse;
using qtest::RunModel;

ir::Tensor Uniform(std::vector<int64_t> shape, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  ir::Tensor t(DType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  for (uint64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = d(rng);
  return t;
}

// x[1,3,8,8] -> Conv -> Relu -> Conv(stride 2) -> Relu -> MaxPool -> Flatten -> Gemm -> y
std::unique_ptr<ir::Model> SmallCnn() {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 3, 8, 8});
  auto* c1 = b.Op("Conv", {x, b.Const("w1", Uniform({8, 3, 3, 3}, 1, -0.5f, 0.5f)),
                          b.Const("b1", Uniform({8}, 2, -0.1f, 0.1f))},
                  {Attribute::Ints("pads", {1, 1, 1, 1})}, "conv1");
  auto* r1 = b.Op("Relu", {c1}, {}, "relu1");
  auto* c2 = b.Op("Conv", {r1, b.Const("w2", Uniform({8, 8, 3, 3}, 3, -0.3f, 0.3f)),
                          b.Const("b2", Uniform({8}, 4, -0.1f, 0.1f))},
                  {Attribute::Ints("pads", {1, 1, 1, 1}), Attribute::Ints("strides", {2, 2})},
                  "conv2");
  auto* r2 = b.Op("Relu", {c2}, {}, "relu2");
  auto* p = b.Op("MaxPool", {r2},
                 {Attribute::Ints("kernel_shape", {2, 2}), Attribute::Ints("strides", {2, 2})},
                 "pool");
  auto* f = b.Op("Flatten", {p}, {}, "flatten");
  b.Output(b.Op("Gemm", {f, b.Const("w3", Uniform({10, 32}, 5, -0.5f, 0.5f)),
                         b.Const("b3", Uniform({10}, 6, -0.1f, 0.1f))},
                {Attribute::Int("transB", 1)}, "fc"));
  auto m = b.Build();
  ir::InferShapes(*m);
  return m;
}

// Calibration arrays: dim 0 runs over samples, each fed as a batch of 1.
std::string CnnDataFlat(const std::string& name, uint32_t seed) {
  std::string dir = qtest::TempDir(name);
  return qtest::SaveData(dir, "calib.npz", {{"x", Uniform({32, 3, 8, 8}, seed)}});
}

double CnnNmse(const ir::Model& q, const ir::Model& ref) {
  double worst = 0;
  for (uint32_t s = 100; s < 108; ++s) {
    runtime::NamedTensors feed = {{"x", Uniform({1, 3, 8, 8}, s)}};
    worst = std::max(worst, Nmse(RunModel(q, feed)[0].second, RunModel(ref, feed)[0].second));
  }
  return worst;
}

float ScalarOf(const ir::Model& m, const std::string& name) {
  const ir::Value* v = m.graph->FindValue(name);
  EXPECT_NE(v, nullptr) << name;
  return v && v->initializer() ? v->initializer()->data<float>()[0] : -1.f;
}

TEST(QuantizeStatic, SmallCnnGetsQdqWhereIntegerOpsReadIt) {
  auto m = SmallCnn();
  std::vector<PassRun> runs;
  auto q = ApplyWithData(*m, "quantize-static", {CnnDataFlat("cnn", 1)}, &runs);
  ASSERT_TRUE(runs[0].changed);
  auto& st = runs[0].stats;
  EXPECT_EQ(st["conv-quantized"], 2);
  EXPECT_EQ(st["gemm-quantized"], 1);
  EXPECT_EQ(st["relu-fused"], 2);
  EXPECT_EQ(st["weights-quantized"], 3);
  EXPECT_EQ(st["biases-quantized"], 3);
  // Activations quantized: x, relu1, relu2 (read by MaxPool), pool, flatten; the Gemm
  // output is a graph output and stays float.
  EXPECT_EQ(st["qdq-pairs"], 5);
  EXPECT_EQ(Count(*q, "QuantizeLinear"), 5);
  EXPECT_EQ(Count(*q, "DequantizeLinear"), 5 + 3 + 3);
  EXPECT_EQ(Count(*q, "Relu"), 2);  // stays in place, inside the integer range
  qtest::ExpectCleanQdq(*q);
  // No Q/DQ between a Conv and its fused Relu.
  const ir::Node* conv1 = qtest::NodeNamed(*q, "conv1");
  ASSERT_NE(conv1, nullptr);
  ASSERT_EQ(conv1->output(0)->uses().size(), 1u);
  EXPECT_EQ(conv1->output(0)->uses()[0].user->op_type(), "Relu");
  // Names: outputs keep theirs; activation pairs and weights as agreed.
  EXPECT_EQ(q->graph->outputs()[0]->name(), m->graph->outputs()[0]->name());
  EXPECT_NE(q->graph->FindValue("x_q"), nullptr);
  EXPECT_NE(q->graph->FindValue("x_dq"), nullptr);
  EXPECT_NE(q->graph->FindValue("w1_quantized"), nullptr);
  EXPECT_NE(q->graph->FindValue("w1_scale"), nullptr);
  EXPECT_NE(q->graph->FindValue("w1_zero_point"), nullptr);
  EXPECT_EQ(q->graph->FindValue("w1"), nullptr);  // float weight removed
  // Data movement shares its input's params: relu2 -> MaxPool -> Flatten, one scale.
  std::string r2 = m->graph->FindNode("relu2")->output(0)->name();
  std::string p = m->graph->FindNode("pool")->output(0)->name();
  std::string f = m->graph->FindNode("flatten")->output(0)->name();
  EXPECT_EQ(ScalarOf(*q, r2 + "_scale"), ScalarOf(*q, p + "_scale"));
  EXPECT_EQ(ScalarOf(*q, p + "_scale"), ScalarOf(*q, f + "_scale"));
  // Weights per output channel (int8, zero point 0); bias int32 with scale s_x * s_w.
  const ir::Tensor* ws = q->graph->FindValue("w2_scale")->initializer();
  ASSERT_EQ(ws->shape(), (std::vector<int64_t>{8}));
  const ir::Tensor* bq = q->graph->FindValue("b2_quantized")->initializer();
  EXPECT_EQ(bq->dtype(), DType::kInt32);
  const ir::Tensor* bs = q->graph->FindValue("b2_scale")->initializer();
  float sx = ScalarOf(*q, m->graph->FindNode("relu1")->output(0)->name() + "_scale");
  for (int c = 0; c < 8; ++c) EXPECT_FLOAT_EQ(bs->data<float>()[c], sx * ws->data<float>()[c]);
  // Activations uint8, relu outputs with zero point 0.
  const ir::Tensor* zp = q->graph->FindValue(r2 + "_zero_point")->initializer();
  EXPECT_EQ(zp->dtype(), DType::kUInt8);
  EXPECT_EQ(zp->data<uint8_t>()[0], 0);
  // Declared bound: uint8 activations, int8 per-channel weights on a 4-layer net.
  double nmse = CnnNmse(*q, *m);
  std::printf("[ info ] small CNN uint8/int8 NMSE %.3g\n", nmse);
  EXPECT_LT(nmse, 1e-3);
}

TEST(QuantizeStatic, Int8SymmetricActivationsAndPerTensorWeights) {
  auto m = SmallCnn();
  m->SetOpsetVersion("", 11);  // raised to 13 for per-axis DequantizeLinear
  std::vector<PassRun> runs;
  auto q = ApplyWithData(*m, "quantize-static{activation-type=int8,per-channel=false}",
                         {CnnDataFlat("int8", 2)}, &runs);
  EXPECT_EQ(q->OpsetVersion(""), 13);
  const ir::Tensor* zp = q->graph->FindValue("x_zero_point")->initializer();
  EXPECT_EQ(zp->dtype(), DType::kInt8);
  EXPECT_EQ(zp->data<int8_t>()[0], 0);
  EXPECT_EQ(q->graph->FindValue("w1_scale")->initializer()->numel(), 1u);
  qtest::ExpectCleanQdq(*q);
  double nmse = CnnNmse(*q, *m);
  std::printf("[ info ] small CNN int8/int8 per-tensor NMSE %.3g\n", nmse);
  EXPECT_LT(nmse, 3e-3);
}

TEST(QuantizeStatic, ValuesReadOnlyByFloatOpsGetNoQdq) {
  // x -> MatMul -> Softmax -> Reshape -> MatMul -> y: the first MatMul's output and the
  // Softmax output are read only by float ops; the Reshape after Softmax stays float and
  // the second MatMul's input is quantized after it.
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 4, 16});
  auto* m1 = b.Op("MatMul", {x, b.Const("w1", Uniform({16, 8}, 7))}, {}, "mm1");
  auto* s = b.Op("Softmax", {m1}, {Attribute::Int("axis", -1)}, "softmax");
  auto* r = b.Op("Reshape", {s, b.Const("shape", ir::Int64s({4, 8}))}, {}, "reshape");
  b.Output(b.Op("MatMul", {r, b.Const("w2", Uniform({8, 4}, 8))}, {}, "mm2"));
  auto m = b.Build();
  ir::InferShapes(*m);
  std::string data = qtest::SaveData(qtest::TempDir("float"), "d.npz",
                                     {{"x", Uniform({16, 4, 16}, 9)}});
  std::vector<PassRun> runs;
  auto q = ApplyWithData(*m, "quantize-static", {data}, &runs);
  EXPECT_EQ(runs[0].stats["matmul-quantized"], 2);
  EXPECT_EQ(runs[0].stats["qdq-pairs"], 2);
  EXPECT_EQ(Count(*q, "QuantizeLinear"), 2);
  EXPECT_NE(q->graph->FindValue("x_q"), nullptr);
  EXPECT_NE(q->graph->FindValue(r->name() + "_q"), nullptr);
  EXPECT_EQ(q->graph->FindValue(m1->name() + "_q"), nullptr);
  EXPECT_EQ(q->graph->FindValue(s->name() + "_q"), nullptr);
  qtest::ExpectCleanQdq(*q);
}

TEST(QuantizeStatic, AddRunsIntegerOnlyWithTwoActivationInputs) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 4, 6, 6});
  auto conv = [&](ir::Value* in, uint32_t seed, const std::string& name) {
    return b.Op("Conv", {in, b.Const(name + "_w", Uniform({4, 4, 1, 1}, seed))}, {}, name);
  };
  auto* a = conv(x, 10, "ca");
  auto* c = conv(x, 11, "cb");
  auto* add = b.Op("Add", {a, c}, {}, "add");  // both inputs quantized: integer
  auto* d = conv(add, 12, "cc");
  b.Output(b.Op("Add", {d, b.Const("k", Uniform({1, 4, 1, 1}, 13))}, {}, "add_const"));
  auto m = b.Build();
  ir::InferShapes(*m);
  std::string data = qtest::SaveData(qtest::TempDir("add"), "d.npz",
                                     {{"x", Uniform({16, 4, 6, 6}, 14)}});
  std::vector<PassRun> runs;
  auto q = ApplyWithData(*m, "quantize-static", {data}, &runs);
  EXPECT_EQ(runs[0].stats["add-quantized"], 1);
  EXPECT_EQ(runs[0].stats["conv-quantized"], 3);
  // x, ca, cb, add: the constant Add stays float and its input (cc's output) too.
  EXPECT_EQ(runs[0].stats["qdq-pairs"], 4);
  EXPECT_NE(q->graph->FindValue(add->name() + "_q"), nullptr);
  EXPECT_EQ(q->graph->FindValue(d->name() + "_q"), nullptr);
  qtest::ExpectCleanQdq(*q);
  runtime::NamedTensors feed = {{"x", Uniform({1, 4, 6, 6}, 15)}};
  EXPECT_LT(Nmse(RunModel(*q, feed)[0].second, RunModel(*m, feed)[0].second), 1e-3);
}

// x -> Relu(pre) -> [Conv -> Relu -> Conv -> Add(skip = pre) -> Relu] -> tail: a ResNet
// basic block whose skip is a float op's output (a Relu not fused into any producer).
// tail_conv=false: the block output is the graph output.
std::unique_ptr<ir::Model> ResidualBlock(bool tail_conv) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 4, 6, 6});
  auto conv = [&](ir::Value* in, uint32_t seed, const std::string& name, int64_t k) {
    int64_t p = k / 2;
    return b.Op("Conv", {in, b.Const(name + "_w", Uniform({4, 4, k, k}, seed, -0.4f, 0.4f)),
                         b.Const(name + "_b", Uniform({4}, seed + 1, -0.1f, 0.1f))},
                {Attribute::Ints("pads", {p, p, p, p})}, name);
  };
  auto* pre = b.Op("Relu", {x}, {}, "pre");
  auto* r1 = b.Op("Relu", {conv(pre, 20, "c1", 3)}, {}, "r1");
  auto* add = b.Op("Add", {conv(r1, 22, "c2", 3), pre}, {}, "add");
  auto* r2 = b.Op("Relu", {add}, {}, "r2");
  b.Output(tail_conv ? conv(r2, 24, "c3", 1) : r2);
  auto m = b.Build();
  ir::InferShapes(*m);
  return m;
}

TEST(QuantizeStatic, ResidualAddGetsQdqOnBothInputsAndOutputAndRunsInteger) {
  auto m = ResidualBlock(/*tail_conv=*/true);
  std::string data = qtest::SaveData(qtest::TempDir("resblock"), "d.npz",
                                     {{"x", Uniform({16, 4, 6, 6}, 26)}});
  std::vector<PassRun> runs;
  auto q = ApplyWithData(*m, "quantize-static", {data}, &runs);
  auto& st = runs[0].stats;
  EXPECT_EQ(st["conv-quantized"], 3);
  EXPECT_EQ(st["add-quantized"], 1);
  EXPECT_EQ(st["relu-fused"], 2);  // r1 into c1, r2 into the Add
  // pre (read by c1 and the Add), r1, c2's output, r2 (the Add's fused output).
  EXPECT_EQ(st["qdq-pairs"], 4);
  const ir::Node* add = qtest::NodeNamed(*q, "add");
  ASSERT_NE(add, nullptr);
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_NE(add->input(i)->producer(), nullptr);
    EXPECT_EQ(add->input(i)->producer()->op_type(), "DequantizeLinear") << i;
  }
  std::string pre = qtest::NodeNamed(*q, "pre")->output(0)->name();
  EXPECT_NE(q->graph->FindValue(pre + "_q"), nullptr);  // the skip, a float Relu output
  std::string r2 = qtest::NodeNamed(*q, "r2")->output(0)->name();
  EXPECT_NE(q->graph->FindValue(r2 + "_q"), nullptr);  // the Add [+ Relu] output
  ASSERT_EQ(add->output(0)->uses().size(), 1u);  // no Q/DQ between Add and its Relu
  EXPECT_EQ(add->output(0)->uses()[0].user->op_type(), "Relu");
  qtest::ExpectCleanQdq(*q);
  runtime::NamedTensors feed = {{"x", Uniform({1, 4, 6, 6}, 27)}};
  ir::Tensor ref = RunModel(*m, feed)[0].second;
  double nmse_qdq = Nmse(RunModel(*q, feed)[0].second, ref);
  EXPECT_LT(nmse_qdq, 1e-3);

  // fuse-qdq: every Conv and the Add run integer; only pre's QuantizeLinear is left.
  std::vector<PassRun> fruns;
  auto f = ApplyWithData(*q, "fuse-qdq,eliminate-dead-nodes", {}, &fruns);
  EXPECT_EQ(Count(*f, "QLinearConv"), 3);
  EXPECT_EQ(Count(*f, "QLinearAdd"), 1);
  EXPECT_EQ(Count(*f, "Conv"), 0);
  EXPECT_EQ(Count(*f, "Add"), 0);
  EXPECT_EQ(Count(*f, "QuantizeLinear"), 1);
  EXPECT_EQ(Count(*f, "DequantizeLinear"), 0);
  double nmse_fused = Nmse(RunModel(*f, feed)[0].second, ref);
  std::printf("[ info ] residual block NMSE vs fp32: QDQ %.3g, fused %.3g\n", nmse_qdq,
              nmse_fused);
  EXPECT_LT(nmse_fused, 1e-3);
}

TEST(QuantizeStatic, ResidualAddReadOnlyByFloatStaysFloat) {
  // Must not fire: the block output is a graph output, so the Add (and its Relu) would
  // only feed float readers: it stays float and c2's output gets no Q/DQ.
  auto m = ResidualBlock(/*tail_conv=*/false);
  std::string data = qtest::SaveData(qtest::TempDir("resblock_out"), "d.npz",
                                     {{"x", Uniform({16, 4, 6, 6}, 28)}});
  std::vector<PassRun> runs;
  auto q = ApplyWithData(*m, "quantize-static", {data}, &runs);
  EXPECT_EQ(runs[0].stats["conv-quantized"], 2);
  EXPECT_EQ(runs[0].stats["add-quantized"], 0);
  EXPECT_EQ(runs[0].stats["qdq-pairs"], 2);  // pre, r1
  const ir::Node* add = qtest::NodeNamed(*q, "add");
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(add->input(0)->producer()->op_type(), "Conv");
  EXPECT_EQ(add->input(1)->producer()->op_type(), "Relu");
  qtest::ExpectCleanQdq(*q);
}

TEST(QuantizeStatic, MustNotFireWithoutFloatWeightsOrWhenAllExcluded) {
  // No Conv/MatMul/Gemm: unchanged, and the (missing) data file is never opened.
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2, 4});
  b.Output(b.Op("Softmax", {b.Op("Relu", {x})}));
  auto plain = b.Build();
  std::vector<PassRun> runs;
  auto q = ApplyWithData(*plain, "quantize-static", {"/nonexistent/calib.npz"}, &runs);
  EXPECT_FALSE(runs[0].changed);
  EXPECT_EQ(Count(*q, "QuantizeLinear"), 0);
  // Everything excluded: unchanged.
  auto m = SmallCnn();
  q = ApplyWithData(*m, "quantize-static{exclude=*}", {CnnDataFlat("excl", 3)}, &runs);
  EXPECT_FALSE(runs[0].changed);
  EXPECT_EQ(Count(*q, "QuantizeLinear") + Count(*q, "DequantizeLinear"), 0);
  EXPECT_EQ(q->OpsetVersion(""), m->OpsetVersion(""));
}

TEST(QuantizeStatic, ExcludeKeepsMatchingNodesFloat) {
  auto m = SmallCnn();
  std::vector<PassRun> runs;
  auto q = ApplyWithData(*m, "quantize-static{exclude=conv2|fc}", {CnnDataFlat("ex2", 4)}, &runs);
  EXPECT_EQ(runs[0].stats["conv-quantized"], 1);
  EXPECT_EQ(runs[0].stats["kept-float"], 2);
  EXPECT_NE(q->graph->FindValue("w2"), nullptr);  // conv2 keeps its float weight
  EXPECT_NE(q->graph->FindValue("w3"), nullptr);
  EXPECT_EQ(q->graph->FindValue("w1"), nullptr);
  // conv2 is float, so relu1's output is read by no integer op: no Q/DQ there; MaxPool and
  // Flatten have no quantized input and stay float too.
  EXPECT_EQ(Count(*q, "QuantizeLinear"), 1);
  qtest::ExpectCleanQdq(*q);
}

TEST(QuantizeStatic, WithoutDataIsAClearUsageError) {
  auto m = SmallCnn();
  try {
    qtest::ApplyWithData(*m, "quantize-static", {});
    ADD_FAILURE() << "no data must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("quantize-static"), std::string::npos) << e.what();
  }
  // The pass itself (not only the pipeline) refuses, naming itself.
  auto pass = CreatePass("quantize-static", {});
  PassContext ctx;
  auto copy = m->Clone();
  try {
    pass->Run(*copy, ctx);
    ADD_FAILURE() << "no data must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("quantize-static"), std::string::npos) << e.what();
  }
  EXPECT_THROW(CreatePass("quantize-static", {{"method", "median"}}), Error);
  EXPECT_THROW(CreatePass("quantize-static", {{"smoothquant-alpha", "2"}}), Error);
}

// ---- SmoothQuant ----------------------------------------------------------------------

// x[1, T, K] -> LayerNormalization(gamma with outlier channels) -> two MatMuls.
std::unique_ptr<ir::Model> LayerNormTwoHeads(int64_t T, int64_t K) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, T, K});
  ir::Tensor gamma = Uniform({K}, 20, 0.5f, 1.5f);
  for (int64_t j = 0; j < K; j += 8) gamma.mutable_data<float>()[j] = 25.f;
  auto* ln = b.Op("LayerNormalization",
                  {x, b.Const("gamma", gamma), b.Const("beta", Uniform({K}, 21, -0.2f, 0.2f))},
                  {Attribute::Int("axis", -1)}, "ln");
  b.Output(b.Op("MatMul", {ln, b.Const("wq", Uniform({K, 16}, 22))}, {}, "q_proj"));
  b.Output(b.Op("MatMul", {ln, b.Const("wk", Uniform({K, 16}, 23))}, {}, "k_proj"));
  auto m = b.Build();
  ir::InferShapes(*m);
  return m;
}

TEST(SmoothQuant, FoldsIntoLayerNormAndKeepsTheFunction) {
  const int64_t T = 8, K = 32;
  auto m = LayerNormTwoHeads(T, K);
  calibrate::DataSet data =
      calibrate::DataSet::FromTensors({{"x", Gaussian({16, T, K}, 24)}}, *m->graph);
  auto s = m->Clone();
  SmoothQuantOptions o;
  SmoothQuantResult r = ApplySmoothQuant(*s, data, o);
  EXPECT_EQ(r.layers, 2);
  EXPECT_EQ(r.activations, 1);
  EXPECT_EQ(r.layernorm_folds, 1);
  EXPECT_EQ(r.muls_inserted, 0);
  ir::Verify(*s);
  EXPECT_EQ(Count(*s, "Mul"), 0);
  EXPECT_NE(s->graph->FindValue("gamma_smoothed"), nullptr);
  for (uint32_t seed = 30; seed < 34; ++seed) {
    runtime::NamedTensors feed = {{"x", Gaussian({1, T, K}, seed)}};
    auto want = RunModel(*m, feed);
    auto got = RunModel(*s, feed);
    for (size_t i = 0; i < want.size(); ++i) {
      double scale = 0;
      for (uint64_t k = 0; k < want[i].second.numel(); ++k)
        scale = std::max(scale, std::fabs(double(want[i].second.data<float>()[k])));
      EXPECT_LT(qtest::MaxAbsDiff(got[i].second, want[i].second) / scale, 1e-4);
    }
  }
}

TEST(SmoothQuant, LowersInt8ErrorOnOutlierChannels) {
  // x[1, T, K] graph input with 4 channels 40x larger -> MatMul: SmoothQuant inserts a Mul.
  const int64_t T = 16, K = 64, N = 32;
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, T, K});
  b.Output(b.Op("MatMul", {x, b.Const("w", Uniform({K, N}, 40))}, {}, "proj"));
  auto m = b.Build();
  ir::InferShapes(*m);
  std::string data = qtest::SaveData(qtest::TempDir("sq"), "d.npz",
                                     {{"x", Gaussian({32, T, K}, 41, 4, 40.f)}});
  // fp32 smoothed == unsmoothed.
  {
    calibrate::DataSet ds = calibrate::DataSet::Open({data}, *m->graph);
    auto s = m->Clone();
    SmoothQuantResult r = ApplySmoothQuant(*s, ds, SmoothQuantOptions{});
    EXPECT_EQ(r.muls_inserted, 1);
    runtime::NamedTensors feed = {{"x", Gaussian({1, T, K}, 42, 4, 40.f)}};
    auto want = RunModel(*m, feed)[0].second;
    double scale = 0;
    for (uint64_t k = 0; k < want.numel(); ++k)
      scale = std::max(scale, std::fabs(double(want.data<float>()[k])));
    EXPECT_LT(qtest::MaxAbsDiff(RunModel(*s, feed)[0].second, want) / scale, 1e-4);
  }
  std::vector<PassRun> runs;
  auto plain = ApplyWithData(*m, "quantize-static{activation-type=int8}", {data}, &runs);
  auto smooth = ApplyWithData(*m, "quantize-static{activation-type=int8,smoothquant=true}",
                              {data}, &runs);
  EXPECT_EQ(runs[0].stats["smoothed-layers"], 1);
  EXPECT_EQ(runs[0].stats["smoothed-mul-inserted"], 1);
  EXPECT_FALSE(runs[0].details.empty());
  double e_plain = 0, e_smooth = 0;
  for (uint32_t seed = 50; seed < 54; ++seed) {
    runtime::NamedTensors feed = {{"x", Gaussian({1, T, K}, seed, 4, 40.f)}};
    auto want = RunModel(*m, feed)[0].second;
    e_plain += Nmse(RunModel(*plain, feed)[0].second, want);
    e_smooth += Nmse(RunModel(*smooth, feed)[0].second, want);
  }
  std::printf("[ info ] outlier MatMul int8 NMSE: plain %.3g, smoothquant %.3g\n", e_plain / 4,
              e_smooth / 4);
  EXPECT_LT(e_smooth, 0.7 * e_plain);
}

// A MobileNetV3 block as exporters write it: Conv -> decomposed HardSwish (Add/Clip/Div/Mul)
// -> depthwise Conv -> squeeze-excite (GlobalAveragePool, Conv, Relu, Conv, decomposed
// HardSigmoid, Mul) -> 1x1 Conv.
std::unique_ptr<ir::Model> MobileNetV3Block() {
  GraphBuilder b;
  auto sc = [&](const std::string& n, float v) { return b.Const(n, ir::FloatTensor({}, {v})); };
  auto hsig = [&](ir::Value* v, const std::string& p) {
    auto* a = b.Op("Add", {v, sc(p + "_3", 3.f)});
    auto* c = b.Op("Clip", {a, sc(p + "_0", 0.f), sc(p + "_6", 6.f)});
    return b.Op("Div", {c, sc(p + "_d6", 6.f)});
  };
  auto* x = b.Input("x", DType::kFloat32, {1, 8, 12, 12});
  auto* c1 = b.Op("Conv", {x, b.Const("w1", Uniform({16, 8, 3, 3}, 41, -0.3f, 0.3f)),
                          b.Const("b1", Uniform({16}, 42, -0.2f, 0.2f))},
                  {Attribute::Ints("pads", {1, 1, 1, 1})}, "conv1");
  auto* h1 = b.Op("Mul", {c1, hsig(c1, "hs1")}, {}, "hswish1");
  auto* dw = b.Op("Conv", {h1, b.Const("wd", Uniform({16, 1, 3, 3}, 43, -0.6f, 0.6f)),
                          b.Const("bd", Uniform({16}, 44, -0.2f, 0.2f))},
                  {Attribute::Ints("pads", {1, 1, 1, 1}), Attribute::Int("group", 16)}, "dw");
  auto* gap = b.Op("GlobalAveragePool", {dw}, {}, "se_pool");
  auto* s1 = b.Op("Conv", {gap, b.Const("ws1", Uniform({4, 16, 1, 1}, 45, -0.5f, 0.5f)),
                           b.Const("bs1", Uniform({4}, 46, -0.1f, 0.1f))}, {}, "se_fc1");
  auto* s2 = b.Op("Conv", {b.Op("Relu", {s1}), b.Const("ws2", Uniform({16, 4, 1, 1}, 47, -0.5f, 0.5f)),
                           b.Const("bs2", Uniform({16}, 48, -0.1f, 0.1f))}, {}, "se_fc2");
  auto* gated = b.Op("Mul", {dw, hsig(s2, "hs2")}, {}, "se_mul");
  b.Output(b.Op("Conv", {gated, b.Const("w3", Uniform({8, 16, 1, 1}, 49, -0.4f, 0.4f)),
                         b.Const("b3", Uniform({8}, 50, -0.1f, 0.1f))}, {}, "project"));
  auto m = b.Build();
  m->SetOpsetVersion("", 14);
  ir::InferShapes(*m);
  return m;
}

TEST(QuantizeStatic, MobileNetV3BlockRunsIntegerThroughHardSwishAndSqueezeExcite) {
  auto m = MobileNetV3Block();
  std::string data = qtest::SaveData(qtest::TempDir("mbv3"), "d.npz",
                                     {{"x", Uniform({16, 8, 12, 12}, 51, -2.f, 2.f)}});
  std::vector<PassRun> runs;
  auto q = ApplyWithData(*m, "fuse-hardswish,quantize-static", {data}, &runs);
  EXPECT_EQ(runs[0].stats["hardswish-fused"], 1);
  EXPECT_EQ(runs[0].stats["hardsigmoid-fused"], 1);
  EXPECT_EQ(runs[1].stats["conv-quantized"], 5);
  EXPECT_EQ(runs[1].stats["lookup-quantized"], 2);  // HardSwish, HardSigmoid
  EXPECT_EQ(runs[1].stats["mul-quantized"], 1);     // the squeeze-excite gate
  qtest::ExpectCleanQdq(*q);

  std::vector<PassRun> fruns;
  auto f = ApplyWithData(*q, "fuse-qdq,eliminate-dead-nodes", {}, &fruns);
  EXPECT_EQ(fruns[0].stats["fused-lookup"], 2);
  EXPECT_EQ(fruns[0].stats["fused-mul"], 1);
  // Nothing float is left between the input's Q and the output: every op is integer.
  for (const char* op : {"Conv", "HardSwish", "HardSigmoid", "Mul", "GlobalAveragePool",
                         "DequantizeLinear"})
    EXPECT_EQ(Count(*f, op), 0) << op;
  EXPECT_EQ(Count(*f, "QLinearLookup"), 2);
  EXPECT_EQ(Count(*f, "QLinearMul"), 1);

  double worst_qdq = 0, worst_fused = 0;
  for (uint32_t s = 60; s < 64; ++s) {
    runtime::NamedTensors feed = {{"x", Uniform({1, 8, 12, 12}, s, -2.f, 2.f)}};
    ir::Tensor ref = RunModel(*m, feed)[0].second;
    worst_qdq = std::max(worst_qdq, Nmse(RunModel(*q, feed)[0].second, ref));
    worst_fused = std::max(worst_fused, Nmse(RunModel(*f, feed)[0].second, ref));
  }
  std::printf("[ info ] MobileNetV3 block NMSE vs fp32: QDQ %.3g, fused %.3g\n", worst_qdq,
              worst_fused);
  EXPECT_LT(worst_qdq, 2e-3);
  EXPECT_LT(worst_fused, 2e-3);
}

// An FPN merge: x -> Conv -> Relu -> Resize(x2) -> Concat(with a 1x1 Conv of x2) -> Conv.
std::unique_ptr<ir::Model> FpnMerge(const std::string& resize_mode) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 4, 6, 6});
  auto* x2 = b.Input("x2", DType::kFloat32, {1, 4, 12, 12});
  auto* c1 = b.Op("Conv", {x, b.Const("w1", Uniform({8, 4, 3, 3}, 71, -0.5f, 0.5f))},
                  {Attribute::Ints("pads", {1, 1, 1, 1})}, "conv1");
  auto* r1 = b.Op("Relu", {c1}, {}, "relu1");
  auto* up = b.Op("Resize", {r1, nullptr, b.Const("scales", ir::Tensor::FromVector(
                                                                DType::kFloat32, {4}, std::vector<float>{1, 1, 2, 2}))},
                  {Attribute::String("mode", resize_mode),
                   Attribute::String("coordinate_transformation_mode", "asymmetric"),
                   Attribute::String("nearest_mode", "floor")},
                  "up");
  auto* c2 = b.Op("Conv", {x2, b.Const("w2", Uniform({8, 4, 1, 1}, 72, -0.5f, 0.5f))}, {}, "conv2");
  auto* cat = b.Op("Concat", {up, c2}, {Attribute::Int("axis", 1)}, "cat");
  b.Output(b.Op("Conv", {cat, b.Const("w3", Uniform({4, 16, 3, 3}, 73, -0.3f, 0.3f))},
                {Attribute::Ints("pads", {1, 1, 1, 1})}, "conv3"));
  auto m = b.Build();
  ir::InferShapes(*m);
  return m;
}

TEST(QuantizeStatic, NearestResizeSharesParamsAndRunsOnUint8AfterFuseQdq) {
  auto m = FpnMerge("nearest");
  std::string data = qtest::SaveData(qtest::TempDir("fpn"), "d.npz",
                                     {{"x", Uniform({16, 4, 6, 6}, 74)}, {"x2", Uniform({16, 4, 12, 12}, 75)}});
  std::vector<PassRun> runs;
  auto q = ApplyWithData(*m, "quantize-static", {data}, &runs);
  EXPECT_TRUE(runs[0].changed);
  EXPECT_EQ(runs[0].stats["conv-quantized"], 3);
  EXPECT_EQ(runs[0].stats["data-movement-quantized"], 2);  // Resize, Concat
  qtest::ExpectCleanQdq(*q);
  // One shared parameter set: the Resize's input and output Q nodes use the same scale.
  const ir::Node* rs = nullptr;
  for (ir::Node* n : q->graph->nodes())
    if (n->op_type() == "Resize") rs = n;
  ASSERT_NE(rs, nullptr);
  ASSERT_EQ(rs->input(0)->producer()->op_type(), "DequantizeLinear");
  const ir::Value* s_in = rs->input(0)->producer()->input(1);
  const ir::Value* s_out = rs->output(0)->uses()[0].user->input(1);
  ASSERT_TRUE(s_in->initializer() && s_out->initializer());
  EXPECT_EQ(s_in->initializer()->data<float>()[0], s_out->initializer()->data<float>()[0]);

  std::vector<PassRun> fruns;
  auto f = ApplyWithData(*q, "fuse-qdq,eliminate-dead-nodes", {}, &fruns);
  EXPECT_TRUE(fruns[0].changed);
  EXPECT_EQ(fruns[0].stats["fused-data-movement"], 2);
  EXPECT_EQ(fruns[0].stats["fused-float-output"], 1);  // conv3 writes the float output
  EXPECT_EQ(Count(*f, "DequantizeLinear"), 0);
  for (ir::Node* n : f->graph->nodes()) {
    if (n->op_type() == "Resize") {
      EXPECT_EQ(n->input(0)->producer()->op_type(), "QLinearConv");
    }
  }
  double worst_qdq = 0, worst_fused = 0, qdq_vs_fused = 0;
  for (uint32_t s = 80; s < 84; ++s) {
    runtime::NamedTensors feed = {{"x", Uniform({1, 4, 6, 6}, s)}, {"x2", Uniform({1, 4, 12, 12}, s + 50)}};
    ir::Tensor ref = RunModel(*m, feed)[0].second;
    ir::Tensor qy = RunModel(*q, feed)[0].second, fy = RunModel(*f, feed)[0].second;
    worst_qdq = std::max(worst_qdq, Nmse(qy, ref));
    worst_fused = std::max(worst_fused, Nmse(fy, ref));
    qdq_vs_fused = std::max(qdq_vs_fused, Nmse(fy, qy));
  }
  std::printf("[ info ] FPN merge NMSE vs fp32: QDQ %.3g, fused %.3g (fused vs QDQ %.3g)\n",
              worst_qdq, worst_fused, qdq_vs_fused);
  EXPECT_LT(worst_qdq, 2e-3);
  EXPECT_LT(worst_fused, 2e-3);
  EXPECT_LT(qdq_vs_fused, 1e-4);
}

TEST(QuantizeStatic, LinearResizeStaysFloat) {
  // Must not fire on Resize: linear interpolation would requantize, so it reads float
  // and the Concat after it (one float input) stays float too.
  auto m = FpnMerge("linear");
  std::string data = qtest::SaveData(qtest::TempDir("fpnlin"), "d.npz",
                                     {{"x", Uniform({16, 4, 6, 6}, 74)}, {"x2", Uniform({16, 4, 12, 12}, 75)}});
  std::vector<PassRun> runs;
  auto q = ApplyWithData(*m, "quantize-static", {data}, &runs);
  EXPECT_EQ(runs[0].stats["data-movement-quantized"], 0);
  qtest::ExpectCleanQdq(*q);
  for (ir::Node* n : q->graph->nodes()) {
    if (n->op_type() == "Resize") {
      EXPECT_NE(n->input(0)->producer()->op_type(), "DequantizeLinear");
    }
  }
  auto f = ApplyWithData(*q, "fuse-qdq,eliminate-dead-nodes", {});
  EXPECT_EQ(Count(*f, "Resize"), 1);
  runtime::NamedTensors feed = {{"x", Uniform({1, 4, 6, 6}, 90)}, {"x2", Uniform({1, 4, 12, 12}, 91)}};
  EXPECT_LT(Nmse(RunModel(*f, feed)[0].second, RunModel(*m, feed)[0].second), 2e-3);
}

}  // namespace
}  // namespace edgepress::passes
