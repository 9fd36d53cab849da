// Which runtime executes a model in `run`, `bench` and `compress`: the native CPU runtime
// or the LibTorch backend (runtime/torch, CPU or CUDA). A Runner hides the difference, so
// each subcommand has one code path. Without LibTorch in the build, asking for the torch
// backend is a usage error that says so.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/session.h"

namespace CLI {
class App;
}

namespace edgepress::tools {

struct BackendChoice {
  std::string backend = "native";  // native | torch
  std::string device = "cpu";      // cpu | cuda[:N] (torch only)
};

// --backend and --device on a subcommand.
void AddBackendOptions(CLI::App* cmd, BackendChoice& choice);

class Runner {
 public:
  virtual ~Runner() = default;
  virtual runtime::NamedTensors Run(const runtime::NamedTensors& inputs) = 0;
  // Inputs the caller must or may feed (initializer defaults excluded).
  virtual std::vector<const ir::Value*> inputs() const = 0;
  virtual std::vector<const ir::Value*> outputs() const = 0;
  virtual int threads() const = 0;
  // "native (cpu)", "torch (cuda:0)": what a report names as the source of its latency.
  virtual std::string backend() const = 0;
  virtual std::string device() const = 0;
  // The native runtime's session (for its kernel list and profile); nullptr for torch.
  virtual runtime::Session* native_session() { return nullptr; }
};

// The model at `path`, optimised for the backend (the default pipeline; without fuse-qdq
// for torch, whose converters dequantize), on the chosen backend. Throws Error(kUsage) for
// an unknown backend or a device the native runtime cannot use, and Error(kUnsupported)
// for torch in a build without LibTorch or CUDA without a GPU.
std::unique_ptr<Runner> MakeRunner(const std::string& path, bool optimize,
                                   const BackendChoice& choice, const runtime::SessionOptions& so);

// True when this build has the LibTorch backend and TorchScript export.
bool HaveTorch();

}  // namespace edgepress::tools
