// `edgepress compress` on the digits models exported as TorchScript (issue 9, "Done when"):
// the .pt files of tests/fixtures/make_torchscript.py (digits_cnn, digits_transformer: the
// examples/digits weights in a scripted PyTorch module) with examples/digits' calibration
// and evaluation data,
//  - with `export: {pt: true}`: the written model.pt loads in Python's torch.jit.load
//    (Debian's /usr/bin/python3) and scores the report's compressed top1 on eval.npz, the
//    original .pt scores the report's baseline top1, and model.pt's logits agree with the
//    native runtime's on model.epk;
//  - with `target: {backend: torch}`: the report names the torch backend and the device,
//    and its top1 is again what Python measures on the exported model.pt.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "formats/npy/npy.h"
#include "ir/file_util.h"
#include "runtime/session.h"
#include "tests/formats/torchscript/ts_fixtures.h"
#include "tests/runtime/torch/torch_test_util.h"
#include "tests/tools/cli_run.h"

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace edgepress;
using namespace edgepress::test_util;

namespace {

const std::string kDigits = EDGEPRESS_SOURCE_DIR "/examples/digits/";
const std::string kRunPt = EDGEPRESS_SOURCE_DIR "/tests/runtime/torch/run_pt.py";

class CompressTorchScript : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (CliPath().empty() || !FileExists(CliPath())) GTEST_SKIP() << "the edgepress CLI was not built";
    if (!TorchPythonProblem().empty()) GTEST_SKIP() << TorchPythonProblem();
    std::string skip;
    ASSERT_EQ(EnsureTorchScriptFixture(GetParam(), &skip), "");
    if (!skip.empty()) GTEST_SKIP() << skip;
    pt_ = kTsFixtureDir + "/" + GetParam() + "/model.pt";
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "compress_pt" / (std::string(GetParam()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    for (auto& [name, t] : formats::LoadNpz(kDigits + "eval.npz")) (name == "image" ? images_ : labels_) = t;
    ASSERT_EQ(images_.shape()[0], labels_.shape()[0]);
  }
  std::string D(const std::string& n) const { return (dir_ / n).string(); }

  // Runs compress on the fixture's .pt with `recipe`; returns report.json.
  Json Compress(const std::string& recipe) {
    WriteFileAtomic(D("recipe.yaml"), recipe);
    RunResult r = RunCommand(ShellQuote(CliPath()) + " compress " + ShellQuote(pt_) + " --recipe " +
                             ShellQuote(D("recipe.yaml")) + " --calib " + ShellQuote(kDigits + "calib.npz") +
                             " --eval " + ShellQuote(kDigits + "eval.npz") + " -o " + ShellQuote(D("out")) +
                             " --quiet");
    EXPECT_TRUE(r.rc == 0 || r.rc == 3) << r.output;
    if (!FileExists(D("out/report.json"))) return Json();
    return Json::parse(ReadFileToString(D("out/report.json")));
  }

  // The logits of `pt` on every eval image, computed by Python's torch.jit.load.
  ir::Tensor PythonLogits(const std::string& pt) {
    formats::SaveNpz({{"image", images_}}, D("images.npz"));
    RunResult r = RunCommand(ShellQuote(kSystemPython) + " " + ShellQuote(kRunPt) + " " + ShellQuote(pt) + " " +
                             ShellQuote(D("images.npz")) + " " + ShellQuote(D("logits.npz")) + " image");
    EXPECT_EQ(r.rc, 0) << pt << ":\n" << r.output;
    if (r.rc != 0) return ir::Tensor();
    return formats::LoadNpz(D("logits.npz")).at(0).second;
  }

  double Top1(const ir::Tensor& logits) {
    EXPECT_EQ(logits.shape(), (std::vector<int64_t>{labels_.shape()[0], 10}));
    if (logits.shape().size() != 2) return -1;
    std::vector<double> l = logits.ToDouble(), y = labels_.ToDouble();
    int64_t n = logits.shape()[0], c = logits.shape()[1], right = 0;
    for (int64_t i = 0; i < n; ++i) {
      int64_t best = 0;
      for (int64_t k = 1; k < c; ++k)
        if (l[i * c + k] > l[i * c + best]) best = k;
      right += best == static_cast<int64_t>(y[i]);
    }
    return static_cast<double>(right) / static_cast<double>(n);
  }

  // model.pt is listed in the report, scores its top1 in Python, and the original .pt
  // scores the baseline's.
  void CheckExportedPt(const Json& rep) {
    bool listed = false;
    for (const auto& a : rep["artifacts"]) listed |= a["path"] == "model.pt";
    EXPECT_TRUE(listed) << rep["artifacts"].dump();
    ASSERT_TRUE(FileExists(D("out/model.pt")));
    ir::Tensor logits = PythonLogits(D("out/model.pt"));
    double top1 = Top1(logits), baseline = Top1(PythonLogits(pt_));
    std::printf("[ compress ] %s (%s): report top1 %.4f -> %.4f, python on .pt %.4f -> %.4f\n", GetParam(),
                rep["target"]["backend"].get<std::string>().c_str(), rep["baseline"]["metric"].get<double>(),
                rep["compressed"]["metric"].get<double>(), baseline, top1);
    EXPECT_GT(top1, 0.9);
    EXPECT_NEAR(top1, rep["compressed"]["metric"].get<double>(), 1e-9);
    EXPECT_NEAR(baseline, rep["baseline"]["metric"].get<double>(), 1e-9);
    if (FileExists(D("out/model.epk"))) {
      runtime::NamedTensors want = runtime::Session::Load(D("out/model.epk"))->Run({{"image", images_}});
      ASSERT_EQ(want.size(), 1u);
      Agreement a = CompareOutputs({{want[0].first, logits}}, want);
      std::printf("[ compress ] %s: model.pt in python vs model.epk native, scaled max error %.3g\n", GetParam(),
                  a.error);
      EXPECT_LE(a.error, 1e-4) << a.detail;
    }
  }

  std::string pt_;
  fs::path dir_;
  ir::Tensor images_, labels_;
};

TEST_P(CompressTorchScript, ExportPtLoadsInPythonWithTheReportsAccuracy) {
  Json rep = Compress(
      "pipeline: [fold-constants, quantize-weights]\n"
      "evaluation: {metric: top1, latency_runs: 5}\n"
      "export: {epk: true, pt: true}\n");
  ASSERT_FALSE(rep.is_null());
  EXPECT_EQ(rep["provenance"]["model"]["path"], pt_);
  EXPECT_EQ(rep["target"]["backend"], "native");
  CheckExportedPt(rep);
}

TEST_P(CompressTorchScript, TorchBackendTargetNamesBackendAndDevice) {
  Json rep = Compress(
      "target: {name: torch-cpu, backend: torch, device: cpu}\n"
      "pipeline: [fold-constants, quantize-weights]\n"
      "evaluation: {metric: top1, latency_runs: 5}\n"
      "export: {pt: true}\n");
  ASSERT_FALSE(rep.is_null());
  EXPECT_EQ(rep["target"]["backend"], "torch");
  EXPECT_EQ(rep["target"]["device"], "cpu");
  EXPECT_GT(rep["compressed"]["latency_ms"]["p50"].get<double>(), 0);
  EXPECT_NE(ReadFileToString(D("out/report.md")).find("torch on cpu"), std::string::npos);
  CheckExportedPt(rep);
}

INSTANTIATE_TEST_SUITE_P(Digits, CompressTorchScript, ::testing::Values("digits_cnn", "digits_transformer"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
