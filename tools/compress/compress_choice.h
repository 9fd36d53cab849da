// Which trial `compress` keeps and when tuning stops (docs/report.md, "Tuning"), and the
// implicit budget that no trial may run slower than the original (issue 13, item 9):
// every trial's latency is measured interleaved with the original's (eval/latency_compare),
// and unless the recipe sets tuning.allow_slower, a trial slower beyond that measurement's
// noise misses not_slower_than_original like any budget, so the rules below reject it.
// Pure functions of the trials' results: no timing happens here.
#pragma once

#include <string>
#include <vector>

#include "eval/report.h"
#include "tools/compress/recipe.h"

namespace edgepress::tools {

inline constexpr const char* kNotSlowerBudget = "not_slower_than_original";

// {not_slower_than_original, "x", "<=", limit, ratio}: passes unless `vs.slower`.
eval::BudgetResult NotSlowerBudget(const eval::VsOriginal& vs);

// Why tuning starts no further trial, or "" to go on (the note the report keeps).
std::string TuningStop(const eval::Report& rep, const Recipe& recipe, double elapsed_s);

// The index of the trial to keep among `trials` (at least one without error).
int ChooseTrial(const std::vector<eval::Trial>& trials, bool by_latency);

// Fills rep->rejected_slower with every trial the not-slower budget kept out (sizes, p50s,
// ratio and noise in words) and, under tuning.allow_slower, notes that the kept trial
// `chosen` is slower when it is.
void ExplainSlower(const Recipe& recipe, int chosen, eval::Report* rep);

}  // namespace edgepress::tools
