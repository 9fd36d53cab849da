// cast-weights: weights stored as fp16/bf16 plus Cast(to=FLOAT); outputs stay within the
// storage type's rounding (relative error bounds declared per dtype), sizes halve, small
// non-weight initializers and excluded/out-of-range/graph-input ones are left alone.
#include <gtest/gtest.h>

#include "ir/error.h"
#include "quant_test_util.h"

namespace edgepress::passes {
namespace {

using ir::DType;
using ir::GraphBuilder;
using testing::Evaluate;
using testing::RandomTensor;

std::unique_ptr<ir::Model> Model() {
  GraphBuilder b;
  auto* ids = b.Input("ids", DType::kInt64, {2, 5});
  auto* emb = b.Const("embedding", RandomTensor({100, 32}, 1));       // 12.8 KB, Gather
  auto* x = b.Op("Gather", {emb, ids}, {}, "embed");
  auto* h = b.Op("MatMul", {x, b.Const("w", RandomTensor({32, 16}, 2))}, {}, "fc");
  auto* bias = b.Const("small_bias", RandomTensor({16}, 3));           // 64 B, Add
  b.Output(b.Op("Add", {h, bias}, {}, "add"));
  auto m = b.Build();
  ir::InferShapes(*m);
  return m;
}

TEST(CastWeights, Fp16AndBf16KeepOutputsWithinRounding) {
  auto m = Model();
  std::map<std::string, ir::Tensor> feeds{
      {"ids", ir::Tensor::FromVector(DType::kInt64, {2, 5},
                                     std::vector<int64_t>{0, 1, 5, 99, 42, 7, 7, 3, 64, 12})}};
  auto want = Evaluate(*m, feeds);
  for (std::string dtype : {"fp16", "bf16"}) {
    std::vector<PassRun> runs;
    auto out = testing::Apply(*m, "cast-weights{dtype=" + dtype + "}", &runs);
    EXPECT_TRUE(runs[0].changed);
    EXPECT_EQ(runs[0].stats["initializers-cast"], 2);  // embedding (>= 1 KiB) and w (weight)
    EXPECT_EQ(testing::CountOpsAll(*out, "Cast"), 2);
    ir::Value* bias = out->graph->FindValue("small_bias");
    ASSERT_NE(bias, nullptr);
    EXPECT_EQ(bias->initializer()->dtype(), DType::kFloat32);  // small, not a weight
    EXPECT_EQ(out->graph->FindValue("w"), nullptr);
    ir::Value* w16 = out->graph->FindValue("w_" + dtype);
    ASSERT_NE(w16, nullptr);
    EXPECT_EQ(w16->initializer()->dtype(), dtype == "fp16" ? DType::kFloat16 : DType::kBFloat16);
    double err = testing::MaxRelError(Evaluate(*out, feeds), want);
    // fp16 keeps 11 significant bits, bf16 8: relative rounding 2^-11 and 2^-8 per weight.
    EXPECT_LT(err, dtype == "fp16" ? 2e-3 : 1.6e-2) << dtype;
    EXPECT_GT(err, 0.0) << dtype;
    double ratio = double(runs[0].stats["bytes-after"]) / runs[0].stats["bytes-before"];
    EXPECT_LT(ratio, 0.51) << dtype;
    if (dtype == "bf16") {
      EXPECT_GE(out->OpsetVersion(""), 13);
    }
  }
}

TEST(CastWeights, Bf16RoundsToNearestEven) {
  GraphBuilder b;
  // 1 + 2^-8 is halfway between two bf16 values (1 and 1 + 2^-7): ties go to even (1).
  // 1 + 3*2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties go to even (1 + 2^-6).
  std::vector<float> v(16, 0.f);
  v[0] = 1.f + 1.f / 256;
  v[1] = 1.f + 3.f / 256;
  v[2] = 1.f + 1.f / 256 + 1.f / 4096;  // just above halfway: rounds up
  auto* x = b.Input("x", DType::kFloat32, {1, 16});
  b.Output(b.Op("MatMul", {x, b.Const("w", ir::FloatTensor({16, 1}, v))}, {}, "fc"));
  auto m = b.Build();
  auto out = testing::Apply(*m, "cast-weights{dtype=bf16}");
  const ir::Tensor* t = out->graph->FindValue("w_bf16")->initializer();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(ir::BFloat16ToFloat(t->data<uint16_t>()[0]), 1.f);
  EXPECT_EQ(ir::BFloat16ToFloat(t->data<uint16_t>()[1]), 1.f + 1.f / 64);
  EXPECT_EQ(ir::BFloat16ToFloat(t->data<uint16_t>()[2]), 1.f + 1.f / 128);
}

TEST(CastWeights, MustNotFire) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2, 8});
  // Excluded by glob.
  b.Output(b.Op("MatMul", {x, b.Const("w_head", RandomTensor({8, 4}, 1))}, {}, "lm_head"));
  // Not representable in fp16.
  b.Output(b.Op("MatMul", {x, b.Const("w_big", ir::FloatTensor({8, 1}, {1e6f, 0, 0, 0, 0, 0, 0, 0}))},
                {}, "big"));
  // Small constant operand of a non-weight op.
  b.Output(b.Op("Mul", {x, b.Const("gamma", RandomTensor({8}, 2))}, {}, "scale"));
  auto m = b.Build();
  std::vector<PassRun> runs;
  auto out = testing::Apply(*m, "cast-weights{exclude=lm_*}", &runs);
  EXPECT_FALSE(runs[0].changed);
  EXPECT_EQ(runs[0].stats["skipped-excluded"], 1);
  EXPECT_EQ(runs[0].stats["skipped-out-of-range"], 1);
  EXPECT_EQ(testing::CountOpsAll(*out, "Cast"), 0);
  EXPECT_EQ(runs[0].stats["bytes-before"], runs[0].stats["bytes-after"]);
  // bf16 has the float32 exponent range: the large weight casts.
  out = testing::Apply(*m, "cast-weights{dtype=bf16,exclude=lm_*}", &runs);
  EXPECT_EQ(runs[0].stats["initializers-cast"], 1);
  EXPECT_THROW(testing::Apply(*m, "cast-weights{dtype=fp8}"), Error);
}

TEST(CastWeights, SharedWeightKeepsFloatForExcludedUser) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2, 8});
  auto* w = b.Const("w", RandomTensor({8, 8}, 1));
  b.Output(b.Op("MatMul", {x, w}, {}, "keep_float"));
  b.Output(b.Op("MatMul", {x, w}, {}, "cast_me"));
  auto m = b.Build();
  auto out = testing::Apply(*m, "cast-weights{exclude=keep_*}");
  EXPECT_EQ(out->graph->FindNode("keep_float")->input(1)->name(), "w");
  EXPECT_EQ(out->graph->FindNode("cast_me")->input(1)->producer()->op_type(), "Cast");
}

}  // namespace
}  // namespace edgepress::passes
