// The .epk container's constants and byte-level helpers (docs/epk.md), shared by the
// writer (epk_write.cc) and the reader (epk_read.cc). Internal to formats/epk: part of the
// format, so a change here is a format change.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "ir/graph.h"

namespace edgepress::formats::epk_internal {

using ir::Attribute;
using ir::DType;
using ir::ValueType;

constexpr char kMagic[8] = {'\x89', 'E', 'P', 'K', '\r', '\n', '\x1a', '\n'};
constexpr uint64_t kHeaderSize = 32;
constexpr uint64_t kEntrySize = 32;
constexpr uint32_t kMaxSections = 64;
constexpr uint64_t kAlign = 64;
// 3.0: blobs smaller than this are packed at their element size (natural alignment, so
// typed reads stay aligned); larger ones keep 64 for SIMD kernels reading weights in the
// mapping.
constexpr uint64_t kPackedBlobMax = 1024;
// 3.0 section flag: the payload is varint(uncompressed size) + a zlib stream.
constexpr uint32_t kFlagZlib = 1;
// Deflate cannot expand by more than 1032:1; a larger claimed size is corrupt.
constexpr uint64_t kMaxInflateRatio = 1032;
// 3.0: the strings a graph section's indices refer to may add up to at most this many
// times the section's (uncompressed) size plus 1 MiB, so one-byte references to a long
// string cannot force a huge allocation. The writer refuses models beyond it.
constexpr uint64_t kStringExpansion = 64;
constexpr uint64_t kStringSlack = uint64_t{1} << 20;
constexpr int kMaxGraphDepth = 64;
constexpr int kMaxTypeDepth = 32;
enum SectionKind : uint32_t { kMetadata = 1, kGraphSection = 2, kTensorData = 3 };

constexpr uint8_t kMaxDType = static_cast<uint8_t>(DType::kString);
constexpr uint8_t kMaxAttrKind = static_cast<uint8_t>(Attribute::Kind::kTypeProtos);
constexpr uint8_t kMaxTypeKind = static_cast<uint8_t>(ValueType::Kind::kMap);

inline uint32_t Crc32(const void* p, uint64_t n, uint32_t crc = 0) {
  return static_cast<uint32_t>(crc32_z(crc, static_cast<const Bytef*>(p), n));
}
inline uint64_t AlignUp(uint64_t v, uint64_t a = kAlign) { return (v + a - 1) / a * a; }
// Data offset alignment a reader requires of a `dt` blob of `size` bytes in a file of
// `major`: 64, or in 3.0 the element size for a small blob (1 for packed 4/2-bit types).
inline uint64_t BlobAlign(uint16_t major, uint64_t size, DType dt) {
  if (major < 3 || size >= kPackedBlobMax) return kAlign;
  return std::max<uint64_t>(1, static_cast<uint64_t>(ir::DTypeBits(dt)) / 8);
}

inline void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
inline uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t UnZigZag(uint64_t u) { return static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1); }

inline void PutFixed(std::string& s, uint64_t at, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}

// One entry of the section table.
struct Section {
  uint32_t kind;
  uint32_t flags;
  uint64_t offset, size;
  uint32_t crc;
};

}  // namespace edgepress::formats::epk_internal
