// Timing helpers shared by the kernel benchmarks of bench/ (not by the tests: timings never
// become asserts).
#pragma once

#include <time.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace edgepress::bench {

// CPU time of the calling thread: less disturbed by other processes on a shared machine
// than wall time (meaningful for 1 thread only).
inline double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Seconds per call of f(): one warm-up call, then the best of `reps` repetitions, each
// calling f() for at least `min_seconds` of wall time. With one thread the repetition is
// timed in thread CPU time, otherwise in wall time.
template <class F>
double BestSecondsPerCall(F&& f, int threads, int reps, double min_seconds) {
  f();
  double best = 1e9;
  for (int rep = 0; rep < reps; ++rep) {
    int iters = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = ThreadCpuSeconds();
    double el = 0;
    do {
      f();
      ++iters;
      el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (el < min_seconds);
    best = std::min(best, (threads == 1 ? ThreadCpuSeconds() - c0 : el) / iters);
  }
  return best;
}

inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

}  // namespace edgepress::bench
