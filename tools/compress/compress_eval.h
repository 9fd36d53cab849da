// How `compress` measures a model (tools/compress/compress.cc runs the phases): the evaluation set-up
// shared by the original and every trial, the measurement of one model file (size,
// structure, metric, latency — a trial's interleaved with the original's), the budgets
// checked on it, and the per-layer error table of the kept model.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "calibrate/dataset.h"
#include "eval/latency.h"
#include "eval/metrics.h"
#include "eval/report.h"
#include "ir/graph.h"
#include "runtime/session.h"
#include "tools/backend.h"
#include "tools/compress/recipe.h"

namespace edgepress::tools {

class Progress;

// Everything the evaluation of one model needs, shared by the baseline and the trials.
struct EvalSetup {
  std::unique_ptr<calibrate::DataSet> data;  // null: no evaluation data
  std::optional<eval::Metric> metric;        // reset when there is no evaluation data
  int k = 5;
  std::string label, output;
  int64_t samples = 0, batch = 1;
  std::vector<ir::Tensor> reference;  // original outputs per batch (cosine/nmse)
  runtime::NamedTensors latency_inputs;  // batch 1
  eval::LatencyOptions latency;
  runtime::SessionOptions session;
  BackendChoice backend;  // where the metric and the latency are measured
  // The original model's runner, kept after its measurement: every trial's latency is
  // measured interleaved with it (CompareWithOriginal).
  std::unique_ptr<Runner> original;
};

// The recipe's evaluation data (with `cli_layout` added to evaluation.layout), metric and
// batch-1 latency inputs; without evaluation data, random latency inputs seeded by `seed`.
// Fills the report's evaluation fields and its notes on what was not measured.
EvalSetup SetupEvaluation(const Recipe& recipe, int threads, uint64_t seed,
                          const std::string& eval_file, const std::vector<std::string>& cli_layout,
                          std::optional<eval::Metric> metric, const ir::Model& original,
                          eval::Report* rep);

// Bytes of a model file, an ONNX model's external data files included.
int64_t ModelBytes(const std::string& path);

// Size, structure, metric and latency of one model file on the recipe's backend (native, or
// torch on cpu or cuda), optimised as `run` and `bench` execute it. The original model
// (`keep_reference`) keeps its scored outputs as the reference of cosine/nmse and its
// runner in `ev.original`; a trial's latency is measured against it into `*vs`.
eval::ModelMeasurement Measure(const std::string& path, EvalSetup& ev, Progress& progress,
                               const std::string& what, bool keep_reference,
                               eval::VsOriginal* vs = nullptr);

// The recipe's budgets, then (unless tuning.allow_slower) the implicit check that the trial
// is not slower than the original beyond the measurement's noise.
std::vector<eval::BudgetResult> CheckBudgets(const Recipe& recipe, const eval::ModelMeasurement& base,
                                             const eval::ModelMeasurement& comp,
                                             const std::optional<eval::VsOriginal>& vs,
                                             const std::optional<eval::Metric>& metric);

// Where the model's time goes per op type: a few profiled runs on the native runtime (after
// warm-up) on the latency inputs. Not profiled (runs 0) on the torch backend.
eval::ModelProfile ProfileModel(const std::string& path, EvalSetup& ev, Progress& progress,
                                const std::string& what);

// Per-layer error of the compressed model on a few samples (eval/layer_compare.h); empty
// when the two models share no value names.
std::vector<eval::LayerError> LayerErrors(const std::string& original, const std::string& compressed,
                                          EvalSetup& ev, int64_t samples);

}  // namespace edgepress::tools
