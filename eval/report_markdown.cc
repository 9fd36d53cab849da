// The Markdown form of a compress report (report.h).
#include <algorithm>
#include <string>

#include "eval/report.h"
#include "eval/report_distill.h"
#include "eval/report_text.h"

namespace edgepress::eval {

using namespace report_text;  // NOLINT: the report writers' shared formatting

namespace {

// Title, status and reasons, and what was compressed with what, on which machine.
std::string Header(const Report& r) {
  std::string s;
  s += "# edgepress compress report\n\n";
  s += std::string("**Status: ") + (r.status == "passed" ? "passed" : r.status) + "** (exit code " +
       std::to_string(r.exit_code) + ")\n\n";
  for (const auto& why : r.reasons) s += "- " + why + "\n";
  if (!r.reasons.empty()) s += "\n";
  s += "| | |\n|---|---|\n";
  s += "| model | `" + r.model.path + "` (" + HumanBytes(static_cast<double>(r.model.bytes)) +
       ", sha256 `" + r.model.sha256.substr(0, 16) + "…`) |\n";
  s += "| recipe | " + r.recipe_name + " (`" + r.recipe.path + "`) |\n";
  s += "| target | " + r.target.name + " (" + r.target.arch + ", " + r.target.backend + " on " +
       r.target.device + ", isa " + r.target.isa + ", " + std::to_string(r.target.threads) +
       " thread(s)) |\n";
  s +=
      "| measured on | " + (r.target.host_cpu.empty() ? "unknown CPU" : r.target.host_cpu) + " |\n";
  if (!r.calibration_sha256.empty())
    s += "| calibration data | sha256 `" + r.calibration_sha256.substr(0, 16) + "…` |\n";
  if (!r.evaluation.path.empty())
    s += "| evaluation data | `" + r.evaluation.path + "` (" + std::to_string(r.eval_samples) +
         " samples) |\n";
  s += "| tool | edgepress " + r.tool_version + ", seed " + std::to_string(r.seed) + " |\n\n";

  return s;
}

// Original against compressed: size, latency, metric, nodes, parameters, MACs.
std::string Comparison(const Report& r) {
  std::string s;
  s += "## Original vs compressed\n\n| | original | compressed | change |\n|---|---:|---:|---:|\n";
  const auto& a = r.baseline;
  const auto& b = r.compressed;
  s += "| size | " + HumanBytes(static_cast<double>(a.size_bytes)) + " | " +
       HumanBytes(static_cast<double>(b.size_bytes)) + " | " +
       (a.size_bytes
            ? Fmt("%.3fx", static_cast<double>(b.size_bytes) / static_cast<double>(a.size_bytes))
            : "n/a") +
       " |\n";
  s += "| latency p50 | " + Fmt("%.3f ms", a.latency_p50_ms) + " | " +
       Fmt("%.3f ms", b.latency_p50_ms) + " | " +
       (b.latency_p50_ms > 0 ? Fmt("%.2fx faster", a.latency_p50_ms / b.latency_p50_ms) : "n/a") +
       " |\n";
  s += "| latency p99 | " + Fmt("%.3f ms", a.latency_p99_ms) + " | " +
       Fmt("%.3f ms", b.latency_p99_ms) + " | |\n";
  if (!r.metric.empty())
    s += "| " + r.metric + " | " + MetricText(a.metric) + " | " + MetricText(b.metric) + " | " +
         (a.metric && b.metric ? G(*b.metric - *a.metric) : "n/a") + " |\n";
  s += "| nodes | " + std::to_string(a.nodes) + " | " + std::to_string(b.nodes) + " | |\n";
  if (a.params > 0 && b.params > 0) {
    s += "| parameters | " + Count(a.params) + " | " + Count(b.params) + " | " +
         Fmt("%.3fx", double(b.params) / double(a.params)) + " |\n";
    s += "| non-zero parameters (sparsity) | " + NonZeroText(a.nonzero_params, a.params) + " | " +
         NonZeroText(b.nonzero_params, b.params) + " | " +
         (a.nonzero_params ? Fmt("%.3fx", double(b.nonzero_params) / double(a.nonzero_params))
                           : "n/a") +
         " |\n";
  }
  if (a.macs > 0 && b.macs > 0)
    s += "| MACs, batch 1 (non-zero) | " + Count(a.macs) + " (" + Count(a.nonzero_macs) + ") | " +
         Count(b.macs) + " (" + Count(b.nonzero_macs) + ") | " +
         (a.nonzero_macs ? Fmt("%.3fx", double(b.nonzero_macs) / double(a.nonzero_macs)) : "n/a") +
         " |\n";
  s += "\n";

  return s;
}

// The recipe's budgets, each with its margin.
std::string Budgets(const Report& r) {
  std::string s;
  s += "## Budgets\n\n";
  if (r.budgets.empty())
    s += "The recipe sets no budgets.\n\n";
  else {
    s += "| budget | limit | measured | margin | result |\n|---|---:|---:|---:|---|\n";
    for (const auto& bu : r.budgets)
      s += "| " + bu.name + " | " + bu.op + " " + Value(bu.unit, bu.limit) + " | " +
           Value(bu.unit, bu.measured) + " | " + G(bu.margin) + " | " +
           (bu.passed ? "pass" : "**MISSED**: " + bu.Message()) + " |\n";
    s += "\n";
  }
  return s;
}

// The pipeline, one row a pass with its statistics.
std::string Passes(const Report& r) {
  std::string s;
  s += "## Passes\n\n| pass | changed | statistics |\n|---|---|---|\n";
  for (const auto& p : r.passes) {
    std::string st;
    for (const auto& [k, v] : p.stats) st += (st.empty() ? "" : ", ") + k + "=" + std::to_string(v);
    s += "| " + p.pass + " | " + (p.changed ? "yes" : "no") + " | " + st + " |\n";
  }
  s += "\n";
  return s;
}

// Every tuning trial, and the smaller trials rejected as slower than the original.
std::string Trials(const Report& r) {
  std::string s;
  if (!r.trials.empty()) {
    s += "## Tuning trials\n\n| # | trial | size | " +
         (r.metric.empty() ? std::string("metric") : r.metric) +
         " | p50 | vs original | budgets | chosen |\n|---:|---|---:|---:|---:|---:|---|---|\n";
    for (const auto& t : r.trials) {
      std::string missed;
      for (const auto& bu : t.budgets)
        if (!bu.passed) missed += (missed.empty() ? "" : ", ") + bu.name;
      s += "| " + std::to_string(t.index) + " | " + t.name + " | " +
           (t.error.empty() ? HumanBytes(static_cast<double>(t.result.size_bytes)) : "-") + " | " +
           MetricText(t.result.metric) + " | " + Fmt("%.3f ms", t.result.latency_p50_ms) + " | " +
           (t.vs_original
                ? Fmt("%.2fx", t.vs_original->ratio) + (t.vs_original->slower ? " (slower)" : "")
                : "") +
           " | " +
           (!t.error.empty() ? "error: " + t.error
            : t.passed       ? "all met"
                             : "missed " + missed) +
           " | " + (t.chosen ? "yes" : "") + " |\n";
    }
    s += "\n";
  }
  if (!r.rejected_slower.empty()) {
    s += "## Rejected: slower than the original\n\n";
    for (const auto& x : r.rejected_slower) s += "- " + x.message + "\n";
    s += "\n";
  }
  return s;
}

// The layers that lost most, and where the time goes per op type.
std::string LayersAndProfile(const Report& r) {
  std::string s;
  if (!r.layers.empty()) {
    s += "## Per-layer error (largest first)\n\n| value | op | NMSE | cosine "
         "|\n|---|---|---:|---:|\n";
    for (size_t i = 0; i < r.layers.size() && i < 20; ++i)
      s += "| " + r.layers[i].name + " | " + r.layers[i].op + " | " + G(r.layers[i].nmse) + " | " +
           G(r.layers[i].cosine) + " |\n";
    s += "\n";
  }
  if (r.original_profile.runs && r.compressed_profile.runs) {
    s += "## Where the time goes (per op type, " + std::to_string(r.compressed_profile.runs) +
         " profiled runs each)\n\n";
    s += "| op type | original | compressed | kernels (compressed) |\n|---|---:|---:|---|\n";
    std::vector<ProfileRow> rows = ProfileRows(r);
    for (size_t i = 0; i < rows.size() && i < kProfileRows; ++i)
      s += "| " + rows[i].op + " | " + MsShare(rows[i].original_ms, rows[i].original_share) +
           " | " + MsShare(rows[i].compressed_ms, rows[i].compressed_share) + " | " +
           JoinKernels(rows[i].kernels) + " |\n";
    s += "\n";
  }
  return s;
}

// Regressions against a baseline report, notes, and the artifacts written.
std::string Closing(const Report& r) {
  std::string s;
  if (!r.baseline_report.empty()) {
    s += "## Against `" + r.baseline_report + "`\n\n";
    if (r.regressions.empty()) s += "No regressions.\n";
    for (const auto& g : r.regressions) s += "- regression: " + g.message + "\n";
    s += "\n";
  }
  if (!r.notes.empty()) {
    s += "## Notes\n\n";
    for (const auto& n : r.notes) s += "- " + n + "\n";
    s += "\n";
  }
  s += "## Artifacts\n\n| file | bytes | sha256 |\n|---|---:|---|\n";
  for (const auto& ar : r.artifacts)
    s += "| `" + ar.path + "` | " + std::to_string(ar.bytes) + " | `" + ar.sha256 + "` |\n";
  return s;
}

}  // namespace

std::string ReportToMarkdown(const Report& r) {
  return Header(r) + Comparison(r) + Budgets(r) + DistillMarkdown(r) + Passes(r) + Trials(r) +
         LayersAndProfile(r) + Closing(r);
}

}  // namespace edgepress::eval
