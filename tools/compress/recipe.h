// Recipes: one YAML file per target device (recipes/*.yaml), read into a Recipe.
//
// The schema is documented in docs/recipes.md. Loading validates every key against the
// schema; an error names the file, the key path, its line and column, and suggests the
// nearest valid key ("recipes/x.yaml:12:3: unknown key 'budgts' (did you mean 'budgets'?)").
// `extends: <name or path>` loads a base recipe first; maps merge key by key, lists
// (pipeline, tuning.steps) replace. A pipeline step naming a pass that does not exist is
// an error that says so (and suggests the nearest pass).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace edgepress::tools {

struct RecipeStep {  // one pass of the pipeline, options as text (validated by ParseOptions)
  std::string pass;
  std::vector<std::pair<std::string, std::string>> options;
};

// One tuning step: option overrides applied on top of the pipeline (and of the steps
// before it: tuning steps accumulate), e.g. {quantize-static, keep-float, "2"}.
struct RecipeOverride {
  std::string pass;    // must name a pass of the pipeline
  std::string option;  // must be one of its options
  std::string value;
};
struct TuningStep {
  std::string name;  // shown in reports ("keep 2 most sensitive layers in float")
  std::vector<RecipeOverride> overrides;
};

struct Recipe {
  std::string name;         // file stem, or `name:`
  std::string description;
  std::string path;         // file it was loaded from
  std::vector<std::string> extends_chain;  // base recipes applied, outermost last
  uint64_t seed = 0;

  struct Target {
    std::string name;             // "raspberry-pi-5"
    std::string arch = "x86_64";  // x86_64 | arm64
    std::string backend = "native";  // native | torch (needs a build with LibTorch)
    std::string device = "cpu";      // cpu | cuda (backend torch only)
    std::string isa = "auto";     // auto | scalar | avx2 | avx512 | avx512-vnni | amx | neon
    int threads = 1;
    int64_t memory_mb = 0;        // 0 = unspecified
  } target;

  struct Budgets {  // every field optional; an absent budget is not checked
    std::optional<double> max_accuracy_drop;           // absolute, metric units (top-1: 0.005 = 0.5 point)
    std::optional<double> max_accuracy_drop_relative;  // fraction of the baseline metric
    std::optional<double> max_latency_p50_ms;
    std::optional<double> max_latency_p99_ms;
    std::optional<int64_t> max_size_bytes;             // YAML accepts 1500000, "1.5MB", "2 MiB"
    std::optional<double> max_size_ratio;              // artifact size / original size
    std::optional<double> min_speedup;                 // original p50 / compressed p50
  } budgets;

  std::vector<RecipeStep> pipeline;

  struct Calibration {
    std::string data;           // file; --calib overrides; relative to the recipe? no: to the cwd
    std::string method = "minmax";
    int64_t max_samples = -1;
    std::vector<std::string> layout;  // "input=batched|stacked|constant" (calibrate::DataLayout)
  } calibration;

  struct Evaluation {
    std::string metric = "top1";  // top1 | topk | cosine | nmse | perplexity
    int k = 5;                    // topk
    std::string data;             // --eval overrides
    std::string input;            // model input fed from the file; empty = by name
    std::string label = "label";  // array with labels (top1/topk)
    std::string output;           // model output to score; empty = first output
    int64_t max_samples = -1;
    int latency_runs = 50;
    int warmup_runs = 5;
    std::vector<std::string> layout;  // as calibration.layout, for the evaluation data
  } evaluation;

  struct Export {
    bool epk = true;
    bool onnx = false;
    bool pt = false;  // TorchScript (needs a build with LibTorch)
  } exports;

  struct Tuning {
    std::vector<TuningStep> steps;
    int max_trials = 8;
    double max_minutes = 10;
    std::string objective = "size";  // size | latency: which passing trial wins
    // false: a trial slower than the original (beyond the measurement's noise) is never
    // kept; true: latency does not matter (objective size only), the smaller trial wins.
    bool allow_slower = false;
  } tuning;
};

// Loads and validates a recipe. `name_or_path` is a file path, or the name of a shipped
// recipe (recipes/<name>.yaml in the source tree or next to the installed binary).
// Throws Error(kInvalidInput) with "file:line:col: message".
Recipe LoadRecipe(const std::string& name_or_path);
// Shipped recipes: (name, path), sorted by name.
std::vector<std::pair<std::string, std::string>> ShippedRecipes();
// The fully resolved recipe (after extends) as YAML, for `recipes show` and provenance.
// Loading it again gives the same recipe (only path and extends_chain differ).
std::string RecipeToYaml(const Recipe& r);

// The pipeline with the overrides of tuning.steps[0, n) applied in order (n = 0: the
// pipeline as written; tuning steps accumulate). An override sets its option in every step
// of its pass, replacing the value given there or adding it.
std::vector<RecipeStep> PipelineAfterTuning(const Recipe& r, size_t n);
// `--max-memory` of run/bench: a size in the recipes' syntax ("4GiB", "512MB", bytes) for
// runtime::SessionOptions::max_memory_bytes; empty gives 0 (the default limit). Throws
// Error(kUsage) on anything else.
uint64_t ParseMaxMemoryOption(const std::string& text);

// Where shipped recipes are looked up, in order: $EDGEPRESS_RECIPES_DIR, then the first
// `recipes/` (holding base.yaml) or `share/edgepress/recipes/` found walking up from the
// directory of the running executable. Existing directories only.
std::vector<std::string> RecipeSearchDirs();

}  // namespace edgepress::tools
