// Shared ground of the pruning passes (prune-magnitude, prune-nm, and the structured
// pruner): which weights may be pruned, how a weight's reduction dimension is laid out,
// and the counts a pruning report shows.
//
// A prunable weight is the constant float32 weight input of a Conv, ConvTranspose, Gemm,
// MatMul (input B) or com.microsoft FusedConv/FusedGemm, and — only when asked through
// op-types — the table of an embedding Gather (input 0). Biases, norms and other
// constants are never prunable. A weight read by any node that is not one of these
// targets is left alone (zeroing it would change that reader too).
//
// Reduction layout. The weight is viewed as [outer, R, inner] where R runs along the
// dimension the op sums over, so groups of m consecutive reduction indices (N:M) are
// R-strided by `inner`:
//   MatMul B [K, N]                            axis 0:      R = K, inner = N
//   Gemm transB=0 [K, N]                       axis 0:      R = K, inner = N
//   Gemm transB=1 [N, K]                       axis 1:      outer = N, R = K, inner = 1
//   Conv / FusedConv [O, I/g, kh, kw]          axis 1:      outer = O, R = I/g·kh·kw, inner = 1
//   ConvTranspose [I, O/g, kh, kw]             axis 0:      R = I, inner = O/g·kh·kw
// Rule (tensor-only, so readers of an encoded tensor need no op): with axis 0 the
// reduction is shape[0] and everything after it is `inner`; with axis a >= 1 the
// reduction is the flattened dims a..rank-1 (inner = 1). Batched (rank >= 3) MatMul
// weights do not fit the rule; they are prunable unstructured only. For a convolution
// the flattened I·kh·kw is exactly the row of its im2col GEMM, so an N:M conv weight is
// an N:M GEMM weight; grouping along input channels alone would need I divisible by m,
// which the first layer of most CNNs (I = 1 or 3) is not.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgepress::passes::prune {

// The op types prunable by default, and the optional embedding Gather.
const std::vector<std::string>& DefaultOpTypes();

struct ReductionView {
  int axis = 0;  // the SparseEncoding axis
  int64_t outer = 1, reduction = 1, inner = 1;
  // Flat index of (o, r, i) in the row-major tensor.
  int64_t Index(int64_t o, int64_t r, int64_t i) const { return (o * reduction + r) * inner + i; }
};
// The view above for a tensor of `shape` whose reduction runs along `axis`.
ReductionView ViewOf(const std::vector<int64_t>& shape, int axis);

struct PrunableWeight {
  ir::Value* weight = nullptr;
  std::vector<ir::Node*> users;  // every reader (all of them prunable targets)
  std::string layer;             // name of the first user node (or the weight's name)
  std::string op;                // op type of the first user
  int axis = 0;                  // reduction axis of the first user (ReductionView rule)
  bool has_view = true;          // false: batched MatMul weight, or users disagree on axis
  bool in_main_graph = true;
  ir::Value* input = nullptr;    // the first user's activation input (nullptr for Gather)
};

struct FindOptions {
  std::vector<std::string> op_types = DefaultOpTypes();
  std::vector<std::string> include, exclude;  // node-name globs; include empty = all
  int64_t min_params = 0;                     // skip weights with fewer elements
};
struct FindCounts {
  int64_t excluded = 0, not_constant = 0, too_small = 0, shared = 0;
};
// The prunable weights of every graph of `model` (subgraphs included), each once, in graph
// order. Weights that the filters drop are counted in `counts`.
std::vector<PrunableWeight> FindPrunable(ir::Model& model, const FindOptions& options,
                                         FindCounts* counts = nullptr);

// Parameters (elements of float constants read by any node) and how many are non-zero,
// over the whole model. Pruning reports show both before and after.
struct ParamCounts {
  int64_t params = 0, nonzero = 0;
};
ParamCounts CountParams(const ir::Model& model);

// Multiply-accumulates of one forward pass of the float graph on the shapes the graph
// declares or InferShapes derives (Conv, ConvTranspose, Gemm, MatMul, FusedConv, FusedGemm, MatMulNBits), counted
// dense and counting only the non-zero weights (what a sparse kernel would do). Nodes whose
// shapes are not known are skipped and counted in `unknown`. Dynamic dims count as 1.
struct FlopCounts {
  int64_t dense_macs = 0, sparse_macs = 0, unknown = 0;
};
FlopCounts CountMacs(const ir::Model& model);

// A gradual-pruning schedule (Zhu & Gupta, 2017), carried as data: the one-shot passes apply
// `final` at once and put the schedule in their Details() JSON, so a training loop
// (distillation) can ramp the sparsity step by step with At(). Between `begin` and `end`
// the target moves from `initial` to `final` every `frequency` steps:
//   linear:  s(t) = final + (initial - final) · (1 - p),  p = (t - begin) / (end - begin)
//   cubic:   s(t) = final + (initial - final) · (1 - p)³  (prunes fast early, slow late)
//   oneshot: s(t) = final for every t.
struct Schedule {
  std::string kind = "oneshot";
  double initial = 0, final = 0;
  int64_t begin = 0, end = 0, frequency = 1;
  double At(int64_t step) const;
};

// Per-layer sparsity read from a sensitivity file (written by `edgepress sensitivity
// --json -o FILE`): for each layer, the largest sparsity of its ladder whose `error` (the
// metric's degradation, positive = worse) is at most `max_error`, 0 when none is. Throws
// Error(kInvalidInput) naming the file and field when the file is unreadable or malformed.
std::map<std::string, double> SparsityFromSensitivity(const std::string& path, double max_error);

// Unique name of `n` for reports: its name, or its first output's name.
std::string LayerName(const ir::Node& n);

}  // namespace edgepress::passes::prune
