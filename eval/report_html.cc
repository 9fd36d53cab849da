// The HTML form of a compress report (report.h): one self-contained page, charts as
// inline SVG whose bars carry their numbers in data attributes (tests read them back).
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/report.h"
#include "eval/report_distill.h"
#include "eval/report_text.h"

namespace edgepress::eval {

using namespace report_text;  // NOLINT: the report writers' shared formatting

namespace {

using Json = nlohmann::ordered_json;

struct Bar {
  std::string label;
  double value = 0;
  std::string cls;      // CSS class: base, comp, pass, fail
  std::string display;  // text after the bar
};

// A horizontal bar chart. Every bar is a <rect data-value> with its label and value, so
// the numbers survive in the DOM (and in a screen reader's <title>).
std::string BarChart(const std::string& id, const std::string& title, const std::string& unit,
                     const std::vector<Bar>& bars) {
  const int label_w = 220, bar_w = 340, row = 26, top = 30, width = label_w + bar_w + 260;
  const int height = top + row * static_cast<int>(bars.size()) + 10;
  double mx = 0;
  for (const Bar& b : bars)
    if (std::isfinite(b.value)) mx = std::max(mx, std::fabs(b.value));
  std::string s = "<figure>\n<svg data-chart=\"" + Esc(id) + "\" data-unit=\"" + Esc(unit) +
                  "\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) +
                  "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " +
                  std::to_string(width) + " " + std::to_string(height) + "\" role=\"img\">\n";
  s += "<title>" + Esc(title) + "</title>\n";
  s += "<text x=\"0\" y=\"18\" class=\"title\">" + Esc(title) + "</text>\n";
  for (size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    const int y = top + row * static_cast<int>(i);
    const double frac = mx > 0 && std::isfinite(b.value) ? std::fabs(b.value) / mx : 0;
    const double w = std::max(frac * bar_w, 1.0);
    // Long value names keep their informative end; the full label is in data-label.
    const std::string shown =
        b.label.size() > 30 ? "..." + b.label.substr(b.label.size() - 27) : b.label;
    s += "<text x=\"" + std::to_string(label_w - 6) + "\" y=\"" + std::to_string(y + 17) +
         "\" text-anchor=\"end\">" + Esc(shown) + "</text>\n";
    s += "<rect class=\"" + Esc(b.cls) + "\" x=\"" + std::to_string(label_w) + "\" y=\"" +
         std::to_string(y + 4) + "\" width=\"" + Fmt("%.2f", w) + "\" height=\"" +
         std::to_string(row - 8) + "\" data-label=\"" + Esc(b.label) + "\" data-value=\"" +
         Fmt("%.9g", b.value) + "\"><title>" + Esc(b.label + ": " + b.display) +
         "</title></rect>\n";
    s += "<text x=\"" + Fmt("%.2f", label_w + w + 6) + "\" y=\"" + std::to_string(y + 17) + "\">" +
         Esc(b.display) + "</text>\n";
  }
  s += "</svg>\n</figure>\n";
  return s;
}

// The page head and the status, model, recipe and target lines.
std::string HtmlHead(const Report& r) {
  std::string s =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>edgepress report: " +
      Esc(r.model.path) +
      "</title>\n<style>\n"
      "body{font-family:sans-serif;margin:2em;max-width:60em;color:#222}\n"
      "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em "
      ".6em;text-align:left}\n"
      ".passed{color:#1a7f37}.missed{color:#c62828;font-weight:bold}\n"
      "svg text{font-size:13px;fill:#222}svg text.title{font-weight:bold;font-size:14px}\n"
      "rect.base{fill:#90a4ae}rect.comp{fill:#1e88e5}rect.pass{fill:#43a047}rect.fail{fill:#e53935}"
      "rect.chosen{fill:#1e88e5}rect.err{fill:#fb8c00}\n"
      "figure{margin:1em 0}\n</style>\n</head>\n<body>\n";
  s += "<h1>edgepress compress report</h1>\n";
  const bool ok = r.status == "passed";
  s += "<p class=\"" + std::string(ok ? "passed" : "missed") +
       "\" id=\"status\">Status: " + Esc(r.status) + " (exit code " + std::to_string(r.exit_code) +
       ")</p>\n";
  if (!r.reasons.empty()) {
    s += "<ul id=\"reasons\">\n";
    for (const auto& why : r.reasons) s += "<li>" + Esc(why) + "</li>\n";
    s += "</ul>\n";
  }
  s += "<table>\n<tr><th>model</th><td>" + Esc(r.model.path) + " (" +
       Esc(HumanBytes(static_cast<double>(r.model.bytes))) + ", sha256 " + Esc(r.model.sha256) +
       ")</td></tr>\n";
  s += "<tr><th>recipe</th><td>" + Esc(r.recipe_name) + " (" + Esc(r.recipe.path) + ")</td></tr>\n";
  s += "<tr><th>target</th><td>" +
       Esc(r.target.name + " (" + r.target.arch + ", " + r.target.backend + " on " +
           r.target.device + ", isa " + r.target.isa + ", " + std::to_string(r.target.threads) +
           " thread(s))") +
       "</td></tr>\n";
  s += "<tr><th>measured on</th><td>" + Esc(r.target.host_cpu) + "</td></tr>\n";
  s += "<tr><th>tool</th><td>edgepress " + Esc(r.tool_version) + ", seed " +
       std::to_string(r.seed) + "</td></tr>\n</table>\n";

  return s;
}

// The budgets table: limit, measured, margin and result of each.
std::string HtmlBudgets(const Report& r) {
  std::string s;
  s += "<h2>Budgets</h2>\n";
  if (r.budgets.empty())
    s += "<p>The recipe sets no budgets.</p>\n";
  else {
    s += "<table "
         "id=\"budgets\">\n<tr><th>budget</th><th>limit</th><th>measured</th><th>margin</"
         "th><th>result</th></tr>\n";
    for (const auto& b : r.budgets)
      s += "<tr data-budget=\"" + Esc(b.name) + "\" data-passed=\"" +
           (b.passed ? "true" : "false") + "\"><td>" + Esc(b.name) + "</td><td>" +
           Esc(b.op + " " + Value(b.unit, b.limit)) + "</td><td>" + Esc(Value(b.unit, b.measured)) +
           "</td><td>" + Esc(G(b.margin)) + "</td><td class=\"" +
           (b.passed ? "passed\">pass" : "missed\">MISSED: " + Esc(b.Message())) + "</td></tr>\n";
    s += "</table>\n";
  }

  return s;
}

// Parameter/MAC counts of both models and the size, latency, accuracy and per-layer error charts.
std::string HtmlParamsAndCharts(const Report& r) {
  std::string s;
  const auto& a = r.baseline;
  const auto& c = r.compressed;
  if (a.params > 0 && c.params > 0) {
    s += "<h2>Parameters and compute</h2>\n<table "
         "id=\"params\">\n<tr><th></th><th>original</th><th>compressed</th></tr>\n";
    s += "<tr><th>parameters</th><td data-value=\"" + std::to_string(a.params) + "\">" +
         Esc(Count(a.params)) + "</td><td data-value=\"" + std::to_string(c.params) + "\">" +
         Esc(Count(c.params)) + "</td></tr>\n";
    s += "<tr><th>non-zero parameters (sparsity)</th><td data-value=\"" +
         std::to_string(a.nonzero_params) + "\">" + Esc(NonZeroText(a.nonzero_params, a.params)) +
         "</td><td data-value=\"" + std::to_string(c.nonzero_params) + "\">" +
         Esc(NonZeroText(c.nonzero_params, c.params)) + "</td></tr>\n";
    if (a.macs > 0 && c.macs > 0)
      s += "<tr><th>MACs, batch 1 (non-zero)</th><td data-value=\"" +
           std::to_string(a.nonzero_macs) + "\">" +
           Esc(Count(a.macs) + " (" + Count(a.nonzero_macs) + ")") + "</td><td data-value=\"" +
           std::to_string(c.nonzero_macs) + "\">" +
           Esc(Count(c.macs) + " (" + Count(c.nonzero_macs) + ")") + "</td></tr>\n";
    s += "</table>\n";
  }
  s += "<h2>Charts</h2>\n";
  s += BarChart("size", "Artifact size (bytes)", "bytes",
                {{"original", static_cast<double>(a.size_bytes), "base",
                  HumanBytes(static_cast<double>(a.size_bytes))},
                 {"compressed", static_cast<double>(c.size_bytes), "comp",
                  HumanBytes(static_cast<double>(c.size_bytes))}});
  s += BarChart("latency", "Latency at batch 1 (ms)", "ms",
                {{"original p50", a.latency_p50_ms, "base", Fmt("%.3f ms", a.latency_p50_ms)},
                 {"compressed p50", c.latency_p50_ms, "comp", Fmt("%.3f ms", c.latency_p50_ms)},
                 {"original p99", a.latency_p99_ms, "base", Fmt("%.3f ms", a.latency_p99_ms)},
                 {"compressed p99", c.latency_p99_ms, "comp", Fmt("%.3f ms", c.latency_p99_ms)}});
  if (!r.metric.empty() && a.metric && c.metric)
    s += BarChart("accuracy",
                  "Accuracy: " + r.metric +
                      (r.metric_higher_is_better ? " (higher is better)" : " (lower is better)"),
                  r.metric,
                  {{"original", *a.metric, "base", G(*a.metric)},
                   {"compressed", *c.metric, "comp", G(*c.metric)}});
  if (!r.layers.empty()) {
    std::vector<Bar> bars;
    for (size_t i = 0; i < r.layers.size() && i < 25; ++i)
      bars.push_back({r.layers[i].name, r.layers[i].nmse, "comp", "NMSE " + G(r.layers[i].nmse)});
    s += BarChart("layers", "Per-layer error vs the original (NMSE, largest first)", "nmse", bars);
  }
  return s;
}

// Charts of the sensitivities passes measured or were given.
std::string HtmlPassCharts(const Report& r) {
  std::string s;
  // Per-layer sensitivity a pass measured (quantize-static: SNR of each layer quantized
  // alone, most sensitive first).
  for (const auto& p : r.passes) {
    if (p.details.empty()) continue;
    Json d = Json::parse(p.details, nullptr, false);
    if (!d.is_object() || !d.contains("layers") || !d["layers"].is_array()) continue;
    std::vector<Bar> bars;
    for (const Json& l : d["layers"]) {
      if (bars.size() >= 25) break;
      if (!l.is_object() || !l.contains("snr_db") || !l["snr_db"].is_number()) continue;
      std::string name =
          l.contains("name") && l["name"].is_string() ? l["name"].get<std::string>() : "?";
      bool kept = l.contains("float") && l["float"].is_boolean() && l["float"].get<bool>();
      double snr = l["snr_db"].get<double>();
      bars.push_back({name, snr, kept ? "base" : "comp",
                      Fmt("%.1f dB", snr) + (kept ? " (kept in float)" : "")});
    }
    if (!bars.empty()) {
      s += BarChart("sensitivity",
                    p.pass +
                        ": per-layer SNR when quantized alone (dB, most sensitive first; grey = "
                        "kept in float)",
                    "dB", bars);
      break;
    }
  }
  // Pruning sensitivity a pass was given (prune-magnitude sensitivity-file): each layer's
  // error at each sparsity of the ladder; blue = the sparsity the pass chose.
  for (const auto& p : r.passes) {
    if (p.details.empty()) continue;
    Json d = Json::parse(p.details, nullptr, false);
    if (!d.is_object() || !d.contains("sensitivity") || !d["sensitivity"].is_object()) continue;
    const Json& sens = d["sensitivity"];
    if (!sens.contains("layers") || !sens["layers"].is_array()) continue;
    std::vector<Bar> bars;
    for (const Json& l : sens["layers"]) {
      if (!l.is_object() || !l.contains("results") || !l["results"].is_array()) continue;
      std::string name =
          l.contains("layer") && l["layer"].is_string() ? l["layer"].get<std::string>() : "?";
      double chosen =
          l.contains("chosen") && l["chosen"].is_number() ? l["chosen"].get<double>() : -1;
      for (const Json& res : l["results"]) {
        if (bars.size() >= 60 || !res.is_object() || !res.contains("sparsity") ||
            !res.contains("error") || !res["sparsity"].is_number() || !res["error"].is_number())
          continue;
        double sp = res["sparsity"].get<double>(), e = res["error"].get<double>();
        bool is_chosen = std::fabs(sp - chosen) < 1e-9;
        bars.push_back({name + " @" + Fmt("%.2f", sp), e, is_chosen ? "chosen" : "base",
                        G(e) + (is_chosen ? " (chosen)" : "")});
      }
    }
    if (!bars.empty()) {
      std::string metric = sens.contains("metric") && sens["metric"].is_string()
                               ? sens["metric"].get<std::string>()
                               : "error";
      s += BarChart("prune-sensitivity",
                    p.pass + ": " + metric +
                        " error of each layer pruned alone, per sparsity (blue = chosen)",
                    metric, bars);
      break;
    }
  }
  return s;
}

// The tuning trials chart, the trials rejected as slower, and where the time goes.
std::string HtmlTrialsAndProfile(const Report& r) {
  std::string s;
  if (!r.trials.empty()) {
    std::vector<Bar> bars;
    for (const auto& t : r.trials)
      bars.push_back(
          {"#" + std::to_string(t.index) + " " + t.name, static_cast<double>(t.result.size_bytes),
           !t.error.empty() ? "err"
           : t.chosen       ? "chosen"
           : t.passed       ? "pass"
                            : "fail",
           (t.error.empty()
                ? HumanBytes(static_cast<double>(t.result.size_bytes)) +
                      (t.result.metric ? ", " + r.metric + " " + G(*t.result.metric) : "") +
                      (t.passed ? ", met" : ", missed") +
                      (t.vs_original && t.vs_original->slower
                           ? Fmt(", %.2fx slower than the original", t.vs_original->ratio)
                           : "") +
                      (t.chosen ? " (chosen)" : "")
                : "error")});
    s += BarChart(
        "trials",
        "Tuning trials: artifact size (blue = chosen, green = met all budgets, red = missed)",
        "bytes", bars);
  }
  if (!r.rejected_slower.empty()) {
    s += "<h2>Rejected: slower than the original</h2>\n<ul>\n";
    for (const auto& x : r.rejected_slower)
      s += "<li class=\"missed\" data-rejected-trial=\"" + std::to_string(x.trial) + "\">" +
           Esc(x.message) + "</li>\n";
    s += "</ul>\n";
  }
  if (r.original_profile.runs && r.compressed_profile.runs) {
    s += "<h2>Where the time goes</h2>\n<p>ms per run by op type (share of the time inside "
         "nodes), " +
         std::to_string(r.compressed_profile.runs) + " profiled runs of each model.</p>\n";
    s += "<table id=\"profile\">\n<tr><th>op type</th><th>original</th><th>compressed</th>"
         "<th>kernels (compressed)</th></tr>\n";
    std::vector<ProfileRow> rows = ProfileRows(r);
    for (size_t i = 0; i < rows.size() && i < kProfileRows; ++i)
      s += "<tr><td>" + Esc(rows[i].op) + "</td><td>" +
           MsShare(rows[i].original_ms, rows[i].original_share) + "</td><td>" +
           MsShare(rows[i].compressed_ms, rows[i].compressed_share) + "</td><td>" +
           Esc(JoinKernels(rows[i].kernels)) + "</td></tr>\n";
    s += "</table>\n";
  }
  return s;
}

// Passes, regressions against a previous report, notes and artifacts; closes the page.
std::string HtmlTail(const Report& r) {
  std::string s;
  s += "<h2>Passes</h2>\n<table>\n<tr><th>pass</th><th>changed</th><th>statistics</th></tr>\n";
  for (const auto& p : r.passes) {
    std::string st;
    for (const auto& [k, v] : p.stats) st += (st.empty() ? "" : ", ") + k + "=" + std::to_string(v);
    s += "<tr><td>" + Esc(p.pass) + "</td><td>" + (p.changed ? "yes" : "no") + "</td><td>" +
         Esc(st) + "</td></tr>\n";
  }
  s += "</table>\n";
  if (!r.regressions.empty() || !r.baseline_report.empty()) {
    s += "<h2>Against " + Esc(r.baseline_report) + "</h2>\n<ul>\n";
    if (r.regressions.empty()) s += "<li>No regressions.</li>\n";
    for (const auto& g : r.regressions) s += "<li class=\"missed\">" + Esc(g.message) + "</li>\n";
    s += "</ul>\n";
  }
  if (!r.notes.empty()) {
    s += "<h2>Notes</h2>\n<ul>\n";
    for (const auto& n : r.notes) s += "<li>" + Esc(n) + "</li>\n";
    s += "</ul>\n";
  }
  s += "<h2>Artifacts</h2>\n<table>\n<tr><th>file</th><th>bytes</th><th>sha256</th></tr>\n";
  for (const auto& ar : r.artifacts)
    s += "<tr><td>" + Esc(ar.path) + "</td><td>" + std::to_string(ar.bytes) + "</td><td>" +
         Esc(ar.sha256) + "</td></tr>\n";
  s += "</table>\n</body>\n</html>\n";
  return s;
}

}  // namespace

std::string ReportToHtml(const Report& r) {
  return HtmlHead(r) + HtmlBudgets(r) + HtmlParamsAndCharts(r) + HtmlPassCharts(r) +
         HtmlTrialsAndProfile(r) + DistillHtml(r) + HtmlTail(r);
}

}  // namespace edgepress::eval
