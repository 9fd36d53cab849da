// `edgepress compress` never keeps a trial slower than the original unless the recipe says
// latency does not matter (tuning.allow_slower), and with objective latency keeps the
// fastest trial. The slower trial is real: weight-only int8 of the bundled digits CNN
// dequantizes every weight on every run before the same float kernels (strictly more
// work on any CPU; 2.5-2.7x the original's p50 where this was written), so the
// assertions hold on a loaded machine; none compares an absolute time.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "eval/report.h"
#include "ir/file_util.h"
#include "tests/tools/cli_run.h"

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace edgepress;
using namespace edgepress::test_util;

namespace {

const std::string kSrc = EDGEPRESS_SOURCE_DIR;
const std::string kDigits = kSrc + "/examples/digits";
const std::string kSlower = kSrc + "/tests/tools/data/compress_slower.yaml";
constexpr const char* kNotSlower = "not_slower_than_original";

class CompressSlowerCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CliPath().empty() || !FileExists(CliPath()))
      GTEST_SKIP() << "the edgepress CLI was not built";
    dir_ = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "compress_slower" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  RunResult Digits(const std::string& recipe, const std::string& out,
                   const std::string& extra = "-q") {
    return RunCommand(ShellQuote(CliPath()) + " compress " +
                      ShellQuote(kDigits + "/digits_cnn.onnx") + " --recipe " + ShellQuote(recipe) +
                      " --calib " + ShellQuote(kDigits + "/calib.npz") + " --eval " +
                      ShellQuote(kDigits + "/eval.npz") + " -o " + ShellQuote(out) + " " + extra);
  }
  // compress_slower.yaml with `from` replaced by `to`.
  std::string Variant(const std::string& name, const std::string& from, const std::string& to) {
    std::string text = ReadFileToString(kSlower);
    EXPECT_NE(text.find(from), std::string::npos) << from;
    const std::string path = D(name);
    WriteFileAtomic(path, std::regex_replace(text, std::regex(from), to));
    return path;
  }
  std::string D(const std::string& name) const { return (dir_ / name).string(); }
  static Json Load(const std::string& path) { return Json::parse(ReadFileToString(path)); }

  fs::path dir_;
};

// True (with the reason in *why) when the weight-only trial was not found slower only because
// the machine was too noisy to show it: compress widens its limit by the measured noise and
// keeps a trial it cannot prove slower, which is right, but leaves nothing to assert. A trial
// judged not slower on a steady machine (noise below 0.25) is still a failure.
bool TooNoisyToJudge(const Json& trial, std::string* why) {
  if (!trial.contains("vs_original")) return false;
  const Json& vs = trial["vs_original"];
  const double noise = vs["ratio"].get<double>() - vs["ratio_low"].get<double>();
  if (vs["slower"].get<bool>() || noise <= 0.25) return false;
  *why = "latency too noisy on this machine to judge the slower trial: " + vs.dump();
  return true;
}

const Json* FindBudget(const Json& budgets, const std::string& name) {
  for (const Json& b : budgets)
    if (b["name"] == name) return &b;
  return nullptr;
}

// The weight-only int8 trial (about 4x smaller) is rejected as slower; the float trial of
// the next tuning step is kept, and every report says which trial was rejected and why.
TEST_F(CompressSlowerCli, SmallerButSlowerTrialIsRejectedAndReported) {
  RunResult r = Digits(kSlower, D("out"), "");  // not quiet: the summary names the rejection
  ASSERT_EQ(r.rc, 0) << r.output;
  Json rep = Load(D("out") + "/report.json");
  std::string why_skip;
  if (!rep["trials"].empty() && TooNoisyToJudge(rep["trials"][0], &why_skip))
    GTEST_SKIP() << why_skip;
  ASSERT_EQ(rep["trials"].size(), 2u) << rep["trials"].dump(1);
  const Json& slow = rep["trials"][0];
  const Json& kept = rep["trials"][1];
  EXPECT_LT(slow["result"]["size_bytes"].get<int64_t>(),
            rep["baseline"]["size_bytes"].get<int64_t>() / 3);
  ASSERT_TRUE(slow.contains("vs_original")) << slow.dump(1);
  const Json& vs = slow["vs_original"];
  EXPECT_TRUE(vs["slower"].get<bool>()) << vs.dump(1);
  EXPECT_GT(vs["ratio_low"].get<double>(), 1 + vs["tolerance"].get<double>());
  EXPECT_GT(vs["ratio"].get<double>(), vs["limit"].get<double>());
  EXPECT_EQ(vs["rounds"], 10);
  EXPECT_EQ(vs["runs_per_round"], 2);
  EXPECT_EQ(slow["result"]["latency_ms"]["runs"], 20);
  EXPECT_EQ(slow["result"]["latency_ms"]["p50"], vs["p50_ms"]);
  const Json* guard = FindBudget(slow["budgets"], kNotSlower);
  ASSERT_NE(guard, nullptr) << slow["budgets"].dump(1);
  EXPECT_FALSE((*guard)["passed"].get<bool>());
  EXPECT_TRUE((*guard)["timing"].get<bool>());
  EXPECT_EQ((*guard)["measured"], vs["ratio"]);
  EXPECT_TRUE(FindBudget(slow["budgets"], "max_accuracy_drop")->at("passed").get<bool>());
  EXPECT_FALSE(slow["passed"].get<bool>());
  EXPECT_FALSE(slow["chosen"].get<bool>());
  EXPECT_TRUE(kept["chosen"].get<bool>());
  EXPECT_TRUE(kept["passed"].get<bool>());
  EXPECT_FALSE(kept["vs_original"]["slower"].get<bool>());
  EXPECT_EQ(rep["compressed"]["size_bytes"], kept["result"]["size_bytes"]);
  EXPECT_EQ(rep["status"], "passed");
  ASSERT_NE(FindBudget(rep["budgets"], kNotSlower), nullptr);  // the kept trial's check

  ASSERT_EQ(rep["rejected_slower"].size(), 1u) << rep.dump(1);
  EXPECT_EQ(rep["rejected_slower"][0]["trial"], 0);
  const std::string why = rep["rejected_slower"][0]["message"];
  for (const char* part :
       {"trial 0 ('as written')", "the size and within every other budget",
        "slower than the original", "vs the original's", "interleaved rounds", "tolerance"})
    EXPECT_NE(why.find(part), std::string::npos) << part << " in: " << why;
  EXPECT_NE(r.output.find("rejected " + why + "\n"), std::string::npos) << r.output;
  EXPECT_NE(ReadFileToString(D("out") + "/report.md")
                .find("## Rejected: slower than the original\n\n- " + why),
            std::string::npos);
  const std::string html = ReadFileToString(D("out") + "/report.html");
  EXPECT_NE(html.find("data-rejected-trial=\"0\""), std::string::npos);
  EXPECT_NE(html.find("slower than the original"), std::string::npos);

  // The reader keeps what the writer wrote (compress --baseline reads reports).
  eval::Report back =
      eval::ReportFromJson(ReadFileToString(D("out") + "/report.json"), "report.json");
  ASSERT_EQ(back.rejected_slower.size(), 1u);
  EXPECT_EQ(back.rejected_slower[0].message, why);
  ASSERT_TRUE(back.trials.at(0).vs_original.has_value());
  EXPECT_EQ(back.trials[0].vs_original->ratio, vs["ratio"].get<double>());
  EXPECT_TRUE(back.trials[0].vs_original->slower);
  EXPECT_FALSE(back.trials[1].vs_original->slower);
}

// With no faster trial to fall back to, the slower one misses the implicit budget like any
// budget: the closest trial is kept, exit 3, and the reasons and JUnit name the check.
TEST_F(CompressSlowerCli, OnlySlowerTrialsExitThreeAsABudgetMiss) {
  const std::string recipe = Variant("one.yaml", "max_trials: 4", "max_trials: 1");
  RunResult r = Digits(recipe, D("out"), "-q --junit " + ShellQuote(D("junit.xml")));
  std::string why_skip;
  if (r.rc == 0 && TooNoisyToJudge(Load(D("out") + "/report.json")["trials"][0], &why_skip))
    GTEST_SKIP() << why_skip;
  ASSERT_EQ(r.rc, 3) << r.output;
  EXPECT_NE(r.output.find(std::string("budget ") + kNotSlower + " missed: measured"),
            std::string::npos)
      << r.output;
  Json rep = Load(D("out") + "/report.json");
  EXPECT_EQ(rep["status"], "budget_missed");
  ASSERT_EQ(rep["trials"].size(), 1u);
  EXPECT_TRUE(rep["trials"][0]["chosen"].get<bool>());
  EXPECT_EQ(rep["rejected_slower"].size(), 1u);
  const std::string junit = ReadFileToString(D("junit.xml"));
  EXPECT_NE(
      junit.find(std::string("name=\"") + kNotSlower +
                 "\">\n      <failure type=\"budget\" message=\"" + kNotSlower + ": measured "),
      std::string::npos)
      << junit;
  EXPECT_NE(junit.find("<testsuite name=\"budgets\" tests=\"2\" failures=\"1\""), std::string::npos)
      << junit;
}

// allow_slower: latency does not matter, so the smallest trial that meets the budgets is
// kept (and tuning stops there), with no speed check among its budgets.
TEST_F(CompressSlowerCli, AllowSlowerKeepsTheSmallerTrial) {
  const std::string recipe =
      Variant("allow.yaml", "objective: size", "objective: size\n  allow_slower: true");
  RunResult r = Digits(recipe, D("out"));
  ASSERT_EQ(r.rc, 0) << r.output;
  Json rep = Load(D("out") + "/report.json");
  ASSERT_EQ(rep["trials"].size(), 1u) << rep["trials"].dump(1);
  const Json& t = rep["trials"][0];
  EXPECT_TRUE(t["chosen"].get<bool>());
  EXPECT_EQ(FindBudget(t["budgets"], kNotSlower), nullptr);
  EXPECT_LT(rep["compressed"]["size_bytes"].get<int64_t>(),
            rep["baseline"]["size_bytes"].get<int64_t>() / 3);
  EXPECT_TRUE(rep["rejected_slower"].empty());
  bool note = false;
  for (const Json& n : rep["notes"])
    note |= n.get<std::string>().find("although it is slower") != std::string::npos;
  EXPECT_EQ(note, t["vs_original"]["slower"].get<bool>()) << rep["notes"].dump(1);

  // The shipped size recipe says the same (its int4/int8 trial is kept whatever its speed).
  r = Digits("generic-min-size", D("shipped"));
  ASSERT_EQ(r.rc, 0) << r.output;
  Json shipped = Load(D("shipped") + "/report.json");
  EXPECT_EQ(FindBudget(shipped["budgets"], kNotSlower), nullptr);
  EXPECT_TRUE(shipped["rejected_slower"].empty());
}

// objective latency: every step runs although trial 0 meets every budget, and the kept
// trial is the fastest of those that meet them (never the slow weight-only one).
TEST_F(CompressSlowerCli, ObjectiveLatencyKeepsTheFastest) {
  const std::string recipe = D("latency.yaml");
  WriteFileAtomic(recipe,
                  "name: compress-latency\n"
                  "target: {name: test-host, threads: 1}\n"
                  "budgets: {max_accuracy_drop: 0.01}\n"
                  "pipeline:\n"
                  "  - fold-constants\n"
                  "  - quantize-weights: {bits: 8, op-types: [MatMul]}   # none in the CNN: float\n"
                  "evaluation: {metric: top1, latency_runs: 20, warmup_runs: 2}\n"
                  "tuning:\n"
                  "  objective: latency\n"
                  "  steps:\n"
                  "    - name: int8 Gemm weights\n"
                  "      set: {quantize-weights.op-types: [Gemm]}\n"
                  "    - name: int8 Conv and Gemm weights\n"
                  "      set: {quantize-weights.op-types: [Conv, Gemm]}\n");
  RunResult r = Digits(recipe, D("out"));
  Json rep = Load(D("out") + "/report.json");
  const Json& trials = rep["trials"];
  ASSERT_EQ(trials.size(), 3u) << rep["notes"].dump(1);
  EXPECT_TRUE(trials[0]["passed"].get<bool>()) << trials[0].dump(1);  // the float model
  EXPECT_TRUE(trials[2]["vs_original"]["slower"].get<bool>()) << trials[2].dump(1);
  EXPECT_FALSE(trials[2]["passed"].get<bool>());
  int fastest = -1;
  for (const Json& t : trials)
    if (t["passed"].get<bool>() &&
        (fastest < 0 || t["vs_original"]["ratio"].get<double>() <
                            trials[fastest]["vs_original"]["ratio"].get<double>()))
      fastest = t["index"].get<int>();
  ASSERT_GE(fastest, 0);
  EXPECT_TRUE(trials[fastest]["chosen"].get<bool>()) << trials.dump(1);
  EXPECT_EQ(rep["compressed"]["size_bytes"], trials[fastest]["result"]["size_bytes"]);
  EXPECT_EQ(r.rc, 0) << r.output;
}

}  // namespace
