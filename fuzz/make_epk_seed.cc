// Seed helper for the epk_run corpus: converts an ONNX model to .epk exactly as imported
// (no passes), so the seeds cover the graph shapes of the ONNX conformance models. Seeds
// are written uncompressed (3.0 records in the clear), so mutations reach the record
// parsers rather than mostly breaking the deflate stream.
//   fuzz_make_epk_seed in.onnx out.epk
#include <cstdio>

#include "formats/epk/epk.h"
#include "formats/onnx/onnx.h"
#include "ir/error.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s in.onnx out.epk\n", argv[0]);
    return 2;
  }
  try {
    auto m = edgepress::formats::LoadOnnx(argv[1]);
    edgepress::formats::EpkWriteOptions plain;
    plain.compress = false;
    edgepress::formats::SaveEpk(*m, argv[2], {}, plain);
  } catch (const edgepress::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
