// `edgepress compress` with pruning on the bundled digits CNN: the shipped
// generic-min-size-sparse recipe (2:4 on MatMul/Gemm, then int4 + int8) meets its budgets
// and its report shows parameters, non-zero parameters (sparsity) and MACs before/after in
// JSON, Markdown and HTML; a recipe that prunes from a sensitivity file (written by
// `edgepress sensitivity`) gets the pruning-sensitivity chart in the HTML report.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "eval/report.h"
#include "ir/file_util.h"
#include "tests/tools/cli_run.h"

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace edgepress;
using namespace edgepress::test_util;

namespace {

const std::string kDigits = std::string(EDGEPRESS_SOURCE_DIR) + "/examples/digits";

class CompressPruneCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CliPath().empty() || !fs::exists(CliPath())) GTEST_SKIP() << "the edgepress CLI was not built";
    dir_ = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "compress_prune" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  RunResult Ep(const std::string& args) { return RunCommand(ShellQuote(CliPath()) + " " + args); }
  RunResult Digits(const std::string& recipe, const std::string& out) {
    return Ep("compress " + ShellQuote(kDigits + "/digits_cnn.onnx") + " --recipe " + ShellQuote(recipe) +
              " --calib " + ShellQuote(kDigits + "/calib.npz") + " --eval " +
              ShellQuote(kDigits + "/eval.npz") + " -o " + ShellQuote(out) + " -q");
  }
  std::string D(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(CompressPruneCli, SparseMinSizeRecipeReportsParametersSparsityAndMacs) {
  RunResult r = Digits("generic-min-size-sparse", D("out"));
  ASSERT_EQ(r.rc, 0) << r.output;
  std::string text = ReadFileToString(D("out/report.json"));
  Json j = Json::parse(text);
  const Json &base = j["baseline"], &comp = j["compressed"];
  // 3 Conv + 2 Gemm weights and their biases.
  const int64_t params = 16 * 9 + 32 * 16 * 9 + 32 * 32 * 9 + 64 * 512 + 10 * 64 + 16 + 32 + 32 + 64 + 10;
  EXPECT_EQ(base["params"], params);
  EXPECT_EQ(base["nonzero_params"], params);
  EXPECT_EQ(comp["params"], params);  // quantization and 2:4 keep every parameter slot
  // Half of the two Gemm weights (33,408) are zero after 2:4; int8 rounding adds a few.
  int64_t nz = comp["nonzero_params"].get<int64_t>();
  EXPECT_LE(nz, params - (64 * 512 + 10 * 64) / 2);
  EXPECT_GT(nz, params - (64 * 512 + 10 * 64) / 2 - 1000);
  // Dense MACs are the same model's; non-zero MACs drop by the Gemms' half.
  EXPECT_GT(base["macs"].get<int64_t>(), 64 * 512);
  EXPECT_EQ(comp["macs"], base["macs"]);
  EXPECT_LE(comp["nonzero_macs"].get<int64_t>(), base["macs"].get<int64_t>() - (64 * 512 + 10 * 64) / 2);
  // The pass ran and reported its layers.
  bool found = false;
  for (const Json& p : j["passes"])
    if (p["pass"] == "prune-nm") {
      found = true;
      EXPECT_TRUE(p["changed"].get<bool>());
      EXPECT_EQ(p["stats"]["layers-pruned"], 2);
    }
  EXPECT_TRUE(found);
  eval::Report back = eval::ReportFromJson(text, "report.json");
  EXPECT_EQ(back.compressed.nonzero_params, nz);
  EXPECT_EQ(back.baseline.macs, base["macs"].get<int64_t>());

  std::string md = ReadFileToString(D("out/report.md"));
  EXPECT_NE(md.find("| non-zero parameters (sparsity) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| MACs, batch 1 (non-zero) |"), std::string::npos) << md;
  std::string html = ReadFileToString(D("out/report.html"));
  EXPECT_NE(html.find("<table id=\"params\">"), std::string::npos);
  EXPECT_NE(html.find("data-value=\"" + std::to_string(nz) + "\""), std::string::npos);
}

TEST_F(CompressPruneCli, SensitivityFileShowsAsAChart) {
  std::string sens = D("sens.json");
  RunResult r = Ep("sensitivity " + ShellQuote(kDigits + "/digits_cnn.onnx") + " --data " +
                   ShellQuote(kDigits + "/eval.npz") + " --metric top1 --sparsities 0.5,0.7 --max-samples 360 -o " +
                   ShellQuote(sens));
  ASSERT_EQ(r.rc, 0) << r.output;
  std::string recipe = D("prune.yaml");
  std::ofstream(recipe) << "extends: base\n"
                           "budgets: {max_accuracy_drop: 1.0}  # the chart is under test, not the budget\n"
                           "pipeline:\n"
                           "  - fold-constants\n"
                           "  - prune-magnitude: {sensitivity-file: " + sens + ", max-error: 0.005}\n";
  r = Digits(recipe, D("out"));
  ASSERT_EQ(r.rc, 0) << r.output;
  std::string html = ReadFileToString(D("out/report.html"));
  EXPECT_NE(html.find("data-chart=\"prune-sensitivity\""), std::string::npos);
  EXPECT_NE(html.find("/features/features.0/Conv @0.50"), std::string::npos);
  Json j = Json::parse(ReadFileToString(D("out/report.json")));
  EXPECT_LT(j["compressed"]["nonzero_params"].get<int64_t>(), j["baseline"]["nonzero_params"].get<int64_t>());
}

}  // namespace
