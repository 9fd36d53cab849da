// The trial choice of `compress` (tools/compress/compress_choice.h) on trials with known results, so
// every rule is checked exactly, without timing: the not-slower budget, objective size and
// latency, the fallback when nothing meets every budget, when tuning stops, and what the
// report says about a rejected smaller-but-slower trial.
#include "tools/compress/compress_choice.h"

#include <gtest/gtest.h>

namespace edgepress::tools {
namespace {

eval::VsOriginal Vs(double ratio, double low, double tolerance = 0.1) {
  eval::VsOriginal v;
  v.original_p50_ms = 0.04;
  v.p50_ms = 0.04 * ratio;
  v.ratio = ratio;
  v.ratio_low = low;
  v.ratio_high = ratio + (ratio - low);
  v.coverage = 0.978515625;
  v.tolerance = tolerance;
  v.limit = 1 + tolerance + (ratio - low);
  v.rounds = 10;
  v.runs_per_round = 5;
  v.slower = low > 1 + tolerance;
  return v;
}

// A trial of `bytes` whose accuracy budget passes or not, timed at `vs` against the
// original, checked with the not-slower budget unless `allow_slower`.
eval::Trial MakeTrial(int index, int64_t bytes, bool accuracy_ok, const eval::VsOriginal& vs,
                      bool allow_slower = false) {
  eval::Trial t;
  t.index = index;
  t.name = "trial" + std::to_string(index);
  t.result.size_bytes = bytes;
  t.result.latency_p50_ms = vs.p50_ms;
  t.vs_original = vs;
  t.budgets.push_back({"max_accuracy_drop", "top1", "<=", 0.01, accuracy_ok ? 0.0 : 0.02,
                       accuracy_ok, accuracy_ok ? 0.01 : -0.01, false});
  if (!allow_slower) t.budgets.push_back(NotSlowerBudget(vs));
  t.passed = true;
  for (const auto& b : t.budgets) t.passed = t.passed && b.passed;
  return t;
}

TEST(CompressChoice, NotSlowerBudgetFailsOnlyWhenTheWholeIntervalIsAboveTheTolerance) {
  eval::BudgetResult b = NotSlowerBudget(Vs(2.5, 2.25));
  EXPECT_EQ(b.name, kNotSlowerBudget);
  EXPECT_EQ(b.op, "<=");
  EXPECT_FALSE(b.passed);
  EXPECT_DOUBLE_EQ(b.measured, 2.5);
  EXPECT_DOUBLE_EQ(b.limit, 1.35);  // 1 + 10% + (2.5 - 2.25) noise
  EXPECT_TRUE(b.timing);
  // Slower on the median, but the interval reaches 1.05: within noise and tolerance.
  b = NotSlowerBudget(Vs(1.3, 1.05));
  EXPECT_TRUE(b.passed);
  EXPECT_LE(b.measured, b.limit);
  EXPECT_TRUE(NotSlowerBudget(Vs(0.5, 0.45)).passed);
}

TEST(CompressChoice, ObjectiveSizeKeepsTheSmallestTrialThatIsNotSlower) {
  // Trial 0: smallest, accurate, 2.5x slower. Trial 1: larger, as fast. Trial 2: larger still.
  std::vector<eval::Trial> trials = {MakeTrial(0, 50000, true, Vs(2.5, 2.25)),
                                     MakeTrial(1, 190000, true, Vs(1.0, 0.97)),
                                     MakeTrial(2, 200000, true, Vs(0.9, 0.88))};
  EXPECT_FALSE(trials[0].passed);
  EXPECT_EQ(ChooseTrial(trials, /*by_latency=*/false), 1);
  // With allow_slower the slower trial has no speed budget and, being smallest, wins.
  trials[0] = MakeTrial(0, 50000, true, Vs(2.5, 2.25), /*allow_slower=*/true);
  EXPECT_EQ(ChooseTrial(trials, false), 0);
}

TEST(CompressChoice, ObjectiveLatencyKeepsTheSmallestRatioToTheOriginal) {
  // Trial 1's p50 is the lowest, but trial 2 ran at a busier moment: measured against the
  // original in the same rounds, it is the faster one.
  std::vector<eval::Trial> trials = {MakeTrial(0, 50000, true, Vs(0.9, 0.85)),
                                     MakeTrial(1, 60000, true, Vs(0.8, 0.75)),
                                     MakeTrial(2, 70000, true, Vs(0.6, 0.55)),
                                     MakeTrial(3, 40000, false, Vs(0.3, 0.28))};  // misses accuracy
  trials[1].result.latency_p50_ms = 0.01;
  trials[2].result.latency_p50_ms = 0.02;
  EXPECT_EQ(ChooseTrial(trials, /*by_latency=*/true), 2);
  EXPECT_EQ(ChooseTrial(trials, /*by_latency=*/false), 0);
}

TEST(CompressChoice, WithNothingAcceptableTheClosestTrialIsKept) {
  // Both slower; trial 1 also misses accuracy: trial 0 misses one budget, trial 1 two.
  std::vector<eval::Trial> trials = {MakeTrial(0, 50000, true, Vs(2.5, 2.25)),
                                     MakeTrial(1, 40000, false, Vs(1.5, 1.4))};
  EXPECT_EQ(ChooseTrial(trials, false), 0);
  // One miss each: the smaller relative miss wins (0.3 over 1.2 beats 1.15 over 1.35).
  trials[1] = MakeTrial(1, 40000, true, Vs(1.5, 1.4));
  EXPECT_EQ(ChooseTrial(trials, false), 1);
  // A failed trial is never kept.
  trials[1].error = "pass failed";
  EXPECT_EQ(ChooseTrial(trials, true), 0);
  // The report says the kept trial is slower and why it was kept.
  Recipe recipe;
  eval::Report rep;
  rep.baseline.size_bytes = 200000;
  rep.trials = {trials[0]};
  ExplainSlower(recipe, 0, &rep);
  ASSERT_EQ(rep.rejected_slower.size(), 1u);
  const std::string& m = rep.rejected_slower[0].message;
  EXPECT_NE(m.find("; kept only as the closest trial, so compress exits 3"), std::string::npos)
      << m;
}

TEST(CompressChoice, TuningStopsAfterAPassingTrialOnlyForObjectiveSize) {
  Recipe recipe;
  recipe.tuning.max_trials = 4;
  eval::Report rep;
  rep.trials = {MakeTrial(0, 50000, true, Vs(2.5, 2.25))};  // rejected as slower: go on
  EXPECT_EQ(TuningStop(rep, recipe, 0), "");
  rep.trials.push_back(MakeTrial(1, 60000, true, Vs(1.0, 0.97)));
  EXPECT_EQ(TuningStop(rep, recipe, 0), "tuning stopped: trial 1 met every budget");
  recipe.tuning.objective = "latency";  // a later step may be faster
  EXPECT_EQ(TuningStop(rep, recipe, 0), "");
  EXPECT_EQ(TuningStop(rep, recipe, 601), "tuning stopped at max_minutes = 10");
  recipe.tuning.max_trials = 2;
  EXPECT_EQ(TuningStop(rep, recipe, 0), "tuning stopped at max_trials = 2");
}

TEST(CompressChoice, TheReportNamesTheRejectedSmallerButSlowerTrial) {
  Recipe recipe;
  eval::Report rep;
  rep.baseline.size_bytes = 200000;
  rep.trials = {MakeTrial(0, 50000, true, Vs(2.5, 2.25)), MakeTrial(1, 190000, true, Vs(1.0, 0.97)),
                MakeTrial(2, 210000, false, Vs(1.6, 1.5))};
  ExplainSlower(recipe, 1, &rep);
  ASSERT_EQ(rep.rejected_slower.size(), 2u);
  EXPECT_EQ(rep.rejected_slower[0].trial, 0);
  EXPECT_EQ(rep.rejected_slower[0].message,
            "trial 0 ('trial0'): 0.25x the size and within every other budget, but slower than the "
            "original: "
            "p50 0.100 ms vs the original's 0.040 ms, 2.50x as long (interval 2.25-2.75x, 98% "
            "confidence, "
            "10 interleaved rounds of 5 runs; called slower above 1.35x = 1 + 10% tolerance + 0.25 "
            "noise)");
  EXPECT_EQ(rep.rejected_slower[1].trial, 2);
  EXPECT_EQ(rep.rejected_slower[1].message.rfind(
                "trial 2 ('trial2'): no smaller, but slower than the original", 0),
            0u)
      << rep.rejected_slower[1].message;
  EXPECT_TRUE(rep.notes.empty());

  // allow_slower: nothing is rejected; keeping the slower trial is noted.
  recipe.tuning.allow_slower = true;
  eval::Report allowed;
  allowed.baseline.size_bytes = 200000;
  allowed.trials = {MakeTrial(0, 50000, true, Vs(2.5, 2.25), true)};
  ExplainSlower(recipe, 0, &allowed);
  EXPECT_TRUE(allowed.rejected_slower.empty());
  ASSERT_EQ(allowed.notes.size(), 1u);
  EXPECT_EQ(
      allowed.notes[0].rfind("kept trial 0 ('trial0') although it is slower than the original "
                             "(tuning.allow_slower: true): p50 0.100 ms",
                             0),
      0u)
      << allowed.notes[0];
}

}  // namespace
}  // namespace edgepress::tools
