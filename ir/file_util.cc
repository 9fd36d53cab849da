#include "ir/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>

#include "ir/error.h"

namespace edgepress {

namespace {
std::string Errno() { return std::strerror(errno); }
}  // namespace

uint64_t FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    throw Error(ErrorCode::kIo, "cannot open '" + path + "': " + Errno());
  if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::kIo, "'" + path + "' is not a regular file");
  return static_cast<uint64_t>(st.st_size);
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string ReadFileToString(const std::string& path, uint64_t max_bytes) {
  uint64_t size = FileSize(path);
  if (size > max_bytes)
    ThrowInvalid("'" + path + "' is " + std::to_string(size) + " bytes, more than the " +
                 std::to_string(max_bytes) + " allowed");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorCode::kIo, "cannot open '" + path + "': " + Errno());
  std::string out(size, '\0');
  if (size && !f.read(out.data(), static_cast<std::streamsize>(size)))
    throw Error(ErrorCode::kIo, "cannot read '" + path + "'");
  return out;
}

void WriteFileAtomicWith(const std::string& path,
                         const std::function<void(const std::string&)>& write) {
  std::random_device rd;
  std::string tmp = path + ".tmp" + std::to_string(::getpid()) + "_" + std::to_string(rd());
  try {
    write(tmp);
    int fd = ::open(tmp.c_str(), O_RDONLY);
    if (fd < 0) throw Error(ErrorCode::kIo, "cannot write '" + path + "': " + Errno());
    ::fsync(fd);
    ::close(fd);
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw Error(ErrorCode::kIo, "cannot write '" + path + "': " + Errno());
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

void WriteFileAtomic(const std::string& path, const std::string& bytes) {
  WriteFileAtomicWith(path, [&](const std::string& tmp) {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw Error(ErrorCode::kIo, "cannot write '" + path + "': " + Errno());
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.close();
    if (!f) throw Error(ErrorCode::kIo, "cannot write '" + path + "': " + Errno());
  });
}

}  // namespace edgepress
