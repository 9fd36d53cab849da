// Distillation checkpoints: everything a resumed run needs to continue as if it had never
// stopped — the trainable tensors (student weights and layer-map projections), the AdamW
// state, the best weights kept so far, the step and the data stream's position, and the
// loss curve and evaluations for the summary. One LibTorch archive (torch::serialize),
// written to a temp file and renamed (ir/file_util.h). A fingerprint of the run's options
// and parameter names is stored; resuming with other options is an error that says so.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "distill/distill.h"

namespace at {
class Tensor;
}
namespace torch::optim {
class Optimizer;
}

namespace edgepress::distill {

struct CheckpointState {
  std::string fingerprint;
  int64_t step = 0;                 // steps done
  int64_t epoch = 0, position = 0;  // the data stream's state after those steps
  bool has_best = false;
  EvalLog best;
  std::vector<StepLog> curve;
  std::vector<EvalLog> evals;
};

// `params` are the optimizer's parameters in order; `best` the kept best values (may be
// empty when !state.has_best).
void SaveCheckpoint(const std::string& path, const CheckpointState& state,
                    const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& best,
                    const torch::optim::Optimizer& optimizer);

// Copies the saved values into `params` (in place: they stay the optimizer's leaves),
// fills `best` when the checkpoint has best weights, and loads the optimizer state.
// Throws Error(kInvalidInput) naming the file for a corrupt checkpoint or one written
// with a different fingerprint.
CheckpointState LoadCheckpoint(const std::string& path, const std::string& fingerprint,
                               std::vector<at::Tensor>& params, std::vector<at::Tensor>& best,
                               torch::optim::Optimizer& optimizer);

}  // namespace edgepress::distill
