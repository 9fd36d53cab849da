// TorchScript export: writes an ir::Model as a `.pt` that Python's torch.jit.load and
// LibTorch's torch::jit::load run with the same outputs as the native runtime.
//
// The exporter generates TorchScript source for the graph (one line per node, calls such
// as torch.conv2d / torch.matmul, plus a fixed set of helper methods for ONNX semantics
// that TorchScript has no single call for: Reshape's 0 dims, Gather's negative indices,
// QuantizeLinear's saturation, ...) and `define`s it on a torch::jit::Module. Float
// initializers become parameters; integer and quantized initializers stay as they are,
// as buffers (int8 weights with their scales, MatMulNBits' packed 4-bit blocks), and are
// dequantized inside forward(), so the file is as small as the compressed model.
//
// Not every IR op has a TorchScript form: the exporter checks the whole graph first and
// throws Error(kUnsupported) listing every node it cannot write. The file is written
// atomically (temp file + rename).
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"

namespace edgepress::formats {

// The archive's extra file (extra/<name>) that records forward()'s arguments: the IR
// input names, dtypes and shapes, and the output names. TorchScript keeps no shapes and
// the exporter names arguments x0, x1, ...; ImportTorchScript reads this file so an
// exported .pt imports with the names and shapes it was written with.
inline constexpr const char* kTorchScriptSignatureFile = "edgepress_signature.json";

struct TorchScriptExportOptions {
  // Float initializers as parameters (trainable after torch.jit.load) or as buffers.
  bool float_weights_as_parameters = true;
};

void SaveTorchScript(const ir::Model& model, const std::string& path,
                     const TorchScriptExportOptions& opts = {});
// The generated TorchScript source (for tests and `--verbose` diagnostics).
std::string TorchScriptSource(const ir::Model& model);
// Ops (qualified) the exporter writes, sorted.
std::vector<std::string> TorchScriptExportOps();

}  // namespace edgepress::formats
