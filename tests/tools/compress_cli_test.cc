// End-to-end `edgepress compress` on the bundled digits example (a real CNN trained on
// sklearn's handwritten digits, with its calibration and evaluation files): the files it
// writes, the exit codes of the gate (0 met, 3 missed, 1 invalid, 2 usage), determinism,
// tuning, --baseline, JUnit, and agreement of the report with `run` and `bench`. The
// shipped recipes each run once; torchvision resnet18 (random weights) checks size and
// latency with a cosine metric; the HTML report is loaded in headless Chromium.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "eval/metrics.h"
#include "formats/epk/epk.h"
#include "formats/npy/npy.h"
#include "ir/file_util.h"
#include "ir/sha256.h"
#include "tests/tools/cli_run.h"
#include "tools/compress/recipe.h"

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace edgepress;
using namespace edgepress::test_util;

namespace {

const std::string kSrc = EDGEPRESS_SOURCE_DIR;
const std::string kDigits = kSrc + "/examples/digits";
const std::string kData = kSrc + "/tests/tools/data";

class CompressCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CliPath().empty() || !FileExists(CliPath())) GTEST_SKIP() << "the edgepress CLI was not built";
    dir_ = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "compress" /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  RunResult Ep(const std::string& args) { return RunCommand(ShellQuote(CliPath()) + " " + args); }
  // compress on the digits CNN with calibration and evaluation data.
  RunResult Digits(const std::string& recipe, const std::string& out, const std::string& extra = "") {
    return Ep("compress " + ShellQuote(kDigits + "/digits_cnn.onnx") + " --recipe " + ShellQuote(recipe) +
              " --calib " + ShellQuote(kDigits + "/calib.npz") + " --eval " +
              ShellQuote(kDigits + "/eval.npz") + " -o " + ShellQuote(out) + " " + extra);
  }
  std::string D(const std::string& name) const { return (dir_ / name).string(); }
  static Json Load(const std::string& path) { return Json::parse(ReadFileToString(path)); }

  fs::path dir_;
};

// Drops the fields docs/report.md lists as timing-dependent.
Json WithoutTimings(Json j) {
  auto strip_measurement = [](Json& m) { m.erase("latency_ms"); };
  j.erase("duration_s");
  strip_measurement(j["baseline"]);
  strip_measurement(j["compressed"]);
  for (auto& p : j["passes"]) p.erase("seconds");
  auto strip_budgets = [](Json& budgets) {
    for (auto& b : budgets)
      if (b["timing"].get<bool>()) b.erase("measured"), b.erase("margin"), b.erase("passed");
  };
  strip_budgets(j["budgets"]);
  j.erase("rejected_slower");
  j.erase("profile");
  Json notes = Json::array();
  for (const auto& n : j["notes"])
    if (n.get<std::string>().find("although it is slower than the original") == std::string::npos) notes.push_back(n);
  j["notes"] = notes;
  for (auto& t : j["trials"]) {
    t.erase("seconds");
    t.erase("vs_original");
    strip_measurement(t["result"]);
    strip_budgets(t["budgets"]);
  }
  return j;
}

TEST_F(CompressCli, CleanupRecipeMeetsBudgetsAndWritesEveryFile) {
  RunResult r = Digits(kData + "/compress_cleanup.yaml", D("out"), "--junit " + ShellQuote(D("junit.xml")));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("report: " + D("out") + "/report.html"), std::string::npos) << r.output;
  for (const char* f : {"model.epk", "report.json", "report.md", "report.html", "manifest.json"})
    EXPECT_TRUE(FileExists(D("out") + "/" + f)) << f;
  EXPECT_TRUE(FileExists(D("junit.xml")));
  // No trial leftovers.
  for (const auto& e : fs::directory_iterator(D("out")))
    EXPECT_EQ(e.path().filename().string().rfind(".trial", 0), std::string::npos) << e.path();

  Json rep = Load(D("out") + "/report.json");
  EXPECT_EQ(rep["schema_version"], 1);
  EXPECT_EQ(rep["status"], "passed");
  EXPECT_EQ(rep["exit_code"], 0);
  EXPECT_EQ(rep["evaluation"]["metric"], "top1");
  EXPECT_EQ(rep["evaluation"]["samples"], 360);
  // The recipe's two budgets, then the implicit check against the original's latency (the
  // same float model: its ratio stays within the 10% tolerance).
  ASSERT_EQ(rep["budgets"].size(), 3u);
  EXPECT_EQ(rep["budgets"][2]["name"], "not_slower_than_original");
  for (const auto& b : rep["budgets"]) EXPECT_TRUE(b["passed"].get<bool>()) << b.dump();
  // Cleanup passes preserve the function: the same top-1 (make_example.py: 99.44%).
  EXPECT_NEAR(rep["baseline"]["metric"].get<double>(), 358.0 / 360, 1e-12);
  EXPECT_EQ(rep["compressed"]["metric"], rep["baseline"]["metric"]);
  EXPECT_EQ(rep["provenance"]["model"]["sha256"], Sha256File(kDigits + "/digits_cnn.onnx"));
  EXPECT_EQ(rep["provenance"]["model"]["bytes"], FileSize(kDigits + "/digits_cnn.onnx"));
  EXPECT_EQ(rep["provenance"]["calibration"]["sha256"], Sha256File(kDigits + "/calib.npz"));
  EXPECT_EQ(rep["compressed"]["size_bytes"], FileSize(D("out") + "/model.epk"));
  ASSERT_EQ(rep["artifacts"].size(), 1u);
  EXPECT_EQ(rep["artifacts"][0]["path"], "model.epk");
  EXPECT_EQ(rep["artifacts"][0]["sha256"], Sha256File(D("out") + "/model.epk"));
  EXPECT_GT(rep["layers"].size(), 0u);
  for (const auto& l : rep["layers"]) EXPECT_LE(l["nmse"].get<double>(), 1e-10) << l.dump();

  // The artifact carries its provenance.
  formats::EpkMetadata meta;
  formats::LoadEpk(D("out") + "/model.epk", &meta);
  ASSERT_NE(meta.Find("source_model_sha256"), nullptr);
  EXPECT_EQ(*meta.Find("source_model_sha256"), Sha256File(kDigits + "/digits_cnn.onnx"));
  ASSERT_NE(meta.Find("calibration_data_sha256"), nullptr);
  EXPECT_EQ(*meta.Find("calibration_data_sha256"), Sha256File(kDigits + "/calib.npz"));
  ASSERT_NE(meta.Find("recipe"), nullptr);
  EXPECT_NE(meta.Find("recipe")->find("name: compress-cleanup"), std::string::npos);
  ASSERT_NE(meta.Find("pass_statistics"), nullptr);
  EXPECT_NE(meta.Find("pass_statistics")->find("\"pass\":\"fold-constants\""), std::string::npos);
  EXPECT_NE(meta.Find("tool_version"), nullptr);

  Json man = Load(D("out") + "/manifest.json");
  EXPECT_EQ(man["artifacts"][0]["sha256"], rep["artifacts"][0]["sha256"]);
  EXPECT_EQ(man["model"]["sha256"], rep["provenance"]["model"]["sha256"]);
  std::string md = ReadFileToString(D("out") + "/report.md");
  EXPECT_NE(md.find("| max_size_ratio |"), std::string::npos) << md;
}

TEST_F(CompressCli, OriginalSizeIncludesExternalData) {
  RunResult r = Ep("convert --external-data " + ShellQuote(kDigits + "/digits_cnn.onnx") + " " + ShellQuote(D("ext.onnx")));
  ASSERT_EQ(r.rc, 0) << r.output;
  ASSERT_TRUE(FileExists(D("ext.onnx.data")));
  r = Ep("compress " + ShellQuote(D("ext.onnx")) + " --recipe " + ShellQuote(kData + "/compress_cleanup.yaml") +
         " --eval " + ShellQuote(kDigits + "/eval.npz") + " -o " + ShellQuote(D("out")) + " --quiet");
  ASSERT_EQ(r.rc, 0) << r.output;
  Json rep = Load(D("out") + "/report.json");
  const uint64_t total = FileSize(D("ext.onnx")) + FileSize(D("ext.onnx.data"));
  EXPECT_GT(FileSize(D("ext.onnx.data")), FileSize(D("ext.onnx")));  // the weights moved out
  EXPECT_EQ(rep["baseline"]["size_bytes"], total);
  EXPECT_EQ(rep["provenance"]["model"]["bytes"], total);
}

TEST_F(CompressCli, ReportAgreesWithRunAndBench) {
  RunResult r = Digits(kData + "/compress_cleanup.yaml", D("out"), "--quiet");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(r.output, "") << "--quiet printed something";
  Json rep = Load(D("out") + "/report.json");
  // Accuracy: `run` on the whole evaluation file, scored here. Compress evaluates in
  // batches of 32, run in one batch of 360; the kernels give the same logits per sample
  // up to float rounding, so at most one borderline image may differ.
  r = Ep("run " + ShellQuote(D("out") + "/model.epk") + " --input " + ShellQuote(kDigits + "/eval.npz") +
         " --output " + ShellQuote(D("logits.npz")));
  ASSERT_EQ(r.rc, 0) << r.output;
  ir::Tensor logits = formats::LoadNpz(D("logits.npz"))[0].second;
  ir::Tensor labels;
  for (auto& [n, t] : formats::LoadNpz(kDigits + "/eval.npz"))
    if (n == "label") labels = t;
  EXPECT_NEAR(eval::Top1(logits, labels), rep["compressed"]["metric"].get<double>(), 1.0 / 360 + 1e-12);
  // Latency: `bench` on one evaluation sample; timings on a shared machine are noisy, so
  // only the order of magnitude must agree (within a factor of 5).
  formats::NamedTensors first;
  for (auto& [n, t] : formats::LoadNpz(kDigits + "/eval.npz"))
    if (n == "image") {
      ir::Tensor one(t.dtype(), {1, 1, 8, 8});
      std::memcpy(one.mutable_raw(), t.raw(), one.nbytes());
      first.emplace_back(n, one);
    }
  formats::SaveNpz(first, D("one.npz"));
  r = Ep("bench " + ShellQuote(D("out") + "/model.epk") + " --input " + ShellQuote(D("one.npz")) +
         " --iters 50 --warmup 5 --json");
  ASSERT_EQ(r.rc, 0) << r.output;
  double bench_p50 = Json::parse(r.output)["p50_ms"].get<double>();
  double p50 = rep["compressed"]["latency_ms"]["p50"].get<double>();
  EXPECT_GT(p50, 0);
  EXPECT_LT(p50, bench_p50 * 5) << "compress p50 " << p50 << " ms, bench p50 " << bench_p50 << " ms";
  EXPECT_GT(p50, bench_p50 / 5) << "compress p50 " << p50 << " ms, bench p50 " << bench_p50 << " ms";
}

TEST_F(CompressCli, ImpossibleBudgetExitsThreeAndNamesIt) {
  RunResult r = Digits(kData + "/compress_impossible.yaml", D("out"), "--junit " + ShellQuote(D("junit.xml")));
  ASSERT_EQ(r.rc, 3) << r.output;
  EXPECT_NE(r.output.find("budget max_size_bytes missed: measured"), std::string::npos) << r.output;
  Json rep = Load(D("out") + "/report.json");
  EXPECT_EQ(rep["status"], "budget_missed");
  EXPECT_EQ(rep["exit_code"], 3);
  bool found = false;
  for (const auto& b : rep["budgets"]) {
    if (b["name"] != "max_size_bytes") {
      EXPECT_TRUE(b["passed"].get<bool>()) << b.dump();  // the accuracy budget holds
      continue;
    }
    found = true;
    EXPECT_FALSE(b["passed"].get<bool>());
    EXPECT_EQ(b["limit"].get<double>(), 1000);
    EXPECT_EQ(b["measured"].get<double>(), rep["compressed"]["size_bytes"].get<double>());
    EXPECT_DOUBLE_EQ(b["margin"].get<double>(), 1000 - b["measured"].get<double>());
  }
  EXPECT_TRUE(found);
  ASSERT_EQ(rep["reasons"].size(), 1u);
  EXPECT_NE(rep["reasons"][0].get<std::string>().find("max_size_bytes"), std::string::npos);
  // Every report says it; JUnit fails exactly that case and is well-formed XML.
  EXPECT_NE(ReadFileToString(D("out") + "/report.md").find("**MISSED**"), std::string::npos);
  EXPECT_NE(ReadFileToString(D("out") + "/report.html").find("data-budget=\"max_size_bytes\" data-passed=\"false\""),
            std::string::npos);
  std::string junit = ReadFileToString(D("junit.xml"));
  EXPECT_NE(junit.find("<testsuite name=\"budgets\" tests=\"3\" failures=\"1\""), std::string::npos) << junit;
  if (FileExists("/usr/bin/python3")) {
    RunResult x = RunCommand(
        "/usr/bin/python3 -c 'import sys, xml.etree.ElementTree as E; s = E.parse(sys.argv[1]).getroot().find(\"testsuite\"); "
        "print(s.get(\"name\"), [(c.get(\"name\"), c.find(\"failure\") is not None) for c in s.iter(\"testcase\")])' " +
        ShellQuote(D("junit.xml")));
    ASSERT_EQ(x.rc, 0) << x.output;
    EXPECT_NE(x.output.find("budgets [('max_accuracy_drop', False), ('max_size_bytes', True), "
                            "('not_slower_than_original', False)]"),
              std::string::npos)
        << x.output;
  }
}

TEST_F(CompressCli, InvalidInputsExitOneAndUsageTwo) {
  RunResult r = Digits(kData + "/compress_invalid.yaml", D("out"));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("compress_invalid.yaml:4:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("did you mean 'budgets'"), std::string::npos) << r.output;
  EXPECT_FALSE(FileExists(D("out") + "/report.json"));  // invalid input writes no report
  r = Digits(kData + "/no_such_recipe.yaml", D("out"));
  EXPECT_EQ(r.rc, 1) << r.output;
  r = Ep("compress " + ShellQuote(D("missing.onnx")) + " --recipe " + ShellQuote(kData + "/compress_cleanup.yaml") +
         " -o " + ShellQuote(D("out")));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("missing.onnx"), std::string::npos) << r.output;
  // Evaluation data without the label array top-1 needs.
  formats::NamedTensors no_label;
  for (auto& [n, t] : formats::LoadNpz(kDigits + "/eval.npz"))
    if (n == "image") no_label.emplace_back(n, t);
  formats::SaveNpz(no_label, D("nolabel.npz"));
  r = Ep("compress " + ShellQuote(kDigits + "/digits_cnn.onnx") + " --recipe " +
         ShellQuote(kData + "/compress_cleanup.yaml") + " --eval " + ShellQuote(D("nolabel.npz")) + " -o " +
         ShellQuote(D("out")));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("needs the label array 'label'"), std::string::npos) << r.output;
  // An accuracy budget without evaluation data.
  r = Ep("compress " + ShellQuote(kDigits + "/digits_cnn.onnx") + " --recipe " +
         ShellQuote(kData + "/compress_cleanup.yaml") + " -o " + ShellQuote(D("out")));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("needs evaluation data"), std::string::npos) << r.output;
  // Valid recipes asking for LibTorch: they work in a build with it (tests/runtime/torch/
  // torch_cli_test.cc checks what they write) and say clearly what is missing without it.
  WriteFileAtomic(D("pt.yaml"), "pipeline: [fold-constants]\nevaluation: {metric: top1}\nexport: {pt: true}\n");
  r = Digits(D("pt.yaml"), D("out_pt"));
  if (r.rc != 0) {
    EXPECT_EQ(r.rc, 1) << r.output;
    EXPECT_NE(r.output.find("export.pt: this edgepress was built without LibTorch"), std::string::npos) << r.output;
  }
  WriteFileAtomic(D("torch.yaml"), "target: {backend: torch}\npipeline: [fold-constants]\n");
  r = Digits(D("torch.yaml"), D("out_torch"));
  if (r.rc != 0) {
    EXPECT_EQ(r.rc, 1) << r.output;
    EXPECT_NE(r.output.find("target.backend 'torch': this edgepress was built without LibTorch"),
              std::string::npos) << r.output;
  }
  // The native runtime has no GPU.
  WriteFileAtomic(D("native_cuda.yaml"), "target: {backend: native, device: cuda}\npipeline: [fold-constants]\n");
  r = Digits(D("native_cuda.yaml"), D("out_nc"));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("needs target.backend: torch"), std::string::npos) << r.output;
  // Usage: no recipe, no output, a bad thread count.
  EXPECT_EQ(Ep("compress " + ShellQuote(kDigits + "/digits_cnn.onnx") + " -o " + ShellQuote(D("out"))).rc, 2);
  EXPECT_EQ(Ep("compress " + ShellQuote(kDigits + "/digits_cnn.onnx") + " --recipe x").rc, 2);
  EXPECT_EQ(Digits(kData + "/compress_cleanup.yaml", D("out"), "--threads 0").rc, 2);
  EXPECT_EQ(Digits(kData + "/compress_cleanup.yaml", D("out"), "--max-memory 1XB").rc, 2);
  // --max-memory below what one activation takes: a clear error naming the node and the
  // size (exit 1, no report), not an allocation attempt.
  r = Digits(kData + "/compress_cleanup.yaml", D("out_mem"), "--max-memory 512");
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("over the memory limit of 512 bytes (--max-memory)"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("node '/features/features.0/Conv'"), std::string::npos) << r.output;
  EXPECT_FALSE(FileExists(D("out_mem") + "/report.json"));
}

TEST_F(CompressCli, SameInputsGiveByteIdenticalArtifacts) {
  RunResult a = Digits(kData + "/compress_tuning.yaml", D("a"), "--quiet --seed 3");
  ASSERT_EQ(a.rc, 0) << a.output;
  RunResult b = Digits(kData + "/compress_tuning.yaml", D("b"), "--quiet --seed 3");
  ASSERT_EQ(b.rc, 0) << b.output;
  EXPECT_EQ(ReadFileToString(D("a") + "/model.epk"), ReadFileToString(D("b") + "/model.epk"));
  EXPECT_EQ(ReadFileToString(D("a") + "/manifest.json"), ReadFileToString(D("b") + "/manifest.json"));
  Json ra = Load(D("a") + "/report.json"), rb = Load(D("b") + "/report.json");
  EXPECT_EQ(WithoutTimings(ra).dump(1), WithoutTimings(rb).dump(1));
  EXPECT_EQ(ra["provenance"]["seed"], 3);
}

TEST_F(CompressCli, TuningKeepsTheFirstTrialThatMeetsTheBudget) {
  RunResult r = Digits(kData + "/compress_tuning.yaml", D("out"), "--json");
  ASSERT_EQ(r.rc, 0) << r.output;
  Json rep = Json::parse(r.output);  // --json: the report alone on stdout
  EXPECT_EQ(rep, Load(D("out") + "/report.json"));
  const Json& trials = rep["trials"];
  // The step that changes nothing is not run: trial 0 (int4) and trial 1 (int8).
  ASSERT_EQ(trials.size(), 2u) << rep.dump(1);
  EXPECT_EQ(trials[0]["name"], "as written");
  EXPECT_FALSE(trials[0]["passed"].get<bool>());
  EXPECT_GT(trials[0]["result"]["metric"].get<double>(), 0.0005);
  EXPECT_EQ(trials[1]["name"], "int8 weights");
  EXPECT_TRUE(trials[1]["passed"].get<bool>());
  EXPECT_TRUE(trials[1]["chosen"].get<bool>());
  EXPECT_LT(trials[1]["result"]["metric"].get<double>(), 0.0005);
  EXPECT_EQ(trials[1]["overrides"].size(), 2u);  // accumulated: group-size, then bits
  // int4 is smaller but misses; the chosen artifact is the int8 one.
  EXPECT_LT(trials[0]["result"]["size_bytes"].get<int64_t>(), trials[1]["result"]["size_bytes"].get<int64_t>());
  EXPECT_EQ(rep["compressed"]["size_bytes"], trials[1]["result"]["size_bytes"]);
  EXPECT_EQ(rep["compressed"]["size_bytes"], FileSize(D("out") + "/model.epk"));
  bool skipped_note = false;
  for (const auto& n : rep["notes"]) skipped_note |= n.get<std::string>().find("changes nothing; skipped") != std::string::npos;
  EXPECT_TRUE(skipped_note) << rep["notes"].dump();
  formats::EpkMetadata meta;
  formats::LoadEpk(D("out") + "/model.epk", &meta);
  ASSERT_NE(meta.Find("pipeline"), nullptr);
  EXPECT_NE(meta.Find("pipeline")->find("bits=8"), std::string::npos) << *meta.Find("pipeline");
  std::string html = ReadFileToString(D("out") + "/report.html");
  EXPECT_NE(html.find("<svg data-chart=\"trials\""), std::string::npos);

  // With only trial 0 allowed, nothing meets the budget: exit 3 with the reasons.
  std::string recipe = ReadFileToString(kData + "/compress_tuning.yaml");
  recipe = std::regex_replace(recipe, std::regex("max_trials: 4"), "max_trials: 1");
  WriteFileAtomic(D("one_trial.yaml"), recipe);
  r = Digits(D("one_trial.yaml"), D("out1"), "--quiet");
  EXPECT_EQ(r.rc, 3) << r.output;
  EXPECT_NE(r.output.find("budget max_accuracy_drop missed"), std::string::npos) << r.output;
  Json one = Load(D("out1") + "/report.json");
  EXPECT_EQ(one["trials"].size(), 1u);
  EXPECT_TRUE(one["trials"][0]["chosen"].get<bool>());
}

TEST_F(CompressCli, BaselineFlagsRegressions) {
  ASSERT_EQ(Digits(kData + "/compress_cleanup.yaml", D("old"), "--quiet").rc, 0);
  // Against itself: no regression.
  RunResult r = Digits(kData + "/compress_cleanup.yaml", D("new"), "--quiet --baseline " + ShellQuote(D("old") + "/report.json"));
  ASSERT_EQ(r.rc, 0) << r.output;
  Json rep = Load(D("new") + "/report.json");
  EXPECT_EQ(rep["comparison"]["baseline_report"], D("old") + "/report.json");
  // Latency may differ by more than 10% on a loaded machine; size and accuracy may not.
  for (const auto& g : rep["comparison"]["regressions"])
    EXPECT_EQ(g["field"].get<std::string>().rfind("latency", 0), 0u) << g.dump();
  // An earlier run that was smaller and more accurate: both flagged, exit code unchanged.
  Json old = Load(D("old") + "/report.json");
  old["compressed"]["size_bytes"] = 1000;
  old["compressed"]["metric"] = 1.0;
  WriteFileAtomic(D("better.json"), old.dump());
  r = Digits(kData + "/compress_cleanup.yaml", D("new2"), "--quiet --baseline " + ShellQuote(D("better.json")));
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("regression against"), std::string::npos) << r.output;
  rep = Load(D("new2") + "/report.json");
  std::set<std::string> fields;
  for (const auto& g : rep["comparison"]["regressions"]) fields.insert(g["field"].get<std::string>());
  EXPECT_TRUE(fields.count("size_bytes") && fields.count("metric")) << rep["comparison"].dump();
  EXPECT_EQ(rep["status"], "passed");
  // --fail-on-regression makes them fail the gate.
  r = Digits(kData + "/compress_cleanup.yaml", D("new3"),
             "--quiet --fail-on-regression --baseline " + ShellQuote(D("better.json")));
  EXPECT_EQ(r.rc, 3) << r.output;
  EXPECT_EQ(Load(D("new3") + "/report.json")["status"], "regressed");
  // A malformed baseline is invalid input.
  WriteFileAtomic(D("bad.json"), "{\"schema_version\": 1}");
  r = Digits(kData + "/compress_cleanup.yaml", D("new4"), "--quiet --baseline " + ShellQuote(D("bad.json")));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("bad.json: field"), std::string::npos) << r.output;
}

TEST_F(CompressCli, HtmlChartsRenderInHeadlessChromium) {
  std::string chromium;
  for (const char* c : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (FileExists(c)) chromium = c;
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/setup.sh installs it)";
  RunResult r = Digits(kData + "/compress_tuning.yaml", D("out"), "--quiet");
  ASSERT_EQ(r.rc, 0) << r.output;
  const std::string html = fs::absolute(D("out") + "/report.html").string();
  // --dump-dom prints the DOM after the page has loaded and been parsed.
  RunResult dom = RunCommand("timeout 120 " + chromium +
                             " --headless --no-sandbox --disable-gpu --user-data-dir=" +
                             ShellQuote(D("chromium-profile")) + " --dump-dom " +
                             ShellQuote("file://" + html) + " 2>/dev/null");
  ASSERT_EQ(dom.rc, 0) << dom.output;
  Json rep = Load(D("out") + "/report.json");
  for (const char* chart : {"size", "latency", "accuracy", "layers", "trials"}) {
    std::smatch m;
    ASSERT_TRUE(std::regex_search(dom.output, m,
                                  std::regex(std::string("<svg data-chart=\"") + chart + "\"[^>]*>([\\s\\S]*?)</svg>")))
        << chart << " missing from the rendered DOM";
    const std::string body = m[1].str();
    const std::regex value("<rect [^>]*data-value=\"([^\"]+)\"");
    std::vector<double> values;
    for (auto it = std::sregex_iterator(body.begin(), body.end(), value); it != std::sregex_iterator(); ++it)
      values.push_back(std::stod((*it)[1].str()));
    EXPECT_FALSE(values.empty()) << chart;
    if (std::string(chart) == "size") {
      ASSERT_EQ(values.size(), 2u);
      EXPECT_EQ(values[0], rep["baseline"]["size_bytes"].get<double>());
      EXPECT_EQ(values[1], rep["compressed"]["size_bytes"].get<double>());
    }
    if (std::string(chart) == "trials") {
      EXPECT_EQ(values.size(), rep["trials"].size());
    }
  }
  // And it paints: a screenshot that is not one flat colour.
  const std::string png = D("shot.png");
  r = RunCommand("timeout 120 " + chromium + " --headless --no-sandbox --disable-gpu --user-data-dir=" +
                 ShellQuote(D("chromium-profile")) + " --window-size=1000,1400 --screenshot=" + ShellQuote(png) +
                 " " + ShellQuote("file://" + html) + " 2>/dev/null");
  ASSERT_EQ(r.rc, 0) << r.output;
  ASSERT_TRUE(FileExists(png));
  RunResult px = RunCommand(
      "/usr/bin/python3 -c 'import sys, zlib, struct\n"
      "d = open(sys.argv[1], \"rb\").read()\n"
      "assert d[:8] == b\"\\x89PNG\\r\\n\\x1a\\n\"\n"
      "p, idat = 8, b\"\"\n"
      "while p < len(d):\n"
      "    n, t = struct.unpack(\">I4s\", d[p:p+8]); c = d[p+8:p+8+n]; p += 12 + n\n"
      "    if t == b\"IDAT\": idat += c\n"
      "raw = zlib.decompress(idat)\n"
      "print(\"distinct\", len(set(raw[i:i+3] for i in range(0, min(len(raw), 3000000), 3))))' " +
      ShellQuote(png));
  ASSERT_EQ(px.rc, 0) << px.output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(px.output, m, std::regex("distinct (\\d+)"))) << px.output;
  EXPECT_GT(std::stoi(m[1].str()), 20) << "the screenshot looks blank";
}

// Both bundled digits models (CNN and transformer) with every shipped recipe.
TEST_F(CompressCli, EveryShippedRecipeRunsOnDigits) {
  auto shipped = tools::ShippedRecipes();
  if (shipped.empty()) GTEST_SKIP() << "no shipped recipes found";
  for (const char* model : {"digits_cnn", "digits_transformer"}) {
    for (const auto& [name, path] : shipped) {
      SCOPED_TRACE(std::string(model) + " with " + name);
      const std::string out = D(std::string(model) + "-" + name);
      RunResult r = Ep("compress " + ShellQuote(kDigits + "/" + model + ".onnx") + " --recipe " + name +
                       " --calib " + ShellQuote(kDigits + "/calib.npz") + " --eval " +
                       ShellQuote(kDigits + "/eval.npz") + " -o " + ShellQuote(out) + " --quiet");
      // A shipped recipe may miss a budget on this host (exit 3), never be invalid (1),
      // except for targets whose backend this build lacks, which must say so.
      if (r.rc == 1) {
        EXPECT_NE(r.output.find("built without LibTorch"), std::string::npos) << r.output;
        continue;
      }
      ASSERT_TRUE(r.rc == 0 || r.rc == 3) << r.rc << ": " << r.output;
      Json rep = Load(out + "/report.json");
      EXPECT_EQ(rep["exit_code"], r.rc);
      EXPECT_EQ(rep["provenance"]["recipe"]["name"], name);
      EXPECT_EQ(rep["compressed"]["size_bytes"], FileSize(out + "/model.epk"));
      EXPECT_GE(rep["trials"].size(), 1u);
      // Whatever the budgets say, the kept model still classifies digits.
      EXPECT_GT(rep["compressed"]["metric"].get<double>(), 0.95);
      // Where the time goes, per op type, for both models (native backend): shares of the
      // time inside nodes add up to 100%, and every op type names the kernel that ran it.
      if (rep["target"]["backend"] == "native") {
        for (const char* which : {"original", "compressed"}) {
          const Json& p = rep["profile"][which];
          EXPECT_GE(p["runs"].get<int>(), 3) << which;
          double share = 0;
          for (const Json& op : p["op_types"]) {
            share += op["share"].get<double>();
            EXPECT_FALSE(op["kernels"].empty()) << op.dump();
          }
          EXPECT_NEAR(share, 100.0, 0.5) << p.dump();
        }
        const std::string ops = rep["profile"]["compressed"]["op_types"].dump();
        const bool int8 = rep["compressed"]["size_bytes"].get<double>() <
                          0.5 * rep["baseline"]["size_bytes"].get<double>();
        if (int8 && std::string(model) == "digits_cnn") {
          EXPECT_NE(ops.find("QLinearConv"), std::string::npos) << ops;
        }
      }
      if (r.rc == 3) {
        EXPECT_FALSE(rep["reasons"].empty());
        EXPECT_NE(r.output.find("missed"), std::string::npos) << r.output;
      }
    }
  }
}

// torchvision resnet18 with random weights (the fixture the interop test exports): size
// and latency, and cosine of the logits to the original on random images.
TEST_F(CompressCli, Resnet18SizeLatencyAndCosine) {
  const std::string python = kSrc + "/.venv/bin/python";
  if (!FileExists(python)) GTEST_SKIP() << "no project venv at " << python;
  if (RunCommand(ShellQuote(python) + " -c 'import torch, torchvision'").rc != 0)
    GTEST_SKIP() << "the venv lacks torch/torchvision";
  const fs::path tv = fs::path(EDGEPRESS_BINARY_DIR) / "test_out" / "torchvision";
  if (!FileExists((tv / "expected.json").string())) {
    RunResult e = RunCommand(ShellQuote(python) + " " + ShellQuote(kSrc + "/tests/fixtures/export_torchvision.py") +
                             " " + ShellQuote(tv.string()));
    ASSERT_EQ(e.rc, 0) << e.output;
  }
  const std::string model = (tv / "resnet18.onnx").string();
  // Four random images (deterministic).
  ir::Tensor images(ir::DType::kFloat32, {4, 3, 224, 224});
  float* p = images.mutable_data<float>();
  uint32_t s = 1;
  for (uint64_t i = 0; i < images.numel(); ++i) {
    s = s * 1664525u + 1013904223u;
    p[i] = static_cast<float>(s >> 8) / 16777216.0f * 2 - 1;
  }
  formats::SaveNpz({{"image", images}}, D("images.npz"));
  RunResult r = Ep("compress " + ShellQuote(model) + " --recipe " + ShellQuote(kData + "/compress_resnet.yaml") +
                   " --eval " + ShellQuote(D("images.npz")) + " -o " + ShellQuote(D("out")));
  ASSERT_EQ(r.rc, 0) << r.output;
  Json rep = Load(D("out") + "/report.json");
  EXPECT_EQ(rep["evaluation"]["metric"], "cosine");
  EXPECT_DOUBLE_EQ(rep["baseline"]["metric"].get<double>(), 1.0);
  EXPECT_GT(rep["compressed"]["metric"].get<double>(), 0.9999);
  EXPECT_EQ(rep["baseline"]["size_bytes"], FileSize(model));
  // resnet18 has 11.7M float parameters: both artifacts are about 46 MB.
  EXPECT_GT(rep["compressed"]["size_bytes"].get<int64_t>(), 44'000'000);
  EXPECT_EQ(rep["compressed"]["size_bytes"], FileSize(D("out") + "/model.epk"));
  EXPECT_TRUE(FileExists(D("out") + "/model.onnx"));  // export.onnx
  ASSERT_EQ(rep["artifacts"].size(), 2u);
  EXPECT_EQ(rep["artifacts"][1]["path"], "model.onnx");
  EXPECT_GT(rep["baseline"]["latency_ms"]["p50"].get<double>(), 0);
  EXPECT_GT(rep["compressed"]["latency_ms"]["p50"].get<double>(), 0);
  EXPECT_EQ(rep["target"]["threads"], 2);
  // fold-batchnorm removed every BatchNormalization.
  for (const auto& pass : rep["passes"])
    if (pass["pass"] == "fold-batchnorm") {
      EXPECT_EQ(pass["stats"]["conv-folded"], 20) << pass.dump();
    }
}

}  // namespace
