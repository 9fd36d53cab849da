// `edgepress compress`: import -> recipe pipeline (with accuracy-aware tuning) -> export ->
// evaluation of the original and the compressed model on the native runtime -> budgets ->
// reports. The flow and the files it writes are documented in docs/report.md; the exit
// codes in docs/ci.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "eval/report.h"

namespace edgepress::tools {

class Progress;

struct CompressOptions {
  std::string model;
  std::string recipe;    // shipped name or path
  std::string calib;     // overrides recipe.calibration.data
  std::string eval;      // overrides recipe.evaluation.data
  std::vector<std::string> layout;  // "input=kind", added to both data layouts of the recipe
  std::string outdir;
  std::string baseline;  // an earlier report.json
  std::string junit;     // JUnit XML file to write
  std::optional<int> threads;
  std::optional<uint64_t> seed;
  bool fail_on_regression = false;
};

// Runs the whole command and writes OUTDIR/{model.epk, model.onnx?, report.json,
// report.md, report.html, manifest.json} (and the JUnit file). Returns the report; its
// exit_code is 0 (every budget held) or 3 (a budget missed, or a regression with
// fail_on_regression). Invalid input throws Error before any report is written.
eval::Report RunCompress(const CompressOptions& options, Progress& progress);

}  // namespace edgepress::tools
