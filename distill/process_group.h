// The data-parallel ranks of a distillation run: a c10d process group (LibTorch's own
// distributed library), Gloo on the CPU. Rank 0 hosts the rendezvous store (a TCPStore at
// MASTER_ADDR:MASTER_PORT); every exchange waits at most DistributedOptions::timeout_s, and
// a failed one (a peer that exited, hung or was killed) throws Error(kIo) naming this rank,
// the exchange and the timeout, so no rank hangs on a dead peer.
//
// CUDA tensors: with a LibTorch built with NCCL (USE_C10D_NCCL) the group is NCCL's on
// cuda:local_rank; otherwise they are staged through host memory to Gloo. Neither CUDA path
// has run here (Debian's LibTorch has no CUDA); the CPU path is the tested one.
//
// Used only by distill/*.cc: at::Tensor is forward-declared, LibTorch stays in the .cc.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "distill/distill.h"

namespace at {
class Tensor;
}

namespace edgepress::distill {

class ProcessGroup {
 public:
  // Meets the other world_size - 1 ranks. Throws Error(kIo) when they do not all arrive
  // within the timeout, Error(kUnsupported) when this build has no Gloo.
  ProcessGroup(const DistributedOptions& o, const std::string& device);
  ~ProcessGroup();

  int rank() const { return rank_; }
  int world() const { return world_; }

  // In place over all ranks, on one contiguous tensor; `what` names the exchange in errors
  // ("the gradients of step 12").
  void Sum(at::Tensor& t, const std::string& what);
  void Max(at::Tensor& t, const std::string& what);
  void BroadcastFromRank0(at::Tensor& t, const std::string& what);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, world_ = 1;
};

// Copies `tensors` into one flat tensor (their dtype and device; all must share them) and
// back: one exchange per step instead of one per weight.
at::Tensor Flatten(const std::vector<at::Tensor>& tensors);
void Unflatten(const at::Tensor& flat, const std::vector<at::Tensor>& tensors);

}  // namespace edgepress::distill
