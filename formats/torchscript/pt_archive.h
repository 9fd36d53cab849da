// The structural check a TorchScript (.pt) file passes before LibTorch reads it. A .pt is
// a zip archive (entries stored, one root folder): <root>/data.pkl (the module's pickle),
// <root>/constants.pkl, <root>/code/... (TorchScript source), <root>/version (or
// <root>/.data/version) and <root>/data/<n> (tensor storages). torch::jit::load is not
// trusted with malformed input, so this checks, in plain C++ without LibTorch (it is
// fuzzed and runs under the sanitizers):
//   - the end-of-central-directory record (zip64 too), one disk, sizes inside the file;
//   - every central-directory entry: signature, name, local header and data inside the
//     bytes before the directory, no duplicate names, one common root folder;
//   - the required entries, and that data.pkl and constants.pkl are well-formed pickles
//     (every opcode known, every argument inside the stream, memo reads of written
//     slots, balanced marks, a STOP at the very end).
// Any failure throws Error(kInvalidInput) naming the file and the entry or field.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace edgepress::formats {

struct PtArchiveEntry {
  std::string name;          // full name, e.g. "model/data.pkl"
  uint64_t data_offset = 0;  // where the (stored) bytes begin in the file
  uint64_t size = 0;         // compressed size (= uncompressed for stored entries)
  uint64_t uncompressed_size = 0;
  uint16_t method = 0;       // 0 stored, 8 deflate
};

struct PtArchive {
  std::string root;  // the common folder, without the slash
  std::vector<PtArchiveEntry> entries;
  const PtArchiveEntry* Find(const std::string& relative) const;  // relative to root
};

// `bytes` is the whole file; `name` is used in messages.
PtArchive CheckPtArchiveBytes(std::string_view bytes, const std::string& name);
// Maps the file and checks it; throws kIo when it cannot be read.
PtArchive CheckPtArchiveFile(const std::string& path);
// Checks one pickle stream (protocols 2-5) as described above; `what` names it.
void CheckPickle(std::string_view bytes, const std::string& what);

}  // namespace edgepress::formats
