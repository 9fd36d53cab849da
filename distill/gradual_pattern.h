// The patterns of gradual pruning during distillation (DistillOptions::prune_pattern;
// docs/distill.md, "Gradual pruning"). The trainer decides *when* (Zhu & Gupta's cubic
// schedule, CubicSparsity) and holds the masks; a pattern decides *which* weights the
// sparsity s(t) of a pruning step zeroes. Masks only grow: what a step zeroes stays zero.
//
//   unstructured  per layer, the smallest |w| (the trainer's own PruneTo).
//   N:M (2:4, 4:8, any n < m)
//                 in every group of m consecutive weights along the reduction dimension
//                 (prune-nm's layout, passes/prune/prune_util.h ReductionView), the
//                 floor(m * s(t)) smallest |w| are zero, so the zeros per group ramp on the
//                 schedule from 0 to m - n (the final sparsity is (m - n) / m). Weights
//                 whose reduction is not a multiple of m are left dense, as prune-nm does.
//                 The written weights carry prune-nm's SparseEncoding{kNM, n, m, axis}.
//   channels      whole output channels / neurons (and attention heads) with their
//                 dependencies (passes/prune/prune_deps.h, the groups prune-structured prunes):
//                 per prunable group, the floor(s(t) * units) units of lowest L2 norm over
//                 the group's weights are zeroed in *every* member (producer rows, biases,
//                 consumer columns), so the masked model computes what the model without
//                 those channels computes. At the end, prune-structured{criterion=l2} with
//                 the same sparsity removes exactly the zeroed units (their norm is 0) and
//                 the student becomes a smaller dense model (RemoveMaskedChannels).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace at {
class Tensor;
}

namespace edgepress::distill {

struct PrunePattern {
  enum class Kind { kUnstructured, kNM, kChannels } kind = Kind::kUnstructured;
  int n = 0, m = 0;
  // The final sparsity the pattern implies (N:M: (m - n) / m), 0 when it takes prune-to.
  double implied_sparsity() const {
    return kind == Kind::kNM ? static_cast<double>(m - n) / m : 0.0;
  }
};
// "unstructured", "channels" or "N:M" (2:4, 4:8, ...); throws Error(kUsage) otherwise.
PrunePattern ParsePrunePattern(const std::string& text);

class GradualPattern {
 public:
  // `model`: the student (not modified); `names`: its trainable parameters' names in
  // TorchSession order. Throws Error(kInvalidInput) when the pattern finds nothing to prune.
  GradualPattern(const ir::Model& model, const std::vector<std::string>& names,
                 const PrunePattern& pattern);
  ~GradualPattern();

  // Grows `masks` (per parameter; undefined = free) to sparsity `s` of the pattern's
  // schedule and zeroes the masked values of `params`. Returns the zeros added.
  int64_t Prune(const std::vector<at::Tensor>& params, std::vector<at::Tensor>& masks, double s);
  // After a resume: the masks are the exact zeros of the parameters the pattern prunes.
  void RestoreMasks(const std::vector<at::Tensor>& params, std::vector<at::Tensor>& masks) const;
  // On the written student: N:M annotates the weights with their SparseEncoding; channels
  // removes the zeroed units (prune-structured). Returns the parameters removed (channels).
  int64_t Finish(ir::Model& student, double final_sparsity) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgepress::distill
