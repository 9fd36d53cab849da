// The registry of passes by name, and pipelines written as text:
//   "fold-constants,fold-batchnorm,quantize-static{method=entropy,per_channel=true}"
// The same names and options appear in recipes.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "passes/pass.h"

namespace edgepress::passes {

struct PassEntry {
  PassInfo info;
  std::unique_ptr<Pass> (*create)(const PassOptions& options);
};

// Every pass, in the order of the list in registry.cc.
const std::vector<PassEntry>& AllPasses();
// nullptr when absent.
const PassEntry* FindPass(const std::string& name);
// Throws Error naming the unknown pass and the nearest known one.
std::unique_ptr<Pass> CreatePass(const std::string& name,
                                 const std::vector<std::pair<std::string, std::string>>& options);

// The function-preserving cleanup and fusion pipeline that `run`, `bench` and
// `compress` apply before executing a model (like onnxruntime's graph optimizations).
extern const char* kDefaultOptimizePipeline;

struct PipelineStep {
  std::string pass;
  std::vector<std::pair<std::string, std::string>> options;
};
// Parses the text form; throws Error(kInvalidInput) with the column of a syntax
// error. Pass names and options are validated too.
std::vector<PipelineStep> ParsePipeline(const std::string& text);

struct PassRun {
  std::string pass;
  std::vector<std::pair<std::string, std::string>> options;  // resolved, incl. defaults
  bool changed = false;
  std::map<std::string, int64_t> stats;
  std::string details;  // Pass::Details() (JSON), empty when the pass has none
  double seconds = 0;
};
// Runs the steps in order. With `verify`, the verifier runs after every pass and a failure
// names the pass that broke the graph.
std::vector<PassRun> RunPipeline(ir::Model& model, const std::vector<PipelineStep>& steps,
                                 PassContext& ctx, bool verify = true);

// Levenshtein-nearest candidate (empty when none is close), for "did you mean".
std::string Nearest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace edgepress::passes
