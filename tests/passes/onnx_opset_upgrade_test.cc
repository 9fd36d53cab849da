// Opset upgrade (passes/graph/opset_upgrade.h): hand-built old-opset graphs keep their outputs
// after the rewrite, models with the old Softmax quantize end to end, and every
// libonnx-testdata model of opset 7..12 keeps its outputs after the upgrade to 13 — on the
// native runtime against the suite's expected outputs, and in onnxruntime against
// onnxruntime on the original.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "formats/onnx/onnx.h"
#include "ir/builder.h"
#include "ir/shape_inference.h"
#include "ir/verifier.h"
#include "passes/graph/opset_upgrade.h"
#include "passes/registry.h"
#include "tests/passes/pass_test_util.h"
#include "tests/passes/qdq_ort_util.h"
#include "tests/runtime/conformance_util.h"

namespace edgepress::passes {
namespace {

using ir::Attribute;
using ir::DType;

runtime::NamedTensors RunSession(const ir::Model& m, const runtime::NamedTensors& feeds) {
  auto s = runtime::Session::Create(std::shared_ptr<const ir::Model>(m.Clone()));
  return s->Run(feeds);
}

double MaxAbsDiff(const runtime::NamedTensors& a, const runtime::NamedTensors& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t k = 0; k < a.size() && k < b.size(); ++k) {
    const ir::Tensor &x = a[k].second, &y = b[k].second;
    EXPECT_EQ(x.shape(), y.shape()) << a[k].first;
    if (x.shape() != y.shape()) return 1e30;
    for (uint64_t i = 0; i < x.numel(); ++i)
      worst = std::max(worst, std::fabs(double(x.data<float>()[i]) - y.data<float>()[i]));
  }
  return worst;
}

int CountOps(const ir::Model& m, const std::string& op) {
  int n = 0;
  for (ir::Node* node : m.graph->nodes()) n += node->op_type() == op;
  return n;
}

// A Softmax-family node on a [2,3,4] input at `axis`, with the input's rank known or not.
std::unique_ptr<ir::Model> SoftmaxModel(const std::string& op, int64_t axis, bool known_rank,
                                        int64_t opset = 11) {
  ir::GraphBuilder b;
  ir::Value* x = known_rank ? b.Input("x", DType::kFloat32, {2, 3, 4})
                            : b.InputShape("x", DType::kFloat32, {});
  if (!known_rank) x->type.shape.reset();
  b.Output(b.Op(op, {x}, {Attribute::Int("axis", axis)}, "sm"));
  auto m = b.Build();
  m->SetOpsetVersion("", opset);
  return m;
}

TEST(OpsetUpgrade, SoftmaxFamilyKeepsTheTwoDimensionalMeaning) {
  runtime::NamedTensors feeds = {{"x", testing::RandomTensor({2, 3, 4}, 7, -3, 3)}};
  for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"})
    for (int64_t axis : {0, 1, 2, -1, -2})
      for (bool known : {true, false}) {
        SCOPED_TRACE(std::string(op) + " axis " + std::to_string(axis) + (known ? " known" : " unknown"));
        auto m = SoftmaxModel(op, axis, known);
        runtime::NamedTensors before = RunSession(*m, feeds);
        OpsetUpgrade up = UpgradeOpset(*m, 13);
        EXPECT_TRUE(up.changed());
        ir::Verify(*m);
        EXPECT_EQ(m->OpsetVersion(""), 13);
        bool last = known && (axis == 2 || axis == -1);
        // The last axis of a known rank only needs axis=-1; anything else is flattened.
        EXPECT_EQ(CountOps(*m, "Flatten"), last ? 0 : 1);
        EXPECT_EQ(CountOps(*m, op), 1);
        EXPECT_EQ(MaxAbsDiff(RunSession(*m, feeds), before), 0.0);
        EXPECT_EQ(m->graph->outputs()[0]->name(), before[0].first);  // the output keeps its name
      }
}

TEST(OpsetUpgrade, UpsampleBecomesResizeWithTheLegacyCoordinates) {
  ir::GraphBuilder b;
  ir::Value* x = b.Input("x", DType::kFloat32, {1, 2, 3, 3});
  ir::Value* near = b.Op("Upsample", {x},
                         {Attribute::String("mode", "nearest"),
                          Attribute::Floats("scales", {1, 1, 2, 3})});
  ir::Value* lin = b.Op("Upsample", {x, b.Const("s", ir::FloatTensor({4}, {1, 1, 2.5f, 2}))},
                        {Attribute::String("mode", "linear")});
  ir::Value* down = b.Op("Upsample", {x, b.Const("d", ir::FloatTensor({4}, {1, 1, 0.5f, 0.7f}))},
                         {Attribute::String("mode", "nearest")});
  b.Output(near);
  b.Output(lin);
  b.Output(down);
  auto m = b.Build();
  m->SetOpsetVersion("", 9);
  runtime::NamedTensors feeds = {{"x", testing::RandomTensor({1, 2, 3, 3}, 3)}};
  runtime::NamedTensors before = RunSession(*m, feeds);
  UpgradeOpset(*m, 13);
  ir::Verify(*m);
  EXPECT_EQ(CountOps(*m, "Upsample"), 0);
  EXPECT_EQ(CountOps(*m, "Resize"), 3);
  EXPECT_EQ(MaxAbsDiff(RunSession(*m, feeds), before), 0.0);
}

TEST(OpsetUpgrade, ScatterBecomesScatterElements) {
  ir::GraphBuilder b;
  ir::Value* x = b.Input("x", DType::kFloat32, {1, 2, 3});
  ir::Value* idx = b.Const("idx", ir::Int64Tensor({1, 2, 1}, {2, 0}));
  ir::Value* upd = b.Const("upd", ir::FloatTensor({1, 2, 1}, {5, 6}));
  b.Output(b.Op("Scatter", {x, idx, upd}, {Attribute::Int("axis", 2)}, "sc"));
  auto m = b.Build();
  m->SetOpsetVersion("", 9);
  UpgradeOpset(*m, 13);
  ir::Verify(*m);
  ASSERT_EQ(m->graph->num_nodes(), 1u);
  ir::Node* n = m->graph->nodes()[0];
  EXPECT_EQ(n->op_type(), "ScatterElements");
  EXPECT_EQ(n->attr_int("axis", 0), 2);
  EXPECT_EQ(n->input(1)->name(), "idx");
  // Same meaning: element [0,0,2] and [0,1,0] take the updates.
  runtime::NamedTensors out = RunSession(*m, {{"x", ir::FloatTensor({1, 2, 3}, {0, 0, 0, 0, 0, 0})}});
  EXPECT_EQ(out[0].second.ToDouble(), (std::vector<double>{0, 0, 5, 6, 0, 0}));
}

TEST(OpsetUpgrade, LegacyBroadcastAtAnAxisBecomesNumpyBroadcast) {
  // Opset 6: B [3] is added along axis 1 of A [2,3,4]; numpy's rule needs B as [3,1].
  ir::GraphBuilder b;
  ir::Value* a = b.Input("a", DType::kFloat32, {2, 3, 4});
  ir::Value* c = b.Const("c", ir::FloatTensor({3}, {1, 10, 100}));
  b.Output(b.Op("Add", {a, c}, {Attribute::Int("broadcast", 1), Attribute::Int("axis", 1)}, "add"));
  auto m = b.Build();
  m->SetOpsetVersion("", 6);
  UpgradeOpset(*m, 13);
  ir::Verify(*m);
  EXPECT_EQ(CountOps(*m, "Unsqueeze"), 1);
  ir::Node* add = m->graph->FindNode("add");
  ASSERT_NE(add, nullptr);
  EXPECT_FALSE(add->has_attr("broadcast"));
  EXPECT_FALSE(add->has_attr("axis"));
  runtime::NamedTensors out = RunSession(*m, {{"a", ir::Tensor(DType::kFloat32, {2, 3, 4})}});
  std::vector<double> y = out[0].second.ToDouble();
  EXPECT_EQ(y[0], 1);
  EXPECT_EQ(y[4], 10);   // [0,1,0]
  EXPECT_EQ(y[20], 100); // [1,2,0]
}

TEST(OpsetUpgrade, BatchNormSpatialDroppedAndSpatialZeroRefusedWithoutChange) {
  for (int64_t spatial : {1, 0}) {
    ir::GraphBuilder b;
    ir::Value* x = b.Input("x", DType::kFloat32, {1, 2, 2, 2});
    auto c = [&](const char* n, float v) { return b.Const(n, ir::FloatTensor({2}, {v, v})); };
    b.Output(b.Op("BatchNormalization", {x, c("g", 1.5f), c("b", .1f), c("mu", .2f), c("var", 2.f)},
                  {Attribute::Int("spatial", spatial)}, "bn"));
    auto m = b.Build();
    m->SetOpsetVersion("", 7);
    if (spatial == 1) {
      EXPECT_TRUE(UpgradeOpset(*m, 13).changed());
      EXPECT_FALSE(m->graph->nodes()[0]->has_attr("spatial"));
    } else {
      // spatial=0 has no later form: refused by name, and the model is left as it was.
      try {
        UpgradeOpset(*m, 13);
        ADD_FAILURE() << "expected a refusal";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("node 'bn'"), std::string::npos) << e.what();
      }
      EXPECT_EQ(m->OpsetVersion(""), 7);
      EXPECT_TRUE(m->graph->nodes()[0]->has_attr("spatial"));
    }
  }
}

TEST(OpsetUpgrade, DoesNotFireAtOrAboveTheTarget) {
  // Already opset 13: the Softmax keeps its axis and nothing is inserted.
  auto m = SoftmaxModel("Softmax", 1, true, 13);
  EXPECT_FALSE(UpgradeOpset(*m, 13).changed());
  EXPECT_EQ(m->graph->num_nodes(), 1u);
  EXPECT_EQ(m->graph->nodes()[0]->attr_int("axis", 0), 1);
}

// The case: an old model whose Softmax sits at a middle axis (or the last; rank
// known or not) quantizes end to end, and onnxruntime agrees with the native runtime.
TEST(OpsetUpgrade, OldSoftmaxModelsQuantizeEndToEnd) {
  std::string ort_problem = qtest::OrtProblem();
  for (int64_t axis : {1, 2})
    for (bool known : {true, false}) {
      SCOPED_TRACE("axis " + std::to_string(axis) + (known ? " known rank" : " unknown rank"));
      ir::GraphBuilder b;
      ir::Value* x = b.Input("x", DType::kFloat32, {2, 3, 16});
      ir::Value* w = b.Const("w", testing::RandomTensor({16, 16}, 11));
      ir::Value* h = b.Op("MatMul", {x, w}, {}, "proj");
      // A reshape to a shape fed at run time (of unknown length) hides the rank.
      if (!known) h = b.Op("Reshape", {h, b.Input("shape", DType::kInt64, {-1})});
      ir::Value* y = b.Op("Softmax", {h}, {Attribute::Int("axis", axis)}, "sm");
      // ONNX requires graph outputs of known rank: back to [2,3,16] after the Softmax.
      if (!known) y = b.Op("Reshape", {y, b.Const("out_shape", ir::Int64s({2, 3, 16}))});
      b.Output(y);
      auto m = b.Build();
      m->SetOpsetVersion("", 11);
      ir::InferShapes(*m);
      ASSERT_EQ(m->graph->FindNode("sm")->input(0)->type.shape.has_value(), known);
      runtime::NamedTensors feeds = {{"x", testing::RandomTensor({2, 3, 16}, 5)}};
      if (!known) feeds.emplace_back("shape", ir::Int64s({2, 3, 16}));
      runtime::NamedTensors before = RunSession(*m, feeds);
      PassContext ctx;
      auto runs = RunPipeline(*m, ParsePipeline("quantize-weights{bits=8}"), ctx, true);
      ASSERT_TRUE(runs[0].changed);
      EXPECT_EQ(m->OpsetVersion(""), 13);
      EXPECT_LT(MaxAbsDiff(RunSession(*m, feeds), before), 0.02);
      if (!ort_problem.empty()) continue;
      char dir[] = "/tmp/ep_upgrade_XXXXXX";
      ASSERT_NE(mkdtemp(dir), nullptr);
      std::string npz = std::string(dir) + "/in.npz";
      formats::SaveNpz(feeds, npz);
      std::string onnx = std::string(dir) + "/model.onnx", out = std::string(dir) + "/ort.npz";
      formats::SaveOnnx(*m, onnx);
      auto q = [](const std::string& p) { return test_util::ShellQuote(p); };
      auto r = test_util::RunCommand(q(qtest::VenvPython()) + " " +
                                     q(EDGEPRESS_SOURCE_DIR "/tests/fixtures/ort_run.py") + " " +
                                     q(onnx) + " " + q(npz) + " " + q(out));
      ASSERT_EQ(r.rc, 0) << r.output;
      ir::Tensor ort = formats::LoadNpz(out)[0].second;
      runtime::NamedTensors native = RunSession(*m, feeds);
      EXPECT_LT(MaxAbsDiff({{"y", ort}}, {{"y", native[0].second}}), 1e-5);
    }
}

// Every libonnx-testdata model of opset 7..12, upgraded to 13.
TEST(OpsetUpgrade, LibOnnxTestdataKeepsItsOutputs) {
  using namespace runtime::conformance;
  if (!Exists(kRoot)) GTEST_SKIP() << kRoot << " is missing (install libonnx-testdata)";
  std::string tmp = EDGEPRESS_BINARY_DIR "/opset_upgrade_models";
  ::mkdir(tmp.c_str(), 0755);
  ModelTransform upgrade = [](ir::Model& m) {
    UpgradeOpset(m, 13);
    ir::Verify(m);
  };
  int old_models = 0, below7 = 0, passed = 0, skipped = 0;
  std::vector<std::string> failures;
  std::ostringstream list;
  for (const char* suite : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
    std::string sdir = std::string(kRoot) + "/" + suite;
    for (const std::string& test : ListDir(sdir)) {
      std::string dir = sdir + "/" + test, id = std::string(suite) + "/" + test;
      if (!Exists(dir + "/model.onnx")) continue;
      std::unique_ptr<ir::Model> m;
      try {
        m = formats::LoadOnnx(dir + "/model.onnx");
      } catch (const Error&) {
        continue;  // the conformance suite lists import refusals
      }
      int64_t opset = m->OpsetVersion("");
      if (opset >= 13 || opset <= 0) continue;
      below7 += opset < 7;
      ++old_models;
      try {
        upgrade(*m);
        std::string out = tmp + "/" + suite + "_" + test + ".onnx";
        formats::SaveOnnx(*m, out);
        list << dir << "\t" << out << "\n";
      } catch (const Error& e) {
        failures.push_back(id + ": upgrade/export: " + FirstLine(e.what()));
        continue;
      }
      if (KnownSuiteDefects().count(test)) continue;
      Result r = RunIsolated(dir, upgrade);
      if (r.outcome == Outcome::kPass) ++passed;
      else if (r.outcome == Outcome::kSkip) ++skipped;
      else failures.push_back(id + ": native: " + r.detail);
    }
  }
  std::printf("opset upgrade: %d models of opset 1..12 (%d of them below 7); native "
              "runtime: %d passed, %zu failed, %d skipped (no kernel)\n",
              old_models, below7, passed, failures.size(), skipped);
  std::string ort_problem = qtest::OrtProblem();
  if (ort_problem.empty()) {
    std::string list_file = tmp + "/list.tsv";
    std::ofstream(list_file) << list.str();
    auto r = test_util::RunCommand(
        test_util::ShellQuote(qtest::VenvPython()) + " " +
        test_util::ShellQuote(EDGEPRESS_SOURCE_DIR "/tests/fixtures/ort_upgrade_check.py") + " " +
        test_util::ShellQuote(list_file));
    ASSERT_EQ(r.rc, 0) << r.output;
    std::istringstream lines(r.output);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("FAIL ", 0) == 0) failures.push_back("onnxruntime: " + line.substr(5));
      if (line.rfind("ort-upgrade:", 0) == 0) std::printf("%s\n", line.c_str());
    }
  } else {
    std::printf("onnxruntime check skipped: %s\n", ort_problem.c_str());
  }
  for (const std::string& f : failures) std::printf("  FAIL %s\n", f.c_str());
  EXPECT_GT(old_models, 300);
  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, listed above";
}

}  // namespace
}  // namespace edgepress::passes
