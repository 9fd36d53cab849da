// The interleaved A/B harness (eval/latency_compare.h): the median's interval is the exact
// sign-test order statistics; rounds alternate which model runs first (ABBA) and time
// every run; a candidate made 8x slower by construction is called slower and the same
// function against itself is not. No assertion compares an absolute time.
#include "eval/latency_compare.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace edgepress::eval {
namespace {

TEST(MedianConfidenceInterval, IsTheSignTestOrderStatistics) {
  // 10 values: order statistics 2 and 9, coverage 1 - 2 * P(Bin(10, 1/2) <= 1) = 1 - 22/1024.
  MedianInterval m = MedianConfidenceInterval({7, 3, 10, 1, 9, 2, 8, 4, 6, 5});
  EXPECT_EQ(m.low, 2);
  EXPECT_EQ(m.high, 9);
  EXPECT_DOUBLE_EQ(m.coverage, 1 - 22.0 / 1024);
  // 6 values: the extremes already reach 95% (1 - 2/64).
  m = MedianConfidenceInterval({6, 1, 5, 2, 4, 3});
  EXPECT_EQ(m.low, 1);
  EXPECT_EQ(m.high, 6);
  EXPECT_DOUBLE_EQ(m.coverage, 1 - 2.0 / 64);
  // 20 values: k = 6 (P(Bin(20, 1/2) <= 5) = 21700/2^20 <= 0.025 < P(<= 6)).
  std::vector<double> v;
  for (int i = 20; i >= 1; --i) v.push_back(i);
  m = MedianConfidenceInterval(v);
  EXPECT_EQ(m.low, 6);
  EXPECT_EQ(m.high, 15);
  EXPECT_DOUBLE_EQ(m.coverage, 1 - 2 * 21700.0 / 1048576);
  // Too few values for 95%: the extremes, with the coverage they have.
  m = MedianConfidenceInterval({3, 1, 2, 5, 4});
  EXPECT_EQ(m.low, 1);
  EXPECT_EQ(m.high, 5);
  EXPECT_DOUBLE_EQ(m.coverage, 1 - 2.0 / 32);
  m = MedianConfidenceInterval({});
  EXPECT_EQ(m.coverage, 0);
}

TEST(CompareOptions, SpreadsTheRunsOverSixToTenRounds) {
  CompareOptions o = CompareOptions::ForRuns(50, 5);
  EXPECT_EQ(o.rounds, 10);
  EXPECT_EQ(o.runs_per_round, 5);
  EXPECT_EQ(o.warmup, 5);
  o = CompareOptions::ForRuns(5, 1);
  EXPECT_EQ(o.rounds, 6);
  EXPECT_EQ(o.runs_per_round, 1);
  o = CompareOptions::ForRuns(21, 0);
  EXPECT_EQ(o.rounds, 10);
  EXPECT_EQ(o.runs_per_round, 3);
}

TEST(CompareLatency, RoundsAlternateWhichModelGoesFirst) {
  std::string order;
  CompareOptions o;
  o.warmup = 1;
  o.rounds = 4;
  o.runs_per_round = 2;
  int64_t last_done = 0, last_total = 0;
  o.progress = [&](int64_t done, int64_t total) { last_done = done, last_total = total; };
  LatencyComparison c = CompareLatency([&] { order += 'A'; }, [&] { order += 'B'; }, 3, o);
  // First run + warm-up of each, then AABB BBAA AABB BBAA.
  EXPECT_EQ(order,
            "AABB"
            "AABB"
            "BBAA"
            "AABB"
            "BBAA");
  EXPECT_EQ(c.reference.runs, 8);
  EXPECT_EQ(c.candidate.runs, 8);
  EXPECT_EQ(c.reference.threads, 3);
  EXPECT_EQ(c.round_ratios.size(), 4u);
  EXPECT_EQ(last_done, 16);
  EXPECT_EQ(last_total, 16);
}

// Spins for about `n` iterations of work the compiler cannot drop.
void Spin(int n) {
  volatile double x = 1;
  for (int i = 0; i < n; ++i) x = x * 1.0000001 + 1e-9;
}

TEST(CompareLatency, CallsAnEightTimesSlowerCandidateSlowerAndAnEqualOneNot) {
  CompareOptions o;
  o.rounds = 10;
  o.runs_per_round = 3;
  LatencyComparison slow = CompareLatency([] { Spin(20000); }, [] { Spin(160000); }, 1, o);
  EXPECT_TRUE(slow.slower) << "ratio " << slow.ratio << " in [" << slow.ratio_low << ", "
                           << slow.ratio_high << "]";
  EXPECT_GT(slow.ratio_low, 1 + o.tolerance);
  EXPECT_LE(slow.ratio_low, slow.ratio);
  EXPECT_LE(slow.ratio, slow.ratio_high);
  EXPECT_DOUBLE_EQ(slow.limit, 1 + o.tolerance + slow.ratio - slow.ratio_low);
  EXPECT_GT(slow.candidate.p50_ms, slow.reference.p50_ms);
  // The same work on both sides: the median ratio's interval reaches down to 1.1 or below.
  LatencyComparison same = CompareLatency([] { Spin(20000); }, [] { Spin(20000); }, 1, o);
  EXPECT_FALSE(same.slower) << "ratio " << same.ratio << " in [" << same.ratio_low << ", "
                            << same.ratio_high << "]";
  // And the other way round: a faster candidate is not slower.
  LatencyComparison fast = CompareLatency([] { Spin(160000); }, [] { Spin(20000); }, 1, o);
  EXPECT_FALSE(fast.slower);
  EXPECT_LT(fast.ratio, 1);
}

}  // namespace
}  // namespace edgepress::eval
