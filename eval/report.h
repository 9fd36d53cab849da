// The compress report: what was compressed, with what, and how the result compares with
// the original against the recipe's budgets. One struct, four writers:
//   JSON      versioned schema (docs/report.md), keys in a fixed order; the reader
//             (ReportFromJson) is what `compress --baseline` uses
//   Markdown  tables for a pull-request comment or a CI summary
//   HTML      one self-contained file (no scripts, no external resources) with inline SVG
//             charts; each chart is <svg data-chart="NAME"> whose bars carry their numbers
//             (<rect data-value=..>), so a DOM check can verify the data
//   JUnit     a testsuite "budgets" with one testcase per budget, for CI test views
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace edgepress::eval {

constexpr int kReportSchemaVersion = 1;

// One model as measured: the original (baseline) or a compressed trial.
struct ModelMeasurement {
  int64_t size_bytes = 0;
  int64_t nodes = 0;
  // Latency at batch 1 on the recipe's thread count (timing: varies run to run).
  double latency_p50_ms = 0, latency_p90_ms = 0, latency_p99_ms = 0, latency_mean_ms = 0;
  int64_t latency_runs = 0;
  std::optional<double> metric;  // absent when there was no evaluation data
  // Parameters (float weights and quantized weight codes, not scales) and how many are
  // non-zero; multiply-accumulates of one batch-1 forward pass, dense and counting only
  // non-zero weights (what sparse kernels would do). 0 = not measured (older reports).
  int64_t params = 0, nonzero_params = 0, macs = 0, nonzero_macs = 0;
};

struct BudgetResult {
  std::string name;       // recipe key, e.g. "max_accuracy_drop"
  std::string unit;       // "bytes", "ms", "ratio", "x" or the metric's name
  std::string op;         // "<=" or ">="
  double limit = 0;
  double measured = 0;
  bool passed = false;
  double margin = 0;      // headroom in `unit`; negative = missed by that much
  bool timing = false;    // depends on latency measurements
  std::string Message() const;  // "measured 0.0302 > limit 0.01 (missed by 0.0202)"
};

struct PassRecord {
  std::string pass;
  std::vector<std::pair<std::string, std::string>> options;  // resolved, incl. defaults
  bool changed = false;
  std::map<std::string, int64_t> stats;
  double seconds = 0;  // timing
  std::string details;  // the pass's own JSON object for reports (Pass::Details), or empty
};

struct LayerError {  // one activation compared between the original and compressed model
  std::string name;  // value name
  std::string op;    // producer op in the original model
  double nmse = 0;
  double cosine = 1;
};

struct Override {
  std::string pass, option, value;
};

// A trial's latency measured interleaved with the original model's in the same process
// (eval/latency_compare.h): the fair comparison the "not slower" check uses.
struct VsOriginal {
  double original_p50_ms = 0, p50_ms = 0;  // over the interleaved runs
  double ratio = 0;                        // median per-round ratio: x times as long as the original
  double ratio_low = 0, ratio_high = 0;    // its distribution-free interval ...
  double coverage = 0;                     // ... and that interval's confidence
  double tolerance = 0;                    // slowdowns up to this are not called slower
  double limit = 0;                        // 1 + tolerance + (ratio - ratio_low)
  int rounds = 0, runs_per_round = 0;
  bool slower = false;                     // ratio_low > 1 + tolerance
};

struct Trial {
  int index = 0;
  std::string name;                  // "as written" for trial 0
  std::vector<Override> overrides;   // accumulated up to this trial
  ModelMeasurement result;
  std::vector<BudgetResult> budgets;
  bool passed = false;
  bool chosen = false;
  std::string error;  // a trial whose pipeline failed: why (its result is empty)
  double seconds = 0;  // timing
  std::optional<VsOriginal> vs_original;  // timing; absent for failed trials and old reports
};

// A trial kept out because it runs slower than the original (recipe without
// tuning.allow_slower): which one, and why in words (sizes, p50s, ratio and its noise).
struct Rejection {
  int trial = 0;
  std::string name;
  std::string message;
};

struct Artifact {
  std::string path;  // relative to the report's folder
  std::string sha256;
  int64_t bytes = 0;
};

struct Regression {
  std::string field;  // "size_bytes", "latency_p50_ms", "latency_p99_ms", "metric"
  double baseline = 0, current = 0;
  double tolerance = 0;  // as documented in docs/report.md
  std::string message;
};

// Where one model's time goes per op type (runtime::SummarizeProfile of a few profiled runs
// after the latency measurement, native backend only): timing.
struct OpTime {
  std::string op;  // qualified op type
  int64_t nodes = 0;
  double ms = 0;     // per run
  double share = 0;  // percent of the time inside nodes
  std::vector<std::string> kernels;
};
struct ModelProfile {
  int64_t runs = 0;  // 0: not profiled
  double run_ms = 0;
  std::vector<OpTime> op_types;  // largest first
};

struct Report {
  int schema_version = kReportSchemaVersion;
  std::string tool_version;
  struct Input {
    std::string path, sha256;
    int64_t bytes = 0;
  };
  Input model;                      // bytes include ONNX external data files
  Input recipe;                     // sha256 of the resolved recipe YAML
  std::string recipe_name;
  std::vector<Input> calibration;   // files, in order
  std::string calibration_sha256;   // over all files (DataSet)
  Input evaluation;
  uint64_t seed = 0;
  struct Target {
    std::string name, arch, backend, isa;
    int threads = 1;
    std::string host_cpu;  // where latency was measured
    std::string device = "cpu";  // the backend's device for latency: cpu or cuda[:N]
  } target;
  std::string metric;           // empty: no evaluation data
  bool metric_higher_is_better = true;
  int64_t eval_samples = 0;
  ModelMeasurement baseline;    // the original model
  ModelMeasurement compressed;  // the chosen trial
  std::vector<BudgetResult> budgets;  // of the chosen trial
  std::vector<PassRecord> passes;     // of the chosen trial
  std::vector<LayerError> layers;     // largest error first
  std::vector<Trial> trials;
  std::vector<Rejection> rejected_slower;  // timing: which trials the latency check rejected
  ModelProfile original_profile, compressed_profile;  // timing
  std::vector<Artifact> artifacts;
  std::string baseline_report;        // --baseline path, empty when none
  std::vector<Regression> regressions;
  std::vector<std::string> notes;
  int exit_code = 0;
  std::string status;                 // "passed" | "budget_missed" | "regressed"
  std::vector<std::string> reasons;   // why not passed
  double duration_s = 0;              // timing
};

std::string ReportToJson(const Report& r);
// Reads a report written by ReportToJson (any schema version <= the current one); throws
// Error(kInvalidInput) naming `name_for_errors` and the field on malformed input.
Report ReportFromJson(const std::string& json, const std::string& name_for_errors);
std::string ReportToMarkdown(const Report& r);
std::string ReportToHtml(const Report& r);
std::string ReportToJunit(const Report& r);

// Regressions of `current` against an earlier report's compressed model (tolerances in
// docs/report.md: size +1%, latency +10%, metric worse by more than 0.002 absolute).
std::vector<Regression> FindRegressions(const Report& previous, const Report& current);

}  // namespace edgepress::eval
