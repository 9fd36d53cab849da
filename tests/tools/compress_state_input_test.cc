// A recurrent model whose state is an input (an LSTM on the real sklearn digits with h0/c0
// [2, batch, 32] as inputs, tests/fixtures/make_lstm_state.py): its calibration and
// evaluation files hold the state once, not per sample, and it calibrates and compresses
// with the state fed as a constant input — inferred from the model's shapes, or given in
// the recipe. A layout that makes the inputs disagree is a clear error naming them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "ir/file_util.h"
#include "tests/fixtures/model_fixtures.h"
#include "tests/tools/cli_run.h"

namespace edgepress::test_util {
namespace {

namespace fs = std::filesystem;

// Exports the fixture once per build (locked against parallel test processes).
std::string LstmFixture(std::string* skip) {
  const std::string dir = kModelFixtureDir + "/lstm_state";
  fs::create_directories(kModelFixtureDir);
  FileLock lock(dir + ".lock");
  if (!lock.ok()) return "cannot lock " + dir + ".lock";
  if (FileExists(dir + "/model.onnx") && FileExists(dir + "/eval.npz")) return "";
  RunResult probe = RunCommand("/usr/bin/python3 -c 'import torch, sklearn'");
  if (probe.rc != 0) {
    *skip = "Debian's python3-torch/python3-sklearn are not installed";
    return "";
  }
  RunResult r = RunCommand("/usr/bin/python3 " +
                           ShellQuote(EDGEPRESS_SOURCE_DIR "/tests/fixtures/make_lstm_state.py") +
                           " " + ShellQuote(dir));
  return r.rc == 0 ? "" : "make_lstm_state.py failed:\n" + r.output;
}

class CompressStateInput : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CliPath().empty() || !FileExists(CliPath())) GTEST_SKIP() << "the CLI is not built";
    std::string skip, err = LstmFixture(&skip);
    if (!skip.empty()) GTEST_SKIP() << skip;
    ASSERT_EQ(err, "");
    dir_ = kModelFixtureDir + "/lstm_state";
  }
  RunResult Ep(const std::string& args) { return RunCommand(ShellQuote(CliPath()) + " " + args); }
  std::string F(const std::string& name) const { return ShellQuote(dir_ + "/" + name); }
  std::string dir_;
};

TEST_F(CompressStateInput, CalibratesWithTheStateInferredConstant) {
  RunResult r = Ep("calibrate " + F("model.onnx") + " --data " + F("calib.npz") + " -o " +
                   ShellQuote(dir_ + "/ranges.json"));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("on 200 samples"), std::string::npos) << r.output;
}

TEST_F(CompressStateInput, CompressesWithTheStateConstantFromTheRecipe) {
  std::string out = dir_ + "/out", recipe = dir_ + "/recipe.yaml";
  WriteFileAtomic(recipe,
                  "name: lstm-state\n"
                  "extends: x86-avx2-laptop\n"
                  "budgets:\n"
                  "  max_size_ratio: null   # the LSTM's own weights stay float\n"
                  "  max_accuracy_drop: 0.01\n"
                  "calibration:\n"
                  "  layout: {h0: constant, c0: constant}\n"
                  "evaluation:\n"
                  "  layout: {h0: constant, c0: constant}\n");
  fs::remove_all(out);
  RunResult r = Ep("compress " + F("model.onnx") + " --recipe " + ShellQuote(recipe) +
                   " --calib " + F("calib.npz") + " --eval " + F("eval.npz") + " -o " +
                   ShellQuote(out) + " --quiet");
  ASSERT_EQ(r.rc, 0) << r.output;
  std::string report = ReadFileToString(out + "/report.json");
  EXPECT_NE(report.find("\"status\": \"passed\""), std::string::npos) << report.substr(0, 400);
  EXPECT_TRUE(FileExists(out + "/model.epk"));
  // Top-1 of the compressed model on the 360 held-out digits, each fed with the one state.
  size_t at = report.find("\"compressed\"");
  ASSERT_NE(at, std::string::npos);
  at = report.find("\"metric\": ", at);
  ASSERT_NE(at, std::string::npos);
  double top1 = std::stod(report.substr(at + 10, 20));
  EXPECT_GT(top1, 0.95);
}

TEST_F(CompressStateInput, ALayoutThatMakesInputsDisagreeNamesThemAndTheOption) {
  RunResult r = Ep("calibrate " + F("model.onnx") + " --data " + F("calib.npz") +
                   " --layout h0=batched -o " + ShellQuote(dir_ + "/bad.json"));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("'h0' f32[2,1,32] has 2 (batched)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--layout"), std::string::npos) << r.output;
  r = Ep("calibrate " + F("model.onnx") + " --data " + F("calib.npz") +
         " --layout state=constant -o " + ShellQuote(dir_ + "/bad.json"));
  EXPECT_EQ(r.rc, 2) << r.output;  // no such input: a usage error
}

}  // namespace
}  // namespace edgepress::test_util
