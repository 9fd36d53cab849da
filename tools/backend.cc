#include "tools/backend.h"

#include <CLI/CLI.hpp>

#include "ir/error.h"
#include "passes/registry.h"
#include "tools/model_io.h"

#ifdef EDGEPRESS_HAVE_TORCH
#include "runtime/torch/torch_session.h"
#endif

namespace edgepress::tools {

namespace {

class NativeRunner : public Runner {
 public:
  NativeRunner(std::shared_ptr<const ir::Model> m, const runtime::SessionOptions& so)
      : session_(runtime::Session::Create(std::move(m), so)) {}
  runtime::NamedTensors Run(const runtime::NamedTensors& in) override { return session_->Run(in); }
  std::vector<const ir::Value*> inputs() const override { return session_->inputs(); }
  std::vector<const ir::Value*> outputs() const override { return session_->outputs(); }
  int threads() const override { return session_->num_threads(); }
  std::string backend() const override { return "native"; }
  std::string device() const override { return "cpu"; }
  runtime::Session* native_session() override { return session_.get(); }

 private:
  std::unique_ptr<runtime::Session> session_;
};

#ifdef EDGEPRESS_HAVE_TORCH
class TorchRunner : public Runner {
 public:
  TorchRunner(std::shared_ptr<ir::Model> m, const std::string& device, int threads)
      : threads_(threads) {
    runtime::TorchSessionOptions o;
    o.device = device;
    o.threads = threads;
    session_ = runtime::TorchSession::Create(std::move(m), o);
  }
  runtime::NamedTensors Run(const runtime::NamedTensors& in) override { return session_->Run(in); }
  std::vector<const ir::Value*> inputs() const override {
    std::vector<const ir::Value*> v;
    for (const ir::Value* x : session_->model().graph->inputs())
      if (!x->is_initializer()) v.push_back(x);
    return v;
  }
  std::vector<const ir::Value*> outputs() const override {
    const auto& o = session_->model().graph->outputs();
    return {o.begin(), o.end()};
  }
  int threads() const override { return threads_; }
  std::string backend() const override { return "torch"; }
  std::string device() const override { return session_->device(); }

 private:
  std::unique_ptr<runtime::TorchSession> session_;
  int threads_;
};
#endif

// The default pipeline minus fuse-qdq: the torch backend dequantizes QDQ pairs itself and
// has no converters for the edgepress-domain integer ops fuse-qdq creates.
[[maybe_unused]] std::string TorchPipeline() {
  std::string p = passes::kDefaultOptimizePipeline;
  size_t at = p.find("fuse-qdq,");
  if (at != std::string::npos) p.erase(at, 9);
  return p;
}

}  // namespace

bool HaveTorch() {
#ifdef EDGEPRESS_HAVE_TORCH
  return true;
#else
  return false;
#endif
}

void AddBackendOptions(CLI::App* cmd, BackendChoice& c) {
  cmd->add_option("--backend", c.backend, "runtime: native (CPU kernels) or torch (LibTorch)")
      ->capture_default_str()
      ->check(CLI::IsMember({"native", "torch"}));
  cmd->add_option("--device", c.device, "torch backend device: cpu, cuda or cuda:N")
      ->capture_default_str();
}

std::unique_ptr<Runner> MakeRunner(const std::string& path, bool optimize,
                                   const BackendChoice& choice, const runtime::SessionOptions& so) {
  if (choice.backend == "native") {
    if (choice.device != "cpu")
      throw Error(ErrorCode::kUsage,
                  "--device " + choice.device +
                      ": the native runtime runs on the CPU; use --backend torch");
    return std::make_unique<NativeRunner>(
        std::shared_ptr<const ir::Model>(LoadModelForRun(path, optimize)), so);
  }
  if (choice.backend != "torch")
    throw Error(ErrorCode::kUsage, "unknown backend '" + choice.backend + "' (native or torch)");
#ifdef EDGEPRESS_HAVE_TORCH
  std::shared_ptr<ir::Model> m = LoadModel(path);
  if (optimize) {
    passes::PassContext ctx;
    passes::RunPipeline(*m, passes::ParsePipeline(TorchPipeline()), ctx, /*verify=*/false);
  }
  try {
    return std::make_unique<TorchRunner>(std::move(m), choice.device, so.threads);
  } catch (const Error& e) {
    throw Error(e.code(), path + ": " + e.what());
  }
#else
  ThrowUnsupported(
      "backend torch: this edgepress was built without LibTorch "
      "(configure with -DEDGEPRESS_WITH_TORCH=ON)");
#endif
}

}  // namespace edgepress::tools
