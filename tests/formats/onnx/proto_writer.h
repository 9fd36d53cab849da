// A tiny protobuf wire-format writer for tests: builds ONNX ModelProto bytes field by
// field, so bad-input tests can produce exactly the malformed model they want (huge
// dims, escaping external-data locations, wrong attribute types) without libonnx or
// Python. Field numbers are those of onnx.proto (IR v8).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace edgepress::test_util {

class Proto {
 public:
  Proto& Varint(int field, uint64_t v) {
    Key(field, 0);
    PutVarint(v);
    return *this;
  }
  Proto& Bytes(int field, const std::string& s) {
    Key(field, 2);
    PutVarint(s.size());
    bytes_ += s;
    return *this;
  }
  Proto& Msg(int field, const Proto& p) { return Bytes(field, p.bytes_); }
  Proto& Float(int field, float f) {
    Key(field, 5);
    char b[4];
    std::memcpy(b, &f, 4);
    bytes_.append(b, 4);
    return *this;
  }
  const std::string& str() const { return bytes_; }

 private:
  void Key(int field, int wire) { PutVarint((static_cast<uint64_t>(field) << 3) | wire); }
  void PutVarint(uint64_t v) {
    while (v >= 0x80) {
      bytes_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    bytes_.push_back(static_cast<char>(v));
  }
  std::string bytes_;
};

// onnx.proto field numbers used by the tests.
namespace onnxf {
enum Model { kIrVersion = 1, kProducerName = 2, kGraph = 7, kOpsetImport = 8 };
enum Opset { kDomain = 1, kVersion = 2 };
enum Graph { kNode = 1, kName = 2, kInitializer = 5, kInput = 11, kOutput = 12, kValueInfo = 13 };
enum Node { kNodeInput = 1, kNodeOutput = 2, kNodeName = 3, kOpType = 4, kAttribute = 5 };
enum Attr { kAttrName = 1, kAttrF = 2, kAttrI = 3, kAttrT = 5, kAttrInts = 8, kAttrType = 20 };
enum AttrType { kFloat = 1, kInt = 2, kTensor = 4, kInts = 7 };
enum Tensor { kDims = 1, kDataType = 2, kFloatData = 4, kTensorName = 8, kRawData = 9,
              kExternalData = 13, kDataLocation = 14 };
enum Entry { kKey = 1, kValue = 2 };
enum ValueInfo { kViName = 1, kViType = 2 };
enum Type { kTensorType = 1 };
enum TensorType { kElemType = 1, kShape = 2 };
}  // namespace onnxf

inline Proto FloatTensorType(const std::vector<int64_t>& dims) {
  Proto shape;
  for (int64_t d : dims) shape.Msg(1, Proto().Varint(1, static_cast<uint64_t>(d)));
  return Proto().Msg(onnxf::kTensorType,
                     Proto().Varint(onnxf::kElemType, 1).Msg(onnxf::kShape, shape));
}

inline Proto ValueInfo(const std::string& name, const std::vector<int64_t>& dims) {
  return Proto().Bytes(onnxf::kViName, name).Msg(onnxf::kViType, FloatTensorType(dims));
}

// ModelProto around `graph` with ai.onnx at `opset`.
inline std::string ModelBytes(const Proto& graph, int opset = 13) {
  return Proto()
      .Varint(onnxf::kIrVersion, 8)
      .Bytes(onnxf::kProducerName, "edgepress-test")
      .Msg(onnxf::kGraph, graph)
      .Msg(onnxf::kOpsetImport, Proto().Bytes(onnxf::kDomain, "").Varint(onnxf::kVersion, opset))
      .str();
}

}  // namespace edgepress::test_util
