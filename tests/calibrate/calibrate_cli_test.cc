// End-to-end `edgepress calibrate` on the digits CNN (examples/digits) with its 200-sample
// calibration set: ranges.json is written and readable, every range is sane, a rerun is
// byte-identical, and bad data / methods / files give exit 1 or 2 with a clear message.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "calibrate/calibrate.h"
#include "formats/npy/npy.h"
#include "ir/file_util.h"
#include "ir/sha256.h"
#include "tests/tools/cli_run.h"

namespace edgepress {
namespace {

using test_util::CliPath;
using test_util::RunCommand;
using test_util::RunResult;
using test_util::ShellQuote;

std::string Example(const std::string& name) {
  return std::string(EDGEPRESS_SOURCE_DIR) + "/examples/digits/" + name;
}

class CalibrateCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CliPath().empty() || access(CliPath().c_str(), X_OK) != 0)
      GTEST_SKIP() << "the edgepress CLI was not built";
    char tmpl[] = "/tmp/edgepress_calibrate_cli_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) RunCommand("rm -rf " + ShellQuote(dir_));
  }
  RunResult Ep(const std::string& args) { return RunCommand(ShellQuote(CliPath()) + " " + args); }
  std::string Calib(const std::string& method, const std::string& out,
                    const std::string& extra = "") {
    return "calibrate " + ShellQuote(Example("digits_cnn.onnx")) + " --data " +
           ShellQuote(Example("calib.npz")) + " --method " + method + " -o " + ShellQuote(out) +
           " " + extra;
  }
  std::string dir_;
};

TEST_F(CalibrateCliTest, WritesSaneRangesAndRerunsByteIdentical) {
  for (const std::string method : {"minmax", "percentile", "entropy", "mse"}) {
    SCOPED_TRACE(method);
    std::string out = dir_ + "/" + method + ".json";
    RunResult r = Ep(Calib(method, out));
    ASSERT_EQ(r.rc, 0) << r.output;
    EXPECT_NE(r.output.find("on 200 samples"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(out), std::string::npos) << r.output;
    calibrate::CalibrationResult res = calibrate::LoadRanges(out);
    EXPECT_EQ(res.method, method);
    EXPECT_EQ(res.samples, 200);
    EXPECT_EQ(res.data_sha256, Sha256File(Example("calib.npz")));
    // The image input (pixels in [0, 1]) and the logits output are always observed.
    ASSERT_TRUE(res.ranges.count("image"));
    ASSERT_TRUE(res.ranges.count("logits"));
    EXPECT_GE(res.ranges.at("image").min, 0.0f);
    EXPECT_LE(res.ranges.at("image").max, 1.0f);
    EXPECT_EQ(res.ranges.at("image").count, 200u * 64u);
    EXPECT_GE(res.ranges.size(), 5u);
    for (const auto& [name, t] : res.ranges) {
      SCOPED_TRACE(name);
      EXPECT_TRUE(std::isfinite(t.min) && std::isfinite(t.max));
      EXPECT_LT(t.min, t.max);
      EXPECT_GT(t.count, 0u);
      EXPECT_EQ(t.nonfinite, 0u);
    }
    // Rerun: byte-identical.
    std::string again = dir_ + "/" + method + "_again.json";
    ASSERT_EQ(Ep(Calib(method, again)).rc, 0);
    EXPECT_EQ(ReadFileToString(out), ReadFileToString(again));
  }
  // Histogram methods never widen minmax; logits keep both signs.
  auto mm = calibrate::LoadRanges(dir_ + "/minmax.json");
  for (const std::string method : {"percentile", "entropy", "mse"}) {
    auto r = calibrate::LoadRanges(dir_ + "/" + method + ".json");
    for (const auto& [name, t] : r.ranges) {
      EXPECT_GE(t.min, mm.ranges.at(name).min) << method << " " << name;
      EXPECT_LE(t.max, mm.ranges.at(name).max) << method << " " << name;
    }
  }
  EXPECT_LT(mm.ranges.at("logits").min, 0.0f);
  EXPECT_GT(mm.ranges.at("logits").max, 0.0f);
}

TEST_F(CalibrateCliTest, JsonSummaryBatchingAndSeveralFiles) {
  std::string out = dir_ + "/r.json";
  RunResult r = Ep(Calib("minmax", out, "--json --batch-size 64 --max-samples 150"));
  ASSERT_EQ(r.rc, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["samples"], 150);
  EXPECT_EQ(j["method"], "minmax");
  EXPECT_EQ(j["output"], out);
  EXPECT_GT(j["peak_observer_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(j["tensors"].get<size_t>(), calibrate::LoadRanges(out).ranges.size());
  // The same file twice: twice the samples, same ranges, another data hash.
  std::string twice = dir_ + "/twice.json";
  r = Ep(Calib("minmax", twice, "--data " + ShellQuote(Example("calib.npz"))));
  ASSERT_EQ(r.rc, 0) << r.output;
  auto a = calibrate::LoadRanges(twice);
  EXPECT_EQ(a.samples, 400);
  ASSERT_EQ(Ep(Calib("minmax", out)).rc, 0);
  auto b = calibrate::LoadRanges(out);
  EXPECT_NE(a.data_sha256, b.data_sha256);
  for (const auto& [name, t] : b.ranges) {
    EXPECT_EQ(a.ranges.at(name).min, t.min) << name;
    EXPECT_EQ(a.ranges.at(name).max, t.max) << name;
  }
  // Per-channel along axis 1, restricted to one tensor.
  std::string pc = dir_ + "/pc.json";
  ASSERT_EQ(Ep(Calib("minmax", pc, "--per-channel-axis 1 --tensors image")).rc, 0);
  auto c = calibrate::LoadRanges(pc);
  ASSERT_EQ(c.ranges.size(), 1u);
  EXPECT_EQ(c.ranges.at("image").axis, 1);
  EXPECT_EQ(c.ranges.at("image").channel_min.size(), 1u);  // image is [N, 1, 8, 8]
}

TEST_F(CalibrateCliTest, Errors) {
  std::string out = dir_ + "/r.json";
  // Data without the model's input: exit 1, names the file, the input and what it has.
  formats::SaveNpz({{"pixels", ir::Tensor(ir::DType::kFloat32, {2, 1, 8, 8})}},
                   dir_ + "/wrong.npz");
  RunResult r = Ep("calibrate " + ShellQuote(Example("digits_cnn.onnx")) + " --data " +
                   ShellQuote(dir_ + "/wrong.npz") + " -o " + ShellQuote(out));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("wrong.npz"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'image'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'pixels'"), std::string::npos) << r.output;
  // Bad method: usage error with a suggestion.
  r = Ep(Calib("entropi", out));
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("did you mean 'entropy'"), std::string::npos) << r.output;
  // Bad percentile.
  r = Ep(Calib("percentile", out, "--percentile 0"));
  EXPECT_EQ(r.rc, 2) << r.output;
  // Non-existent data file and model.
  r = Ep("calibrate " + ShellQuote(Example("digits_cnn.onnx")) + " --data " +
         ShellQuote(dir_ + "/missing.npz") + " -o " + ShellQuote(out));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("missing.npz"), std::string::npos) << r.output;
  r = Ep("calibrate " + ShellQuote(dir_ + "/nope.onnx") + " --data " +
         ShellQuote(Example("calib.npz")) + " -o " + ShellQuote(out));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("nope.onnx"), std::string::npos) << r.output;
  // Missing -o or --data: usage.
  EXPECT_EQ(Ep("calibrate " + ShellQuote(Example("digits_cnn.onnx")) + " --data " +
               ShellQuote(Example("calib.npz")))
                .rc,
            2);
  EXPECT_EQ(Ep("calibrate " + ShellQuote(Example("digits_cnn.onnx")) + " -o " + ShellQuote(out)).rc,
            2);
  // Unknown tensor.
  r = Ep(Calib("minmax", out, "--tensors no_such_value"));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("no_such_value"), std::string::npos) << r.output;
  // Nothing was written by the failed runs.
  EXPECT_FALSE(FileExists(out));
}

}  // namespace
}  // namespace edgepress
