// Helpers shared by the libFuzzer targets: a per-process scratch folder (readers that take a
// path get the input written there) and the byte-splitting convention of targets that need
// two files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "ir/error.h"

namespace edgepress::fuzz {

// Every target catches edgepress::Error (the expected answer to bad input) and nothing else:
// another exception type escapes to libFuzzer and is reported. kInternal ("a bug in
// edgepress") is a finding too: this aborts with the message.
void ExpectedError(const Error& e);
// Aborts (a finding) with `what` and the error's message.
[[noreturn]] void Finding(const char* what, const Error& e);

// A folder private to this fuzzer process, created on first use and removed at exit.
const std::string& ScratchDir();
// Writes `bytes` to ScratchDir()/name (replacing it) and returns the path.
std::string WriteScratch(const std::string& name, const std::string& bytes);
// Splits an input into two files: a 4-byte little-endian length n, then n bytes of the
// first file (clamped to what is there), then the rest as the second file.
std::pair<std::string, std::string> SplitTwo(const uint8_t* data, size_t size);

}  // namespace edgepress::fuzz
