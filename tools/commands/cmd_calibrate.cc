// `edgepress calibrate MODEL --data D.npz [--data ...] --method M -o ranges.json`: runs the
// data set through the native runtime and writes the range of every float activation
// (calibrate/calibrate.h) as ranges.json. The model is optimized the way `run` executes
// it unless --no-optimize: value names are those of the graph that ran, so ranges match
// a model quantized after the same optimization (quantize-static calibrates the graph it
// sees, inside its own pipeline).
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "calibrate/calibrate.h"
#include "calibrate/dataset.h"
#include "ir/error.h"
#include "tools/cli.h"
#include "tools/model_io.h"

namespace edgepress::tools {

namespace {

struct Options {
  std::string model, method = "minmax", output;
  std::vector<std::string> data, tensors, layout;
  double percentile = 99.99;
  int per_channel_axis = -1;
  int bins = 2048;
  int64_t batch_size = 1, max_samples = -1;
  int threads = 1;
  bool symmetric = false, no_optimize = false, json = false;
};

calibrate::CalibrationOptions ToCalibrationOptions(const Options& o) {
  calibrate::CalibrationOptions co;
  try {
    co.observer.method = calibrate::ParseMethod(o.method);
  } catch (const Error& e) {
    throw Error(ErrorCode::kUsage, std::string("--method: ") + e.what());
  }
  if (!(o.percentile > 0 && o.percentile <= 100))
    throw Error(ErrorCode::kUsage,
                fmt::format("--percentile must be in (0, 100], got {}", o.percentile));
  co.observer.percentile = o.percentile;
  co.observer.per_channel_axis = o.per_channel_axis;
  co.observer.bins = o.bins;
  co.observer.symmetric = o.symmetric;
  co.tensors = o.tensors;
  co.threads = o.threads;
  co.batch_size = o.batch_size;
  co.max_samples = o.max_samples;
  if (!o.json && isatty(fileno(stderr)))
    co.progress = [](int64_t done, int64_t total) {
      std::fprintf(stderr, "\rcalibrating: %lld/%lld samples", static_cast<long long>(done),
                   static_cast<long long>(total));
      if (done == total) std::fprintf(stderr, "\n");
    };
  return co;
}

void PrintSummary(const Options& o, const calibrate::CalibrationResult& r) {
  if (o.json) {
    nlohmann::json j;
    j["model"] = o.model;
    j["output"] = o.output;
    j["method"] = r.method;
    j["tensors"] = r.ranges.size();
    j["samples"] = r.samples;
    j["data_sha256"] = r.data_sha256;
    j["peak_observer_bytes"] = r.peak_observer_bytes;
    j["fallbacks"] = r.fallbacks;
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("calibrated {} tensors on {} samples ({}), data sha256 {}, wrote {}\n",
               r.ranges.size(), r.samples, r.method, r.data_sha256, o.output);
  }
  if (r.fallbacks <= 0) return;
  std::string first;
  for (const auto& [name, t] : r.ranges)
    if (!t.fallback.empty()) {
      first = "'" + name + "': " + t.fallback;
      break;
    }
  std::fprintf(stderr,
               "warning: %lld of %zu ranges fell back to min/max: the calibration "
               "statistics were too thin for %s (first: %s); give more samples or use "
               "--method minmax\n",
               static_cast<long long>(r.fallbacks), r.ranges.size(), r.method.c_str(),
               first.c_str());
}

int RunCalibrate(const Options& o) {
  const calibrate::CalibrationOptions co = ToCalibrationOptions(o);
  std::unique_ptr<ir::Model> model = LoadModelForRun(o.model, !o.no_optimize);
  calibrate::CalibrationResult r;
  try {
    calibrate::DataSet data = calibrate::DataSet::Open(
        o.data, *model->graph, calibrate::ParseDataLayout(o.layout, "--layout"));
    r = calibrate::Calibrate(*model, data, co);
  } catch (const Error& e) {
    throw Error(e.code(), o.model + ": " + e.what());
  }
  calibrate::SaveRanges(r, o.output);
  PrintSummary(o, r);
  return 0;
}

}  // namespace

void AddCalibrateCommand(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate",
      "Record activation ranges over a calibration data set (ranges.json)");
  cmd->footer(
      "The model is optimized as `run` executes it (--no-optimize: as given), and the\n"
      "ranges are named after the values of that graph. The quantize-static pass\n"
      "calibrates the model it sees in its own pipeline; use this command to inspect\n"
      "ranges, compare methods or record which data (data_sha256) calibrated a model.\n"
      "Methods: minmax (observed range), percentile (cut (100-P)/2 % from each tail),\n"
      "entropy (TensorRT KL divergence), mse (least expected 8-bit quantization error).");
  cmd->add_option("MODEL", o->model, "model file (.onnx, .epk)")->required();
  cmd->add_option("--data", o->data,
                  "calibration data: .npz with one array per model input (first dim = "
                  "samples), or .npy for a one-input model, or a folder of them; repeat for "
                  "several files")
      ->required();
  cmd->add_option("--layout", o->layout, "how an array feeds an input: NAME=batched|stacked|constant (repeatable; default inferred from the model's input shapes)");
  cmd->add_option("--method", o->method, "minmax, percentile, entropy or mse")
      ->capture_default_str();
  cmd->add_option("--percentile", o->percentile, "percentile method: share of values kept")
      ->capture_default_str();
  cmd->add_option("--per-channel-axis", o->per_channel_axis,
                  "one range per index along this axis (-1: per tensor)")
      ->capture_default_str()
      ->check(CLI::Range(-1, 64));
  cmd->add_option("--bins", o->bins, "histogram bins (percentile, entropy, mse)")
      ->capture_default_str()
      ->check(CLI::Range(16, 1 << 20));
  cmd->add_flag("--symmetric", o->symmetric, "ranges symmetric around zero");
  cmd->add_option("--tensors", o->tensors, "observe only these values (default: every float "
                                           "input and node output)");
  cmd->add_option("--batch-size", o->batch_size,
                  "samples per run (> 1 needs a symbolic batch dimension)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--max-samples", o->max_samples, "use at most this many samples (-1: all)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{-1}, INT64_MAX));
  cmd->add_option("--threads", o->threads, "worker threads (0 = all cores)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  AddMaxMemoryOption(cmd);
  AddInputShapeOption(cmd);
  cmd->add_flag("--no-optimize", o->no_optimize,
                "calibrate the model as given, without the default cleanup/fusion passes");
  cmd->add_option("-o,--output", o->output, "ranges file to write (.json)")->required();
  cmd->add_flag("--json", o->json, "print the summary as JSON");
  cmd->callback([o, &action] {
    action = [o] { return RunCalibrate(*o); };
  });
}

}  // namespace edgepress::tools
