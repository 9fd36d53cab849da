// TorchSession: runs an ir::Model with LibTorch ops on CPU or CUDA, with autograd.
//
// It is the second runtime of edgepress, next to the native Session: the GPU half of the
// reference runtime and the differentiable path that distillation and QAT train through.
// Every node is executed by one small converter per ONNX op (torch_ops_*.cc); Create()
// checks the whole graph first and lists every node without a converter in one error.
//
// Graph form. The backend executes the graph as given, fused or not: it runs the float
// fusions of the default optimize pipeline (FusedConv, FusedGemm, com.microsoft Gelu,
// LayerNormalization) and ONNX/com.microsoft quantized ops (QuantizeLinear,
// DequantizeLinear, DynamicQuantizeLinear, MatMulNBits, DynamicQuantizeMatMul,
// MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv) by dequantizing to float (or
// exact integer arithmetic in float64 where the native kernels are exact). It does not run
// the edgepress-domain integer ops that `fuse-qdq` creates: the CLI runs the default
// pipeline without fuse-qdq for this backend (tools/model_io.cc), which also keeps QDQ pairs as
// differentiable fake-quant points for training.
//
// Autograd. Initializers named in TorchSessionOptions::trainable (or every float
// initializer with train_all_float) are leaf tensors with requires_grad. Forward() returns
// torch tensors for graph outputs and for any intermediate value by name, so a caller can
// build a loss and step a torch::optim optimizer over Parameters(); WriteBack() copies the
// trained values into the model's initializers.
//
// This header carries no LibTorch include: code outside the torch-bound targets may hold
// a TorchSession and call Run()/WriteBack(). The at::Tensor functions need <torch/torch.h>
// (or <ATen/ATen.h>) at the call site, i.e. a target that links LibTorch.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace at {
class Tensor;
}

namespace edgepress::runtime {

using TorchNamedTensors = std::vector<std::pair<std::string, ir::Tensor>>;

// Sees every value as a node produces it (and each graph input as it is bound) and returns
// the tensor later nodes read instead: distillation's fake quantization of activations
// (distill/). Return `t` to leave a value as it is.
class TorchValueHook {
 public:
  virtual ~TorchValueHook() = default;
  virtual at::Tensor Apply(const ir::Value& value, const at::Tensor& t) = 0;
};

struct TorchSessionOptions {
  // "cpu", "cuda" or "cuda:N". CUDA without a usable GPU (or a CPU-only LibTorch) is an
  // Error(kUnsupported) from Create().
  std::string device = "cpu";
  // Initializers to train (requires_grad); each must exist and be float.
  std::vector<std::string> trainable;
  // Train every float initializer with more than one element (weights and biases;
  // scalars such as quantization scales and epsilon constants stay fixed).
  bool train_all_float = false;
  // Intra-op CPU threads (at::set_num_threads, process-wide); 0 keeps LibTorch's default.
  int threads = 0;
  std::shared_ptr<TorchValueHook> value_hook;  // optional
};

class TorchSession {
 public:
  ~TorchSession();
  TorchSession(const TorchSession&) = delete;
  TorchSession& operator=(const TorchSession&) = delete;

  // Throws Error(kUnsupported) listing every node without a converter, or naming the
  // device; Error(kInvalidInput) for a trainable name that is not a float initializer.
  // The model is shared: WriteBack() updates its initializers in place.
  static std::unique_ptr<TorchSession> Create(std::shared_ptr<ir::Model> model,
                                              const TorchSessionOptions& opts = {});
  // True when this LibTorch build sees a CUDA device.
  static bool CudaAvailable();
  // Every op (qualified, "com.microsoft::MatMulNBits") with a converter, sorted.
  static std::vector<std::string> SupportedOps();

  // Inference without autograd: inputs by name (initializer defaults may be left out),
  // outputs of the graph by name, in order, copied back to the host. Input checks as the
  // native Session: unknown/missing names, dtypes and ranks give Error(kInvalidInput).
  TorchNamedTensors Run(const TorchNamedTensors& inputs);

  // Differentiable forward. `fetch` names graph outputs or intermediate values (empty:
  // the graph outputs); the result is in that order, on the session's device, connected
  // to Parameters() when grad mode is on. Inputs are moved to the device.
  std::vector<at::Tensor> Forward(const std::vector<std::pair<std::string, at::Tensor>>& inputs,
                                  const std::vector<std::string>& fetch = {});
  // The trainable leaves, in the order of ParameterNames().
  std::vector<at::Tensor> Parameters() const;
  std::vector<std::string> ParameterNames() const;

  // Moves every weight (and later forwards) to another device; trainable leaves stay
  // leaves, so an optimizer must be created after the move.
  void To(const std::string& device);
  std::string device() const;

  // Copies the current values of the trainable parameters into the model's initializers
  // (as the initializer's dtype); returns how many were written.
  int WriteBack();

  const ir::Model& model() const;

 private:
  struct Impl;
  explicit TorchSession(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgepress::runtime
