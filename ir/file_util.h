// File helpers shared by every reader and writer: bounded reads and atomic writes
// (temp file in the same directory, fsync, rename), so a failed write never leaves a
// half-written file where the user's old one was.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace edgepress {

// Reads a whole file; throws Error (kIo) naming the path on failure and
// (kInvalidInput) when it is larger than max_bytes.
std::string ReadFileToString(const std::string& path, uint64_t max_bytes = UINT64_MAX);
// Writes `bytes` to `path` atomically.
void WriteFileAtomic(const std::string& path, const std::string& bytes);
// Atomic write through a callback that writes into the temp file at `tmp_path`.
void WriteFileAtomicWith(const std::string& path,
                         const std::function<void(const std::string& tmp_path)>& write);
uint64_t FileSize(const std::string& path);  // throws kIo when missing
bool FileExists(const std::string& path);

}  // namespace edgepress
