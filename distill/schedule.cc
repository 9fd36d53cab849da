#include "distill/schedule.h"

#include <algorithm>
#include <cmath>

#include "ir/error.h"

namespace edgepress::distill {

void LrSchedule::Validate() const {
  if (decay != "cosine" && decay != "linear" && decay != "constant")
    throw Error(ErrorCode::kUsage, "--decay " + decay + ": expected cosine, linear or constant");
  if (!(peak > 0) || !(min_lr >= 0) || min_lr > peak)
    throw Error(ErrorCode::kUsage, "--lr must be > 0 and --min-lr in [0, lr]");
  if (warmup < 0 || warmup > total)
    throw Error(ErrorCode::kUsage, "--warmup " + std::to_string(warmup) +
                                       " must be between 0 and the number of steps (" +
                                       std::to_string(total) + ")");
}

double LrSchedule::At(int64_t step) const {
  // Warm-up reaches the peak at its last step (step warmup-1), never starts at 0 exactly:
  // a first step with lr 0 would be wasted.
  if (step < warmup) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (decay == "constant") return peak;
  int64_t span = std::max<int64_t>(1, total - warmup);
  double p = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(span));
  double f = decay == "cosine" ? 0.5 * (1.0 + std::cos(M_PI * p)) : 1.0 - p;
  return min_lr + (peak - min_lr) * f;
}

double CubicSparsity(double final_sparsity, int64_t start, int64_t end, int64_t step) {
  if (step <= start) return 0;
  if (step >= end) return final_sparsity;
  double p = static_cast<double>(step - start) / static_cast<double>(end - start);
  return final_sparsity * (1.0 - (1.0 - p) * (1.0 - p) * (1.0 - p));
}

}  // namespace edgepress::distill
