// The torch backend against the native runtime on Debian's libonnx-testdata (node/,
// pytorch-converted/, pytorch-operator/, simple/), as tests/runtime/conformance_test.cc
// iterates it. A model counts when it imports, the native runtime plans and runs it, and
// the torch backend accepts every node; each test_data_set_N is then run on both and the
// outputs must agree (names, dtypes, shapes exactly; scaled max error <= 1e-4, see
// torch_test_util.h; integer and bool outputs exactly). Everything else is a listed skip.
//
// Each model runs in a forked child with a time limit, and the parent never touches
// LibTorch itself, so a child's OpenMP threads never meet a fork.
// EDGEPRESS_TEST_CUDA=1 runs the torch side on device cuda (scripts/gpu_check.sh).
#include <ATen/Parallel.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "formats/onnx/onnx.h"
#include "ir/error.h"
#include "runtime/session.h"
#include "runtime/torch/torch_session.h"
#include "tests/runtime/torch/torch_test_util.h"

namespace edgepress::runtime {
namespace {

const char* kRoot = "/usr/share/libonnx-testdata/data";
constexpr double kTol = 1e-4;
constexpr int kTimeoutSeconds = 60;

std::vector<std::string> ListDir(const std::string& dir, const std::string& prefix = "") {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && n.compare(0, prefix.size(), prefix) == 0) out.push_back(n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

bool Exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

std::string FirstLine(const std::string& s) {
  return s.substr(0, std::min(s.find('\n'), size_t{200}));
}

std::string Device() {
  const char* cuda = std::getenv("EDGEPRESS_TEST_CUDA");
  return cuda && std::string(cuda) == "1" ? "cuda" : "cpu";
}

// 'P' + error, 'F' + reason, 'S' + reason.
std::string RunOne(const std::string& dir) {
  std::shared_ptr<ir::Model> model;
  try {
    model = formats::LoadOnnx(dir + "/model.onnx");
  } catch (const Error& e) {
    return "Simport";
  }
  std::unique_ptr<Session> native;
  try {
    native = Session::Create(std::shared_ptr<const ir::Model>(model->Clone()));
  } catch (const Error& e) {
    return "Snative runtime has no kernel";
  }
  std::unique_ptr<TorchSession> torch;
  try {
    TorchSessionOptions o;
    o.device = Device();
    torch = TorchSession::Create(model, o);
  } catch (const Error& e) {
    std::string w = e.what();
    size_t colon = w.find(": ", w.find('\n'));
    return "Storch backend: " +
           (colon == std::string::npos ? FirstLine(w) : FirstLine(w.substr(colon + 2)));
  }
  double worst = 0;
  std::vector<std::string> sets = ListDir(dir, "test_data_set_");
  if (sets.empty()) return "Sno test data";
  for (const std::string& set : sets) {
    NamedTensors inputs;
    std::vector<const ir::Value*> declared = native->inputs();
    for (int i = 0;; ++i) {
      std::string f = dir + "/" + set + "/input_" + std::to_string(i) + ".pb";
      if (!Exists(f)) break;
      if (static_cast<size_t>(i) >= declared.size()) return "Sinitializers fed as inputs";
      try {
        inputs.emplace_back(declared[i]->name(), formats::LoadTensorProtoFile(f));
      } catch (const Error&) {
        return "Stest data";
      }
    }
    NamedTensors want;
    try {
      want = native->Run(inputs);
    } catch (const std::exception& e) {
      return "Snative runtime cannot run this data";
    }
    NamedTensors got;
    try {
      got = torch->Run(inputs);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kUnsupported)
        return "Storch backend at run time: " + FirstLine(e.what());
      return "F" + set + ": " + FirstLine(e.what());
    } catch (const std::exception& e) {
      return "F" + set + ": " + FirstLine(e.what());
    }
    test_util::Agreement a = test_util::CompareOutputs(got, want);
    if (a.error > kTol) return "F" + set + ": " + a.detail + " error " + std::to_string(a.error);
    worst = std::max(worst, a.error);
  }
  return "P" + std::to_string(worst);
}

std::string RunIsolated(const std::string& dir) {
  int fds[2];
  if (pipe(fds) != 0) return "Fpipe";
  pid_t pid = fork();
  if (pid < 0) return "Ffork";
  if (pid == 0) {
    close(fds[0]);
    alarm(kTimeoutSeconds);
    at::set_num_threads(1);
    std::string r;
    try {
      r = RunOne(dir);
    } catch (const std::exception& e) {
      r = std::string("Funcaught: ") + FirstLine(e.what());
    }
    ssize_t unused = write(fds[1], r.data(), r.size());
    (void)unused;
    _exit(0);
  }
  close(fds[1]);
  std::string msg;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return "Fsignal " + std::to_string(WTERMSIG(status));
  return msg.empty() ? "Fno result" : msg;
}

TEST(TorchConformance, AgreesWithNativeRuntime) {
  if (!Exists(kRoot)) GTEST_SKIP() << kRoot << " is missing (install libonnx-testdata)";
  int passed = 0, failed = 0, skipped = 0;
  double worst = 0;
  std::string worst_test;
  std::vector<std::string> failures;
  std::map<std::string, int> skips;
  for (const char* suite : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
    std::string sdir = std::string(kRoot) + "/" + suite;
    for (const std::string& test : ListDir(sdir)) {
      std::string dir = sdir + "/" + test;
      if (!Exists(dir + "/model.onnx")) continue;
      std::string r = RunIsolated(dir);
      std::string id = std::string(suite) + "/" + test;
      if (r[0] == 'P') {
        ++passed;
        double e = std::stod(r.substr(1));
        if (e > worst) worst = e, worst_test = id;
      } else if (r[0] == 'F') {
        ++failed;
        failures.push_back(id + ": " + r.substr(1));
      } else {
        ++skipped;
        ++skips[r.substr(1)];
      }
    }
  }
  std::printf(
      "torch backend vs native on %s: %d agree, %d disagree, %d skipped; worst scaled error %.3g "
      "(%s)\n",
      Device().c_str(), passed, failed, skipped, worst, worst_test.c_str());
  for (const std::string& f : failures) std::printf("  FAIL %s\n", f.c_str());
  std::vector<std::pair<int, std::string>> sorted;
  for (const auto& [reason, count] : skips) sorted.emplace_back(count, reason);
  std::sort(sorted.rbegin(), sorted.rend());
  for (size_t i = 0; i < sorted.size() && i < 40; ++i)
    std::printf("  skip %d: %s\n", sorted[i].first, sorted[i].second.c_str());
  EXPECT_EQ(failed, 0);
  EXPECT_GT(passed, 0);
}

}  // namespace
}  // namespace edgepress::runtime
