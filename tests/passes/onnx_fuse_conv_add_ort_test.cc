// fuse-conv-add against onnxruntime: a residual network (identity and projection
// shortcuts) after the default optimize pipeline holds FusedConv nodes with Z and Relu;
// it is written to ONNX, read back (the round trip keeps Z and the activation), and run
// in onnxruntime as written (ORT_ENABLE_BASIC) and optimised (ORT_ENABLE_ALL); both must
// agree with the unfused model in edgepress within 1e-5 relative. Skips without the
// project venv.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "pass_test_util.h"
#include "qdq_ort_util.h"

namespace edgepress::passes {
namespace {

using ir::Attribute;
using ir::DType;
using ir::GraphBuilder;
using testing::RandomTensor;

std::unique_ptr<ir::Model> Net() {
  GraphBuilder b;
  const std::vector<Attribute> pad1 = {Attribute::Ints("pads", {1, 1, 1, 1})};
  auto* x = b.Input("x", DType::kFloat32, {1, 8, 9, 9});
  auto* c1 = b.Op("Conv", {x, b.Const("w1", RandomTensor({8, 8, 3, 3}, 1)),
                           b.Const("b1", RandomTensor({8}, 2))}, pad1);
  auto* c2 = b.Op("Conv", {b.Op("Relu", {c1}), b.Const("w2", RandomTensor({8, 8, 3, 3}, 3)),
                           b.Const("b2", RandomTensor({8}, 4))}, pad1);
  auto* r2 = b.Op("Relu", {b.Op("Add", {x, c2})});
  auto* c3 = b.Op("Conv", {r2, b.Const("w3", RandomTensor({16, 8, 3, 3}, 5))},
                  {Attribute::Ints("pads", {1, 1, 1, 1}), Attribute::Ints("strides", {2, 2})});
  auto* proj = b.Op("Conv", {r2, b.Const("wp", RandomTensor({16, 8, 1, 1}, 6))},
                    {Attribute::Ints("strides", {2, 2})});
  // No activation after this sum: FusedConv with Z and without `activation`.
  b.Output(b.Op("Add", {c3, proj}));
  auto m = b.Build();
  m->SetOpsetVersion("", 17);
  return m;
}

TEST(FuseConvAddOrt, OnnxruntimeRunsTheFusedModelAndAgrees) {
  const std::string problem = qtest::OrtProblem();
  if (!problem.empty()) GTEST_SKIP() << problem;
  const std::string dir =
      ::testing::TempDir() + "/edgepress_conv_add_ort_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  auto m = Net();
  auto fused = testing::Apply(*m, kDefaultOptimizePipeline);
  int with_sum = 0;
  for (ir::Node* n : fused->graph->nodes())
    with_sum += n->op_type() == "FusedConv" && n->num_inputs() > 3 && n->input(3);
  ASSERT_EQ(with_sum, 2);
  ASSERT_EQ(testing::CountOps(*fused, "Add"), 0);

  // The ONNX round trip keeps Z and the activation attribute.
  formats::SaveOnnx(*fused, dir + "/fused.onnx");
  auto back = formats::LoadOnnx(dir + "/fused.onnx");
  int back_sum = 0;
  for (ir::Node* n : back->graph->nodes())
    back_sum += n->op_type() == "FusedConv" && n->num_inputs() > 3 && n->input(3);
  EXPECT_EQ(back_sum, 2);

  const ir::Tensor x = RandomTensor({1, 8, 9, 9}, 7);
  formats::SaveNpz({{"x", x}}, dir + "/in.npz");
  const auto want = testing::Evaluate(*m, {{"x", x}});
  const auto native = testing::Evaluate(*back, {{"x", x}});
  EXPECT_LT(testing::MaxRelError(native, want), 1e-5);
  for (const char* level : {"basic", "all"}) {
    ir::Tensor got = qtest::RunOrt(*back, dir, dir + "/in.npz", "x", level);
    ASSERT_FALSE(got.empty()) << level;
    std::map<std::string, ir::Tensor> ort{{want.begin()->first, got}};
    EXPECT_LT(testing::MaxRelError(ort, want), 1e-5) << level;
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace edgepress::passes
