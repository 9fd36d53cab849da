// ir::ConstantAttributeValue: the one reader of a Constant node's value_* attributes that
// ONNX import, shape inference, the planner and the Constant kernel share.
#include "ir/constant_value.h"

#include <gtest/gtest.h>

#include "ir/builder.h"

namespace edgepress::ir {
namespace {

Node* ConstantWith(GraphBuilder& b, std::vector<Attribute> attrs) {
  b.Op("Constant", {}, std::move(attrs), "k");
  return b.last_node();
}

TEST(ConstantValue, EveryValueAttributeKind) {
  GraphBuilder b;
  auto f = ConstantAttributeValue(*ConstantWith(b, {Attribute::Float("value_float", 2.5f)}));
  ASSERT_TRUE(f);
  EXPECT_EQ(f->dtype(), DType::kFloat32);
  EXPECT_TRUE(f->shape().empty());
  EXPECT_EQ(f->data<float>()[0], 2.5f);

  auto fs =
      ConstantAttributeValue(*ConstantWith(b, {Attribute::Floats("value_floats", {1, 2, 3})}));
  ASSERT_TRUE(fs);
  EXPECT_EQ(fs->shape(), (std::vector<int64_t>{3}));
  EXPECT_EQ(fs->data<float>()[2], 3.f);

  auto i = ConstantAttributeValue(*ConstantWith(b, {Attribute::Int("value_int", -7)}));
  ASSERT_TRUE(i);
  EXPECT_EQ(i->ToInt64(), (std::vector<int64_t>{-7}));
  EXPECT_TRUE(i->shape().empty());

  auto is = ConstantAttributeValue(*ConstantWith(b, {Attribute::Ints("value_ints", {4, 5})}));
  ASSERT_TRUE(is);
  EXPECT_EQ(is->dtype(), DType::kInt64);
  EXPECT_EQ(is->ToInt64(), (std::vector<int64_t>{4, 5}));

  auto s = ConstantAttributeValue(*ConstantWith(b, {Attribute::String("value_string", "hi")}));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->dtype(), DType::kString);

  Tensor t = Tensor::FromVector<float>(DType::kFloat32, {2, 1}, {8, 9});
  auto tv = ConstantAttributeValue(*ConstantWith(b, {Attribute::TensorValue("value", t)}));
  ASSERT_TRUE(tv);
  EXPECT_EQ(tv->shape(), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(tv->data<float>()[1], 9.f);
}

TEST(ConstantValue, MissingOrMistypedValueIsNullopt) {
  GraphBuilder b;
  EXPECT_FALSE(ConstantAttributeValue(*ConstantWith(b, {})));
  // A value_int attribute that holds floats is not a value: callers report it.
  EXPECT_FALSE(ConstantAttributeValue(*ConstantWith(b, {Attribute::Floats("value_int", {1})})));
  // 'value' must be a tensor.
  EXPECT_FALSE(ConstantAttributeValue(*ConstantWith(b, {Attribute::Int("value", 1)})));
  // Other attributes are ignored.
  EXPECT_FALSE(ConstantAttributeValue(*ConstantWith(b, {Attribute::Int("axis", 0)})));
}

}  // namespace
}  // namespace edgepress::ir
