// End-to-end `edgepress compare` on the bundled digits CNN (examples/digits): a model
// compared with itself is exact everywhere; a copy with one perturbed conv weight is exact
// before that conv, degraded at and after it, and the conv is named as where the error
// enters; a static-int8 copy made by `apply --passes quantize-static` stays close (skips
// while that pass is not built). Error cases: different inputs, no common values, bad
// data, missing --data.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
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
// The conv the perturbation test edits (torch.onnx names; BatchNorm folded by the export).
const char* kMidConv = "/features/features.3/Conv";

class CompareCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CliPath().empty() || access(CliPath().c_str(), X_OK) != 0)
      GTEST_SKIP() << "the edgepress CLI was not built";
    char tmpl[] = "/tmp/edgepress_compare_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    cnn_ = kDigits + "/digits_cnn.onnx";
    eval_ = kDigits + "/eval.npz";
  }
  void TearDown() override {
    if (!dir_.empty()) RunCommand("rm -rf " + ShellQuote(dir_));
  }
  RunResult Ep(const std::string& args) { return RunCommand(ShellQuote(CliPath()) + " " + args); }
  std::string Q(const std::string& path) { return ShellQuote(path); }
  // Runs compare --json; fails the test unless it exits 0 with JSON on stdout.
  nlohmann::json CompareJson(const std::string& ref, const std::string& model,
                             const std::string& extra = "") {
    // stderr may carry notes; the JSON is the last thing printed and starts with '{'.
    RunResult r = Ep("compare " + Q(ref) + " " + Q(model) + " --data " + Q(eval_) +
                     " --json " + extra + " 2>/dev/null");
    EXPECT_EQ(r.rc, 0) << r.output;
    size_t brace = r.output.find('{');
    if (r.rc != 0 || brace == std::string::npos) return nlohmann::json::object();
    return nlohmann::json::parse(r.output.substr(brace));
  }
  static double Snr(const nlohmann::json& v) {
    if (v["snr_db"].is_string())
      return v["snr_db"] == "inf" ? INFINITY : -INFINITY;
    return v["snr_db"].get<double>();
  }
  std::string dir_, cnn_, eval_;
};

TEST_F(CompareCliTest, ModelAgainstItselfIsExactEverywhere) {
  nlohmann::json j = CompareJson(cnn_, cnn_, "--max-samples 40");
  ASSERT_TRUE(j.contains("values"));
  EXPECT_EQ(j["samples"], 40);
  // Every Conv/Relu/Gemm output of the CNN is listed, in graph order, ending at logits.
  ASSERT_GE(j["values"].size(), 8u);
  EXPECT_EQ(j["values"].back()["value"], "logits");
  for (const auto& v : j["values"]) {
    EXPECT_EQ(Snr(v), INFINITY) << v["value"];
    EXPECT_DOUBLE_EQ(v["cosine"].get<double>(), 1.0) << v["value"];
    EXPECT_EQ(v["max_abs_error"].get<double>(), 0.0) << v["value"];
  }
  EXPECT_TRUE(j["worst_by_snr"].empty());
  EXPECT_TRUE(j["largest_snr_drop"].empty());
  ASSERT_EQ(j["outputs"].size(), 1u);
  EXPECT_DOUBLE_EQ(j["outputs"][0]["argmax_agreement"].get<double>(), 1.0);

  // The text table names the columns and the outputs' agreement.
  RunResult r = Ep("compare " + Q(cnn_) + " " + Q(cnn_) + " --data " + Q(eval_) +
                   " --max-samples 5");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("SNR dB"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("argmax agreement 100.00% (5/5)"), std::string::npos) << r.output;
}

TEST_F(CompareCliTest, PerturbedWeightIsWhereTheErrorEnters) {
  std::unique_ptr<ir::Model> m = formats::LoadOnnx(cnn_);
  ir::Node* conv = m->graph->FindNode(kMidConv);
  ASSERT_NE(conv, nullptr);
  ir::Tensor* w = conv->input(1)->mutable_initializer();
  ASSERT_NE(w, nullptr);
  // Output channel 0 of the conv gets +0.2 on each of its weights.
  float* p = w->mutable_data<float>();
  uint64_t per_channel = w->numel() / static_cast<uint64_t>(w->shape()[0]);
  for (uint64_t i = 0; i < per_channel; ++i) p[i] += 0.2f;
  std::string perturbed = dir_ + "/perturbed.onnx";
  formats::SaveOnnx(*m, perturbed);

  nlohmann::json j = CompareJson(cnn_, perturbed);
  ASSERT_TRUE(j.contains("values"));
  EXPECT_EQ(j["samples"], 360);
  const std::string conv_out = conv->output(0)->name();
  bool seen = false;
  for (const auto& v : j["values"]) {
    if (v["value"] == conv_out) seen = true;
    if (!seen) {
      EXPECT_EQ(Snr(v), INFINITY) << "before the perturbed conv: " << v["value"];
    } else {
      EXPECT_LT(Snr(v), 60.0) << "at or after the perturbed conv: " << v["value"];
      EXPECT_LT(v["cosine"].get<double>(), 1.0) << v["value"];
    }
  }
  ASSERT_TRUE(seen);
  ASSERT_FALSE(j["largest_snr_drop"].empty());
  EXPECT_EQ(j["largest_snr_drop"][0], conv_out);
  // The worst layers by SNR are all at or after the perturbation.
  ASSERT_FALSE(j["worst_by_snr"].empty());
  for (const auto& name : j["worst_by_snr"]) {
    bool after = false;
    for (const auto& v : j["values"]) {
      if (v["value"] == conv_out) after = true;
      if (v["value"] == name) break;
    }
    EXPECT_TRUE(after) << name;
  }

  // The text form names the layer first in the drop list.
  RunResult r = Ep("compare " + Q(cnn_) + " " + Q(perturbed) + " --data " + Q(eval_) +
                   " --top 3");
  ASSERT_EQ(r.rc, 0) << r.output;
  size_t at = r.output.find("largest SNR drop");
  ASSERT_NE(at, std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("1. " + conv_out, at), r.output.find("1. ", at)) << r.output;
}

TEST_F(CompareCliTest, StaticInt8DigitsCnnStaysClose) {
  RunResult has = Ep("passes quantize-static");
  if (has.rc != 0) GTEST_SKIP() << "quantize-static is not in this build";
  std::string q = dir_ + "/cnn_int8.onnx";
  RunResult a = Ep("apply " + Q(cnn_) + " --passes quantize-static --data " +
                   Q(kDigits + "/calib.npz") + " -o " + Q(q));
  ASSERT_EQ(a.rc, 0) << a.output;
  nlohmann::json j = CompareJson(cnn_, q);
  ASSERT_TRUE(j.contains("values"));
  // QDQ keeps the float names: every Conv/Gemm layer of the reference is compared.
  int convs = 0;
  for (const auto& v : j["values"]) {
    if (v["op"] != "Conv" && v["op"] != "Gemm") continue;
    ++convs;
    // int8 activations and per-channel weights: well above 20 dB on every layer.
    EXPECT_GT(Snr(v), 20.0) << v["value"];
    EXPECT_LT(Snr(v), INFINITY) << v["value"] << " was not quantized";
  }
  EXPECT_EQ(convs, 5);
  ASSERT_EQ(j["outputs"].size(), 1u);
  EXPECT_GT(j["outputs"][0]["cosine"].get<double>(), 0.995);
  EXPECT_GE(j["outputs"][0]["argmax_agreement"].get<double>(), 0.98);
  EXPECT_FALSE(j["worst_by_snr"].empty());
}

TEST_F(CompareCliTest, Errors) {
  // A model with another input name: different inputs, exit 1.
  {
    ir::Model m;
    m.SetOpsetVersion("", 13);
    m.graph->name = "g";
    ir::Value* x = m.graph->AddInput(
        "x", ir::ValueType::Tensor(ir::DType::kFloat32, ir::MakeShape({1, 1, 8, 8})));
    ir::Value* y = m.graph->AddNode("Relu", {x}, {"y"}, "relu")->output(0);
    y->type = x->type;
    m.graph->AddOutput(y);
    formats::SaveOnnx(m, dir_ + "/other_input.onnx");
  }
  RunResult r = Ep("compare " + Q(cnn_) + " " + Q(dir_ + "/other_input.onnx") + " --data " +
                   Q(eval_));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("different inputs"), std::string::npos) << r.output;

  // Same input, but no value shares a name with the CNN's: nothing to compare, exit 1.
  {
    ir::Model m;
    m.SetOpsetVersion("", 13);
    m.graph->name = "g";
    ir::Value* x = m.graph->AddInput(
        "image", ir::ValueType::Tensor(ir::DType::kFloat32,
                                       ir::Shape{ir::Dim::Symbol("batch"), ir::Dim::Known(1),
                                                 ir::Dim::Known(8), ir::Dim::Known(8)}));
    ir::Value* y = m.graph->AddNode("Relu", {x}, {"unrelated"}, "relu")->output(0);
    y->type = x->type;
    m.graph->AddOutput(y);
    formats::SaveOnnx(m, dir_ + "/unrelated.onnx");
  }
  r = Ep("compare " + Q(cnn_) + " " + Q(dir_ + "/unrelated.onnx") + " --data " + Q(eval_));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("no common values"), std::string::npos) << r.output;

  // Data without the model's input: exit 1 naming the input.
  formats::SaveNpz({{"pixels", ir::Tensor(ir::DType::kFloat32, {2, 1, 8, 8})}},
                   dir_ + "/wrong.npz");
  r = Ep("compare " + Q(cnn_) + " " + Q(cnn_) + " --data " + Q(dir_ + "/wrong.npz"));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("image"), std::string::npos) << r.output;

  // Missing --data, or a missing model file.
  EXPECT_EQ(Ep("compare " + Q(cnn_) + " " + Q(cnn_)).rc, 2);
  r = Ep("compare " + Q(cnn_) + " " + Q(dir_ + "/absent.onnx") + " --data " + Q(eval_));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("absent.onnx"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace edgepress
