// The ONNX bridge: maps ONNX files (ModelProto, TensorProto test-data files) into the IR
// and back. Only ir/ types appear here; protobuf and libonnx stay inside formats/onnx/*.cc
// so that nothing else pays their compile time or link weight.
//
// Import normalises opset differences into the opset-13+ "input form" (Squeeze/Unsqueeze/
// ReduceSum axes, Split split, Clip min/max, Pad pads/value, Slice starts/ends/axes/steps,
// TopK k, Dropout ratio become constant inputs); the constants it creates are initializers
// marked Value::synthesized. Export folds them back into attributes when the model's
// recorded ai.onnx opset needs the attribute form, so export(import(x)) is equivalent to x
// under CanonicalOnnxProto's normalisation (see onnx_compare.h).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace edgepress::formats {

// Imports an .onnx file; external data is resolved relative to the file's folder.
// Throws Error naming the file and the node/tensor on any malformed input.
std::unique_ptr<ir::Model> LoadOnnx(const std::string& path);
// Same from serialized bytes. External data resolves under `base_dir` (empty: refused).
std::unique_ptr<ir::Model> LoadOnnxFromBytes(const std::string& bytes,
                                             const std::string& name_for_errors,
                                             const std::string& base_dir);

struct OnnxSaveOptions {
  // Store initializers of at least `external_threshold` bytes in "<file name>.data" next
  // to the model. Forced on when the model would not fit protobuf's 2 GiB limit.
  bool external_data = false;
  uint64_t external_threshold = 1024;
  // Run onnx::checker on the result before writing.
  bool check = true;
};
// Exports atomically (the external data file first, then the model).
void SaveOnnx(const ir::Model& m, const std::string& path, const OnnxSaveOptions& o = {});
// Serialises without external data; throws when the model exceeds 2 GiB.
std::string SerializeOnnx(const ir::Model& m);

// Runs onnx::checker on a file (with its external data); throws Error on failure.
void CheckOnnxFile(const std::string& path);

// ONNX test-data tensor files (test_data_set_N/input_K.pb).
ir::Tensor LoadTensorProtoFile(const std::string& path, std::string* name = nullptr);
void SaveTensorProtoFile(const ir::Tensor& t, const std::string& name, const std::string& path);

// The value of a Constant node whatever attribute holds it (value, value_float(s),
// value_int(s), value_string(s)); nullopt for other nodes or sparse values.
std::optional<ir::Tensor> OnnxConstantValue(const ir::Node& n);

}  // namespace edgepress::formats
