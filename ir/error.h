// The one error type of edgepress's libraries. Libraries throw edgepress::Error;
// only tools/ turns it into an exit code (see ErrorCode).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace edgepress {

enum class ErrorCode {
  kInvalidInput,  // malformed file, bad value, failed validation -> exit 1
  kUnsupported,   // well-formed but not supported (op, dtype, feature) -> exit 1
  kIo,            // file system errors -> exit 1
  kUsage,         // bad command line or option -> exit 2
  kBudget,        // compress: a budget was missed -> exit 3
  kInternal,      // a bug in edgepress -> exit 1 with a plea to report it
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string message)
      : std::runtime_error(std::move(message)), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

[[noreturn]] inline void ThrowInvalid(std::string message) {
  throw Error(ErrorCode::kInvalidInput, std::move(message));
}
[[noreturn]] inline void ThrowUnsupported(std::string message) {
  throw Error(ErrorCode::kUnsupported, std::move(message));
}

// Overflow-checked arithmetic for sizes coming from files.
inline bool MulOverflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}
inline bool AddOverflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_add_overflow(a, b, out);
}

}  // namespace edgepress
