// ranges.json (calibrate/calibrate.cc RangesFromJson): JSON syntax, then every field's type
// and value; what is accepted must serialise back.
#include <cstdint>
#include <string>

#include "calibrate/calibrate.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgepress;
  try {
    calibrate::CalibrationResult r = calibrate::RangesFromJson(
        std::string(reinterpret_cast<const char*>(data), size), "fuzz-ranges.json");
    (void)calibrate::RangesToJson(r);
  } catch (const Error& e) {
    fuzz::ExpectedError(e);
  }
  return 0;
}
