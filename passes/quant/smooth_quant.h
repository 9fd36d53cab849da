// SmoothQuant (Xiao et al., 2023) as used by quantize-static{smoothquant=true}: moves
// quantization difficulty from activations with outlier channels into the weights.
//
// For each float activation X feeding MatMul/Gemm nodes with constant float weights W
// [K, N] (Gemm: transA = 0; transB = 1 reads W as [N, K]), with the per-input-channel
// statistics a_j = max|X_j| (observed on calibration data) and w_j = max|W_j,:| (over
// every such consumer of X), the pass picks s_j = a_j^alpha / w_j^(1 - alpha) and
// rewrites X·W = (X / s)·(s W): the rows of W are multiplied by s (a new initializer;
// shared weights are never changed in place), and 1/s is folded into the gamma and beta
// of the LayerNormalization that produces X (over the last axis, X used only by the
// smoothed nodes), or applied by an inserted Mul(X, 1/s) otherwise. The result computes
// the same function up to float rounding; channels where a_j or w_j is 0 keep s_j = 1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "calibrate/dataset.h"
#include "ir/graph.h"

namespace edgepress::passes {

struct SmoothQuantOptions {
  double alpha = 0.5;                // migration strength in [0, 1]
  int64_t max_samples = 256;         // calibration samples for the channel statistics
  int threads = 1;
  std::vector<std::string> exclude;  // node-name globs of MatMul/Gemm to leave alone
};

struct SmoothQuantResult {
  int layers = 0;           // MatMul/Gemm nodes whose weights were scaled
  int activations = 0;      // activations X that were smoothed
  int layernorm_folds = 0;  // of those, 1/s folded into a LayerNormalization
  int muls_inserted = 0;    // of those, a Mul by 1/s inserted
  std::string json;         // JSON array, one object per smoothed activation
};

// Rewrites the main graph of `model` in place; returns what it did (all zero when no
// MatMul/Gemm qualifies). Throws Error from calibration (e.g. data that does not fit the
// model).
SmoothQuantResult ApplySmoothQuant(ir::Model& model, calibrate::DataSet& data,
                                   const SmoothQuantOptions& o);

}  // namespace edgepress::passes
