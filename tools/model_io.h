// Model files by extension, so subcommands never care which format they read or write.
// Today: .onnx and .epk. A new format (.pt) adds one entry to Formats() in model_io.cc.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"

namespace edgepress::tools {

struct SaveModelOptions {
  bool external_data = false;  // ONNX: large initializers in "<file>.data"
  // .epk: key/value provenance (producer, tool version, source hash, pass log, ...).
  std::vector<std::pair<std::string, std::string>> metadata;
};

// Provenance every written .epk carries: producer, tool version, the source file's name
// and SHA-256.
std::vector<std::pair<std::string, std::string>> ProvenanceFor(const std::string& source_path);

// Input shapes for TorchScript files, which record none (an archive edgepress exported
// records its own; these override it): "NAME=D0,D1,..." with -1 for a dim that stays
// symbolic. Process-wide, set once from the command's --input-shape options.
// Throws Error (kUsage) naming a malformed text.
std::map<std::string, std::vector<int64_t>> ParseInputShapes(const std::vector<std::string>& texts);
void SetTorchScriptInputShapes(std::map<std::string, std::vector<int64_t>> shapes);

// Throws Error (kUnsupported) for an extension no format handles.
std::unique_ptr<ir::Model> LoadModel(const std::string& path);
// LoadModel, then (when `optimize`) the function-preserving cleanup and fusion pipeline
// (passes::kDefaultOptimizePipeline), as `run` and `bench` execute models by default —
// the counterpart of onnxruntime's graph optimizations, so latency comparisons are fair.
std::unique_ptr<ir::Model> LoadModelForRun(const std::string& path, bool optimize);
// Throws Error (kUsage) for an output extension no format handles.
void SaveModel(const ir::Model& m, const std::string& path, const SaveModelOptions& o = {});
// "ONNX" etc.; empty when the extension is unknown.
std::string ModelFormatName(const std::string& path);

}  // namespace edgepress::tools
