// The value an ONNX Constant node holds in its attributes. Four readers (ONNX import and
// inspect, shape inference, the planner's constant folding and the runtime's Constant kernel)
// need the same table of value_* attributes; this is its one copy.
#pragma once

#include <optional>

#include "ir/graph.h"

namespace edgepress::ir {

// The tensor of the first of value (a tensor), value_float(s), value_int(s) or value_string(s)
// whose attribute kind matches its name; nullopt when the node has none of them (a
// sparse_value constant, or a mistyped attribute). Does not check the op type: callers decide
// which nodes are constants and how to report a missing value.
std::optional<Tensor> ConstantAttributeValue(const Node& n);

}  // namespace edgepress::ir
