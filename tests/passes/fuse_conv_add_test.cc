// fuse-conv-add (+ fuse-activation after it): a ResNet basic block (identity shortcut) and
// a downsampling block (projection shortcut computed after conv2) each become FusedConv
// nodes with Z and the Relu folded in, no Add or Relu left, the same function within
// 1e-5 relative, the graph output keeps its name, the verifier passes. Must-not-fire
// cases: a broadcast Z, a Conv output with a second reader, Add(conv, conv), a Relu
// between Conv and Add, a QDQ Conv (fuse-qdq's pattern).
// onnxruntime running the fused model is in onnx_fuse_conv_add_ort_test.cc.
#include <gtest/gtest.h>

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

std::vector<Attribute> Pad1() { return {Attribute::Ints("pads", {1, 1, 1, 1})}; }

// x -> [conv1 -> Relu -> conv2] + x -> Relu -> [conv3(s2) -> Relu -> conv4] + proj(s2) -> Relu
std::unique_ptr<ir::Model> ResidualNet() {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 8, 10, 10});
  auto* c1 = b.Op("Conv", {x, b.Const("w1", RandomTensor({8, 8, 3, 3}, 1)),
                           b.Const("b1", RandomTensor({8}, 2))}, Pad1());
  auto* c2 = b.Op("Conv", {b.Op("Relu", {c1}), b.Const("w2", RandomTensor({8, 8, 3, 3}, 3)),
                           b.Const("b2", RandomTensor({8}, 4))}, Pad1());
  auto* r2 = b.Op("Relu", {b.Op("Add", {c2, x})});
  auto* c3 = b.Op("Conv", {r2, b.Const("w3", RandomTensor({12, 8, 3, 3}, 5))},
                  {Attribute::Ints("pads", {1, 1, 1, 1}), Attribute::Ints("strides", {2, 2})});
  auto* c4 = b.Op("Conv", {b.Op("Relu", {c3}), b.Const("w4", RandomTensor({12, 12, 3, 3}, 6)),
                           b.Const("b4", RandomTensor({12}, 7))}, Pad1());
  // The shortcut is computed after conv4: the fused node must sit where the Add was.
  auto* proj = b.Op("Conv", {r2, b.Const("wp", RandomTensor({12, 8, 1, 1}, 8))},
                    {Attribute::Ints("strides", {2, 2})});
  b.Output(b.Op("Relu", {b.Op("Add", {proj, c4})}, {}, "out_relu"));
  return b.Build();
}

TEST(FuseConvAdd, FusesResidualAddsAndTheReluAfterThem) {
  auto m = ResidualNet();
  const std::string out_name = m->graph->outputs()[0]->name();
  std::vector<PassRun> runs;
  auto out = Apply(*m, "fuse-conv-add,fuse-activation,eliminate-dead-nodes", &runs);
  EXPECT_TRUE(runs[0].changed);
  EXPECT_EQ(runs[0].stats["fused"], 2);  // conv2 + x, conv4 + proj
  EXPECT_EQ(runs[1].stats["fused"], 4);  // conv1, conv3 and both Add Relus
  EXPECT_EQ(CountOps(*out, "Add"), 0);
  EXPECT_EQ(CountOps(*out, "Relu"), 0);
  EXPECT_EQ(CountOps(*out, "FusedConv"), 4);
  EXPECT_EQ(CountOps(*out, "Conv"), 1);  // the projection, read as Z
  int with_sum = 0;
  for (ir::Node* n : out->graph->nodes()) {
    if (n->op_type() != "FusedConv" || n->num_inputs() < 4 || !n->input(3)) continue;
    ++with_sum;
    EXPECT_EQ(n->attr_string("activation", ""), "Relu") << n->name;
  }
  EXPECT_EQ(with_sum, 2);
  EXPECT_EQ(out->graph->outputs()[0]->name(), out_name);
  EXPECT_EQ(out->OpsetVersion("com.microsoft"), 1);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 8, 10, 10}, 9)}};
  EXPECT_LT(MaxRelError(Evaluate(*out, feeds), Evaluate(*m, feeds)), 1e-5);
}

TEST(FuseConvAdd, AloneKeepsTheActivationOutside) {
  // Without fuse-activation the Relus stay as nodes after the FusedConv (no activation).
  auto m = ResidualNet();
  std::vector<PassRun> runs;
  auto out = Apply(*m, "fuse-conv-add,eliminate-dead-nodes", &runs);
  EXPECT_EQ(runs[0].stats["fused"], 2);
  EXPECT_EQ(CountOps(*out, "FusedConv"), 2);
  EXPECT_EQ(CountOps(*out, "Relu"), 4);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({1, 8, 10, 10}, 10)}};
  EXPECT_LT(MaxRelError(Evaluate(*out, feeds), Evaluate(*m, feeds)), 1e-5);
}

TEST(FuseConvAdd, InTheDefaultPipeline) {
  auto m = ResidualNet();
  auto out = Apply(*m, kDefaultOptimizePipeline);
  EXPECT_EQ(CountOps(*out, "Add") + CountOps(*out, "Relu"), 0);
}

TEST(FuseConvAdd, LeavesBroadcastsSharedOutputsAndPostActivationAdds) {
  // Must not fire: Z of another shape would broadcast (FusedConv does not), a Conv output
  // read twice must stay, Add(c, c) has no other operand, and Conv -> Relu -> Add adds
  // after the activation (FusedConv adds Z before it).
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 4, 6, 6});
  auto* bias = b.Input("chan", DType::kFloat32, {1, 4, 1, 1});
  auto conv = [&](const char* w, uint32_t seed) {
    return b.Op("Conv", {x, b.Const(w, RandomTensor({4, 4, 3, 3}, seed))}, Pad1());
  };
  b.Output(b.Op("Add", {conv("w1", 1), bias}));
  auto* c2 = conv("w2", 2);
  b.Output(b.Op("Add", {c2, x}));
  b.Output(c2);
  auto* c3 = conv("w3", 3);
  b.Output(b.Op("Add", {c3, c3}));
  b.Output(b.Op("Add", {b.Op("Relu", {conv("w4", 4)}), x}));
  std::vector<PassRun> runs;
  Apply(*b.Build(), "fuse-conv-add", &runs);
  EXPECT_FALSE(runs[0].changed);
}

TEST(FuseConvAdd, LeavesQdqConvsToFuseQdq) {
  // Must not fire: DQ -> Conv is fuse-qdq's integer pattern, which has no Z.
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {1, 2, 5, 5});
  auto* xq = b.Op("QuantizeLinear", {x, b.Const("s", ir::FloatTensor({}, {0.02f}))});
  auto* xd = b.Op("DequantizeLinear", {xq, b.Const("s2", ir::FloatTensor({}, {0.02f}))});
  auto* c = b.Op("Conv", {xd, b.Const("w", RandomTensor({2, 2, 1, 1}, 1))});
  b.Output(b.Op("Add", {c, x}));
  std::vector<PassRun> runs;
  Apply(*b.Build(), "fuse-conv-add", &runs);
  EXPECT_FALSE(runs[0].changed);
}

}  // namespace
}  // namespace edgepress::passes
