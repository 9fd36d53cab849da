// SparseGPT (Frantar & Alistarh, 2023): one-shot second-order pruning, the `criterion=hessian`
// of prune-magnitude and prune-nm.
//
// A layer y = x·W (W[K][N], K = the reduced input channels) is pruned to minimise
// ||X·W - X·Ŵ||² over the calibration inputs X, with the Hessian H = XᵀX (+ damping) that
// GPTQ uses (passes/quant/input_stats.h collects it, weight_quant.h factors it on Eigen). Rows of
// W (input channels) are visited in order; each row's pruned weights are zeroed and the
// error they leave is spread over the rows not yet visited, weighted by the inverse Hessian
// (the OBS update restricted to the remaining rows), exactly as GPTQ spreads rounding error.
// Which weights to prune is chosen by the OBS saliency w² / [H⁻¹]ᵢᵢ² (here U[i][i]², U the
// upper Cholesky factor of H⁻¹), from the already-updated weights:
//   unstructured: per block of `block` rows, the `sparsity` share with least saliency
//                 across the whole block (the paper's adaptive mask selection);
//   N:M:          per output column, in every group of m consecutive rows, the m - n
//                 rows with least saliency (chosen when the group's first row is reached).
// Unlike magnitude pruning the surviving weights change (they absorb the pruned ones'
// contribution), so the output error at the same sparsity is lower.
//
// Only 2-D MatMul/Gemm weights in the main graph with one reader get a Hessian (a Conv
// would need its im2col patches); the passes fall back to magnitude for the rest and count
// them (hessian-fallback-magnitude).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "passes/quant/input_stats.h"
#include "passes/prune/prune_util.h"

namespace edgepress::passes::sgpt {

struct Pattern {
  double sparsity = 0;  // unstructured share of zeros per block (when n == 0)
  int n = 0, m = 0;     // N:M along K
};

// Prunes w[K][N] (row-major) in place. `h` is Σ x·xᵀ (K×K, any positive multiple).
// Returns false, leaving w untouched, when the damped Hessian is not positive definite.
bool Prune(float* w, int64_t K, int64_t N, std::vector<double> h, const Pattern& p,
           double damp = 0.01, int64_t block = 128);

// Whether `p` can be pruned with a Hessian (see above), and the logical K of its weight.
bool Eligible(const prune::PrunableWeight& p, int64_t* K = nullptr);

// Hessians of the inputs of the eligible weights, keyed by input value name, from one run
// of the model over ctx.data_files (at most `samples` samples).
std::map<std::string, InputStats> CollectHessians(const ir::Model& model,
                                                  const std::vector<prune::PrunableWeight>& ws,
                                                  int64_t samples, const std::string& pass,
                                                  PassContext& ctx);

// Prunes an eligible weight in place through its logical [K][N] view (a Gemm transB=1
// weight is transposed there and back). False (weight untouched) without statistics for
// its input or when H is not positive definite.
bool PruneWeight(const prune::PrunableWeight& p, const std::map<std::string, InputStats>& hs,
                 const Pattern& pattern, double damp, int64_t block);

}  // namespace edgepress::passes::sgpt
