// Shape inference: fills Value::type (dtype and Shape, with known and symbolic dims) for
// the ops the runtime supports, following the ONNX operator specs.
//
// - Dims flow symbolically: broadcasting "batch" with "batch" or with 1 gives "batch";
//   ops that provably keep a dim (stride-1 "same" convolutions, Reshape's 0 and -1 with
//   matching symbols) keep its symbol.
// - Inputs that decide a shape (Reshape's shape, Slice's starts, Pad's pads, Resize's
//   sizes, ...) are read when they are constants (initializers or Constant nodes) or small
//   int64 values derived from shapes: Shape -> Gather/Slice -> Unsqueeze -> Concat ->
//   Reshape chains, as exporters emit them, are evaluated with symbolic elements.
// - Unknown ops and unknowable dims leave types unknown; that is not an error.
// - A contradiction (MatMul inner dims 3 vs 4, broadcasting 2 with 3, an inferred type
//   that disagrees with a declared one) throws Error(kInvalidInput) naming the node.
// - Both attribute (old opset) and input (opset 13+) forms of axes/split/pads/starts are
//   accepted, although importers normalise to inputs.
#pragma once

#include <cstdint>

#include "ir/graph.h"

namespace edgepress::ir {

// Infers every graph and subgraph of the model, using its ai.onnx opset.
void InferShapes(Model& model);
// `opset` is the ai.onnx opset version (it decides e.g. Resize's input layout).
void InferShapes(Graph& graph, int64_t opset);

}  // namespace edgepress::ir
