// A readable, deterministic text form of the IR, in the spirit of MLIR's generic printer
// and ONNX's printable graph. For `edgepress inspect --graph`, test goldens and debugging;
// it is not parsed back. Attributes are printed sorted by name, initializers as dtype and
// shape (with values only when tiny), subgraphs indented under the node that owns them:
//
//   graph "main" {
//     input %x: f32[1,3,8,8]
//     init %w: f32[4,3,3,3]
//     %conv0: f32[1,4,6,6] = Conv(%x, %w) {strides=[1,1]}  # Conv_0
//     output %conv0: f32[1,4,6,6]
//   }
#pragma once

#include <string>

#include "ir/graph.h"

namespace edgepress::ir {

std::string DumpText(const Model& model);
std::string DumpText(const Graph& graph);
// One node on one line (subgraphs omitted), for error messages and logs.
std::string DumpNode(const Node& node);

}  // namespace edgepress::ir
