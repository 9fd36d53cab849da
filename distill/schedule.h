// The learning-rate schedule of distillation: linear warm-up from 0 to the peak over
// `warmup` steps, then cosine or linear decay to `min_lr` at `total` steps (or constant).
// Plain arithmetic on the step number, so a resumed run follows the same curve.
#pragma once

#include <cstdint>
#include <string>

namespace edgepress::distill {

struct LrSchedule {
  double peak = 1e-3;
  double min_lr = 0;
  int64_t warmup = 0;
  int64_t total = 1;
  std::string decay = "cosine";  // cosine | linear | constant

  // Throws Error(kUsage) for an unknown decay, a negative rate or warmup > total.
  void Validate() const;
  // The rate for step `step` (0-based: the step about to be taken).
  double At(int64_t step) const;
};

// Gradual pruning's target sparsity before step `step` (Zhu & Gupta 2017): 0 up to `start`,
// final * (1 - (1 - p)^3) with p = (step - start) / (end - start), `final` from `end` on.
// Pruning early, while the weights can still adapt, and slowly near the end.
double CubicSparsity(double final_sparsity, int64_t start, int64_t end, int64_t step);

}  // namespace edgepress::distill
