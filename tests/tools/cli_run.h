// Runs the edgepress CLI (or any command) from a test and captures its exit code and
// combined output.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace edgepress::test_util {

struct RunResult {
  int rc = -1;
  std::string output;
};

inline std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

inline RunResult RunCommand(const std::string& cmd) {
  RunResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  int status = ::pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

inline std::string CliPath() { return EDGEPRESS_CLI; }

}  // namespace edgepress::test_util
