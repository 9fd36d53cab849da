// End-to-end `edgepress sensitivity` on the bundled digits CNN (examples/digits, eval.npz
// with labels): every prunable layer gets a result per sparsity, the error grows with the
// sparsity for the sensitive first conv, top-1 is measured from the labels, the JSON file
// drives prune-magnitude through `apply` (each layer at its largest sparsity within the
// bound), and the error cases (top1 without labels, a bad ladder, a model without prunable
// weights) exit with clear messages.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/graph.h"
#include "tests/tools/cli_run.h"

namespace edgepress {
namespace {

using test_util::CliPath;
using test_util::RunCommand;
using test_util::RunResult;
using test_util::ShellQuote;

const std::string kDigits = std::string(EDGEPRESS_SOURCE_DIR) + "/examples/digits";

class SensitivityCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CliPath().empty() || access(CliPath().c_str(), X_OK) != 0)
      GTEST_SKIP() << "the edgepress CLI was not built";
    char tmpl[] = "/tmp/edgepress_sensitivity_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) RunCommand("rm -rf " + ShellQuote(dir_));
  }
  RunResult Ep(const std::string& args) { return RunCommand(ShellQuote(CliPath()) + " " + args); }
  std::string dir_;
  const std::string cnn_ = kDigits + "/digits_cnn.onnx";
  const std::string eval_ = kDigits + "/eval.npz";
};

TEST_F(SensitivityCliTest, MeasuresEveryLayerAndDrivesPruneMagnitude) {
  std::string out = dir_ + "/sens.json";
  RunResult r = Ep("sensitivity " + ShellQuote(cnn_) + " --data " + ShellQuote(eval_) +
                   " --metric top1 --sparsities 0.9,0.3,0.5 --max-samples 360 -o " + ShellQuote(out));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("/features/features.0/Conv"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("@0.90"), std::string::npos) << r.output;
  std::ifstream f(out);
  nlohmann::json j = nlohmann::json::parse(f);
  EXPECT_EQ(j["metric"], "top1");
  EXPECT_EQ(j["samples"], 360);
  EXPECT_NEAR(j["baseline_top1"].get<double>(), 0.9944, 1e-3);
  ASSERT_EQ(j["sparsities"], nlohmann::json({0.3, 0.5, 0.9}));  // sorted
  ASSERT_EQ(j["layers"].size(), 5u);  // 3 Conv + 2 Gemm
  for (const auto& l : j["layers"]) {
    ASSERT_EQ(l["results"].size(), 3u) << l["layer"];
    for (const auto& res : l["results"]) {
      double top1 = res["top1"].get<double>();
      EXPECT_NEAR(res["error"].get<double>(), j["baseline_top1"].get<double>() - top1, 1e-12);
      EXPECT_GT(res["output_nmse"].get<double>(), 0) << l["layer"];  // pruning changed it
      EXPECT_GT(res["layer_nmse"].get<double>(), 0) << l["layer"];
    }
  }
  // The first conv (9 weights per filter) is the sensitive one: its output error grows
  // with the sparsity and 90% costs far more than a point of top-1.
  const auto& first = j["layers"][0];
  EXPECT_EQ(first["layer"], "/features/features.0/Conv");
  EXPECT_LT(first["results"][0]["output_nmse"].get<double>(), first["results"][1]["output_nmse"].get<double>());
  EXPECT_LT(first["results"][1]["output_nmse"].get<double>(), first["results"][2]["output_nmse"].get<double>());
  EXPECT_GT(first["results"][2]["error"].get<double>(), 0.1);

  // prune-magnitude reads the file: each layer at its largest sparsity within 0.5 point.
  std::string pruned = dir_ + "/pruned.onnx";
  r = Ep("apply " + ShellQuote(cnn_) + " --passes " +
         ShellQuote("prune-magnitude{sensitivity-file=" + out + ",max-error=0.005}") + " -o " +
         ShellQuote(pruned) + " --json");
  ASSERT_EQ(r.rc, 0) << r.output;
  auto m = formats::LoadOnnx(pruned);
  for (const auto& l : j["layers"]) {
    double want = 0;
    for (const auto& res : l["results"])
      if (res["error"].get<double>() <= 0.005) want = std::max(want, res["sparsity"].get<double>());
    const ir::Tensor* w = nullptr;
    for (ir::Value* v : m->graph->initializers())
      if (v->name() == l["weight"]) w = v->initializer();
    ASSERT_NE(w, nullptr) << l["weight"];
    int64_t zeros = 0;
    for (uint64_t i = 0; i < w->numel(); ++i) zeros += w->data<float>()[i] == 0.f;
    EXPECT_NEAR(double(zeros) / double(w->numel()), want, 0.01) << l["layer"];
  }
}

TEST_F(SensitivityCliTest, NmseMetricWithoutLabelsAndJsonOnStdout) {
  // calib.npz has images only: nmse works, top1 is a usage error.
  std::string calib = kDigits + "/calib.npz";
  RunResult r = Ep("sensitivity " + ShellQuote(cnn_) + " --data " + ShellQuote(calib) +
                   " --sparsities 0.5 --max-samples 16 --min-params 1000 --json");
  ASSERT_EQ(r.rc, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_EQ(j["metric"], "nmse");
  EXPECT_EQ(j["layers"].size(), 3u);  // min-params drops the 144- and 640-weight layers
  EXPECT_FALSE(j["layers"][0]["results"][0].contains("top1"));
  EXPECT_DOUBLE_EQ(j["layers"][0]["results"][0]["error"].get<double>(),
                   j["layers"][0]["results"][0]["output_nmse"].get<double>());

  r = Ep("sensitivity " + ShellQuote(cnn_) + " --data " + ShellQuote(calib) + " --metric top1");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("label"), std::string::npos) << r.output;
  r = Ep("sensitivity " + ShellQuote(cnn_) + " --data " + ShellQuote(eval_) + " --sparsities 0.5,1.2");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("1.2"), std::string::npos) << r.output;
}

TEST_F(SensitivityCliTest, ModelWithoutPrunableWeightsIsRejected) {
  // A model of one Relu: nothing to prune (exit 1, named).
  ir::Model m;
  m.SetOpsetVersion("", 17);
  m.graph->name = "relu";
  ir::Value* x = m.graph->AddInput("image", ir::ValueType::Tensor(ir::DType::kFloat32,
                                                                  ir::MakeShape({1, 1, 8, 8})));
  ir::Node* n = m.graph->AddNode("Relu", {x}, {"y"});
  n->output(0)->type = x->type;
  m.graph->AddOutput(n->output(0));
  std::string path = dir_ + "/relu.onnx";
  formats::SaveOnnx(m, path);
  RunResult r = Ep("sensitivity " + ShellQuote(path) + " --data " + ShellQuote(eval_));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("no prunable weights"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace edgepress
