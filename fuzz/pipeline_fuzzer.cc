// The pass-pipeline text syntax (passes/registry.cc ParsePipeline), including option
// validation, then creating every pass it names with its options.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "passes/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgepress;
  try {
    auto steps = passes::ParsePipeline(std::string(reinterpret_cast<const char*>(data), size));
    for (const auto& s : steps) (void)passes::CreatePass(s.pass, s.options);
  } catch (const Error& e) {
    fuzz::ExpectedError(e);
  }
  return 0;
}
