// The text dump: a golden string for a small model with an initializer, a Constant node,
// attributes of several kinds, omitted inputs, a subgraph and inferred types; plus
// determinism and escaping.
#include "ir/dump.h"

#include <gtest/gtest.h>

#include "ir/builder.h"
#include "ir/shape_inference.h"

namespace edgepress::ir {
namespace {

std::unique_ptr<Model> SmallModel() {
  GraphBuilder b;
  Value* x = b.InputShape("x", DType::kFloat32,
                          {Dim::Symbol("batch"), Dim::Known(3), Dim::Known(8), Dim::Known(8)});
  Value* c = b.Input("c", DType::kBool, {});
  Value* w = b.Const("w", Tensor(DType::kFloat32, {4, 3, 3, 3}));
  Value* y =
      b.Op("Conv", {x, w},
           {Attribute::Ints("strides", {1, 1}), Attribute::Ints("pads", {1, 1, 1, 1})}, "conv0");
  Value* hi = b.ConstNode("hi", FloatTensor({}, {6}));
  Node* clip = b.graph().AddNode("Clip", {y, nullptr, hi}, {"clipped"}, "clip0");
  Value* shape = b.Const("shape", Int64s({0, -1}));
  Value* flat = b.Op("Reshape", {clip->output(0), shape}, {}, "reshape0");
  auto then_g = std::make_shared<Graph>();
  then_g->name = "then";
  GraphBuilder tb(then_g.get());
  tb.Output(tb.Op("Relu", {flat}, {}, "relu_then"));
  auto else_g = std::make_shared<Graph>();
  else_g->name = "else";
  GraphBuilder eb(else_g.get());
  eb.Output(eb.Op("LeakyRelu", {flat}, {Attribute::Float("alpha", 0.1f)}, "leaky_else"));
  Value* out = b.Op(
      "If", {c},
      {Attribute::GraphValue("then_branch", then_g), Attribute::GraphValue("else_branch", else_g)},
      "if0");
  b.Output(out);
  auto m = b.Build();
  InferShapes(*m);
  return m;
}

TEST(DumpTest, GoldenSmallModel) {
  const char* expected =
      "model ir_version=8 producer=\"edgepress-builder\" opsets={ai.onnx:17}\n"
      "graph \"main\" {\n"
      "  input %x: f32[batch,3,8,8]\n"
      "  input %c: bool[]\n"
      "  init %w: f32[4,3,3,3]\n"
      "  init %shape: i64[2] = [0, -1]\n"
      "  %conv0: f32[batch,4,8,8] = Conv(%x, %w) {pads=[1,1,1,1], strides=[1,1]}  # conv0\n"
      "  %hi: f32[] = Constant() {value=tensor<f32[] = [6]>}  # hi_const\n"
      "  %clipped: f32[batch,4,8,8] = Clip(%conv0, _, %hi)  # clip0\n"
      "  %reshape0: f32[batch,256] = Reshape(%clipped, %shape)  # reshape0\n"
      "  %if0: f32[batch,256] = If(%c)  # if0\n"
      "    else_branch: graph \"else\" {\n"
      "      %leakyrelu0: f32[batch,256] = LeakyRelu(%reshape0) {alpha=0.1}  # leaky_else\n"
      "      output %leakyrelu0: f32[batch,256]\n"
      "    }\n"
      "    then_branch: graph \"then\" {\n"
      "      %relu0: f32[batch,256] = Relu(%reshape0)  # relu_then\n"
      "      output %relu0: f32[batch,256]\n"
      "    }\n"
      "  output %if0: f32[batch,256]\n"
      "}\n";
  EXPECT_EQ(DumpText(*SmallModel()), expected);
}

TEST(DumpTest, DeterministicAcrossClones) {
  auto m = SmallModel();
  auto c = m->Clone();
  EXPECT_EQ(DumpText(*m), DumpText(*c));
  EXPECT_EQ(DumpText(*m->graph), DumpText(*c->graph));
}

TEST(DumpTest, LargeInitializersAreSummarisedAndOddNamesEscaped) {
  GraphBuilder b;
  Value* big = b.Const("big", Tensor(DType::kFloat32, {100, 100}));
  Value* odd = b.Input("in put\"1", DType::kInt8, {2});
  Tensor q = Tensor(DType::kInt8, {4});
  q.quant = QuantParams{QuantParams::Granularity::kPerChannel, 0, 0, {0.5f, 0.25f, 1, 2}, {}};
  Value* qw = b.Const("qw", q);
  b.Output(b.Op("Add", {odd, qw}, {Attribute::String("note", "a\nb")}, "add"));
  b.Output(big);
  std::string text = DumpText(b.graph());
  EXPECT_NE(text.find("  init %big: f32[100,100]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  input %\"in put\\\"1\": i8[2]\n"), std::string::npos) << text;
  EXPECT_NE(text.find("init %qw: i8[4] = [0, 0, 0, 0] quant=per-channel(axis=0, 4 scales)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("{note=\"a\\x0ab\"}"), std::string::npos) << text;
  // DumpNode is the same line, for error messages.
  EXPECT_EQ(DumpNode(*b.graph().nodes()[0]),
            "%add0 = Add(%\"in put\\\"1\", %qw) {note=\"a\\x0ab\"}  # add");
}

}  // namespace
}  // namespace edgepress::ir
