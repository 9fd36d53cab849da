// Private to formats/onnx: protobuf <-> IR helpers shared by the importer, the exporter
// and the comparison code. Includes libonnx headers, so nothing outside formats/onnx/*.cc
// may include it.
#pragma once

#include <onnx/onnx_pb.h>

#include <map>
#include <memory>
#include <string>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace edgepress::formats::onnx_internal {

// Where tensors with data_location=EXTERNAL are read from; keeps each data file mapped
// once and refuses locations that leave `base_dir`.
class ExternalData {
 public:
  ExternalData(std::string model_file, std::string base_dir)
      : model_file_(std::move(model_file)), base_dir_(std::move(base_dir)) {}
  // Bytes [offset, offset+length) of `location`, validated against the file's size and
  // `expected_bytes`; `what` names the tensor in errors.
  std::shared_ptr<ir::Buffer> Read(const ::onnx::TensorProto& tp, uint64_t expected_bytes,
                                   const std::string& what);

 private:
  struct Mapping;
  std::string model_file_;
  std::string base_dir_;
  std::map<std::string, std::shared_ptr<Mapping>> maps_;
};

ir::DType DTypeFromProto(int32_t t);  // kUndefined when unknown
int32_t DTypeToProto(ir::DType t);    // 0 when ONNX has no code

// `what` is used as the prefix of error messages ("model.onnx: initializer 'w'").
ir::Tensor TensorFromProto(const ::onnx::TensorProto& tp, ExternalData* ext,
                           const std::string& what);
// Writes dims, data_type and the data (raw_data or string_data); leaves the name alone.
void TensorToProto(const ir::Tensor& t, ::onnx::TensorProto* tp, const std::string& what);

// Parses a ModelProto/TensorProto with protobuf's 2 GiB limit; throws Error naming `file`.
void ParseProto(const std::string& bytes, google::protobuf::MessageLite* msg,
                const std::string& file, const char* kind);

std::unique_ptr<ir::Model> ModelFromProto(const ::onnx::ModelProto& mp, ExternalData* ext,
                                          const std::string& file);
// `file` only names the model in errors.
void ModelToProto(const ir::Model& m, ::onnx::ModelProto* mp, const std::string& file);

// Opset normalisation (opset.cc): rewrite attribute forms into input form after import.
void NormalizeOpsets(ir::Model& m, const std::string& file);
// Inputs of `n` that export folds back into attributes for `opset`; fills `attrs` with
// the attributes and returns how many trailing-input slots to drop, or -1 when the
// node is exported as is. Throws Error when the inputs are not constants.
struct Denormalized {
  bool changed = false;
  std::vector<ir::Value*> inputs;        // the inputs to write
  std::vector<ir::Attribute> add_attrs;  // attributes to append
};
Denormalized DenormalizeNode(const ir::Node& n, int64_t opset, const std::string& file);

// The attribute type as written, inferred from the set fields when `type` is missing.
::onnx::AttributeProto::AttributeType AttributeTypeOf(const ::onnx::AttributeProto& a);

}  // namespace edgepress::formats::onnx_internal
