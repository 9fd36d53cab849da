// Is a candidate model slower than a reference? Both run in the same process on the same
// inputs and threads, interleaved: `rounds` rounds, each a block of `runs_per_round` timed
// runs of one model and then of the other (the order alternates every round, ABBA, so a
// drift in machine load falls on both). Each round gives one ratio, the candidate's median
// block time over the reference's; the slowdown is the median of these ratios, and its
// noise is a distribution-free ~95% interval of that median (order statistics of the round
// ratios, the sign-test interval), so a burst of load in a few rounds neither hides nor
// invents a slowdown. The candidate is called slower only when the whole interval lies
// above 1 + tolerance: the tolerance covers what rounds cannot see, a small systematic
// difference between two sessions of the same model (buffer placement, code alignment).
#pragma once

#include <functional>
#include <vector>

#include "eval/latency.h"

namespace edgepress::eval {

struct CompareOptions {
  int warmup = 3;           // untimed runs of each model after its first run
  int rounds = 10;          // >= 6 for a 95% interval; fewer give a lower coverage
  int runs_per_round = 5;   // timed runs of each model per round
  double tolerance = 0.10;  // slowdowns up to 10% are not called slower
  // Called after each timed run with (runs done, runs total), both models counted.
  std::function<void(int64_t, int64_t)> progress;

  // About `runs` timed runs of each model: 6 to 10 rounds of ceil(runs / rounds) runs.
  static CompareOptions ForRuns(int64_t runs, int warmup);
};

struct LatencyComparison {
  LatencyStats reference, candidate;  // over all timed runs of each
  int rounds = 0, runs_per_round = 0;
  std::vector<double> round_ratios;      // candidate / reference median block time, per round
  double ratio = 0;                      // median round ratio: the candidate runs `ratio` x as long
  double ratio_low = 0, ratio_high = 0;  // interval of the median ratio
  double coverage = 0;                   // that interval's confidence (0.95..1 for >= 6 rounds)
  double tolerance = 0;
  // The largest ratio still not called slower: 1 + tolerance + (ratio - ratio_low), i.e.
  // the tolerance plus this measurement's own noise below its estimate.
  double limit = 0;
  bool slower = false;  // ratio_low > 1 + tolerance (equivalently ratio > limit)
};

struct MedianInterval {
  double low = 0, high = 0;
  double coverage = 0;  // probability that the population median lies in [low, high]
};
// Distribution-free interval of the median of `values` (any order): the order statistics
// k and n+1-k with the largest k whose two-sided coverage is >= `confidence` (binomial,
// p = 1/2). With too few values for that, the extremes (and their lower coverage).
MedianInterval MedianConfidenceInterval(std::vector<double> values, double confidence = 0.95);

// Runs `reference` and `candidate` interleaved as described above; errors of either
// propagate unchanged. `threads` is reported in both stats.
LatencyComparison CompareLatency(const std::function<void()>& reference,
                                 const std::function<void()>& candidate, int threads,
                                 const CompareOptions& options);

}  // namespace edgepress::eval
