#include "eval/latency_compare.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace edgepress::eval {

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return Percentile(v, 50);
}

// P(X <= k) for X ~ Binomial(n, 1/2).
double BinomialHalfCdf(int n, int k) {
  double term = std::pow(0.5, n), sum = 0;  // C(n, 0) / 2^n
  for (int i = 0; i <= k; ++i) {
    sum += term;
    term = term * (n - i) / (i + 1);
  }
  return sum;
}

}  // namespace

CompareOptions CompareOptions::ForRuns(int64_t runs, int warmup) {
  CompareOptions o;
  o.warmup = warmup;
  o.rounds = static_cast<int>(std::clamp<int64_t>(runs, 6, 10));
  o.runs_per_round = static_cast<int>(std::max<int64_t>(1, (runs + o.rounds - 1) / o.rounds));
  return o;
}

MedianInterval MedianConfidenceInterval(std::vector<double> values, double confidence) {
  MedianInterval out;
  if (values.empty()) return out;
  std::sort(values.begin(), values.end());
  const int n = static_cast<int>(values.size());
  // [v(k), v(n+1-k)] misses the median when at most k-1 values fall on one side.
  int k = 1;
  while (k + 1 <= (n + 1) / 2 && 1 - 2 * BinomialHalfCdf(n, k) >= confidence) ++k;
  out.low = values[k - 1];
  out.high = values[n - k];
  out.coverage = 1 - 2 * BinomialHalfCdf(n, k - 1);
  return out;
}

LatencyComparison CompareLatency(const std::function<void()>& reference,
                                 const std::function<void()>& candidate, int threads,
                                 const CompareOptions& o) {
  LatencyComparison c;
  c.rounds = std::max(1, o.rounds);
  c.runs_per_round = std::max(1, o.runs_per_round);
  c.tolerance = o.tolerance;
  const std::function<void()>* models[2] = {&reference, &candidate};
  double first_ms[2] = {0, 0};
  for (int m = 0; m < 2; ++m) {  // the first run sizes the arena; warm-up as the harness does
    auto t0 = Clock::now();
    (*models[m])();
    first_ms[m] = Ms(Clock::now() - t0);
    for (int i = 0; i < o.warmup; ++i) (*models[m])();
  }
  std::vector<double> all[2];
  const int64_t total = 2 * static_cast<int64_t>(c.rounds) * c.runs_per_round;
  int64_t done = 0;
  for (int r = 0; r < c.rounds; ++r) {
    std::vector<double> block[2];
    for (int slot = 0; slot < 2; ++slot) {
      const int m = (r % 2 == 0) ? slot : 1 - slot;  // ABBA: who goes first alternates
      for (int i = 0; i < c.runs_per_round; ++i) {
        auto t = Clock::now();
        (*models[m])();
        block[m].push_back(Ms(Clock::now() - t));
        if (o.progress) o.progress(++done, total);
      }
    }
    const double ref = Median(block[0]);
    c.round_ratios.push_back(ref > 0 ? Median(block[1]) / ref : 1.0);
    for (int m = 0; m < 2; ++m) all[m].insert(all[m].end(), block[m].begin(), block[m].end());
  }
  c.reference = SummarizeLatency(all[0]);
  c.candidate = SummarizeLatency(all[1]);
  for (int m = 0; m < 2; ++m) {
    LatencyStats& s = m == 0 ? c.reference : c.candidate;
    s.threads = threads;
    s.warmup = std::max(0, o.warmup);
    s.first_ms = first_ms[m];
  }
  c.ratio = Median(c.round_ratios);
  MedianInterval ci = MedianConfidenceInterval(c.round_ratios);
  c.ratio_low = ci.low;
  c.ratio_high = ci.high;
  c.coverage = ci.coverage;
  c.limit = 1 + c.tolerance + (c.ratio - c.ratio_low);
  c.slower = c.ratio_low > 1 + c.tolerance;
  return c;
}

}  // namespace edgepress::eval
