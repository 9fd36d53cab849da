// Model files by extension, so subcommands never care which format they read or write.
// Today: .onnx. A new format (.epk, .pt) adds one entry to kFormats in model_io.cc.
#pragma once

#include <memory>
#include <string>

#include "ir/graph.h"

namespace edgepress::tools {

struct SaveModelOptions {
  bool external_data = false;  // ONNX: large initializers in "<file>.data"
};

// Throws Error (kUnsupported) for an extension no format handles.
std::unique_ptr<ir::Model> LoadModel(const std::string& path);
// Throws Error (kUsage) for an output extension no format handles.
void SaveModel(const ir::Model& m, const std::string& path, const SaveModelOptions& o = {});
// "ONNX" etc.; empty when the extension is unknown.
std::string ModelFormatName(const std::string& path);

}  // namespace edgepress::tools
