// Internal to runtime/torch (LibTorch types; included only by runtime/torch/*.cc): the
// converter table that maps each ONNX op onto LibTorch calls, and the tensor conversions
// between ir::Tensor and at::Tensor.
//
// A converter gets the node and its inputs as at::Tensor (undefined for an omitted
// optional input) and returns one tensor per node output (undefined for an output it does
// not produce, which is an error only when the graph uses it). Converters use ATen ops
// only, so autograd flows through every float path.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgepress::runtime::torch_ops {

class OpContext {
 public:
  using SubgraphRunner =
      std::function<std::vector<at::Tensor>(const ir::Graph&, const std::vector<at::Tensor>&)>;
  OpContext(const ir::Node& node, std::vector<at::Tensor> inputs, int64_t opset, at::Device device,
            SubgraphRunner run_subgraph)
      : node(node),
        inputs(std::move(inputs)),
        opset(opset),
        device(device),
        run_subgraph(std::move(run_subgraph)) {}

  const ir::Node& node;
  std::vector<at::Tensor> inputs;
  int64_t opset;      // the model's opset for the node's domain (0 = unknown: latest semantics)
  at::Device device;  // the session's device, for tensors a converter creates from nothing
  SubgraphRunner run_subgraph;

  bool has(size_t i) const { return i < inputs.size() && inputs[i].defined(); }
  // Input i; throws Error naming the node when a required input is missing.
  const at::Tensor& in(size_t i) const;
  // A small integer input (shape, axes, pads) read back to the host.
  std::vector<int64_t> ints(size_t i) const;
  double scalar(size_t i) const;
  // True when the graph reads output i.
  bool wants(size_t i) const;
  [[noreturn]] void Fail(const std::string& what) const;
};

using Converter = std::vector<at::Tensor> (*)(OpContext&);
// Why this node cannot be converted (an attribute value, a mode), or "" when it can.
using Checker = std::string (*)(const ir::Node&);

struct ConverterDef {
  const char* op_type;
  const char* domain;  // "" for ai.onnx
  Converter fn;
  Checker check = nullptr;
};

// One list per file; torch_session.cc concatenates them.
void AddElementwiseConverters(std::vector<ConverterDef>& out);
void AddNnConverters(std::vector<ConverterDef>& out);
void AddTensorConverters(std::vector<ConverterDef>& out);
void AddQuantConverters(std::vector<ConverterDef>& out);
void AddResizeConverters(std::vector<ConverterDef>& out);

const std::vector<ConverterDef>& AllConverters();
const ConverterDef* FindConverter(const std::string& op_type, const std::string& domain);

// dtype mapping; throws Error(kUnsupported) for dtypes LibTorch has no type for.
at::ScalarType ToScalarType(ir::DType t);
ir::DType FromScalarType(at::ScalarType t);
// Packed int4/uint4 are unpacked to one int8/uint8 per element.
at::Tensor ToTorch(const ir::Tensor& t, const at::Device& device);
// Host copy; `want` = kInt4/kUInt4 packs (values must fit), otherwise the tensor's dtype.
ir::Tensor FromTorch(const at::Tensor& t, ir::DType want = ir::DType::kUndefined);

// Shared helpers for converters.
int64_t NormAxis(int64_t axis, int64_t rank, const ir::Node& node);
// ONNX pads [b0, b1, ..., e0, e1, ...] from auto_pad/pads for `spatial` dims of `x`
// (N, C, spatial...), given kernel, strides and dilations.
std::vector<int64_t> ConvPads(const ir::Node& node, const at::Tensor& x,
                              const std::vector<int64_t>& kernel,
                              const std::vector<int64_t>& strides,
                              const std::vector<int64_t>& dilations);
at::Tensor PadSpatial(const at::Tensor& x, const std::vector<int64_t>& pads, double value);
// Applies a fused activation (FusedConv/FusedGemm "activation" + "activation_params").
at::Tensor ApplyActivation(const ir::Node& node, at::Tensor y);
std::string CheckActivation(const ir::Node& node);

}  // namespace edgepress::runtime::torch_ops
