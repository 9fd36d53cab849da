// Small helpers shared by the rewrite passes: constant lookup, single-use checks, and
// replacing a value while keeping the user-visible name of a graph output.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgepress::passes {

// The constant value of `v`: an initializer (not a graph input with a default, whose
// value the user may override) or the output of a Constant node with a tensor `value`.
// nullptr otherwise.
const ir::Tensor* ConstantOf(const ir::Value* v);
// A float32 constant with exactly one element, or nullopt.
std::optional<float> ScalarConstant(const ir::Value* v);
// True when `v` has exactly one use and is not a graph output.
bool HasSingleUse(const ir::Value* v);
// The only node using `v` (nullptr unless HasSingleUse).
ir::Node* SingleUser(const ir::Value* v);
// True when `n` is an ai.onnx (default domain) node of type `op`.
bool IsOnnxOp(const ir::Node* n, const char* op);
// True when `v` is a scalar constant within |v - want| <= rtol * |want| + atol.
bool ScalarNear(const ir::Value* v, double want, double rtol, double atol = 0);
// For a binary node with a scalar-constant operand near `want` (ScalarNear), the other
// operand; nullptr otherwise.
ir::Value* OtherThanScalar(ir::Node* n, double want, double rtol, double atol = 0);
// The producer of `v` when it is a node with `op_type` in the default domain.
ir::Node* ProducerOf(const ir::Value* v, const std::string& op_type);

// Makes every use of `old_value` use `new_value` instead. When `old_value` is a graph
// output, its name moves to `new_value` (so outputs keep their names), which is why
// callers must delete the old producer right after. Returns false (and changes nothing)
// when the rename is impossible, e.g. `new_value` is itself a graph input or output.
bool ReplaceValue(ir::Value* old_value, ir::Value* new_value);

// Adds a new initializer to `g` with a name derived from `base`.
ir::Value* AddConstant(ir::Graph& g, const std::string& base, ir::Tensor t);

// Calls `rewrite` on every node of every graph (subgraphs included) until no call
// returns true. A rewrite may delete any nodes; scanning restarts after each success, so
// no stale node pointer is ever visited. Returns the number of successful rewrites.
int64_t RewriteAll(ir::Graph& g, const std::function<bool(ir::Graph&, ir::Node*)>& rewrite);

// Nodes of every graph in the model (subgraphs included), each graph in node order.
std::vector<ir::Node*> AllNodes(ir::Graph& g);

// Bytes of every constant in the model (initializers and Constant nodes' values, subgraphs
// included): the size the weight passes report as bytes-before / bytes-after.
uint64_t ConstantBytes(ir::Model& model);

}  // namespace edgepress::passes
