// Each cleanup pass on a tiny graph: it fires (changed, op counts, statistics), leaves a
// graph the verifier accepts, and computes the same function (exact for folding, 1e-5
// relative for rewrites that reassociate float math). Each pass also has a must-not-fire
// case.
#include <gtest/gtest.h>

#include "ir/error.h"
#include "pass_test_util.h"

namespace edgepress::passes {
namespace {

using ir::Attribute;
using ir::DType;
using ir::GraphBuilder;
using testing::Apply;
using testing::CountOps;
using testing::Evaluate;
using testing::MaxRelError;
using testing::RandomTensor;

TEST(FoldConstants, FoldsConstantChainsAndConstantNodes) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2, 3});
  auto* c1 = b.ConstNode("c1", ir::FloatTensor({3}, {1, 2, 3}));
  auto* c2 = b.Const("c2", ir::FloatTensor({3}, {10, 20, 30}));
  auto* sum = b.Op("Add", {c1, c2});  // constant
  auto* y = b.Op("Mul", {x, sum});    // not constant
  b.Output(y);
  auto m = b.Build();
  std::vector<PassRun> runs;
  auto folded = Apply(*m, "fold-constants", &runs);
  EXPECT_TRUE(runs[0].changed);
  EXPECT_EQ(CountOps(*folded, "Constant"), 0);
  EXPECT_EQ(CountOps(*folded, "Add"), 0);
  EXPECT_EQ(CountOps(*folded, "Mul"), 1);
  EXPECT_EQ(runs[0].stats["nodes-folded"], 1);
  EXPECT_EQ(runs[0].stats["constant-nodes"], 1);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({2, 3}, 1)}};
  EXPECT_EQ(MaxRelError(Evaluate(*folded, feeds), Evaluate(*m, feeds)), 0.0);
}

TEST(FoldConstants, KeepsOutputNames) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {3});
  auto* c = b.Op("Neg", {b.Const("c", ir::FloatTensor({3}, {1, 2, 3}))});
  b.Output(c);
  b.Output(b.Op("Abs", {x}));
  auto m = b.Build();
  std::string name = m->graph->outputs()[0]->name();
  auto folded = Apply(*m, "fold-constants,eliminate-dead-nodes");
  EXPECT_EQ(folded->graph->outputs()[0]->name(), name);
  ASSERT_NE(folded->graph->outputs()[0]->initializer(), nullptr);
  EXPECT_EQ(folded->graph->outputs()[0]->initializer()->ToDouble(),
            (std::vector<double>{-1, -2, -3}));
}

TEST(FoldConstants, DoesNotFoldQuantizationOrRuntimeInputs) {
  // A DequantizeLinear of constant int8 weights is the quantized model itself.
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2});
  auto* q = b.Const("q", ir::Tensor::FromVector(DType::kInt8, {2}, std::vector<int8_t>{3, -4}));
  auto* s = b.Const("s", ir::FloatTensor({}, {0.5f}));
  auto* w = b.Op("DequantizeLinear", {q, s});
  b.Output(b.Op("Mul", {x, w}));
  auto m = b.Build();
  std::vector<PassRun> runs;
  auto out = Apply(*m, "fold-constants", &runs);
  EXPECT_FALSE(runs[0].changed);
  EXPECT_EQ(CountOps(*out, "DequantizeLinear"), 1);
}

TEST(EliminateDeadNodes, RemovesUnusedBranchesOnly) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {4});
  b.Op("Exp", {b.Op("Neg", {x})});  // dead chain
  b.Const("unused", ir::FloatTensor({1}, {1}));
  b.Output(b.Op("Relu", {x}));
  auto m = b.Build();
  std::vector<PassRun> runs;
  auto out = Apply(*m, "eliminate-dead-nodes", &runs);
  EXPECT_EQ(out->graph->num_nodes(), 1u);
  EXPECT_EQ(runs[0].stats["nodes-removed"], 2);
  EXPECT_EQ(runs[0].stats["initializers-removed"], 1);
  // Must not fire: nothing dead.
  auto again = Apply(*out, "eliminate-dead-nodes", &runs);
  EXPECT_FALSE(runs[0].changed);
}

TEST(RemoveIdentity, BypassesIdentityAndDropoutKeepingOutputName) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {4});
  auto* r = b.Op("Relu", {x});
  auto* d = b.Op("Dropout", {b.Op("Identity", {r})});
  b.Output(d);
  auto m = b.Build();
  std::string name = d->name();
  std::vector<PassRun> runs;
  auto out = Apply(*m, "remove-identity", &runs);
  EXPECT_EQ(runs[0].stats["removed"], 2);
  EXPECT_EQ(out->graph->num_nodes(), 1u);
  EXPECT_EQ(out->graph->outputs()[0]->name(), name);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({4}, 2)}};
  EXPECT_EQ(MaxRelError(Evaluate(*out, feeds), Evaluate(*m, feeds)), 0.0);
}

TEST(RemoveIdentity, KeepsIdentityBetweenInputAndOutput) {
  // Must not fire: removing it would rename the graph input or output.
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {4});
  b.Output(b.Op("Identity", {x}));
  auto m = b.Build();
  std::vector<PassRun> runs;
  Apply(*m, "remove-identity", &runs);
  EXPECT_FALSE(runs[0].changed);
}

std::unique_ptr<ir::Model> ConvBn(bool bias, bool shared_output) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 3, 6, 6});
  std::vector<ir::Value*> ins = {x, b.Const("w", RandomTensor({4, 3, 3, 3}, 3))};
  if (bias) ins.push_back(b.Const("b", RandomTensor({4}, 4)));
  auto* conv = b.Op("Conv", ins, {Attribute::Ints("pads", {1, 1, 1, 1})});
  auto* bn = b.Op("BatchNormalization",
                  {conv, b.Const("gamma", RandomTensor({4}, 5, 0.5f, 1.5f)),
                   b.Const("beta", RandomTensor({4}, 6)), b.Const("mean", RandomTensor({4}, 7)),
                   b.Const("var", RandomTensor({4}, 8, 0.1f, 2.f))},
                  {Attribute::Float("epsilon", 1e-3f)});
  b.Output(bn);
  if (shared_output) b.Output(conv);
  return b.Build();
}

TEST(FoldBatchNorm, FoldsIntoConvWithAndWithoutBias) {
  for (bool bias : {false, true}) {
    auto m = ConvBn(bias, false);
    std::vector<PassRun> runs;
    auto out = Apply(*m, "fold-batchnorm,eliminate-dead-nodes", &runs);
    EXPECT_TRUE(runs[0].changed);
    EXPECT_EQ(runs[0].stats["conv-folded"], 1);
    EXPECT_EQ(CountOps(*out, "BatchNormalization"), 0);
    EXPECT_EQ(CountOps(*out, "Conv"), 1);
    EXPECT_EQ(out->graph->outputs()[0]->name(), m->graph->outputs()[0]->name());
    std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 3, 6, 6}, 9)}};
    EXPECT_LT(MaxRelError(Evaluate(*out, feeds), Evaluate(*m, feeds)), 1e-5) << bias;
  }
}

TEST(FoldBatchNorm, DoesNotFoldWhenConvOutputIsAlsoUsed) {
  // Must not fire: the un-normalised conv output is itself a graph output.
  auto m = ConvBn(true, true);
  std::vector<PassRun> runs;
  Apply(*m, "fold-batchnorm", &runs);
  EXPECT_FALSE(runs[0].changed);
}

TEST(FoldBatchNorm, FoldsIntoGemm) {
  for (int trans_b : {0, 1}) {
    GraphBuilder b;
    auto* x = b.Input("x", DType::kFloat32, {2, 5});
    auto* w = b.Const("w", RandomTensor(trans_b ? std::vector<int64_t>{3, 5}
                                                : std::vector<int64_t>{5, 3}, 10));
    auto* g = b.Op("Gemm", {x, w, b.Const("c", RandomTensor({3}, 11))},
                   {Attribute::Int("transB", trans_b)});
    b.Output(b.Op("BatchNormalization",
                  {g, b.Const("gamma", RandomTensor({3}, 12)), b.Const("beta", RandomTensor({3}, 13)),
                   b.Const("mean", RandomTensor({3}, 14)),
                   b.Const("var", RandomTensor({3}, 15, 0.1f, 1.f))}));
    auto m = b.Build();
    std::vector<PassRun> runs;
    auto out = Apply(*m, "fold-batchnorm", &runs);
    EXPECT_EQ(runs[0].stats["gemm-folded"], 1);
    std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({2, 5}, 16)}};
    EXPECT_LT(MaxRelError(Evaluate(*out, feeds), Evaluate(*m, feeds)), 1e-5) << trans_b;
  }
}

// ConvTranspose's weight is [Cin, M/group, kh, kw]: the BN channel of element (ci, j) is
// (ci / (Cin/group)) * M/group + j. Two groups and a 2x2/2 kernel (the detector's head).
TEST(FoldBatchNorm, FoldsIntoGroupedConvTranspose) {
  for (bool bias : {false, true}) {
    GraphBuilder b;
    auto* x = b.Input("x", DType::kFloat32, {1, 4, 3, 5});
    std::vector<ir::Value*> ins = {x, b.Const("w", RandomTensor({4, 3, 2, 2}, 20))};
    if (bias) ins.push_back(b.Const("b", RandomTensor({6}, 21)));
    auto* ct = b.Op("ConvTranspose", ins,
                    {Attribute::Ints("strides", {2, 2}), Attribute::Int("group", 2)});
    b.Output(b.Op("BatchNormalization",
                  {ct, b.Const("gamma", RandomTensor({6}, 22, 0.5f, 1.5f)),
                   b.Const("beta", RandomTensor({6}, 23)), b.Const("mean", RandomTensor({6}, 24)),
                   b.Const("var", RandomTensor({6}, 25, 0.1f, 2.f))}));
    auto m = b.Build();
    std::vector<PassRun> runs;
    auto out = Apply(*m, "fold-batchnorm,eliminate-dead-nodes", &runs);
    EXPECT_TRUE(runs[0].changed);
    EXPECT_EQ(runs[0].stats["conv-transpose-folded"], 1);
    EXPECT_EQ(CountOps(*out, "BatchNormalization"), 0);
    EXPECT_EQ(CountOps(*out, "ConvTranspose"), 1);
    std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 4, 3, 5}, 26)}};
    EXPECT_LT(MaxRelError(Evaluate(*out, feeds), Evaluate(*m, feeds)), 1e-5) << bias;
  }
}

TEST(FuseMatMulAdd, FusesRank2WithRowBias) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {3, 4});
  auto* mm = b.Op("MatMul", {x, b.Const("w", RandomTensor({4, 5}, 20))});
  b.Output(b.Op("Add", {b.Const("bias", RandomTensor({5}, 21)), mm}));
  auto m = b.Build();
  std::vector<PassRun> runs;
  auto out = Apply(*m, "fuse-matmul-add", &runs);
  EXPECT_EQ(runs[0].stats["fused"], 1);
  EXPECT_EQ(CountOps(*out, "Gemm"), 1);
  EXPECT_EQ(out->graph->num_nodes(), 1u);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({3, 4}, 22)}};
  EXPECT_LT(MaxRelError(Evaluate(*out, feeds), Evaluate(*m, feeds)), 1e-6);
}

TEST(FuseMatMulAdd, LeavesRank3Alone) {
  // Must not fire: Gemm is 2-D only.
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2, 3, 4});
  auto* mm = b.Op("MatMul", {x, b.Const("w", RandomTensor({4, 5}, 23))});
  b.Output(b.Op("Add", {mm, b.Const("bias", RandomTensor({5}, 24))}));
  std::vector<PassRun> runs;
  Apply(*b.Build(), "fuse-matmul-add", &runs);
  EXPECT_FALSE(runs[0].changed);
}

// Dynamic int8 transformers: DynamicQuantizeMatMul then Add(bias) at rank 3 → the bias
// becomes the op's input 4; a residual Add (not a constant) and an op that already has a
// bias are left alone.
TEST(FuseMatMulAdd, FoldsTheBiasAddIntoDynamicQuantizeMatMul) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2, 3, 8});
  auto* mm = b.Op("MatMul", {x, b.Const("w", RandomTensor({8, 8}, 40))});
  auto* biased = b.Op("Add", {b.Const("bias", RandomTensor({8}, 41)), mm});
  auto* mm2 = b.Op("MatMul", {biased, b.Const("w2", RandomTensor({8, 8}, 42))});
  b.Output(b.Op("Add", {mm2, x}));  // residual: must not become a bias
  auto m = b.Build();
  auto quantized = Apply(*m, "quantize-dynamic");
  ASSERT_EQ(CountOps(*quantized, "DynamicQuantizeMatMul"), 2);
  std::vector<PassRun> runs;
  auto out = Apply(*quantized, "fuse-matmul-add", &runs);
  EXPECT_TRUE(runs[0].changed);
  EXPECT_EQ(runs[0].stats["fused-dynamic-quantize"], 1);
  EXPECT_EQ(runs[0].stats["fused"], 1);
  EXPECT_EQ(CountOps(*out, "DynamicQuantizeMatMul"), 2);
  EXPECT_EQ(CountOps(*out, "Add"), 1);  // the residual
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({2, 3, 8}, 43, -2, 2)}};
  EXPECT_LT(MaxRelError(Evaluate(*out, feeds), Evaluate(*quantized, feeds)), 1e-5);
  // Applied again: the fused op has its bias, the residual Add is not a bias.
  Apply(*out, "fuse-matmul-add", &runs);
  EXPECT_FALSE(runs[0].changed);
}

// The GELU exporters write: (x * (erf(x / sqrt 2) + 1)) * 0.5
std::unique_ptr<ir::Model> GeluGraph(float sqrt2) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2, 8});
  auto* y = b.Op("Relu", {x});
  auto* d = b.Op("Div", {y, b.ConstNode("s", ir::FloatTensor({}, {sqrt2}))});
  auto* e = b.Op("Erf", {d});
  auto* a = b.Op("Add", {e, b.ConstNode("one", ir::FloatTensor({}, {1.f}))});
  auto* m1 = b.Op("Mul", {y, a});
  b.Output(b.Op("Mul", {m1, b.ConstNode("half", ir::FloatTensor({}, {0.5f}))}));
  return b.Build();
}

TEST(FuseGelu, FusesErfForm) {
  auto m = GeluGraph(1.4142135f);
  std::vector<PassRun> runs;
  auto out = Apply(*m, "fuse-gelu,eliminate-dead-nodes", &runs);
  EXPECT_EQ(runs[0].stats["fused"], 1);
  EXPECT_EQ(CountOps(*out, "Gelu"), 1);
  EXPECT_EQ(CountOps(*out, "Erf"), 0);
  EXPECT_EQ(out->OpsetVersion("com.microsoft"), 1);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({2, 8}, 30, -3, 3)}};
  EXPECT_LT(MaxRelError(Evaluate(*out, feeds), Evaluate(*m, feeds)), 1e-5);
}

TEST(FuseGelu, IgnoresOtherConstants) {
  // Must not fire: x / 2 is not GELU.
  std::vector<PassRun> runs;
  Apply(*GeluGraph(2.f), "fuse-gelu", &runs);
  EXPECT_FALSE(runs[0].changed);
}

// The tanh GELU GPT-2 and nn.GELU(approximate='tanh') export:
//   (x * (tanh(sqrt(2/pi) * (x + 0.044715 * x^3)) + 1)) * 0.5
// with x^3 as x * (x * x) (torch.onnx) or Pow(x, 3), and the 0.5 first or last.
std::unique_ptr<ir::Model> TanhGeluGraph(bool pow, bool half_first, float k = 0.044715f) {
  GraphBuilder b;
  auto* in = b.Input("x", DType::kFloat32, {2, 8});
  auto* x = b.Op("Relu", {in});  // x feeds five nodes, as in the exported graph
  auto c = [&](const char* name, float v) { return b.ConstNode(name, ir::FloatTensor({}, {v})); };
  auto* cube = pow ? b.Op("Pow", {x, c("three", 3.f)}) : b.Op("Mul", {x, b.Op("Mul", {x, x})});
  auto* inner = b.Op("Add", {x, b.Op("Mul", {c("k", k), cube})});
  auto* t = b.Op("Tanh", {b.Op("Mul", {c("s", 0.7978845608f), inner})});
  auto* a = b.Op("Add", {c("one", 1.f), t});
  if (half_first) {
    b.Output(b.Op("Mul", {b.Op("Mul", {x, c("half", 0.5f)}), a}));
  } else {
    b.Output(b.Op("Mul", {c("half", 0.5f), b.Op("Mul", {x, a})}));
  }
  return b.Build();
}

TEST(FuseGelu, FusesTanhFormIntoFastGelu) {
  for (bool pow : {false, true}) {
    for (bool half_first : {false, true}) {
      SCOPED_TRACE(std::string(pow ? "Pow" : "Mul") + (half_first ? ", 0.5 first" : ", 0.5 last"));
      auto m = TanhGeluGraph(pow, half_first);
      std::vector<PassRun> runs;
      auto out = Apply(*m, "fuse-gelu,eliminate-dead-nodes", &runs);
      EXPECT_TRUE(runs[0].changed);
      EXPECT_EQ(runs[0].stats["fused"], 1);
      EXPECT_EQ(runs[0].stats["fused-tanh"], 1);
      EXPECT_EQ(CountOps(*out, "FastGelu"), 1);
      EXPECT_EQ(CountOps(*out, "Gelu"), 0);  // the erf form is a different function
      EXPECT_EQ(CountOps(*out, "Tanh") + CountOps(*out, "Mul") + CountOps(*out, "Add") +
                    CountOps(*out, "Pow"),
                0);
      EXPECT_EQ(out->OpsetVersion("com.microsoft"), 1);
      std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({2, 8}, 31, -4, 4)}};
      EXPECT_LT(MaxRelError(Evaluate(*out, feeds), Evaluate(*m, feeds)), 1e-5);
    }
  }
}

TEST(FuseGelu, TanhFormWithOtherConstantsIsLeftAlone) {
  // Must not fire: 0.05 x^3 is not GELU's cubic term.
  std::vector<PassRun> runs;
  Apply(*TanhGeluGraph(false, false, 0.05f), "fuse-gelu", &runs);
  EXPECT_FALSE(runs[0].changed);
}

std::unique_ptr<ir::Model> LayerNormGraph(std::vector<int64_t> axes) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2, 3, 8});
  auto* mean = b.Op("ReduceMean", {x}, {Attribute::Ints("axes", axes)});
  auto* d = b.Op("Sub", {x, mean});
  auto* p = b.Op("Pow", {d, b.ConstNode("two", ir::FloatTensor({}, {2.f}))});
  auto* v = b.Op("ReduceMean", {p}, {Attribute::Ints("axes", axes)});
  auto* a = b.Op("Add", {v, b.ConstNode("eps", ir::FloatTensor({}, {1e-5f}))});
  auto* n = b.Op("Div", {d, b.Op("Sqrt", {a})});
  auto* g = b.Op("Mul", {n, b.Const("gamma", RandomTensor({8}, 40))});
  b.Output(b.Op("Add", {g, b.Const("beta", RandomTensor({8}, 41))}));
  auto m = b.Build();
  m->SetOpsetVersion("", 13);
  return m;
}

TEST(FuseLayerNorm, FusesDecompositionAndRaisesOpset) {
  auto m = LayerNormGraph({-1});
  std::vector<PassRun> runs;
  auto out = Apply(*m, "fuse-layernorm,eliminate-dead-nodes", &runs);
  EXPECT_EQ(runs[0].stats["fused"], 1);
  EXPECT_EQ(CountOps(*out, "LayerNormalization"), 1);
  EXPECT_EQ(out->graph->num_nodes(), 1u);
  EXPECT_EQ(out->OpsetVersion(""), 17);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({2, 3, 8}, 42)}};
  EXPECT_LT(MaxRelError(Evaluate(*out, feeds), Evaluate(*m, feeds)), 1e-5);
}

TEST(FuseLayerNorm, IgnoresReductionOverOtherAxes) {
  // Must not fire: normalising over axis 1 is not LayerNormalization(axis=-1).
  std::vector<PassRun> runs;
  Apply(*LayerNormGraph({1}), "fuse-layernorm", &runs);
  EXPECT_FALSE(runs[0].changed);
}

TEST(FuseActivation, FusesReluAfterConvAndClipAfterGemm) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 3, 5, 5});
  auto* conv = b.Op("Conv", {x, b.Const("w", RandomTensor({4, 3, 3, 3}, 50)),
                             b.Const("b", RandomTensor({4}, 51))});
  auto* r = b.Op("Relu", {conv});
  auto* flat = b.Op("Flatten", {r});
  auto* gemm = b.Op("Gemm", {flat, b.Const("w2", RandomTensor({36, 6}, 52))});
  b.Output(b.Op("Clip", {gemm, b.Const("lo", ir::FloatTensor({}, {-0.5f})),
                         b.Const("hi", ir::FloatTensor({}, {0.5f}))}));
  auto m = b.Build();
  std::vector<PassRun> runs;
  auto out = Apply(*m, "fuse-activation,eliminate-dead-nodes", &runs);
  EXPECT_EQ(runs[0].stats["fused"], 2);
  EXPECT_EQ(CountOps(*out, "FusedConv"), 1);
  EXPECT_EQ(CountOps(*out, "FusedGemm"), 1);
  EXPECT_EQ(CountOps(*out, "Relu") + CountOps(*out, "Clip"), 0);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 3, 5, 5}, 53)}};
  EXPECT_LT(MaxRelError(Evaluate(*out, feeds), Evaluate(*m, feeds)), 1e-6);
}

TEST(FuseActivation, LeavesOtherActivationsAndSharedOutputs) {
  // Must not fire: LeakyRelu has no clamp form, and a Conv output used twice must stay.
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 2, 4, 4});
  auto* c1 = b.Op("Conv", {x, b.Const("w1", RandomTensor({2, 2, 1, 1}, 54))});
  b.Output(b.Op("LeakyRelu", {c1}));
  auto* c2 = b.Op("Conv", {x, b.Const("w2", RandomTensor({2, 2, 1, 1}, 55))});
  b.Output(b.Op("Relu", {c2}));
  b.Output(c2);
  std::vector<PassRun> runs;
  Apply(*b.Build(), "fuse-activation", &runs);
  EXPECT_FALSE(runs[0].changed);
}

// MobileNetV3's activations: HardSwish after a conv, HardSigmoid (its alpha and beta) after
// a squeeze-excite 1x1 conv; both become FusedConv activations, same outputs as unfused.
TEST(FuseActivation, FusesHardSwishAndHardSigmoidAfterConv) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 3, 7, 9});
  auto* conv = b.Op("Conv", {x, b.Const("w", RandomTensor({8, 3, 3, 3}, 60)),
                             b.Const("b", RandomTensor({8}, 61))},
                    {Attribute::Ints("pads", {1, 1, 1, 1})});
  auto* hs = b.Op("HardSwish", {conv});
  auto* pool = b.Op("GlobalAveragePool", {hs});
  auto* fc = b.Op("Conv", {pool, b.Const("w2", RandomTensor({8, 8, 1, 1}, 62)),
                           b.Const("b2", RandomTensor({8}, 63))});
  auto* gate = b.Op("HardSigmoid", {fc}, {Attribute::Float("alpha", 0.3f),
                                          Attribute::Float("beta", 0.4f)});
  b.Output(b.Op("Mul", {hs, gate}));
  auto m = b.Build();
  std::vector<PassRun> runs;
  auto out = Apply(*m, "fuse-activation,eliminate-dead-nodes", &runs);
  EXPECT_EQ(runs[0].stats["fused"], 2);
  EXPECT_EQ(CountOps(*out, "FusedConv"), 2);
  EXPECT_EQ(CountOps(*out, "HardSwish") + CountOps(*out, "HardSigmoid") + CountOps(*out, "Conv"), 0);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 3, 7, 9}, 64, -4.f, 4.f)}};
  EXPECT_LT(MaxRelError(Evaluate(*out, feeds), Evaluate(*m, feeds)), 1e-5);
}

TEST(FuseActivation, LeavesHardSwishAfterGemmAndBetweenQdq) {
  // Must not fire: FusedGemm only clamps, and a HardSwish feeding QuantizeLinear is
  // quantize-static's table lookup (fuse-qdq's integer conv takes Relu/Clip only).
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2, 6});
  b.Output(b.Op("HardSwish", {b.Op("Gemm", {x, b.Const("w", RandomTensor({6, 4}, 65))})}));
  auto* img = b.Input("img", DType::kFloat32, {1, 2, 4, 4});
  auto* conv = b.Op("Conv", {img, b.Const("w2", RandomTensor({2, 2, 1, 1}, 66))});
  auto* hs = b.Op("HardSwish", {conv});
  b.Output(b.Op("QuantizeLinear", {hs, b.Const("s", ir::FloatTensor({}, {0.1f}))}));
  std::vector<PassRun> runs;
  Apply(*b.Build(), "fuse-activation", &runs);
  EXPECT_FALSE(runs[0].changed);
}

TEST(Pipeline, DefaultOptimizePipelineParses) {
  EXPECT_GE(ParsePipeline(kDefaultOptimizePipeline).size(), 5u);
}

TEST(Pipeline, ParsesOptionsAndRejectsTyposWithSuggestions) {
  auto steps = ParsePipeline(" fold-constants{max-bytes=1024}, fold-batchnorm ");
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].options[0], std::make_pair(std::string("max-bytes"), std::string("1024")));
  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      ParsePipeline(text);
      ADD_FAILURE() << "no error for " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("fold-batchnrom", "did you mean 'fold-batchnorm'");
  expect_error("fold-constants{max-byte=1}", "did you mean 'max-bytes'");
  expect_error("fold-constants{max-bytes=lots}", "expected an integer");
  expect_error("fold-constants{max-bytes=-1}", "must be in");
  expect_error("fold-constants,", "trailing ','");
  expect_error("fold-constants{max-bytes=1", "unterminated");
  expect_error("", "empty pipeline");
}

TEST(Pipeline, RegistryNamesAreKebabCaseAndDocumented) {
  for (const auto& e : AllPasses()) {
    EXPECT_FALSE(e.info.summary.empty()) << e.info.name;
    for (char c : e.info.name) EXPECT_TRUE(std::islower(c) || c == '-') << e.info.name;
    for (const auto& o : e.info.options) EXPECT_FALSE(o.help.empty()) << e.info.name << "." << o.name;
  }
}

}  // namespace
}  // namespace edgepress::passes
