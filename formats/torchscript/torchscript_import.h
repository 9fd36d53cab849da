// TorchScript (.pt) import: maps a TorchScript module's forward() into the IR, using the
// ONNX-semantics ops the ONNX importer produces, so passes and native kernels work on it
// unchanged (docs/torchscript.md lists the ops, how shapes are handled and the limits).
//
// The file is checked as a zip archive in plain C++ (pt_archive.h) before LibTorch sees
// it; LibTorch then loads, freezes and inlines the module, and a registry of one small
// converter per aten/prim op rewrites the graph. Every op without a converter is listed,
// with its source location, in one error (no partial model is returned). The model is
// never executed (only ops whose inputs are all constants are folded).
//
// No LibTorch type appears here: callers (the CLI, tests) need not compile against it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/dtype.h"
#include "ir/graph.h"

namespace edgepress::formats {

struct TorchScriptImportOptions {
  // Shapes of forward()'s tensor arguments, by argument name. TorchScript records no
  // shapes: without one an input has unknown rank (ops that need the rank, such as
  // transpose, then ask for it); -1 marks a dim that stays symbolic ("<name>_d<i>").
  std::map<std::string, std::vector<int64_t>> input_shapes;
  // Element types by argument name; default float32 (int64 for embedding indices).
  std::map<std::string, ir::DType> input_dtypes;
  // int/float/bool arguments fixed at import (by name) instead of becoming rank-0 graph
  // inputs: branches on them (a sample rate choosing a sub-model) then settle at import.
  std::map<std::string, double> scalar_inputs;
  // Names of the flattened outputs; default "output", or "output_<i>" for a tuple.
  std::vector<std::string> output_names;
};

// Throws Error naming the file: kIo (cannot read), kInvalidInput (not a valid TorchScript
// archive, LibTorch refused it), kUnsupported (ops without a converter, all listed).
std::unique_ptr<ir::Model> ImportTorchScript(const std::string& path,
                                             const TorchScriptImportOptions& options = {});

}  // namespace edgepress::formats
