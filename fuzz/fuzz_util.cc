#include "fuzz/fuzz_util.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace edgepress::fuzz {
namespace {

std::string* g_dir = nullptr;

void RemoveScratch() {
  std::error_code ec;
  if (g_dir) std::filesystem::remove_all(*g_dir, ec);
}

}  // namespace

const std::string& ScratchDir() {
  if (!g_dir) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "edgepress-fuzz-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    g_dir = new std::string(tmpl);
    std::atexit(RemoveScratch);
  }
  return *g_dir;
}

void Finding(const char* what, const Error& e) {
  std::fprintf(stderr, "edgepress fuzz finding: %s: %s\n", what, e.what());
  std::abort();
}

void ExpectedError(const Error& e) {
  if (e.code() == ErrorCode::kInternal) Finding("internal error on fuzz input", e);
}

std::string WriteScratch(const std::string& name, const std::string& bytes) {
  std::string path = ScratchDir() + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) {  // a harness failure, not a finding in the reader
    std::perror(path.c_str());
    std::abort();
  }
  return path;
}

std::pair<std::string, std::string> SplitTwo(const uint8_t* data, size_t size) {
  if (size < 4) return {std::string(reinterpret_cast<const char*>(data), size), std::string()};
  size_t n = size_t{data[0]} | size_t{data[1]} << 8 | size_t{data[2]} << 16 | size_t{data[3]} << 24;
  const char* p = reinterpret_cast<const char*>(data + 4);
  size_t rest = size - 4;
  if (n > rest) n = rest;
  return {std::string(p, n), std::string(p + n, rest - n)};
}

}  // namespace edgepress::fuzz
