// drop-blocks (depth reduction for a distillation student): on a builder graph of three
// identical residual blocks it keeps blocks 0 and 2 and computes exactly what a graph
// built with only those two does; on the digits transformer (2 pre-LN encoder layers) it
// drops layer 1 and keeps layer 0's weights; it does not fire on the digits CNN, whose
// stages change width, nor on a single block; blocks that share a side input (the
// attention-mask bias of a BERT encoder) are found too.
#include <gtest/gtest.h>

#include "formats/onnx/onnx.h"
#include "ir/verifier.h"
#include "pass_test_util.h"

namespace edgepress::passes {
namespace {

using ir::DType;
using ir::GraphBuilder;
using testing::Apply;
using testing::CountOps;
using testing::Evaluate;
using testing::RandomTensor;

// x -> (x + Relu(x W_i)) for each i in `blocks` -> y.
std::unique_ptr<ir::Model> Residual(const std::vector<int>& blocks) {
  GraphBuilder b;
  ir::Value* x = b.Input("x", DType::kFloat32, {2, 4});
  for (int i : blocks) {
    ir::Value* w = b.Const("w" + std::to_string(i), RandomTensor({4, 4}, 10 + i));
    x = b.Op("Add", {x, b.Op("Relu", {b.Op("MatMul", {x, w})})});
  }
  b.Output(b.Op("Neg", {x}));
  return b.Build();
}

TEST(DropBlocks, KeepsEveryOtherBlockExactly) {
  auto three = Residual({0, 1, 2});
  std::vector<PassRun> runs;
  auto half = Apply(*three, "drop-blocks", &runs);
  EXPECT_TRUE(runs[0].changed);
  EXPECT_EQ(runs[0].stats["blocks-found"], 3);
  EXPECT_EQ(runs[0].stats["blocks-dropped"], 1);
  EXPECT_EQ(runs[0].stats["params-removed"], 16);
  EXPECT_EQ(CountOps(*half, "MatMul"), 2);
  EXPECT_EQ(half->graph->FindValue("w1"), nullptr);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({2, 4}, 3)}};
  auto want = Evaluate(*Residual({0, 2}), feeds), got = Evaluate(*half, feeds);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got.begin()->second == want.begin()->second);
  // stride 3 keeps only block 0.
  auto third = Apply(*three, "drop-blocks{stride=3}", &runs);
  EXPECT_EQ(runs[0].stats["blocks-dropped"], 2);
  EXPECT_TRUE(Evaluate(*third, feeds).begin()->second ==
              Evaluate(*Residual({0}), feeds).begin()->second);
}

TEST(DropBlocks, DoesNotFireWithoutARepeatedBlock) {
  // One block: nothing repeats.
  std::vector<PassRun> runs;
  Apply(*Residual({0}), "drop-blocks", &runs);
  EXPECT_FALSE(runs[0].changed);
  // The digits CNN: conv stages 1->16->32->32 differ in weight shapes (or change the
  // activation's shape), so no block can be skipped.
  auto cnn = formats::LoadOnnx(EDGEPRESS_SOURCE_DIR "/examples/digits/digits_cnn.onnx");
  auto same = Apply(*cnn, "fold-batchnorm,drop-blocks", &runs);
  EXPECT_FALSE(runs[1].changed);
  EXPECT_EQ(same->graph->num_nodes(), Apply(*cnn, "fold-batchnorm")->graph->num_nodes());
}

TEST(DropBlocks, HalvesTheDigitsTransformer) {
  auto t = formats::LoadOnnx(EDGEPRESS_SOURCE_DIR "/examples/digits/digits_transformer.onnx");
  std::vector<PassRun> runs;
  auto half = Apply(*t, "drop-blocks", &runs);
  ASSERT_TRUE(runs[0].changed);
  EXPECT_EQ(runs[0].stats["blocks-found"], 2);
  EXPECT_EQ(runs[0].stats["blocks-dropped"], 1);
  EXPECT_EQ(CountOps(*half, "LayerNormalization"), 3);  // 2 + 2 + final -> 2 + final
  EXPECT_EQ(CountOps(*half, "Softmax"), 1);
  int64_t kept = 0;
  for (const ir::Value* v : half->graph->initializers()) {
    EXPECT_EQ(v->name().find("blocks.1."), std::string::npos) << v->name();
    if (v->name().find("blocks.0.") == 0) {
      EXPECT_TRUE(*v->initializer() == *t->graph->FindValue(v->name())->initializer());
      ++kept;
    }
  }
  EXPECT_GT(kept, 5);
  // The student runs and gives logits of the teacher's shape.
  auto out = Evaluate(*half, {{"image", RandomTensor({3, 1, 8, 8}, 4, 0.f, 1.f)}});
  EXPECT_EQ(out.begin()->second.shape(), (std::vector<int64_t>{3, 10}));
}

// A BERT-style run: a side value computed once from a second input (like the attention-
// mask bias) is read by every block and by the head after the last, so two values cross
// every block boundary. The pass finds the blocks with that value as a side input and
// computes exactly the graph built with blocks 0 and 2.
std::unique_ptr<ir::Model> WithSideInput(const std::vector<int>& blocks) {
  GraphBuilder b;
  ir::Value* x = b.Input("x", DType::kFloat32, {2, 4});
  ir::Value* m = b.Input("m", DType::kFloat32, {2, 4});
  ir::Value* side = b.Op("Neg", {m});
  for (int i : blocks) {
    ir::Value* w = b.Const("w" + std::to_string(i), RandomTensor({4, 4}, 10 + i));
    x = b.Op("Add", {x, b.Op("Relu", {b.Op("Add", {b.Op("MatMul", {x, w}), side})})});
  }
  b.Output(b.Op("Mul", {x, side}));
  return b.Build();
}

TEST(DropBlocks, FindsBlocksThatShareASideInput) {
  auto three = WithSideInput({0, 1, 2});
  std::vector<PassRun> runs;
  auto half = Apply(*three, "drop-blocks", &runs);
  ASSERT_TRUE(runs[0].changed);
  EXPECT_EQ(runs[0].stats["blocks-found"], 3);
  EXPECT_EQ(runs[0].stats["blocks-dropped"], 1);
  EXPECT_EQ(runs[0].stats["params-removed"], 16);
  EXPECT_EQ(CountOps(*half, "Neg"), 1);  // the side value stays, read by the kept blocks
  EXPECT_EQ(half->graph->FindValue("w1"), nullptr);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({2, 4}, 3)},
                                          {"m", RandomTensor({2, 4}, 5)}};
  auto want = Evaluate(*WithSideInput({0, 2}), feeds), got = Evaluate(*half, feeds);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got.begin()->second == want.begin()->second);
  // A single block still does not fire, side input or not.
  Apply(*WithSideInput({0}), "drop-blocks", &runs);
  EXPECT_FALSE(runs[0].changed);
}

}  // namespace
}  // namespace edgepress::passes
