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

constexpr uint16_t kEpkVersionMajor = 1;
constexpr uint16_t kEpkVersionMinor = 0;

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
