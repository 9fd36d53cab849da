// .npz parsing (formats/npy/npz.cc): the zip directory, local headers, zip64 extras, deflate
// streams and every member's .npy bytes come from the input.
#include <cstdint>
#include <string>

#include "formats/npy/npy.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgepress;
  try {
    formats::NamedTensors ts =
        formats::ParseNpz(std::string(reinterpret_cast<const char*>(data), size), "fuzz.npz");
    (void)formats::SerializeNpz(ts, /*compress=*/false);
  } catch (const Error& e) {
    fuzz::ExpectedError(e);
  }
  return 0;
}
