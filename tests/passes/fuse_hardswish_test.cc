// fuse-hardswish: each decomposition exporters write (x * (Clip(x + 3, 0, 6) / 6),
// (x * Clip(x + 3, 0, 6)) * (1/6), x * HardSigmoid(x), Clip(x + 3, 0, 6) / 6) becomes one
// op with the same function (1e-6 relative: x/6 + 0.5 vs (x + 3) / 6), keeps the output
// name, passes the verifier; before opset 14 HardSwish patterns become Mul(x,
// HardSigmoid(x)). Must-not-fire cases: other constants, an intermediate value with a
// second reader, a HardSigmoid with other parameters.
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

ir::Value* Scalar(GraphBuilder& b, const std::string& name, float v) {
  return b.ConstNode(name, ir::FloatTensor({}, {v}));
}

enum class Form { kDivInside, kMulSixthOutside, kHardSigmoidOnly, kTorchHardSigmoid };

std::unique_ptr<ir::Model> Graph(Form form, int64_t opset, float three = 3.f,
                                 bool extra_reader = false) {
  GraphBuilder b;
  auto* in = b.Input("x", DType::kFloat32, {2, 4, 5});
  auto* x = b.Op("Neg", {in});  // x is a node output, read by the pattern twice
  ir::Value* y = nullptr;
  if (form == Form::kTorchHardSigmoid) {
    auto* hs = b.Op("HardSigmoid", {x},
                    {Attribute::Float("alpha", 1.f / 6.f), Attribute::Float("beta", 0.5f)});
    y = b.Op("Mul", {x, hs});
  } else {
    auto* a = b.Op("Add", {Scalar(b, "three", three), x});
    auto* c = b.Op("Clip", {a, Scalar(b, "zero", 0.f), Scalar(b, "six", 6.f)});
    if (extra_reader) b.Output(c);
    if (form == Form::kMulSixthOutside) {
      auto* m = b.Op("Mul", {c, x});
      y = b.Op("Mul", {m, Scalar(b, "sixth", 1.f / 6.f)});
    } else {
      auto* d = b.Op("Div", {c, Scalar(b, "six_b", 6.f)});
      y = form == Form::kHardSigmoidOnly ? d : b.Op("Mul", {x, d});
    }
  }
  b.Output(y);
  auto m = b.Build();
  m->SetOpsetVersion("", opset);
  return m;
}

void ExpectSameFunction(const ir::Model& a, const ir::Model& b) {
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({2, 4, 5}, 3, -5, 5)}};
  EXPECT_LT(MaxRelError(Evaluate(a, feeds), Evaluate(b, feeds)), 1e-6);
}

TEST(FuseHardSwish, FusesEveryHardSwishForm) {
  for (Form f : {Form::kDivInside, Form::kMulSixthOutside, Form::kTorchHardSigmoid}) {
    auto m = Graph(f, 14);
    const std::string out_name = m->graph->outputs()[0]->name();
    std::vector<PassRun> runs;
    auto out = Apply(*m, "fuse-hardswish,eliminate-dead-nodes", &runs);
    EXPECT_TRUE(runs[0].changed) << static_cast<int>(f);
    EXPECT_EQ(runs[0].stats["hardswish-fused"], 1);
    EXPECT_EQ(CountOps(*out, "HardSwish"), 1);
    EXPECT_EQ(out->graph->num_nodes(), 2u);  // Neg, HardSwish
    EXPECT_EQ(out->graph->outputs()[0]->name(), out_name);
    ExpectSameFunction(*out, *m);
  }
}

TEST(FuseHardSwish, FusesHardSigmoid) {
  auto m = Graph(Form::kHardSigmoidOnly, 13);
  std::vector<PassRun> runs;
  auto out = Apply(*m, "fuse-hardswish,eliminate-dead-nodes", &runs);
  EXPECT_EQ(runs[0].stats["hardsigmoid-fused"], 1);
  EXPECT_EQ(CountOps(*out, "HardSigmoid"), 1);
  EXPECT_EQ(out->graph->num_nodes(), 2u);
  ExpectSameFunction(*out, *m);
}

TEST(FuseHardSwish, BeforeOpset14WritesMulOfHardSigmoid) {
  for (Form f : {Form::kDivInside, Form::kMulSixthOutside}) {
    auto m = Graph(f, 13);
    std::vector<PassRun> runs;
    auto out = Apply(*m, "fuse-hardswish,eliminate-dead-nodes", &runs);
    EXPECT_EQ(runs[0].stats["hardswish-fused"], 1);
    EXPECT_EQ(CountOps(*out, "HardSwish"), 0);
    EXPECT_EQ(CountOps(*out, "HardSigmoid"), 1);
    EXPECT_EQ(CountOps(*out, "Mul"), 1);
    EXPECT_EQ(out->graph->num_nodes(), 3u);
    ExpectSameFunction(*out, *m);
  }
  // torch's own x * HardSigmoid(x) is already that form at opset 13: nothing to do.
  std::vector<PassRun> runs;
  Apply(*Graph(Form::kTorchHardSigmoid, 13), "fuse-hardswish", &runs);
  EXPECT_FALSE(runs[0].changed);
}

TEST(FuseHardSwish, DoesNotFireOnOtherConstantsOrSharedValues) {
  std::vector<PassRun> runs;
  Apply(*Graph(Form::kDivInside, 14, /*three=*/2.f), "fuse-hardswish", &runs);
  EXPECT_FALSE(runs[0].changed);
  Apply(*Graph(Form::kDivInside, 14, 3.f, /*extra_reader=*/true), "fuse-hardswish", &runs);
  EXPECT_FALSE(runs[0].changed);

  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {4});
  auto* hs = b.Op("HardSigmoid", {x}, {Attribute::Float("alpha", 0.2f)});
  b.Output(b.Op("Mul", {x, hs}));
  auto m = b.Build();
  m->SetOpsetVersion("", 14);
  Apply(*m, "fuse-hardswish", &runs);
  EXPECT_FALSE(runs[0].changed);
}

}  // namespace
}  // namespace edgepress::passes
