// The `distill` step of compress recipes, end to end through the CLI on the real digits
// data: the shipped examples/digits/prune_distill_int8.yaml (prune 50% -> distill ->
// int8) recovers what pruning cost, measured against the same recipe without the step;
// the report shows the step (JSON details, Markdown section, HTML table and loss chart);
// tuning steps override its options; a fake-quant step exports what it trained; a
// TorchScript model is its own teacher; and bad
// step options fail with the recipe's file and line before any work.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "eval/report.h"
#include "ir/file_util.h"
#include "tests/formats/torchscript/ts_fixtures.h"
#include "tests/tools/cli_run.h"

namespace edgepress {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using test_util::CliPath;
using test_util::RunCommand;
using test_util::RunResult;
using test_util::ShellQuote;

const std::string kSource = EDGEPRESS_SOURCE_DIR;
const std::string kRecipe = "examples/digits/prune_distill_int8.yaml";

class CompressDistill : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CliPath().empty() || !fs::exists(CliPath()))
      GTEST_SKIP() << "the edgepress CLI was not built";
    dir_ = fs::path(::testing::TempDir()) / "compress_distill" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  // Runs from the source root: the example recipe's data paths are relative to it.
  RunResult Compress(const std::string& model, const std::string& recipe, const std::string& out) {
    return RunCommand("cd " + ShellQuote(kSource) + " && " + ShellQuote(CliPath()) + " compress " +
                      ShellQuote(model) + " --recipe " + ShellQuote(recipe) + " -o " +
                      ShellQuote(out) + " -q");
  }
  std::string D(const std::string& name) const { return (dir_ / name).string(); }
  std::string Write(const std::string& name, const std::string& text) const {
    std::ofstream(D(name)) << text;
    return D(name);
  }
  static const Json* Step(const Json& report, const std::string& pass) {
    for (const Json& p : report["passes"])
      if (p["pass"] == pass) return &p;
    return nullptr;
  }
  fs::path dir_;
};

TEST_F(CompressDistill, ShippedDigitsRecipeRecoversWhatPruningCost) {
  RunResult r = Compress("examples/digits/digits_cnn.onnx", kRecipe, D("with"));
  ASSERT_EQ(r.rc, 0) << r.output;  // the recipe's 1-point budget holds
  const std::string text = ReadFileToString(D("with/report.json"));
  Json j = Json::parse(text);
  const Json* step = Step(j, "distill");
  ASSERT_NE(step, nullptr) << text;
  EXPECT_TRUE((*step)["changed"].get<bool>());
  EXPECT_EQ((*step)["stats"]["steps"], 180);
  EXPECT_EQ((*step)["stats"]["train-samples"], 1437);
  // The pruned half of the weights stayed zero through training.
  EXPECT_GT((*step)["stats"]["masked-weights"].get<int64_t>(), 23000);
  const Json& d = (*step)["details"]["distill"];
  const double teacher = d["teacher"]["top1"], before = d["before"]["top1"],
               after = d["after"]["top1"];
  EXPECT_NEAR(teacher, j["baseline"]["metric"].get<double>(), 1e-9);  // same model, same data
  EXPECT_LT(before, teacher - 0.02);  // pruning 50% cost this CNN points
  EXPECT_GT(after, before + 0.02);
  EXPECT_GT(d["seconds"].get<double>(), 0);
  ASSERT_GE(d["loss_curve"].size(), 10u);
  EXPECT_LT(d["loss_curve"].back()["loss"].get<double>(),
            d["loss_curve"][0]["loss"].get<double>() / 4);
  const double with = j["compressed"]["metric"];

  // The same recipe without the distill step: the pruned, quantized candidate.
  std::string yaml = ReadFileToString(kSource + "/" + kRecipe);
  std::string without = std::regex_replace(yaml, std::regex("\n  - distill:[^\n]*"), "");
  ASSERT_NE(without, yaml);
  r = Compress("examples/digits/digits_cnn.onnx", Write("without.yaml", without), D("without"));
  ASSERT_EQ(r.rc, 3) << r.output;  // misses the accuracy budget
  Json k = Json::parse(ReadFileToString(D("without/report.json")));
  EXPECT_EQ(Step(k, "distill"), nullptr);
  const double undistilled = k["compressed"]["metric"];
  EXPECT_GT(with, undistilled + 0.02) << "with distill " << with << ", without " << undistilled;
  EXPECT_GE(with, teacher - 0.01);

  // The report's other forms show the step.
  std::string md = ReadFileToString(D("with/report.md"));
  EXPECT_NE(md.find("## Distillation"), std::string::npos) << md;
  EXPECT_NE(md.find("| distill | `examples/digits/train.npz` | 180 |"), std::string::npos) << md;
  EXPECT_EQ(ReadFileToString(D("without/report.md")).find("## Distillation"), std::string::npos);
  std::string html = ReadFileToString(D("with/report.html"));
  EXPECT_NE(html.find("data-chart=\"distill-loss\""), std::string::npos);
  char row[128];
  std::snprintf(row, sizeof row, "data-before=\"%.6g\" data-after=\"%.6g\"", before, after);
  EXPECT_NE(html.find(row), std::string::npos) << row;
  // compress --baseline reads the details back.
  eval::Report back = eval::ReportFromJson(text, "report.json");
  bool found = false;
  for (const auto& p : back.passes)
    found |= p.pass == "distill" && p.details.find("loss_curve") != std::string::npos;
  EXPECT_TRUE(found);
}

TEST_F(CompressDistill, TuningStepsOverrideTheStepsOptions) {
  // Two steps cannot recover the pruned model; the tuning step trains for 180.
  std::string recipe = Write("tune.yaml",
                             "extends: base\n"
                             "budgets: {max_accuracy_drop: 0.01}\n"
                             "pipeline:\n"
                             "  - fold-batchnorm\n"
                             "  - prune-magnitude: {sparsity: 0.5}\n"
                             "  - distill: {data: examples/digits/train.npz, steps: 2, lr: 0.002}\n"
                             "evaluation: {data: examples/digits/eval.npz}\n"
                             "tuning:\n"
                             "  allow_slower: true\n"
                             "  steps:\n"
                             "    - name: distill longer\n"
                             "      set: {distill.steps: 180, distill.warmup: 10}\n");
  RunResult r = Compress("examples/digits/digits_cnn.onnx", recipe, D("out"));
  ASSERT_EQ(r.rc, 0) << r.output;
  Json j = Json::parse(ReadFileToString(D("out/report.json")));
  ASSERT_EQ(j["trials"].size(), 2u);
  EXPECT_FALSE(j["trials"][0]["passed"].get<bool>());
  EXPECT_TRUE(j["trials"][1]["chosen"].get<bool>());
  const Json* step = Step(j, "distill");  // the chosen trial's passes
  ASSERT_NE(step, nullptr);
  EXPECT_EQ((*step)["stats"]["steps"], 180);
}

// Distillation-aware quantization inside compress: the step trains through the ternary
// grid, pack-ternary stores every trained weight as 2-bit codes (Gemm: TernaryMatMul, Conv:
// TernaryConv), and the artifact's native top-1 is what the step measured on its
// fake-quantized student.
TEST_F(CompressDistill, TernaryFakeQuantStepExportsWhatItTrained) {
  std::string recipe =
      Write("ternary.yaml",
            "extends: base\n"
            "budgets: {max_accuracy_drop: 0.02}\n"
            "pipeline:\n"
            "  - fold-batchnorm\n"
            "  - distill: {data: examples/digits/train.npz, steps: 300, warmup: 10,"
            " fake-quant: ternary}\n"
            "  - pack-ternary\n"
            "evaluation: {data: examples/digits/eval.npz}\n"
            "tuning: {allow_slower: true}\n");
  RunResult r = Compress("examples/digits/digits_cnn.onnx", recipe, D("out"));
  ASSERT_EQ(r.rc, 0) << r.output;
  Json j = Json::parse(ReadFileToString(D("out/report.json")));
  const Json* step = Step(j, "distill");
  ASSERT_NE(step, nullptr);
  EXPECT_EQ((*step)["stats"]["fake-quantized-weights"], 47376);  // 3 Conv + 2 Gemm weights
  const Json& d = (*step)["details"]["distill"];
  // "before" is the post-training ternary model (evaluation runs fake-quantized).
  const double ptq = d["before"]["top1"], qat = d["after"]["top1"];
  EXPECT_LT(ptq, j["baseline"]["metric"].get<double>() - 0.02);
  EXPECT_GT(qat, ptq + 0.02);
  EXPECT_NEAR(j["compressed"]["metric"].get<double>(), qat, 1.5 / 360);
  const Json* packed = Step(j, "pack-ternary");
  ASSERT_NE(packed, nullptr);
  EXPECT_EQ((*packed)["stats"]["gemm-ternary"], 2);  // every trained weight is ternary
  EXPECT_EQ((*packed)["stats"]["conv-ternary"], 3);
}

// int8 weights and activations: the step calibrates with the quantize-static step that
// follows it, trains through both grids, and the artifact measures what the step measured.
TEST_F(CompressDistill, Int8FakeQuantWithActivationsMatchesQuantizeStatic) {
  std::string recipe = Write("int8.yaml",
                             "extends: base\n"
                             "pipeline:\n"
                             "  - fold-batchnorm\n"
                             "  - prune-magnitude: {sparsity: 0.5}\n"
                             "  - distill: {data: examples/digits/train.npz, steps: 120, lr: 0.002,"
                             " fake-quant: int8, fake-quant-activations: true}\n"
                             "  - quantize-static: {method: minmax}\n"
                             "calibration: {data: examples/digits/calib.npz}\n"
                             "evaluation: {data: examples/digits/eval.npz}\n"
                             "tuning: {allow_slower: true}\n");
  RunResult r = Compress("examples/digits/digits_cnn.onnx", recipe, D("out"));
  ASSERT_EQ(r.rc, 0) << r.output;
  Json j = Json::parse(ReadFileToString(D("out/report.json")));
  const Json* step = Step(j, "distill");
  ASSERT_NE(step, nullptr);
  EXPECT_EQ((*step)["stats"]["fake-quantized-activations"], 6);
  const Json& d = (*step)["details"]["distill"];
  EXPECT_GT(d["after"]["top1"].get<double>(), d["before"]["top1"].get<double>() + 0.02);
  EXPECT_NEAR(j["compressed"]["metric"].get<double>(), d["after"]["top1"].get<double>(), 1.5 / 360);
  // Without a quantize-static after it there are no ranges to train with.
  std::string bad = Write(
      "bad.yaml",
      "extends: base\n"
      "pipeline:\n"
      "  - distill: {data: examples/digits/train.npz, steps: 2, fake-quant-activations: true}\n"
      "evaluation: {data: examples/digits/eval.npz}\n");
  r = Compress("examples/digits/digits_cnn.onnx", bad, D("bad"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("fake-quant-activations needs a quantize-static step after it"),
            std::string::npos)
      << r.output;
}

// The shipped gradual-pruning recipe: the dense model is pruned to 50% per layer while it
// distills, then quantized to int8, within half a point of the original.
TEST_F(CompressDistill, ShippedGradualPruningRecipeKeepsTheTeachersAccuracy) {
  RunResult r = Compress("examples/digits/digits_cnn.onnx",
                         "examples/digits/gradual_prune_int8.yaml", D("out"));
  ASSERT_EQ(r.rc, 0) << r.output;
  Json j = Json::parse(ReadFileToString(D("out/report.json")));
  const Json* step = Step(j, "distill");
  ASSERT_NE(step, nullptr);
  const int64_t weights = 16 * 9 + 32 * 16 * 9 + 32 * 32 * 9 + 64 * 512 + 10 * 64;
  EXPECT_EQ((*step)["stats"]["pruned-weights"], weights / 2);  // every layer has an even count
  EXPECT_LE(j["compressed"]["nonzero_params"].get<int64_t>(),
            j["baseline"]["params"].get<int64_t>() - weights / 2);
  EXPECT_GE(j["compressed"]["metric"].get<double>(), j["baseline"]["metric"].get<double>() - 0.005);
}

TEST_F(CompressDistill, TorchScriptModelIsItsOwnTeacher) {
  std::string skip;
  ASSERT_EQ(test_util::EnsureTorchScriptFixture("digits_cnn", &skip), "");
  if (!skip.empty()) GTEST_SKIP() << skip;
  std::string pt = test_util::kTsFixtureDir + "/digits_cnn/model.pt";
  RunResult r = Compress(pt, kRecipe, D("out"));
  ASSERT_EQ(r.rc, 0) << r.output;
  Json j = Json::parse(ReadFileToString(D("out/report.json")));
  const Json* step = Step(j, "distill");
  ASSERT_NE(step, nullptr);
  const Json& d = (*step)["details"]["distill"];
  EXPECT_GT(d["after"]["top1"].get<double>(), d["before"]["top1"].get<double>() + 0.02);
  EXPECT_GE(j["compressed"]["metric"].get<double>(), j["baseline"]["metric"].get<double>() - 0.01);
}

TEST_F(CompressDistill, BadStepOptionsFailBeforeAnyWork) {
  auto recipe = [&](const std::string& step) {
    return Write("bad.yaml",
                 "extends: base\npipeline:\n  - prune-magnitude: {sparsity: 0.5}\n  - " + step +
                     "\nevaluation: {data: examples/digits/eval.npz}\n");
  };
  RunResult r =
      Compress("examples/digits/digits_cnn.onnx", recipe("distill: {stepz: 3}"), D("out"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(
      r.output.find("bad.yaml:4:15: pass 'distill' has no option 'stepz' (did you mean 'steps'?)"),
      std::string::npos)
      << r.output;
  r = Compress("examples/digits/digits_cnn.onnx", recipe("distill: {decay: cosin}"), D("out"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("option 'decay' = 'cosin': expected one of cosine, linear, constant"),
            std::string::npos)
      << r.output;
  // No data option and no calibration data: nothing to train on.
  r = Compress("examples/digits/digits_cnn.onnx", recipe("distill: {steps: 3}"), D("out"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("the distill step needs training data"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(D("out/report.json")));
  // A training file that does not feed the model.
  r = Compress("examples/digits/digits_cnn.onnx",
               recipe("distill: {steps: 3, data: examples/digits/expected.npz}"), D("out"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.output.find("expected.npz"), std::string::npos) << r.output;
  // Outside compress it is not a pass.
  r = RunCommand(ShellQuote(CliPath()) + " apply " +
                 ShellQuote(kSource + "/examples/digits/digits_cnn.onnx") +
                 " --passes distill -o " + ShellQuote(D("x.onnx")));
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(r.output.find("Segmentation"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace edgepress
