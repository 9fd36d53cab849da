// The IR verifier: checks the structural invariants that every importer must produce and
// every pass must preserve (see graph.h), plus the type facts that are cheap to check.
// Tests run it after each pass; importers run it before handing a graph on.
//
// Checked: dangling values (a node input defined neither in its graph nor in an enclosing
// one), values with two producers, duplicate and shadowing names, cycles and
// non-topological order, use lists against node inputs in both directions, graph outputs
// defined, initializer dtype/shape against the value's declared type, input/output counts
// of known ai.onnx ops, subgraphs (recursively, outer-scope references allowed), and dtype
// and broadcast consistency of elementwise ops where types are known.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgepress::ir {

// Every problem found, one message each, naming graph, node and value; empty when valid.
std::vector<std::string> VerifyAll(const Graph& graph);
std::vector<std::string> VerifyAll(const Model& model);

// Throws Error(kInvalidInput) carrying the first problem (and a count of the others).
void Verify(const Graph& graph);
void Verify(const Model& model);

}  // namespace edgepress::ir
