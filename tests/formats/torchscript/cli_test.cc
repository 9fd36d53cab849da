// The CLI reads .pt: inspect names the format and torch's parameter count, run matches
// LibTorch's reference, convert writes an .onnx that run matches too, and compress takes
// the digits transformer as TorchScript and passes its recipe's budgets.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/formats/torchscript/ts_fixtures.h"
#include "tests/tools/cli_run.h"

namespace fs = std::filesystem;
using namespace edgepress;
using namespace edgepress::test_util;

namespace {

class TorchScriptCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CliPath().empty()) GTEST_SKIP() << "the edgepress binary is not built";
    out_ = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "torchscript_cli";
    fs::create_directories(out_);
  }
  std::string Dir(const std::string& name) {
    std::string skip;
    std::string err = EnsureTorchScriptFixture(name, &skip);
    if (!skip.empty()) return "";
    EXPECT_EQ(err, "");
    return kTsFixtureDir + "/" + name;
  }
  RunResult Ep(const std::string& args) { return RunCommand(ShellQuote(CliPath()) + " " + args); }
  fs::path out_;
};

TEST_F(TorchScriptCli, InspectRunAndConvert) {
  std::string dir = Dir("digits_cnn");
  if (dir.empty()) GTEST_SKIP() << "no fixture python";
  const std::string pt = ShellQuote(dir + "/model.pt");
  RunResult r = Ep("inspect " + pt);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("TorchScript"), std::string::npos) << r.output;
  // 3 convs (16*9+16, 32*16*9+32, 32*32*9+32 with BN folded in) + 512*64+64 + 64*10+10.
  EXPECT_NE(r.output.find("parameters: 47530"), std::string::npos) << r.output;
  r = Ep("run " + pt + " --input " + ShellQuote(dir + "/in.npz") + " --compare " + ShellQuote(dir + "/ref.npz"));
  EXPECT_EQ(r.rc, 0) << r.output;
  const std::string onnx = (out_ / "digits_cnn.onnx").string();
  r = Ep("convert " + pt + " " + ShellQuote(onnx));
  ASSERT_EQ(r.rc, 0) << r.output;
  r = Ep("run " + ShellQuote(onnx) + " --input " + ShellQuote(dir + "/in.npz") + " --compare " +
         ShellQuote(dir + "/ref.npz"));
  EXPECT_EQ(r.rc, 0) << r.output;
}

TEST_F(TorchScriptCli, CorruptFileIsExitOneWithTheFileNamed) {
  const std::string bad = (out_ / "truncated.pt").string();
  std::string dir = Dir("digits_cnn");
  if (dir.empty()) GTEST_SKIP() << "no fixture python";
  std::string bytes = ReadFileToString(dir + "/model.pt");
  WriteFileAtomic(bad, bytes.substr(0, bytes.size() / 3));
  RunResult r = Ep("inspect " + ShellQuote(bad));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find(bad), std::string::npos) << r.output;
}

TEST_F(TorchScriptCli, CompressTheDigitsTransformerFromTorchScript) {
  std::string dir = Dir("digits_transformer");
  if (dir.empty()) GTEST_SKIP() << "no fixture python";
  const std::string digits = EDGEPRESS_SOURCE_DIR "/examples/digits";
  const fs::path out = out_ / "compress";
  fs::remove_all(out);
  RunResult r = Ep("compress " + ShellQuote(dir + "/model.pt") + " --recipe x86-avx512-vnni --calib " +
                   ShellQuote(digits + "/calib.npz") + " --eval " + ShellQuote(digits + "/eval.npz") +
                   " --threads 1 -q -o " + ShellQuote(out.string()));
  // The recipe's latency budget and the not-slower check are timings: on a loaded machine
  // they may miss (exit 3). What this test checks is that the TorchScript model compresses
  // and keeps every non-timing budget.
  ASSERT_TRUE(r.rc == 0 || r.rc == 3) << r.output;
  const nlohmann::json rep = nlohmann::json::parse(ReadFileToString((out / "report.json").string()));
  for (const auto& b : rep["budgets"]) {
    if (!b["timing"].get<bool>()) {
      EXPECT_TRUE(b["passed"].get<bool>()) << b.dump();
    }
  }
  EXPECT_GT(rep["compressed"]["metric"].get<double>(), 0.95);
  EXPECT_TRUE(fs::exists(out / "model.epk"));
}

}  // namespace
