// `edgepress distill` with learned activation ranges and gradual pruning patterns, end to
// end on the digits CNN: the learned ranges file exports through
// `apply --passes quantize-static{ranges=FILE}` into an int8 model whose native top-1 is
// the one the command reported; --prune-pattern channels writes a smaller model; a bad
// pattern is a usage error (exit 2).
#include <gtest/gtest.h>

#include <fstream>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "calibrate/calibrate.h"
#include "formats/npy/npy.h"
#include "passes/prune/prune_util.h"
#include "runtime/session.h"
#include "tests/distill/digits_data.h"
#include "tests/tools/cli_run.h"
#include "tools/model_io.h"

namespace edgepress {
namespace {

using test_util::CliPath;
using test_util::kDigitsCnn;
using test_util::kDigitsEval;
using test_util::RunCommand;
using test_util::ShellQuote;
const std::string kTrain = EDGEPRESS_SOURCE_DIR "/examples/digits/train.npz";

double NativeTop1(const std::string& model_path) {
  auto s = runtime::Session::Create(std::shared_ptr<const ir::Model>(tools::LoadModel(model_path)));
  const ir::Tensor logits = s->Run({{"image", formats::LoadNpz(kDigitsEval)[0].second}})[0].second;
  formats::NamedTensors eval = formats::LoadNpz(kDigitsEval);
  const int64_t* label = eval[1].second.data<int64_t>();
  int64_t n = logits.shape()[0], correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data<float>() + i * 10;
    correct += std::max_element(row, row + 10) - row == label[i];
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

std::string Dir() {
  std::string d = ::testing::TempDir() + "/distill_pattern_cli";
  std::filesystem::create_directories(d);
  return d;
}

TEST(DistillPatternCli, LearnedRangesExportThroughQuantizeStatic) {
  const std::string dir = Dir(), out = dir + "/student.onnx", ranges = dir + "/ranges.json",
                    q = dir + "/student_int8.onnx";
  test_util::RunResult r = RunCommand(
      CliPath() + " distill --teacher " + ShellQuote(kDigitsCnn) +
      " --student-from-teacher 'prune-magnitude{sparsity=0.5}' --data " + ShellQuote(kTrain) +
      " --eval " + ShellQuote(kDigitsEval) +
      " --steps 60 --lr 1e-3 --seed 1 --fake-quant int8 --fake-quant-activations "
      "--learn-activation-ranges --range-lr-scale 10 --ranges-out " +
      ShellQuote(ranges) + " --json -o " + ShellQuote(out));
  ASSERT_EQ(r.rc, 0) << r.output;
  nlohmann::json j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  ASSERT_TRUE(j.contains("learned_ranges")) << r.output;
  EXPECT_EQ(calibrate::LoadRanges(ranges).ranges.size(), j["learned_ranges"].size());
  r = RunCommand(CliPath() + " apply " + ShellQuote(out) + " --passes 'quantize-static{ranges=" +
                 ranges + "}' --data " + ShellQuote(kTrain) + " -o " + ShellQuote(q));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("given-ranges=6"), std::string::npos) << r.output;
  // The command keeps the best evaluated weights and ranges; the export is that student.
  EXPECT_NEAR(NativeTop1(q), j["after"]["top1"].get<double>(), 1.5 / 360);
  // The same ranges on another model: only the shared input name matches, the rest are
  // counted as unused; a file that names nothing of the model is refused.
  const std::string transformer = EDGEPRESS_SOURCE_DIR "/examples/digits/digits_transformer.onnx";
  r = RunCommand(CliPath() + " apply " + ShellQuote(transformer) + " --passes 'quantize-static{ranges=" + ranges +
                 "}' --data " + ShellQuote(kTrain) + " -o " + ShellQuote(dir + "/other.onnx"));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("given-ranges=1 "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("given-ranges-unused=5"), std::string::npos) << r.output;
  {
    std::ofstream f(dir + "/bogus.json");
    f << R"({"version": 1, "method": "minmax", "samples": 0, "data_sha256": "", "ranges": )"
      << R"({"no_such_value": {"axis": -1, "count": 0, "min": -1.0, "max": 1.0, "nonfinite": 0}}})";
  }
  r = RunCommand(CliPath() + " apply " + ShellQuote(transformer) + " --passes 'quantize-static{ranges=" + dir +
                 "/bogus.json}' --data " + ShellQuote(kTrain) + " -o " + ShellQuote(dir + "/other.onnx"));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("names no value of this model (first: 'no_such_value')"), std::string::npos) << r.output;
}

TEST(DistillPatternCli, ChannelsPatternWritesASmallerModel) {
  const std::string dir = Dir(), out = dir + "/channels.onnx";
  test_util::RunResult r = RunCommand(
      CliPath() + " distill --teacher " + ShellQuote(kDigitsCnn) + " --student " +
      ShellQuote(kDigitsCnn) + " --data " + ShellQuote(kTrain) +
      " --steps 40 --lr 2e-3 --seed 1 --prune-pattern channels --prune-to 0.5 -q -o " +
      ShellQuote(out));
  ASSERT_EQ(r.rc, 0) << r.output;
  const int64_t before = passes::prune::CountParams(*tools::LoadModel(kDigitsCnn)).params;
  const int64_t after = passes::prune::CountParams(*tools::LoadModel(out)).params;
  EXPECT_LT(after, before / 2);

  r = RunCommand(CliPath() + " distill --teacher " + ShellQuote(kDigitsCnn) + " --student " +
                 ShellQuote(kDigitsCnn) + " --data " + ShellQuote(kTrain) +
                 " --steps 40 --prune-pattern 4:2 -q -o " + ShellQuote(out));
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("prune pattern '4:2'"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace edgepress
