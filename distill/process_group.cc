#include "distill/process_group.h"

#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <sstream>

#include "ir/error.h"

// c10d's headers compile their Gloo and NCCL classes only under these macros (Torch's CMake
// config passes USE_C10D_GLOO for a LibTorch built with Gloo); Gloo's own headers come from
// libgloo-dev, the library Debian's libtorch_cpu links. CMake defines EDGEPRESS_HAVE_GLOO
// when they are there.
#ifdef EDGEPRESS_HAVE_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace edgepress::distill {

namespace {

int EnvInt(const char* name, int fallback, int min) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < min || x > 65535)
    throw Error(ErrorCode::kUsage, std::string("environment variable ") + name + "='" + v +
                                       "': expected an integer >= " + std::to_string(min));
  return static_cast<int>(x);
}

std::string Message(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

std::string Seconds(double s) {
  std::ostringstream o;
  o << s << " s";
  return o.str();
}

}  // namespace

DistributedOptions DistributedFromEnv() {
  DistributedOptions o;
  o.world_size = EnvInt("WORLD_SIZE", 1, 1);
  o.rank = EnvInt("RANK", 0, 0);
  o.local_rank = EnvInt("LOCAL_RANK", o.rank, 0);
  o.master_port = EnvInt("MASTER_PORT", o.master_port, 1);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) o.master_addr = a;
  if (o.rank >= o.world_size)
    throw Error(ErrorCode::kUsage, "RANK=" + std::to_string(o.rank) +
                                       " is not below WORLD_SIZE=" + std::to_string(o.world_size));
  return o;
}

at::Tensor Flatten(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> flat;
  for (const at::Tensor& t : tensors) flat.push_back(t.detach().reshape({-1}));
  return at::cat(flat);
}

void Unflatten(const at::Tensor& flat, const std::vector<at::Tensor>& tensors) {
  torch::NoGradGuard ng;
  int64_t offset = 0;
  for (const at::Tensor& t : tensors) {
    t.copy_(flat.slice(0, offset, offset + t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

#ifdef EDGEPRESS_HAVE_GLOO

// The concrete groups, not c10d::ProcessGroup: LibTorch 2.x made them c10d::Backend.
struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef USE_C10D_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  bool stage_on_cpu = false;  // CUDA tensors through Gloo
  std::string where;          // "distributed: rank R of W: "
  double timeout_s = 60;

  // Runs op(group, tensors) on `t` in place and waits for it; a failure names the exchange.
  template <class Op>
  void Run(at::Tensor& t, const std::string& what, Op op) {
    try {
#ifdef USE_C10D_NCCL
      if (nccl) {
        std::vector<at::Tensor> v{t};
        op(*nccl, v)->wait();
        return;
      }
#endif
      std::vector<at::Tensor> v{stage_on_cpu ? t.cpu() : t};
      op(*gloo, v)->wait();
      if (stage_on_cpu) t.copy_(v[0]);
    } catch (const std::exception& e) {
      throw Error(ErrorCode::kIo, where + "exchanging " + what +
                                      " failed; another rank exited or did not answer within " +
                                      Seconds(timeout_s) + " (--dist-timeout): " + Message(e));
    }
  }
};

ProcessGroup::ProcessGroup(const DistributedOptions& o, const std::string& device)
    : impl_(std::make_unique<Impl>()), rank_(o.rank), world_(o.world_size) {
  if (!(o.timeout_s > 0)) throw Error(ErrorCode::kUsage, "--dist-timeout must be > 0 seconds");
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
  impl_->where =
      "distributed: rank " + std::to_string(rank_) + " of " + std::to_string(world_) + ": ";
  impl_->timeout_s = o.timeout_s;
  const std::string master = o.master_addr + ":" + std::to_string(o.master_port);
  // A peer that dies mid-exchange closes its socket; the next write to it would raise
  // SIGPIPE and end this rank silently (exit 141) before the error below could name the
  // exchange and the timeout. Ignored, the write fails with EPIPE, which gloo and the store
  // report as an exception. Nothing in a training run writes to a pipe that may close.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(o.master_port);
    so.isServer = rank_ == 0;
    so.numWorkers = world_;
    so.waitWorkers = true;
    so.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kIo, impl_->where + "the " + std::to_string(world_) +
                                    " ranks did not all meet at the store " + master +
                                    " (MASTER_ADDR:MASTER_PORT, hosted by rank 0) within " +
                                    Seconds(o.timeout_s) + " (--dist-timeout): " + Message(e));
  }
  const bool cuda = device.rfind("cuda", 0) == 0;
  try {
#ifdef USE_C10D_NCCL
    if (cuda) {
      // Untested here. NCCL applies the timeout only with NCCL_BLOCKING_WAIT=1.
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, rank_, world_, opts);
      return;
    }
#endif
    impl_->stage_on_cpu = cuda;
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    // The loopback for a one-machine run; otherwise the interface GLOO_SOCKET_IFNAME names,
    // or the address this machine's host name resolves to (as torch.distributed does).
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname && *ifname)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (o.master_addr == "localhost" || o.master_addr.rfind("127.", 0) == 0)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, rank_, world_, opts);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kIo,
                impl_->where + "could not connect to the other ranks through " + master +
                    " within " + Seconds(o.timeout_s) +
                    " (--dist-timeout; did a rank fail before joining?): " + Message(e));
  }
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::Sum(at::Tensor& t, const std::string& what) {
  impl_->Run(t, what, [](auto& g, std::vector<at::Tensor>& v) { return g.allreduce(v); });
}

void ProcessGroup::Max(at::Tensor& t, const std::string& what) {
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::MAX;
  impl_->Run(t, what, [&](auto& g, std::vector<at::Tensor>& v) { return g.allreduce(v, opts); });
}

void ProcessGroup::BroadcastFromRank0(at::Tensor& t, const std::string& what) {
  impl_->Run(t, what, [](auto& g, std::vector<at::Tensor>& v) { return g.broadcast(v); });
}

#else  // no Gloo headers at build time

struct ProcessGroup::Impl {};

ProcessGroup::ProcessGroup(const DistributedOptions&, const std::string&) {
  ThrowUnsupported(
      "distributed: this edgepress was built without Gloo's headers (Debian: libgloo-dev), so "
      "it cannot run data-parallel (WORLD_SIZE > 1)");
}
ProcessGroup::~ProcessGroup() = default;
void ProcessGroup::Sum(at::Tensor&, const std::string&) {}
void ProcessGroup::Max(at::Tensor&, const std::string&) {}
void ProcessGroup::BroadcastFromRank0(at::Tensor&, const std::string&) {}

#endif

}  // namespace edgepress::distill
