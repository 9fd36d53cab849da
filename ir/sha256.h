// SHA-256 (FIPS 180-4), for provenance: the hash of a source model or a calibration set
// recorded in .epk metadata and reports. Not used for anything security-sensitive.
#pragma once

#include <cstdint>
#include <string>

namespace edgepress {

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t n);
  void Update(const std::string& s) { Update(s.data(), s.size()); }
  std::string HexDigest();  // finalises; call once

 private:
  void Block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

// Hex SHA-256 of a file's bytes, read in chunks (throws Error(kIo) when unreadable).
std::string Sha256File(const std::string& path);

}  // namespace edgepress
