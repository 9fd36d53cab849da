// Helper methods for ONNX semantics that TorchScript has no single call for (_reshape,
// _slice, _pad, _rnn, ...), as TorchScript source that the exporter puts in front of every
// generated forward(). Kept apart from torchscript_export.cc, which writes the nodes.
#pragma once

namespace edgepress::formats {

extern const char* const kTorchScriptExportHelpers;

}  // namespace edgepress::formats
