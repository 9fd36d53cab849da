// Real exported models end to end: torchvision resnet18 (opset 13) and mobilenet_v2
// (opset 10, Clip with attribute min/max) exported by Debian's torch with random weights;
// `edgepress inspect` must report torch's parameter count, and `convert` (with and
// without --external-data) must give models onnxruntime runs to bit-identical outputs.
// Skips when the project venv (torch, torchvision, onnxruntime) is missing.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "formats/onnx/onnx.h"
#include "formats/onnx/onnx_compare.h"
#include "ir/file_util.h"
#include "tests/tools/cli_run.h"

namespace fs = std::filesystem;
using namespace edgepress;
using namespace edgepress::test_util;

namespace {

const std::string kPython = EDGEPRESS_SOURCE_DIR "/.venv/bin/python";
const std::string kFixtures = EDGEPRESS_SOURCE_DIR "/tests/fixtures";

uint64_t JsonNumber(const std::string& json, const std::string& pattern) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex(pattern))) return UINT64_MAX;
  return std::stoull(m[1].str());
}

class TorchvisionInterop : public ::testing::TestWithParam<const char*> {
 protected:
  static void SetUpTestSuite() {
    if (!FileExists(kPython)) {
      skip_ = "no project venv at " + kPython;
      return;
    }
    RunResult r = RunCommand(ShellQuote(kPython) + " -c 'import torch, torchvision, onnxruntime'");
    if (r.rc != 0) {
      skip_ = "the venv lacks torch/torchvision/onnxruntime: " + r.output;
      return;
    }
    if (std::string(EDGEPRESS_CLI).empty()) {
      skip_ = "the edgepress binary is not built";
      return;
    }
    dir_ = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "torchvision";
    // The export takes ~30 s; reuse it across runs of the same build tree.
    if (!FileExists((dir_ / "expected.json").string())) {
      r = RunCommand(ShellQuote(kPython) + " " + ShellQuote(kFixtures + "/export_torchvision.py") + " " +
              ShellQuote(dir_.string()));
      if (r.rc != 0) export_error_ = r.output;
    }
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(export_error_.empty()) << "export_torchvision.py failed:\n" << export_error_;
  }
  RunResult Ep(const std::string& args) { return RunCommand(ShellQuote(EDGEPRESS_CLI) + " " + args); }

  static inline std::string skip_;
  static inline std::string export_error_;
  static inline fs::path dir_;
};

}  // namespace

TEST_P(TorchvisionInterop, InspectMatchesTorchAndConvertIsBitIdentical) {
  const std::string name = GetParam();
  const std::string src = (dir_ / (name + ".onnx")).string();
  const std::string expected = ReadFileToString((dir_ / "expected.json").string());
  std::smatch m;
  ASSERT_TRUE(std::regex_search(expected, m,
                                std::regex("\"" + name + "\": \\{[^}]*\\}")));
  const std::string entry = m[0].str();
  const uint64_t torch_params = JsonNumber(entry, "\"torch_parameters\": (\\d+)");
  const uint64_t bn_stats = JsonNumber(entry, "\"bn_running_stats\": (\\d+)");

  RunResult r = Ep("inspect --json " + ShellQuote(src));
  ASSERT_EQ(r.rc, 0) << r.output;
  // ONNX initializers = torch parameters + BatchNorm running mean/var (all f32).
  EXPECT_EQ(JsonNumber(r.output, "\"parameters\":\\{\"count\":(\\d+)"), torch_params + bn_stats)
      << r.output.substr(0, 2000);
  EXPECT_EQ(JsonNumber(r.output, "\"by_dtype\":\\{\"f32\":\\{\"count\":(\\d+)"),
            torch_params + bn_stats);
  EXPECT_EQ(JsonNumber(r.output, "\"parameters\":\\{\"count\":\\d+,\"bytes\":(\\d+)"),
            4 * (torch_params + bn_stats));
  EXPECT_NE(r.output.find("\"producer_name\":\"pytorch\""), std::string::npos);
  EXPECT_NE(r.output.find("\"name\":\"image\",\"type\":\"f32[batch,3,224,224]\""),
            std::string::npos) << r.output.substr(0, 2000);
  EXPECT_NE(r.output.find("\"Conv\":"), std::string::npos);
  r = Ep("inspect " + ShellQuote(src));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("parameters: " + std::to_string(torch_params + bn_stats)),
            std::string::npos) << r.output;

  const fs::path out_dir = dir_ / (name + "_out");
  fs::remove_all(out_dir);
  fs::create_directories(out_dir / "ext");
  const std::string plain = (out_dir / "model.onnx").string();
  const std::string ext = (out_dir / "ext" / "model.onnx").string();
  r = Ep("convert " + ShellQuote(src) + " " + ShellQuote(plain));
  ASSERT_EQ(r.rc, 0) << r.output;
  r = Ep("convert --external-data " + ShellQuote(src) + " " + ShellQuote(ext));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_LT(FileSize(ext), 200u * 1024) << "weights should live in the .data file";
  // Initializers above the 1 KiB threshold go to the .data file; small ones stay inline.
  uint64_t external_bytes = 0;
  auto src_model = edgepress::formats::LoadOnnx(src);
  for (const edgepress::ir::Value* v : src_model->graph->initializers())
    if (v->initializer()->nbytes() > 1024) external_bytes += v->initializer()->nbytes();
  EXPECT_GT(external_bytes, 4 * (torch_params + bn_stats) * 9 / 10);
  EXPECT_GE(FileSize(ext + ".data"), external_bytes);

  std::string diff;
  EXPECT_TRUE(formats::OnnxFilesEquivalent(src, plain, &diff)) << diff;
  EXPECT_TRUE(formats::OnnxFilesEquivalent(src, ext, &diff)) << diff;
  for (const std::string& converted : {plain, ext}) {
    r = RunCommand(ShellQuote(kPython) + " " + ShellQuote(kFixtures + "/ort_compare.py") + " " +
            ShellQuote(src) + " " + ShellQuote(converted));
    EXPECT_EQ(r.rc, 0) << converted << ":\n" << r.output;
    EXPECT_NE(r.output.find("bit-identical"), std::string::npos) << r.output;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, TorchvisionInterop,
                         ::testing::Values("resnet18", "mobilenet_v2"));
