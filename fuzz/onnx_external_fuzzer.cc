// ONNX import with external data: the input is split (fuzz_util.h SplitTwo) into the model
// bytes and the bytes of "weights.bin" in a scratch folder, which is the model's base folder.
// Offsets, lengths and locations of external tensors are the classic CVE surface (reads past
// the file, paths out of the folder).
#include <cstdint>
#include <string>

#include "formats/onnx/onnx.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgepress;
  auto [model, weights] = fuzz::SplitTwo(data, size);
  fuzz::WriteScratch("weights.bin", weights);
  try {
    auto m = formats::LoadOnnxFromBytes(model, "fuzz.onnx", fuzz::ScratchDir());
  } catch (const Error& e) {
    fuzz::ExpectedError(e);
  }
  return 0;
}
