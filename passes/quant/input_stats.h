// Second-moment statistics of the activations that feed weight layers, gathered in one
// run of the float model over calibration samples. GPTQ (quantize-weights method=gptq) and
// SparseGPT (prune-magnitude / prune-nm criterion=hessian) read H = Σ x·xᵀ from here; AWQ
// reads the mean |x| and a reservoir of input rows.
//
// One Session runs a copy of the model on the native runtime; its observer accumulates
// each requested value as the node producing it runs, so memory is K×K doubles per
// requested input (plus the AWQ reservoir), independent of the number of samples. Every
// row of the last axis is one sample of x (a [batch, seq, K] activation gives batch·seq
// rows). Values of subgraphs are not observed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pass.h"

namespace edgepress::passes {

struct InputStats {
  int64_t K = 0;                // last-axis length the consumers expect
  int64_t rows = 0;
  std::vector<double> xtx;      // K*K, symmetric after CollectInputStats (Hessian)
  std::vector<double> abs_sum;  // K (AWQ)
  std::vector<float> sample;    // reservoir of up to kReservoirRows input rows (AWQ)
  int64_t sample_rows = 0;
};

struct CollectOptions {
  bool xtx = true;        // accumulate Σ x·xᵀ
  bool awq = false;       // accumulate mean |x| and the row reservoir
  int64_t samples = 128;  // calibration samples to run (at most the data set's size)
  std::string pass;       // pass name for messages
};

constexpr int64_t kReservoirRows = 256;

// Fills `stats` (keyed by value name, each with K set by the caller) from ctx.data_files.
// Throws Error(kInvalidInput) naming the pass when the data set is empty.
void CollectInputStats(const ir::Model& model, std::map<std::string, InputStats>& stats,
                       const CollectOptions& options, PassContext& ctx);

}  // namespace edgepress::passes
