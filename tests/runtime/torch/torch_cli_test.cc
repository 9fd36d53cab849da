// The CLI's LibTorch paths (issue 9, item 4): `run`/`bench` with --backend torch and
// --device, `convert` to .pt, and `compress` with a recipe whose target.backend is torch
// and export.pt is true, on the digits example. The .pt files are loaded by Python's
// torch.jit.load (Debian's /usr/bin/python3) and must reproduce the native runtime.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/file_util.h"
#include "runtime/session.h"
#include "runtime/torch/torch_session.h"
#include "tests/runtime/torch/torch_test_util.h"
#include "tests/tools/cli_run.h"

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace edgepress {
namespace {

using test_util::RunResult;
using test_util::ShellQuote;

const std::string kDigits = EDGEPRESS_SOURCE_DIR "/examples/digits/";
const std::string kRunPt = EDGEPRESS_SOURCE_DIR "/tests/runtime/torch/run_pt.py";

class TorchCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test_util::CliPath().empty() || !FileExists(test_util::CliPath()))
      GTEST_SKIP() << "the edgepress CLI was not built";
    dir_ = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "torch_cli" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  RunResult Ep(const std::string& args) {
    return test_util::RunCommand(ShellQuote(test_util::CliPath()) + " " + args);
  }
  std::string D(const std::string& n) const { return (dir_ / n).string(); }
  // Runs `pt` in Python on the first 32 eval images, compares with the native runtime on `ref`.
  void PythonMatches(const std::string& pt, const std::string& ref_model) {
    runtime::NamedTensors all = formats::LoadTensorFile(kDigits + "eval.npz");
    ir::Tensor img = all[0].first == "image" ? all[0].second : all[1].second;
    ir::Tensor part(img.dtype(), {32, 1, 8, 8});
    std::memcpy(part.mutable_raw(), img.raw(), part.nbytes());
    formats::SaveNpz({{"image", part}}, D("in.npz"));
    RunResult r = test_util::RunCommand("/usr/bin/python3 " + ShellQuote(kRunPt) + " " +
                                        ShellQuote(pt) + " " + ShellQuote(D("in.npz")) + " " +
                                        ShellQuote(D("out.npz")) + " image");
    ASSERT_EQ(r.rc, 0) << r.output;
    auto native = ref_model.size() > 5 && ref_model.substr(ref_model.size() - 5) == ".onnx"
                      ? runtime::Session::Create(
                            std::shared_ptr<const ir::Model>(formats::LoadOnnx(ref_model)))
                      : runtime::Session::Load(ref_model);
    runtime::NamedTensors want = native->Run({{"image", part}});
    runtime::NamedTensors got = formats::LoadTensorFile(D("out.npz"));
    ASSERT_EQ(got.size(), want.size());
    got[0].first = want[0].first;
    test_util::Agreement a = test_util::CompareOutputs(got, want);
    EXPECT_LE(a.error, 1e-4) << pt << ": " << a.detail;
  }
  fs::path dir_;
};

TEST_F(TorchCli, RunAndBenchOnTheTorchBackend) {
  RunResult r =
      Ep("run " + ShellQuote(kDigits + "digits_cnn.onnx") + " --backend torch --input " +
         ShellQuote(kDigits + "eval.npz") + " --compare " + ShellQuote(kDigits + "expected.npz"));
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("all 1 output(s) match"), std::string::npos) << r.output;
  r = Ep("bench " + ShellQuote(kDigits + "digits_transformer.onnx") +
         " --backend torch --dim batch=1 --iters 5 --json");
  ASSERT_EQ(r.rc, 0) << r.output;
  Json j = Json::parse(r.output);
  EXPECT_EQ(j["backend"], "torch");
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["iterations"], 5);
  // Device errors: the native runtime has no GPU (usage, 2); CUDA absent is exit 1.
  r = Ep("run " + ShellQuote(kDigits + "digits_cnn.onnx") + " --device cuda --input " +
         ShellQuote(kDigits + "eval.npz"));
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("use --backend torch"), std::string::npos) << r.output;
  if (!runtime::TorchSession::CudaAvailable()) {
    r = Ep("run " + ShellQuote(kDigits + "digits_cnn.onnx") +
           " --backend torch --device cuda --input " + ShellQuote(kDigits + "eval.npz"));
    EXPECT_EQ(r.rc, 1) << r.output;
    EXPECT_NE(r.output.find("device 'cuda' requested"), std::string::npos) << r.output;
  }
  r = Ep("run " + ShellQuote(kDigits + "digits_cnn.onnx") + " --backend tpu");
  EXPECT_EQ(r.rc, 2) << r.output;
}

TEST_F(TorchCli, ConvertAndApplyWriteTorchScript) {
  RunResult r = Ep("convert " + ShellQuote(kDigits + "digits_transformer.onnx") + " " +
                   ShellQuote(D("m.pt")));
  ASSERT_EQ(r.rc, 0) << r.output;
  PythonMatches(D("m.pt"), kDigits + "digits_transformer.onnx");
  // apply: int4 weights written as .pt, checked against the same pipeline written as .epk.
  // accuracy-level=0: LibTorch runs MatMulNBits in float, so the native side must too.
  for (const char* out : {"q4.pt", "q4.epk"}) {
    r = Ep("apply " + ShellQuote(kDigits + "digits_transformer.onnx") +
           " --passes 'quantize-weights{bits=4,group-size=16,accuracy-level=0}' -o " + ShellQuote(D(out)));
    ASSERT_EQ(r.rc, 0) << r.output;
  }
  PythonMatches(D("q4.pt"), D("q4.epk"));
  EXPECT_LT(FileSize(D("q4.pt")) * 2, FileSize(D("m.pt")));
}

// A .pt edgepress wrote is read back by every command: its signature file gives the input
// names and shapes, so `compare` takes it against the ONNX it came from. A symbolic batch
// dim leaves shape arithmetic for run time, which --input-shape settles.
TEST_F(TorchCli, CompareReadsAnExportedPtBack) {
  RunResult r = Ep("apply " + ShellQuote(kDigits + "digits_cnn.onnx") + " --passes quantize-weights -o " +
                   ShellQuote(D("cnn_int8.pt")));
  ASSERT_EQ(r.rc, 0) << r.output;
  r = Ep("compare " + ShellQuote(kDigits + "digits_cnn.onnx") + " " + ShellQuote(D("cnn_int8.pt")) +
         " --data " + ShellQuote(kDigits + "eval.npz") + " --max-samples 40");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("argmax agreement"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("argmax agreement 0"), std::string::npos) << r.output;

  r = Ep("convert " + ShellQuote(kDigits + "digits_transformer.onnx") + " " + ShellQuote(D("t.pt")));
  ASSERT_EQ(r.rc, 0) << r.output;
  r = Ep("compare " + ShellQuote(kDigits + "digits_transformer.onnx") + " " + ShellQuote(D("t.pt")) +
         " --data " + ShellQuote(kDigits + "eval.npz") + " --max-samples 40 --input-shape image=1,1,8,8");
  ASSERT_EQ(r.rc, 0) << r.output;
  // Same float graph on both sides: every output identical.
  EXPECT_NE(r.output.find("every compared value is identical"), std::string::npos) << r.output;
  // The file records the ONNX input name, and `inspect` shows it without any option.
  r = Ep("inspect " + ShellQuote(D("cnn_int8.pt")));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("image"), std::string::npos) << r.output;
}

TEST_F(TorchCli, MalformedInputShapeIsAUsageError) {
  for (const char* bad : {"image", "image=1,x,8", "image=1,,8", "=1,2", "image=1,2,"}) {
    RunResult r = Ep("inspect " + ShellQuote(kDigits + "digits_cnn.onnx") + " --input-shape '" + bad + "'");
    EXPECT_EQ(r.rc, 2) << bad << ": " << r.output;
    EXPECT_NE(r.output.find(std::string("--input-shape '") + bad + "'"), std::string::npos) << r.output;
  }
  RunResult r = Ep("inspect " + ShellQuote(kDigits + "digits_cnn.onnx") + " --input-shape a=1 --input-shape a=2");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("given twice"), std::string::npos) << r.output;
}

TEST_F(TorchCli, CompressOnTheTorchBackendExportsPt) {
  WriteFileAtomic(D("torch.yaml"),
                  "target: {name: torch-cpu, backend: torch, device: cpu}\n"
                  "pipeline: [fold-constants, quantize-weights]\n"
                  "evaluation: {metric: top1, latency_runs: 5}\n"
                  "export: {epk: true, pt: true}\n");
  RunResult r = Ep("compress " + ShellQuote(kDigits + "digits_cnn.onnx") + " --recipe " +
                   ShellQuote(D("torch.yaml")) + " --calib " + ShellQuote(kDigits + "calib.npz") +
                   " --eval " + ShellQuote(kDigits + "eval.npz") + " -o " + ShellQuote(D("out")) +
                   " --quiet");
  ASSERT_TRUE(r.rc == 0 || r.rc == 3) << r.output;
  Json rep = Json::parse(ReadFileToString(D("out/report.json")));
  EXPECT_EQ(rep["target"]["backend"], "torch");
  EXPECT_EQ(rep["target"]["device"], "cpu");
  EXPECT_GT(rep["compressed"]["metric"].get<double>(), 0.9);
  bool listed = false;
  for (const auto& a : rep["artifacts"]) listed |= a["path"] == "model.pt";
  EXPECT_TRUE(listed) << rep["artifacts"].dump();
  ASSERT_TRUE(FileExists(D("out/model.pt")));
  // int8 weights stay int8 in the .pt: far smaller than the float model's export.
  EXPECT_LT(FileSize(D("out/model.pt")) * 2, FileSize(kDigits + "digits_cnn.onnx"));
  PythonMatches(D("out/model.pt"), D("out/model.epk"));
  std::string md = ReadFileToString(D("out/report.md"));
  EXPECT_NE(md.find("torch on cpu"), std::string::npos);
}

}  // namespace
}  // namespace edgepress
