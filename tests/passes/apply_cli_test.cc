// `edgepress passes` and `edgepress apply` end to end: the pipeline runs on the bundled
// digits model and on a model with BatchNorm and exporter-style decompositions, the
// output loads and computes what the input computed, and mistakes exit 1 or 2 with a
// message that helps.
#include <gtest/gtest.h>

#include <filesystem>

#include "formats/onnx/onnx.h"
#include "ir/builder.h"
#include "ir/file_util.h"
#include "ir/shape_inference.h"
#include "pass_test_util.h"
#include "tests/tools/cli_run.h"

namespace fs = std::filesystem;
using namespace edgepress;
using edgepress::test_util::RunCommand;
using edgepress::test_util::ShellQuote;

namespace {

class ApplyCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (edgepress::test_util::CliPath().empty() || !FileExists(edgepress::test_util::CliPath()))
      GTEST_SKIP() << "the edgepress binary is not built";
    dir_ = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "apply" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  edgepress::test_util::RunResult Ep(const std::string& args) {
    return RunCommand(ShellQuote(edgepress::test_util::CliPath()) + " " + args);
  }
  fs::path dir_;
};

TEST_F(ApplyCli, PassesListsEveryPassAndDetails) {
  auto r = Ep("passes");
  EXPECT_EQ(r.rc, 0) << r.output;
  for (const auto& e : passes::AllPasses())
    EXPECT_NE(r.output.find(e.info.name), std::string::npos) << e.info.name;
  r = Ep("passes fold-constants");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.output.find("max-bytes"), std::string::npos);
  r = Ep("passes fold-constans");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("did you mean 'fold-constants'"), std::string::npos) << r.output;
}

TEST_F(ApplyCli, CleanupPipelineKeepsTheFunction) {
  // A model with what exporters leave behind: Constant nodes, BatchNorm after Conv,
  // an Identity, and the erf form of GELU.
  ir::GraphBuilder b;
  auto* x = b.Input("x", ir::DType::kFloat32, {1, 2, 5, 5});
  auto* conv = b.Op("Conv", {x, b.Const("w", passes::testing::RandomTensor({4, 2, 3, 3}, 1))});
  auto* bn = b.Op("BatchNormalization",
                  {conv, b.Const("g", passes::testing::RandomTensor({4}, 2, 0.5f, 1.5f)),
                   b.Const("be", passes::testing::RandomTensor({4}, 3)),
                   b.Const("m", passes::testing::RandomTensor({4}, 4)),
                   b.Const("v", passes::testing::RandomTensor({4}, 5, 0.5f, 1.f))});
  auto* id = b.Op("Identity", {bn});
  auto* d = b.Op("Div", {id, b.ConstNode("s", ir::FloatTensor({}, {1.4142135f}))});
  auto* a = b.Op("Add", {b.Op("Erf", {d}), b.ConstNode("one", ir::FloatTensor({}, {1.f}))});
  auto* m1 = b.Op("Mul", {id, a});
  b.Output(b.Op("Mul", {m1, b.ConstNode("half", ir::FloatTensor({}, {0.5f}))}));
  auto model = b.Build();
  ir::InferShapes(*model);  // ONNX requires typed graph outputs
  std::string in = (dir_ / "in.onnx").string(), out = (dir_ / "out.onnx").string();
  formats::SaveOnnx(*model, in);

  auto r = Ep("apply " + ShellQuote(in) +
              " --passes 'fold-constants,remove-identity,fold-batchnorm,fuse-gelu,"
              "eliminate-dead-nodes' -o " + ShellQuote(out) + " --json");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("\"conv-folded\":1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"nodes_after\":2"), std::string::npos) << r.output;
  auto folded = formats::LoadOnnx(out);
  EXPECT_EQ(passes::testing::CountOps(*folded, "Conv"), 1);
  EXPECT_EQ(passes::testing::CountOps(*folded, "Gelu"), 1);
  std::map<std::string, ir::Tensor> feeds{{"x", passes::testing::RandomTensor({1, 2, 5, 5}, 6)}};
  EXPECT_LT(passes::testing::MaxRelError(passes::testing::Evaluate(*folded, feeds),
                                         passes::testing::Evaluate(*model, feeds)),
            1e-5);
}

TEST_F(ApplyCli, DigitsModelRoundTripsThroughApply) {
  std::string src = std::string(EDGEPRESS_SOURCE_DIR) + "/examples/digits/digits_cnn.onnx";
  std::string out = (dir_ / "digits.onnx").string();
  auto r = Ep("apply " + ShellQuote(src) + " --passes fold-constants,eliminate-dead-nodes -o " +
              ShellQuote(out));
  ASSERT_EQ(r.rc, 0) << r.output;
  r = Ep("run " + ShellQuote(out) + " --input " +
         ShellQuote(std::string(EDGEPRESS_SOURCE_DIR) + "/examples/digits/eval.npz") +
         " --compare " +
         ShellQuote(std::string(EDGEPRESS_SOURCE_DIR) + "/examples/digits/expected.npz") +
         " --rtol 1e-4 --atol 1e-4");
  EXPECT_EQ(r.rc, 0) << r.output;
}

TEST_F(ApplyCli, MistakesGiveClearErrors) {
  std::string src = std::string(EDGEPRESS_SOURCE_DIR) + "/examples/digits/digits_cnn.onnx";
  std::string out = (dir_ / "x.onnx").string();
  auto r = Ep("apply " + ShellQuote(src) + " --passes fold-batchnrom -o " + ShellQuote(out));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("did you mean 'fold-batchnorm'"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
  r = Ep("apply " + ShellQuote(src) + " --passes 'fold-constants{max-bytes=x}' -o " +
         ShellQuote(out));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("max-bytes"), std::string::npos) << r.output;
  EXPECT_EQ(Ep("apply " + ShellQuote(src) + " --passes fold-constants").rc, 2);  // no -o
  r = Ep("apply /nonexistent.onnx --passes fold-constants -o " + ShellQuote(out));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("/nonexistent.onnx"), std::string::npos) << r.output;
}

}  // namespace
