#include "tools/compress/compress_choice.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace edgepress::tools {

namespace {

// How badly a trial missed: (misses, sum of misses relative to their limits).
std::pair<int, double> MissScore(const eval::Trial& t) {
  int misses = 0;
  double rel = 0;
  for (const auto& b : t.budgets)
    if (!b.passed) {
      ++misses;
      rel += std::fabs(b.margin) / std::max(std::fabs(b.limit), 1e-12);
    }
  return {misses, rel};
}

std::string SlowerText(const eval::VsOriginal& v) {
  return fmt::format(
      "p50 {:.3f} ms vs the original's {:.3f} ms, {:.2f}x as long (interval {:.2f}-{:.2f}x, "
      "{:.0f}% confidence, {} interleaved rounds of {} runs; called slower above {:.2f}x = "
      "1 + {:.0f}% tolerance + {:.2f} noise)",
      v.p50_ms, v.original_p50_ms, v.ratio, v.ratio_low, v.ratio_high, 100 * v.coverage, v.rounds,
      v.runs_per_round, v.limit, 100 * v.tolerance, v.ratio - v.ratio_low);
}

}  // namespace

eval::BudgetResult NotSlowerBudget(const eval::VsOriginal& vs) {
  return {kNotSlowerBudget, "x", "<=", vs.limit, vs.ratio, !vs.slower, vs.limit - vs.ratio, true};
}

// Why tuning starts no further trial, or "" to go on. Tuning steps are fallbacks, ordered
// from the most to the least compressed: with objective size, once a trial meets every
// budget later steps cannot give a smaller model, so they are not run (CI time). With
// objective latency a later, less compressed step may well be faster (int8 kernels can
// lose to fp32 on small layers), so every step runs within max_trials and max_minutes.
std::string TuningStop(const eval::Report& rep, const Recipe& recipe, double elapsed_s) {
  if (recipe.tuning.objective != "latency") {
    for (const auto& t : rep.trials)
      if (t.error.empty() && t.passed)
        return fmt::format("tuning stopped: trial {} met every budget", t.index);
  }
  if (static_cast<int>(rep.trials.size()) >= std::max(1, recipe.tuning.max_trials))
    return fmt::format("tuning stopped at max_trials = {}", recipe.tuning.max_trials);
  if (elapsed_s > recipe.tuning.max_minutes * 60)
    return fmt::format("tuning stopped at max_minutes = {}", recipe.tuning.max_minutes);
  return "";
}

// The kept trial: the smallest (objective size) or fastest (objective latency) that meets
// every budget, the earlier one on a tie; when none does, the one with the fewest misses,
// then the smallest relative miss. "Fastest" is the smallest ratio to the original: each
// trial was timed interleaved with the original, so trials timed minutes apart compare
// fairly even when the machine's load changed in between.
int ChooseTrial(const std::vector<eval::Trial>& trials, bool by_latency) {
  auto key = [&](const eval::Trial& t) {
    if (!by_latency) return static_cast<double>(t.result.size_bytes);
    return t.vs_original ? t.vs_original->ratio : t.result.latency_p50_ms;
  };
  int chosen = -1;
  for (const auto& t : trials)
    if (t.error.empty() && t.passed && (chosen < 0 || key(t) < key(trials[chosen])))
      chosen = t.index;
  if (chosen >= 0) return chosen;
  for (const auto& t : trials) {
    if (!t.error.empty()) continue;
    if (chosen < 0 || MissScore(t) < MissScore(trials[chosen])) chosen = t.index;
  }
  return chosen;
}

// The report says which trials the "not slower" check kept out (a smaller but slower
// trial is the case users ask about), and, under tuning.allow_slower, that the kept trial
// is slower.
void ExplainSlower(const Recipe& recipe, int chosen, eval::Report* rep) {
  for (const auto& t : rep->trials) {
    if (!t.error.empty() || !t.vs_original || !t.vs_original->slower) continue;
    if (recipe.tuning.allow_slower) {
      if (t.index == chosen)
        rep->notes.push_back(
            fmt::format("kept trial {} ('{}') although it is slower than the original "
                        "(tuning.allow_slower: true): {}",
                        t.index, t.name, SlowerText(*t.vs_original)));
      continue;
    }
    const double size_ratio = rep->baseline.size_bytes
                                  ? static_cast<double>(t.result.size_bytes) /
                                        static_cast<double>(rep->baseline.size_bytes)
                                  : 1.0;
    const std::string size =
        size_ratio < 1 ? fmt::format("{:.2f}x the size", size_ratio) : "no smaller";
    bool others_met = true;
    for (const auto& b : t.budgets)
      others_met = others_met && (b.passed || b.name == kNotSlowerBudget);
    rep->rejected_slower.push_back(
        {t.index, t.name,
         fmt::format(
             "trial {} ('{}'): {}{} but slower than the original: {}{}", t.index, t.name, size,
             others_met ? " and within every other budget," : ",", SlowerText(*t.vs_original),
             t.index == chosen ? "; kept only as the closest trial, so compress exits 3" : "")});
  }
}

}  // namespace edgepress::tools
