// The .epk edge artifact (spec: docs/epk.md): one file with the whole ir::Model, its
// weights 64-byte aligned for zero-copy mmap, and producer metadata, each section guarded
// by a CRC-32. It is the format the edge runtime loads, so it depends on nothing but ir/
// and zlib (for CRC-32).
//
// The reader assumes the file is hostile: every count, size, offset, enum, string length,
// name and nesting depth is validated with overflow-safe arithmetic before use, and any
// violation throws edgepress::Error naming the file and the part involved.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"

namespace edgepress::formats {

// Ordered key/value strings describing how the artifact was made: producer, tool
// version, source model hash, recipe, pass log. Keys are unique and non-empty.
struct EpkMetadata {
  std::vector<std::pair<std::string, std::string>> entries;

  // Value of `key`, or nullptr when absent.
  const std::string* Find(const std::string& key) const;
  // Replaces the value of an existing key or appends a new entry.
  void Set(const std::string& key, std::string value);
  bool operator==(const EpkMetadata& o) const { return entries == o.entries; }
};

// 2.0 added sparse tensor storage (bitmask, CSR, N:M) and SparseEncoding::axis; this
// reader still loads 1.x files. The writer always writes the current version.
constexpr uint16_t kEpkVersionMajor = 2;
constexpr uint16_t kEpkVersionMinor = 0;
constexpr uint16_t kEpkMinVersionMajor = 1;

// How SaveEpk would store a tensor's data: layout "dense", "bitmask", "csr" or "nm", and
// the bytes it takes in the tensor data section (before 64-byte alignment padding).
struct EpkTensorStorage {
  const char* layout = "dense";
  uint64_t dense_bytes = 0;
  uint64_t stored_bytes = 0;
};
EpkTensorStorage EpkStorageFor(const ir::Tensor& t);

// Writes `m` atomically (temp file + rename); the same model and metadata always give the
// same bytes.
void SaveEpk(const ir::Model& m, const std::string& path, const EpkMetadata& meta = {});

// Maps the file read-only; tensor data are zero-copy views into the mapping, which stays
// alive as long as any tensor uses it. Throws Error (kInvalidInput for corrupt files,
// kUnsupported for a newer major version, kIo when the file cannot be read).
std::unique_ptr<ir::Model> LoadEpk(const std::string& path, EpkMetadata* meta = nullptr);

// The graph section's bytes for `m` (tensor data referenced by offset): a canonical
// serialisation, so two models are structurally identical exactly when these are equal.
std::string EpkGraphBytes(const ir::Model& m);

}  // namespace edgepress::formats
