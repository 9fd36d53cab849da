// ONNX backend conformance on Debian's libonnx-testdata (node/, pytorch-converted/,
// pytorch-operator/, simple/); the rules are in conformance_util.h. Tests that cannot run
// are skipped and listed with the reason.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "tests/runtime/conformance_util.h"

namespace edgepress::runtime {
namespace {

using namespace conformance;

TEST(ConformanceTest, OnnxBackendTestData) {
  if (!Exists(kRoot)) GTEST_SKIP() << kRoot << " is missing (install libonnx-testdata)";
  auto start = std::chrono::steady_clock::now();
  int passed = 0, failed = 0, skipped = 0;
  std::vector<std::string> failures;
  std::map<std::string, std::vector<std::string>> skips;  // reason -> tests
  for (const char* suite : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
    std::string sdir = std::string(kRoot) + "/" + suite;
    for (const std::string& test : ListDir(sdir)) {
      std::string dir = sdir + "/" + test;
      if (!Exists(dir + "/model.onnx")) continue;
      auto known = KnownSuiteDefects().find(test);
      Result r = known != KnownSuiteDefects().end() ? Result{Outcome::kSkip, known->second}
                                                    : RunIsolated(dir);
      std::string id = std::string(suite) + "/" + test;
      switch (r.outcome) {
        case Outcome::kPass: ++passed; break;
        case Outcome::kFail:
          ++failed;
          failures.push_back(id + ": " + r.detail);
          break;
        default:
          ++skipped;
          skips[r.detail].push_back(id);
          break;
      }
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("conformance: %d passed, %d failed, %d skipped\n", passed, failed, skipped);
  std::printf("(%.1f s)\n", secs);
  if (!failures.empty()) {
    std::printf("failures:\n");
    for (const std::string& f : failures) std::printf("  FAIL %s\n", f.c_str());
  }
  if (!skips.empty()) {
    std::printf("skip reasons (count: reason: tests):\n");
    std::vector<std::pair<std::string, std::vector<std::string>>> sorted(skips.begin(), skips.end());
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
    for (const auto& [reason, tests] : sorted) {
      std::string list;
      for (size_t i = 0; i < tests.size() && i < 6; ++i) list += (i ? ", " : "") + tests[i];
      if (tests.size() > 6) list += ", ...";
      std::printf("  %zu: %s: %s\n", tests.size(), reason.c_str(), list.c_str());
    }
  }
  std::fflush(stdout);
  EXPECT_EQ(failed, 0) << "conformance failures are listed above";
}

}  // namespace
}  // namespace edgepress::runtime
