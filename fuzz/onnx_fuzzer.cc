// ONNX import from model bytes (formats/onnx): protobuf parsing, then every field the
// importer maps (graphs, subgraphs, attributes, TensorProto data, opset normalisation,
// shape inference). External data is refused here (no base folder); onnx_external covers it.
#include <cstdint>
#include <string>

#include "formats/onnx/onnx.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgepress;
  try {
    auto m = formats::LoadOnnxFromBytes(std::string(reinterpret_cast<const char*>(data), size),
                                        "fuzz.onnx", "");
  } catch (const Error& e) {
    fuzz::ExpectedError(e);
  }
  return 0;
}
