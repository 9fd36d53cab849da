// .npy parsing (formats/npy): any bytes either parse into a tensor or throw edgepress::Error.
#include <cstdint>
#include <string>

#include "formats/npy/npy.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgepress;
  try {
    ir::Tensor t = formats::ParseNpy(std::string(reinterpret_cast<const char*>(data), size), "fuzz.npy");
    // What parsed must serialise back (ParseNpy only returns dtypes numpy has).
    (void)formats::SerializeNpy(t);
  } catch (const Error& e) {
    fuzz::ExpectedError(e);
  }
  return 0;
}
