// The .epk edge artifact (spec: docs/epk.md): one file with the whole ir::Model, its
// weights mapped zero-copy (64-byte aligned from 1 KiB up), and producer metadata, each
// section guarded by a CRC-32; 3.0 keeps graph and metadata compact (string table,
// varints, deflate) so small models are mostly weights. It is the format the edge runtime
// loads, so it depends on nothing but ir/ and zlib (CRC-32, deflate).
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

// 3.0 made the records compact (string table, varints, zlib-compressed metadata and graph
// sections, tight packing of small blobs); 2.0 added sparse tensor storage (bitmask, CSR,
// N:M) and SparseEncoding::axis. This reader loads 1.x to 3.x; the writer writes 3.0, or
// 2.0 on request (for readers that predate 3.0).
constexpr uint16_t kEpkVersionMajor = 3;
constexpr uint16_t kEpkVersionMinor = 0;
constexpr uint16_t kEpkMinVersionMajor = 1;

// How SaveEpk would store a tensor's data: layout "dense", "bitmask", "csr" or "nm", and
// the bytes it takes in the tensor data section (before alignment padding).
struct EpkTensorStorage {
  const char* layout = "dense";
  uint64_t dense_bytes = 0;
  uint64_t stored_bytes = 0;
};
EpkTensorStorage EpkStorageFor(const ir::Tensor& t);

struct EpkWriteOptions {
  uint16_t version_major = kEpkVersionMajor;  // 3, or 2 for readers older than 3.0
  bool compress = true;  // 3.0: zlib-compress metadata and graph sections when smaller
};

// Where the bytes of an .epk go (docs/epk.md, "Size breakdown"). `*_raw` are the encoded
// bytes before compression, `*_stored` what the file holds; graph_raw = strings_raw +
// model_raw + values_raw + nodes_raw + tensors_raw.
struct EpkSizeBreakdown {
  uint16_t version_major = 0;
  uint64_t header = 0;          // file header + section table
  uint64_t metadata_raw = 0, metadata_stored = 0;  // provenance (producer, recipe, pass log)
  uint64_t graph_raw = 0, graph_stored = 0;
  uint64_t strings_raw = 0;     // 3.0 string table (names, op types, docs)
  uint64_t model_raw = 0;       // model fields, opsets, graph names, output lists
  uint64_t values_raw = 0;      // graph inputs, initializer and node-output value records
  uint64_t nodes_raw = 0;       // node records: op, inputs, outputs, attributes
  uint64_t tensors_raw = 0;     // initializer tensor records (dtype, dims, offsets, quant)
  uint64_t section_padding = 0; // zero bytes before sections
  uint64_t blob_bytes = 0;      // tensor data (weights), dense or sparse
  uint64_t blob_padding = 0;    // alignment zeros inside the tensor data section
  uint64_t total = 0;           // the file size
};

// Writes `m` atomically (temp file + rename); the same model, metadata and options always
// give the same bytes.
void SaveEpk(const ir::Model& m, const std::string& path, const EpkMetadata& meta = {},
             const EpkWriteOptions& opts = {});

// The breakdown of the file SaveEpk would write, without writing it. For a loaded .epk of
// the current version this describes the file itself (a load and save gives the same bytes).
EpkSizeBreakdown EpkSizeOf(const ir::Model& m, const EpkMetadata& meta = {},
                           const EpkWriteOptions& opts = {});

// Maps the file read-only; tensor data are zero-copy views into the mapping, which stays
// alive as long as any tensor uses it. Throws Error (kInvalidInput for corrupt files,
// kUnsupported for a newer major version, kIo when the file cannot be read).
std::unique_ptr<ir::Model> LoadEpk(const std::string& path, EpkMetadata* meta = nullptr);

// The graph section's bytes for `m` (tensor data referenced by offset): a canonical
// serialisation, so two models are structurally identical exactly when these are equal.
std::string EpkGraphBytes(const ir::Model& m);

}  // namespace edgepress::formats
