// Opset normalisation: attribute-form parameters of older opsets become synthesized
// constant inputs on import and attributes again on export; newer opsets stay untouched.
#include <gtest/gtest.h>

#include "formats/onnx/onnx.h"
#include "ir/error.h"
#include "tests/formats/onnx/proto_writer.h"

using namespace edgepress;
using namespace edgepress::test_util;

namespace {

Proto IntsAttr(const std::string& name, const std::vector<int64_t>& v) {
  Proto a;
  a.Bytes(onnxf::kAttrName, name);
  for (int64_t x : v) a.Varint(onnxf::kAttrInts, static_cast<uint64_t>(x));
  return a.Varint(onnxf::kAttrType, onnxf::kInts);
}
Proto FloatAttr(const std::string& name, float f) {
  return Proto().Bytes(onnxf::kAttrName, name).Float(onnxf::kAttrF, f).Varint(onnxf::kAttrType, onnxf::kFloat);
}

std::string OneNodeModel(const std::string& op, const std::vector<Proto>& attrs, int opset,
                         const std::vector<int64_t>& in_dims = {1, 4}) {
  Proto n;
  n.Bytes(onnxf::kNodeInput, "x").Bytes(onnxf::kNodeOutput, "y").Bytes(onnxf::kNodeName, "n0");
  n.Bytes(onnxf::kOpType, op);
  for (const auto& a : attrs) n.Msg(onnxf::kAttribute, a);
  Proto g;
  g.Msg(onnxf::kNode, n).Bytes(onnxf::kName, "g");
  g.Msg(onnxf::kInput, ValueInfo("x", in_dims));
  g.Msg(onnxf::kOutput, Proto().Bytes(onnxf::kViName, "y"));
  return ModelBytes(g, opset);
}

const ir::Node* OnlyNode(const ir::Model& m) { return m.graph->nodes().at(0); }

}  // namespace

TEST(OnnxOpset, SqueezeAxesAttributeBecomesInputAndBack) {
  std::string bytes = OneNodeModel("Squeeze", {IntsAttr("axes", {0})}, 11);
  auto m = formats::LoadOnnxFromBytes(bytes, "sq.onnx", "");
  const ir::Node* n = OnlyNode(*m);
  ASSERT_EQ(n->num_inputs(), 2u);
  EXPECT_FALSE(n->has_attr("axes"));
  ASSERT_TRUE(n->input(1)->synthesized);
  EXPECT_EQ(n->input(1)->initializer()->ToInt64(), (std::vector<int64_t>{0}));
  EXPECT_EQ(n->input(1)->initializer()->dtype(), ir::DType::kInt64);
  // Export at opset 11 restores the attribute and drops the synthesized initializer:
  // re-import of the export is the same IR, and the bytes are the original's.
  std::string out = formats::SerializeOnnx(*m);
  EXPECT_EQ(out.find("n0_axes"), std::string::npos);
  auto m2 = formats::LoadOnnxFromBytes(out, "sq2.onnx", "");
  EXPECT_EQ(formats::SerializeOnnx(*m2), out);
  // The same model at opset 13 would be left alone (axes stays an attribute, invalid
  // there, but import does not invent inputs for it).
  auto m13 = formats::LoadOnnxFromBytes(OneNodeModel("Squeeze", {IntsAttr("axes", {0})}, 13),
                                        "sq13.onnx", "");
  EXPECT_EQ(OnlyNode(*m13)->num_inputs(), 1u);
  EXPECT_TRUE(OnlyNode(*m13)->has_attr("axes"));
}

TEST(OnnxOpset, ClipMinMaxAndPadValue) {
  auto m = formats::LoadOnnxFromBytes(OneNodeModel("Clip", {FloatAttr("max", 6.0f)}, 10),
                                      "clip.onnx", "");
  const ir::Node* n = OnlyNode(*m);
  ASSERT_EQ(n->num_inputs(), 3u);
  EXPECT_EQ(n->input(1), nullptr);  // min omitted
  EXPECT_EQ(n->input(2)->initializer()->ToDouble(), (std::vector<double>{6.0}));
  EXPECT_EQ(n->input(2)->initializer()->dtype(), ir::DType::kFloat32);  // x is f32
  auto back = formats::LoadOnnxFromBytes(formats::SerializeOnnx(*m), "clip2.onnx", "");
  EXPECT_EQ(formats::SerializeOnnx(*back), formats::SerializeOnnx(*m));

  m = formats::LoadOnnxFromBytes(
      OneNodeModel("Pad", {IntsAttr("pads", {0, 1, 0, 1}), FloatAttr("value", 2.5f)}, 9),
      "pad.onnx", "");
  n = OnlyNode(*m);
  ASSERT_EQ(n->num_inputs(), 3u);
  EXPECT_EQ(n->input(1)->initializer()->ToInt64(), (std::vector<int64_t>{0, 1, 0, 1}));
  EXPECT_EQ(n->input(2)->initializer()->ToDouble(), (std::vector<double>{2.5}));
}

TEST(OnnxOpset, SliceTopKSplitDropoutReduceSum) {
  auto m = formats::LoadOnnxFromBytes(
      OneNodeModel("Slice", {IntsAttr("starts", {1}), IntsAttr("ends", {3}), IntsAttr("axes", {1})}, 9),
      "slice.onnx", "");
  const ir::Node* n = OnlyNode(*m);
  ASSERT_EQ(n->num_inputs(), 4u);
  EXPECT_EQ(n->input(3)->initializer()->ToInt64(), (std::vector<int64_t>{1}));
  Proto k = Proto().Bytes(onnxf::kAttrName, "k").Varint(onnxf::kAttrI, 2).Varint(onnxf::kAttrType, onnxf::kInt);
  m = formats::LoadOnnxFromBytes(OneNodeModel("TopK", {k}, 9), "topk.onnx", "");
  EXPECT_EQ(OnlyNode(*m)->input(1)->initializer()->shape(), (std::vector<int64_t>{1}));
  m = formats::LoadOnnxFromBytes(OneNodeModel("Split", {IntsAttr("split", {2, 2})}, 11),
                                 "split.onnx", "");
  EXPECT_EQ(OnlyNode(*m)->input(1)->initializer()->ToInt64(), (std::vector<int64_t>{2, 2}));
  m = formats::LoadOnnxFromBytes(OneNodeModel("Dropout", {FloatAttr("ratio", 0.25f)}, 10),
                                 "drop.onnx", "");
  EXPECT_EQ(OnlyNode(*m)->input(1)->initializer()->ToDouble(), (std::vector<double>{0.25}));
  m = formats::LoadOnnxFromBytes(OneNodeModel("ReduceSum", {IntsAttr("axes", {1})}, 12),
                                 "rs.onnx", "");
  EXPECT_EQ(OnlyNode(*m)->num_inputs(), 2u);
  // Without the attribute nothing is synthesized (ReduceSum over all axes).
  m = formats::LoadOnnxFromBytes(OneNodeModel("ReduceSum", {}, 12), "rs0.onnx", "");
  EXPECT_EQ(OnlyNode(*m)->num_inputs(), 1u);
}

TEST(OnnxOpset, DynamicInputCannotBeFoldedForOldOpset) {
  auto m = formats::LoadOnnxFromBytes(OneNodeModel("Squeeze", {IntsAttr("axes", {0})}, 11),
                                      "sq.onnx", "");
  ir::Node* n = m->graph->nodes().at(0);
  // Feed the axes from a graph input instead of a constant: opset 11 cannot say that.
  ir::Value* axes = m->graph->AddInput("axes_in", ir::ValueType::Tensor(ir::DType::kInt64));
  n->set_input(1, axes);
  try {
    formats::SerializeOnnx(*m);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must be a constant"), std::string::npos) << e.what();
  }
}

TEST(OnnxOpset, ConstantNodeValues) {
  Proto n;
  n.Bytes(onnxf::kNodeOutput, "c").Bytes(onnxf::kNodeName, "k").Bytes(onnxf::kOpType, "Constant");
  Proto a = Proto().Bytes(onnxf::kAttrName, "value_ints");
  for (int64_t v : {3, 1, 4}) a.Varint(onnxf::kAttrInts, static_cast<uint64_t>(v));
  n.Msg(onnxf::kAttribute, a.Varint(onnxf::kAttrType, onnxf::kInts));
  Proto g;
  g.Msg(onnxf::kNode, n).Bytes(onnxf::kName, "g").Msg(onnxf::kOutput, Proto().Bytes(onnxf::kViName, "c"));
  auto m = formats::LoadOnnxFromBytes(ModelBytes(g), "const.onnx", "");
  const ir::Node* c = OnlyNode(*m);
  EXPECT_EQ(c->op_type(), "Constant");
  auto v = formats::OnnxConstantValue(*c);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->ToInt64(), (std::vector<int64_t>{3, 1, 4}));
  EXPECT_EQ(v->shape(), (std::vector<int64_t>{3}));
}
