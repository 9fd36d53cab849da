// The latency harness shared by `bench` and `compress`: one untimed first run (it sizes
// the buffer arena and warms caches, reported separately), `warmup` untimed runs, then
// timed runs — a fixed count, or as many as fit in a time budget — summarised as mean,
// percentiles (linear interpolation between order statistics), min/max and standard
// deviation. Inputs are real data or deterministic random tensors from the declared
// shapes, so numbers are comparable across runs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "runtime/session.h"

namespace edgepress::eval {

struct LatencyOptions {
  int warmup = 3;
  int64_t runs = 20;     // timed runs (ignored when seconds > 0)
  double seconds = 0;    // > 0: time budget for the timed runs instead of `runs`
  // Called after each timed run with (runs done, runs total; total 0 under a time budget).
  std::function<void(int64_t, int64_t)> progress;
};

struct LatencyStats {
  double first_ms = 0;
  int warmup = 0;
  int64_t runs = 0;
  double mean_ms = 0, p50_ms = 0, p90_ms = 0, p99_ms = 0, min_ms = 0, max_ms = 0, stddev_ms = 0;
  double throughput_per_s = 0;  // 1000 / mean
  int threads = 1;
};

// Runs `session` on `inputs`; errors of Run() propagate unchanged.
LatencyStats MeasureLatency(runtime::Session& session, const runtime::NamedTensors& inputs,
                            const LatencyOptions& options);
// The same harness around any runner (the torch backend's Run(), which returns host
// tensors, so a CUDA run is timed up to its outputs being back); `threads` is reported.
LatencyStats MeasureLatencyOf(const std::function<void()>& run_once, int threads,
                              const LatencyOptions& options);

// The summary of timed runs (milliseconds, in run order): runs, mean, percentiles, min/max,
// standard deviation, throughput; first_ms, warmup and threads are left at their defaults.
LatencyStats SummarizeLatency(const std::vector<double>& times_ms);

// p in [0, 100] of an ascending vector; 0 when empty.
double Percentile(const std::vector<double>& sorted, double p);

// A random tensor for a declared input: floats in [-1, 1), integers in [0, 9] (usually
// indices), uint8 in [0, 255], bools 0/1. Symbolic dims come from `dims`; an unresolved
// one throws Error(kUsage) asking for `--dim name=N`. Unsupported dtypes throw kUnsupported.
ir::Tensor RandomInput(const ir::Value& v, const std::map<std::string, int64_t>& dims,
                       std::mt19937& rng);

}  // namespace edgepress::eval
