// The TorchScript archive check (formats/torchscript/pt_archive): everything edgepress reads
// of a .pt before LibTorch sees it — the zip directory (zip64 included), entry offsets and
// sizes, required entries and the pickle walker. Any bytes either pass or throw
// edgepress::Error; LibTorch itself is not linked (torch::jit::load is not trusted to
// validate, which is why this check exists).
#include <cstdint>
#include <string_view>

#include "formats/torchscript/pt_archive.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgepress;
  try {
    formats::CheckPtArchiveBytes(std::string_view(reinterpret_cast<const char*>(data), size),
                                 "fuzz.pt");
  } catch (const Error& e) {
    fuzz::ExpectedError(e);
  }
  return 0;
}
