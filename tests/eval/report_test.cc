// The report writers on a report filled with known values: JSON round-trips through the
// reader with its keys in the documented order; Markdown and HTML name every budget;
// the HTML is self-contained with one <svg data-chart> per chart whose bars carry the
// numbers; JUnit is well-formed with a <failure> for the missed budget only; and the
// reader rejects malformed or future-version reports.
#include "eval/report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "ir/error.h"

namespace edgepress::eval {
namespace {

Report Sample() {
  Report r;
  r.tool_version = "0.1.0";
  r.model = {"examples/digits/digits_cnn.onnx", std::string(64, 'a'), 123456};
  r.recipe = {"tests/tools/data/x.yaml", std::string(64, 'b'), 321};
  r.recipe_name = "x";
  r.calibration = {{"calib.npz", std::string(64, 'c'), 999}};
  r.calibration_sha256 = std::string(64, 'c');
  r.evaluation = {"eval.npz", std::string(64, 'd'), 888};
  r.seed = 7;
  r.target = {"laptop", "x86_64", "native", "auto", 2, "AMD EPYC"};
  r.metric = "top1";
  r.eval_samples = 360;
  r.baseline = {123456, 20, 1.5, 1.7, 2.5, 1.6, 50, 0.975};
  r.compressed = {40000, 18, 0.75, 0.8, 1.25, 0.8, 50, 0.95};
  r.budgets = {{"max_size_bytes", "bytes", "<=", 50000, 40000, true, 10000, false},
               {"max_accuracy_drop", "top1", "<=", 0.01, 0.025, false, -0.015, false}};
  r.passes = {{"fold-constants", {{"max-bytes", "1024"}}, true, {{"folded", 3}}, 0.001, ""},
              {"quantize-static", {}, true, {}, 0.5,
               R"({"layers":[{"name":"conv1","snr_db":12.5,"float":true},{"name":"fc","snr_db":31.25,"float":false}]})"}};
  r.layers = {{"conv1_out", "Conv", 0.02, 0.99}, {"relu<&>", "Relu", 0.001, 0.9995}};
  Trial t0;
  t0.index = 0;
  t0.name = "as written";
  t0.result = r.compressed;
  t0.budgets = r.budgets;
  VsOriginal vs;
  vs.original_p50_ms = 0.0375;
  vs.p50_ms = 0.09375;
  vs.ratio = 2.5;
  vs.ratio_low = 2.25;
  vs.ratio_high = 2.75;
  vs.coverage = 0.978515625;
  vs.tolerance = 0.1;
  vs.limit = 1.35;
  vs.rounds = 10;
  vs.runs_per_round = 5;
  vs.slower = true;
  t0.vs_original = vs;
  Trial t1 = t0;
  t1.index = 1;
  t1.name = "bits 8";
  t1.overrides = {{"quantize-weights", "bits", "8"}};
  t1.result.size_bytes = 60000;
  t1.chosen = true;
  t1.vs_original->ratio = 0.5;
  t1.vs_original->slower = false;
  r.trials = {t0, t1};
  r.rejected_slower = {{0, "as written", "trial 0 ('as written'): 0.32x the size but slower <than> the original"}};
  r.original_profile = {12, 1.5, {{"com.microsoft::FusedConv", 2, 1.25, 90.0, {"f32_fused_conv__avx512_6x32"}},
                                  {"Gemm", 1, 0.125, 9.0, {"f32_gemm_op__avx512_6x32"}}}};
  r.compressed_profile = {12, 0.75, {{"edgepress::QLinearConv", 2, 0.5, 80.0, {"q8_ep_qlinearconv__amx_32x32"}},
                                     {"Gemm", 1, 0.0625, 10.0, {"f32_gemm_op__avx512_6x32"}}}};
  r.artifacts = {{"model.epk", std::string(64, 'e'), 40000}};
  r.baseline_report = "old/report.json";
  r.regressions = {{"size_bytes", 30000, 40000, 0.01, "size_bytes grew"}};
  r.notes = {"a note"};
  r.exit_code = 3;
  r.status = "budget_missed";
  r.reasons = {"budget max_accuracy_drop missed"};
  r.duration_s = 1.25;
  return r;
}

TEST(Report, JsonRoundTripsWithStableKeyOrder) {
  Report r = Sample();
  std::string json = ReportToJson(r);
  auto j = nlohmann::ordered_json::parse(json);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"schema_version", "tool", "status", "exit_code", "reasons",
                                            "provenance", "target", "evaluation", "baseline", "compressed",
                                            "budgets", "passes", "layers", "trials", "rejected_slower",
                                            "profile", "artifacts", "comparison", "notes", "duration_s"}));
  EXPECT_EQ(j["schema_version"], kReportSchemaVersion);
  EXPECT_EQ(j["budgets"][1]["name"], "max_accuracy_drop");
  EXPECT_EQ(j["budgets"][1]["passed"], false);
  EXPECT_DOUBLE_EQ(j["budgets"][1]["margin"].get<double>(), -0.015);
  EXPECT_EQ(j["compressed"]["size_bytes"], 40000);
  EXPECT_DOUBLE_EQ(j["compressed"]["metric"].get<double>(), 0.95);
  EXPECT_EQ(j["trials"][1]["overrides"][0]["value"], "8");

  Report back = ReportFromJson(json, "report.json");
  EXPECT_EQ(ReportToJson(back), json);  // every field survives
  EXPECT_EQ(back.compressed.size_bytes, 40000);
  ASSERT_TRUE(back.baseline.metric.has_value());
  EXPECT_DOUBLE_EQ(*back.baseline.metric, 0.975);
  EXPECT_EQ(back.trials[1].chosen, true);
  EXPECT_EQ(back.layers[1].name, "relu<&>");
  ASSERT_TRUE(back.trials[0].vs_original.has_value());
  EXPECT_EQ(back.trials[0].vs_original->rounds, 10);
  EXPECT_TRUE(back.trials[0].vs_original->slower);
  EXPECT_EQ(j["trials"][0]["vs_original"]["ratio_low"], 2.25);
  ASSERT_EQ(back.rejected_slower.size(), 1u);
  EXPECT_EQ(back.rejected_slower[0].trial, 0);
  ASSERT_EQ(back.compressed_profile.op_types.size(), 2u);
  EXPECT_EQ(back.compressed_profile.op_types[0].kernels[0], "q8_ep_qlinearconv__amx_32x32");
  EXPECT_EQ(j["profile"]["original"]["op_types"][0]["ms"], 1.25);
  // Reports written before these checks have none of the fields and still read.
  auto old_j = nlohmann::ordered_json::parse(json);
  old_j.erase("rejected_slower");
  old_j.erase("profile");
  for (auto& t : old_j["trials"]) t.erase("vs_original");
  Report old_back = ReportFromJson(old_j.dump(), "old.json");
  EXPECT_TRUE(old_back.rejected_slower.empty());
  EXPECT_EQ(old_back.compressed_profile.runs, 0);
  EXPECT_FALSE(old_back.trials[0].vs_original.has_value());
  EXPECT_EQ(j["passes"][1]["details"]["layers"][1]["snr_db"], 31.25);
  // Writing is deterministic.
  EXPECT_EQ(ReportToJson(Sample()), json);
}

TEST(Report, ReaderRejectsMalformedReports) {
  std::string json = ReportToJson(Sample());
  EXPECT_THROW(ReportFromJson("{", "r.json"), Error);
  auto j = nlohmann::ordered_json::parse(json);
  j["schema_version"] = kReportSchemaVersion + 1;
  try {
    ReportFromJson(j.dump(), "r.json");
    FAIL() << "future schema accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("r.json: field 'schema_version'"), std::string::npos) << e.what();
  }
  j = nlohmann::ordered_json::parse(json);
  j["compressed"].erase("size_bytes");
  try {
    ReportFromJson(j.dump(), "r.json");
    FAIL() << "missing field accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("compressed.size_bytes"), std::string::npos) << e.what();
  }
  j = nlohmann::ordered_json::parse(json);
  j["budgets"][0]["limit"] = "big";
  EXPECT_THROW(ReportFromJson(j.dump(), "r.json"), Error);
  j = nlohmann::ordered_json::parse(json);
  j["profile"]["compressed"]["op_types"][0]["kernels"][0] = 3;
  try {
    ReportFromJson(j.dump(), "r.json");
    FAIL() << "a numeric kernel name accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("profile.compressed.op_types[].kernels[]"), std::string::npos)
        << e.what();
  }
}

TEST(Report, MarkdownNamesBudgetsAndMisses) {
  std::string md = ReportToMarkdown(Sample());
  EXPECT_NE(md.find("**Status: budget_missed** (exit code 3)"), std::string::npos) << md;
  EXPECT_NE(md.find("| max_size_bytes |"), std::string::npos);
  EXPECT_NE(md.find("**MISSED**: measured 0.025 > limit 0.01 (missed by 0.015)"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1 | bits 8 |"), std::string::npos) << md;
  EXPECT_NE(md.find(" | 2.50x (slower) | "), std::string::npos) << md;  // trial 0 against the original
  EXPECT_NE(md.find("## Rejected: slower than the original\n\n- trial 0 ('as written'): 0.32x the size"),
            std::string::npos) << md;
  EXPECT_NE(md.find("regression: size_bytes grew"), std::string::npos);
  // Both profiles side by side, the slowest op type (in either model) first; "-" where a
  // model has no such op.
  EXPECT_NE(md.find("| com.microsoft::FusedConv | 1.250 ms (90%) | - |  |\n"
                    "| edgepress::QLinearConv | - | 0.500 ms (80%) | q8_ep_qlinearconv__amx_32x32 |\n"
                    "| Gemm | 0.125 ms (9%) | 0.062 ms (10%) | f32_gemm_op__avx512_6x32 |\n"),
            std::string::npos) << md;
  Report unprofiled = Sample();
  unprofiled.compressed_profile = {};
  EXPECT_EQ(ReportToMarkdown(unprofiled).find("Where the time goes"), std::string::npos);
}

TEST(Report, HtmlIsSelfContainedWithOneChartPerKindCarryingData) {
  std::string html = ReportToHtml(Sample());
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // only the SVG namespace
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  for (const char* chart : {"size", "latency", "accuracy", "layers", "sensitivity", "trials"}) {
    std::regex svg(std::string("<svg data-chart=\"") + chart + "\"[^>]*>([\\s\\S]*?)</svg>");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(html, m, svg)) << chart;
    std::string body = m[1].str();
    const std::regex rect("<rect [^>]*data-value=\"");
    auto bars = std::distance(std::sregex_iterator(body.begin(), body.end(), rect), std::sregex_iterator());
    EXPECT_GT(bars, 0) << chart;
  }
  EXPECT_NE(html.find("data-label=\"original\" data-value=\"123456\""), std::string::npos);
  EXPECT_NE(html.find("data-label=\"compressed\" data-value=\"40000\""), std::string::npos);
  EXPECT_NE(html.find("data-label=\"compressed p50\" data-value=\"0.75\""), std::string::npos);
  EXPECT_NE(html.find("data-value=\"0.95\""), std::string::npos);  // accuracy
  EXPECT_NE(html.find("data-label=\"fc\" data-value=\"31.25\""), std::string::npos);  // pass details
  EXPECT_NE(html.find("relu&lt;&amp;&gt;"), std::string::npos);     // escaped layer name
  EXPECT_EQ(html.find("relu<&>"), std::string::npos);
  EXPECT_NE(html.find("<li class=\"missed\" data-rejected-trial=\"0\">trial 0 (&#39;as written&#39;): 0.32x the size but "
                      "slower &lt;than&gt; the original</li>"),
            std::string::npos);
  EXPECT_NE(html.find("2.50x slower than the original"), std::string::npos);  // trials chart tooltip
  // No metric, no layers, no trials: those charts are left out rather than drawn empty.
  Report bare = Sample();
  bare.metric.clear();
  bare.baseline.metric.reset();
  bare.compressed.metric.reset();
  bare.layers.clear();
  bare.trials.clear();
  std::string h2 = ReportToHtml(bare);
  EXPECT_NE(h2.find("data-chart=\"size\""), std::string::npos);
  EXPECT_EQ(h2.find("data-chart=\"accuracy\""), std::string::npos);
  EXPECT_EQ(h2.find("data-chart=\"layers\""), std::string::npos);
  EXPECT_NE(html.find("<table id=\"profile\">"), std::string::npos);
  EXPECT_NE(html.find("<td>edgepress::QLinearConv</td><td>-</td><td>0.500 ms (80%)</td>"),
            std::string::npos);
}

TEST(Report, JunitHasOneCasePerBudgetAndFailsTheMissedOne) {
  std::string x = ReportToJunit(Sample());
  EXPECT_EQ(x.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", 0), 0u);
  EXPECT_NE(x.find("<testsuite name=\"budgets\" tests=\"2\" failures=\"1\""), std::string::npos) << x;
  EXPECT_NE(x.find("<testcase classname=\"edgepress.budgets\" name=\"max_size_bytes\"/>"), std::string::npos) << x;
  EXPECT_NE(x.find("name=\"max_accuracy_drop\">\n      <failure type=\"budget\" message=\"max_accuracy_drop: "
                   "measured 0.025 &gt; limit 0.01 (missed by 0.015)\""),
            std::string::npos)
      << x;
  EXPECT_NE(x.find("<testsuite name=\"regressions\" tests=\"1\" failures=\"1\""), std::string::npos) << x;
  // Balanced tags (a cheap well-formedness check; the CLI test runs a real XML parser).
  auto count = [&](const std::string& s) {
    size_t n = 0;
    for (size_t p = x.find(s); p != std::string::npos; p = x.find(s, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("<testsuite "), count("</testsuite>"));
  EXPECT_EQ(count("<failure "), count("</failure>"));
}

TEST(Report, RegressionsUseTheDocumentedTolerances) {
  Report prev = Sample(), cur = Sample();
  EXPECT_TRUE(FindRegressions(prev, cur).empty());  // identical: none
  cur.compressed.size_bytes = 40300;                 // +0.75%: within 1%
  cur.compressed.latency_p50_ms = 0.8;               // +6.7%: within 10%
  cur.compressed.metric = 0.949;                     // -0.001: within 0.002
  EXPECT_TRUE(FindRegressions(prev, cur).empty());
  cur.compressed.size_bytes = 41000;
  cur.compressed.latency_p99_ms = 1.5;
  cur.compressed.metric = 0.94;
  auto regs = FindRegressions(prev, cur);
  ASSERT_EQ(regs.size(), 3u);
  EXPECT_EQ(regs[0].field, "size_bytes");
  EXPECT_EQ(regs[1].field, "latency_p99_ms");
  EXPECT_EQ(regs[2].field, "metric");
  EXPECT_NE(regs[2].message.find("top1 went from 0.95 to 0.94"), std::string::npos) << regs[2].message;
}

}  // namespace
}  // namespace edgepress::eval
