// The machinery of the ONNX backend conformance run over Debian's libonnx-testdata
// (node/, pytorch-converted/, pytorch-operator/, simple/), shared by the conformance suite
// and the suites that run the same models after a transformation (opset upgrade). A test
// runs when its model imports and every node, subgraphs included, has a kernel; each
// test_data_set_N must then reproduce the expected outputs with the tolerances of onnx's
// backend test runner (numpy assert_allclose with rtol 1e-3, atol 1e-7; exact for integer,
// bool and string outputs; dtypes and shapes must match). Each test runs in a forked child
// with a time limit, so a crashing or hanging kernel becomes one listed failure.
#pragma once

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/onnx/onnx.h"
#include "ir/error.h"
#include "runtime/session.h"

namespace edgepress::runtime::conformance {

inline const char* kRoot = "/usr/share/libonnx-testdata/data";
inline constexpr double kRtol = 1e-3, kAtol = 1e-7;
inline constexpr int kTimeoutSeconds = 60;

inline std::vector<std::string> ListDir(const std::string& dir, const std::string& prefix = "") {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    if (n.compare(0, prefix.size(), prefix) == 0) out.push_back(n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

inline bool Exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

// input_0.pb, input_1.pb, ... in numeric order.
inline std::vector<std::string> NumberedFiles(const std::string& dir, const std::string& stem) {
  std::vector<std::string> out;
  for (int i = 0;; ++i) {
    std::string p = dir + "/" + stem + "_" + std::to_string(i) + ".pb";
    if (!Exists(p)) break;
    out.push_back(p);
  }
  return out;
}

inline std::string TypeString(const ir::Tensor& t) {
  return std::string(ir::DTypeName(t.dtype())) + ir::ShapeToString(ir::MakeShape(t.shape()));
}

// numpy has no bfloat16, so the suite stores bf16 tensors as their uint16 bit patterns:
// read those back as bf16 where the model says bf16.
inline ir::Tensor AsBFloat16IfBits(const ir::Tensor& t, ir::DType want) {
  if (t.dtype() != ir::DType::kUInt16 || want != ir::DType::kBFloat16) return t;
  return ir::Tensor(ir::DType::kBFloat16, t.shape(), t.buffer(), t.offset());
}

// Empty when `got` matches `want`; else what differs.
inline std::string CompareTensor(const ir::Tensor& got, const ir::Tensor& want) {
  if (got.dtype() != want.dtype() || got.shape() != want.shape())
    return "got " + TypeString(got) + ", expected " + TypeString(want);
  if (want.dtype() == ir::DType::kString)
    return got.strings() == want.strings() ? "" : "string values differ";
  if (!ir::IsFloat(want.dtype())) {
    if (std::memcmp(got.raw(), want.raw(), want.nbytes()) == 0) return "";
    std::vector<int64_t> a = got.ToInt64(), b = want.ToInt64();
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i] != b[i])
        return "element " + std::to_string(i) + ": got " + std::to_string(a[i]) + ", expected " +
               std::to_string(b[i]);
    return "values differ";
  }
  std::vector<double> a = got.ToDouble(), b = want.ToDouble();
  uint64_t bad = 0;
  size_t first = 0;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (a[i] == b[i]) continue;  // includes equal infinities
    double diff = std::fabs(a[i] - b[i]);
    if (diff <= kAtol + kRtol * std::fabs(b[i])) continue;
    if (!bad++) first = i;
    if (!(diff <= worst)) worst = diff;
  }
  if (!bad) return "";
  return std::to_string(bad) + " of " + std::to_string(a.size()) +
         " elements outside tolerance; max abs error " + std::to_string(worst) +
         "; first at " + std::to_string(first) + ": got " + std::to_string(a[first]) +
         ", expected " + std::to_string(b[first]);
}

inline std::string FirstLine(const std::string& s, size_t max = 300) {
  std::string l = s.substr(0, s.find('\n'));
  return l.size() > max ? l.substr(0, max) + "..." : l;
}

// Tests whose expected data contradicts the ONNX spec as the runtime (and onnxruntime)
// implement it; each stays listed as a skip with the reason.
inline const std::map<std::string, std::string>& KnownSuiteDefects() {
  static const std::map<std::string, std::string> defects = {
      {"test_cast_FLOAT_to_BFLOAT16",
       "suite data truncates f32 to bf16 (onnx 1.12 reference); the runtime rounds to "
       "nearest even as onnx >= 1.14 and onnxruntime do"},
  };
  return defects;
}

// Empty when every fed tensor fits the model's declared input type.
inline std::string InputContradiction(const NamedTensors& inputs,
                               const std::vector<const ir::Value*>& declared) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const ir::ValueType& t = declared[i]->type;
    if (!t.is_tensor() || !t.shape) continue;
    const ir::Tensor& v = inputs[i].second;
    bool ok = t.shape->size() == v.shape().size();
    for (size_t d = 0; ok && d < v.shape().size(); ++d)
      ok = !(*t.shape)[d].known() || (*t.shape)[d].value == v.shape()[d];
    if (!ok)
      return "suite data " + TypeString(v) + " contradicts the model's declared input '" +
             declared[i]->name() + "' " + t.ToString();
  }
  return "";
}

enum class Outcome : char { kPass = 'P', kFail = 'F', kSkip = 'S' };
struct Result {
  Outcome outcome;
  std::string detail;
};

// Applied to the imported model before the session is created (e.g. an opset upgrade);
// an Error it throws fails the test.
using ModelTransform = std::function<void(ir::Model&)>;

// The whole test, in-process.
inline Result RunOne(const std::string& dir, const ModelTransform& transform = {}) {
  std::unique_ptr<ir::Model> model;
  try {
    model = formats::LoadOnnx(dir + "/model.onnx");
  } catch (const Error& e) {
    return {Outcome::kSkip, "import: " + FirstLine(e.what())};
  }
  if (transform) {
    try {
      transform(*model);
    } catch (const Error& e) {
      return {Outcome::kFail, "transform: " + FirstLine(e.what())};
    }
  }
  std::unique_ptr<Session> session;
  try {
    session = Session::Create(std::shared_ptr<const ir::Model>(std::move(model)));
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kUnsupported) {
      // "N node(s) have no kernel:\n  node 'x' (Op): ..." -> the distinct ops.
      std::string w = e.what(), ops;
      size_t pos = 0;
      while ((pos = w.find(" (", pos)) != std::string::npos) {
        size_t end = w.find(')', pos);
        if (end == std::string::npos) break;
        std::string op = w.substr(pos + 2, end - pos - 2);
        if (ops.find(op) == std::string::npos) ops += (ops.empty() ? "" : ",") + op;
        pos = end;
      }
      return {Outcome::kSkip, "no kernel: " + (ops.empty() ? FirstLine(w) : ops)};
    }
    return {Outcome::kFail, "plan: " + FirstLine(e.what())};
  }
  std::vector<std::string> sets = ListDir(dir, "test_data_set_");
  if (sets.empty()) return {Outcome::kSkip, "no test data sets"};
  for (const std::string& set : sets) {
    std::string sd = dir + "/" + set;
    NamedTensors inputs;
    std::vector<const ir::Value*> declared = session->inputs();
    std::vector<std::string> in_files = NumberedFiles(sd, "input");
    if (in_files.size() > declared.size())  // initializers listed as inputs and fed anyway
      declared.assign(session->model().graph->inputs().begin(),
                      session->model().graph->inputs().end());
    if (in_files.size() > declared.size())
      return {Outcome::kFail, set + ": " + std::to_string(in_files.size()) +
                                  " input files for " + std::to_string(declared.size()) +
                                  " inputs"};
    std::vector<ir::Tensor> expected;
    try {
      for (size_t i = 0; i < in_files.size(); ++i)
        inputs.emplace_back(declared[i]->name(),
                            AsBFloat16IfBits(formats::LoadTensorProtoFile(in_files[i]),
                                             declared[i]->type.dtype));
      for (const std::string& f : NumberedFiles(sd, "output"))
        expected.push_back(formats::LoadTensorProtoFile(f));
    } catch (const Error& e) {
      return {Outcome::kSkip, "test data: " + FirstLine(e.what())};
    }
    std::string contradiction = InputContradiction(inputs, declared);
    if (!contradiction.empty()) return {Outcome::kSkip, contradiction};
    NamedTensors outputs;
    try {
      outputs = session->Run(inputs);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kUnsupported)
        return {Outcome::kSkip, "unsupported at run time: " + FirstLine(e.what())};
      return {Outcome::kFail, set + ": " + FirstLine(e.what())};
    } catch (const std::exception& e) {
      return {Outcome::kFail, set + ": " + FirstLine(e.what())};
    }
    if (outputs.size() < expected.size())
      return {Outcome::kFail, set + ": " + std::to_string(outputs.size()) + " outputs, expected " +
                                  std::to_string(expected.size())};
    for (size_t i = 0; i < expected.size(); ++i) {
      std::string diff = CompareTensor(
          outputs[i].second, AsBFloat16IfBits(expected[i], outputs[i].second.dtype()));
      if (!diff.empty())
        return {Outcome::kFail, set + ": output '" + outputs[i].first + "': " + diff};
    }
  }
  return {Outcome::kPass, ""};
}

// RunOne in a child process, so crashes and hangs are contained.
inline Result RunIsolated(const std::string& dir, const ModelTransform& transform = {}) {
  int fds[2];
  if (pipe(fds) != 0) return RunOne(dir, transform);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return RunOne(dir, transform);
  }
  if (pid == 0) {
    close(fds[0]);
    alarm(kTimeoutSeconds);
    Result r;
    try {
      r = RunOne(dir, transform);
    } catch (const std::exception& e) {
      r = {Outcome::kFail, std::string("uncaught exception: ") + FirstLine(e.what())};
    }
    std::string msg = std::string(1, static_cast<char>(r.outcome)) + r.detail;
    const char* p = msg.data();
    size_t left = msg.size();
    while (left > 0) {
      ssize_t n = write(fds[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<size_t>(n);
    }
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
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return {Outcome::kFail, sig == SIGALRM ? "timed out after " + std::to_string(kTimeoutSeconds) + " s"
                                           : "crashed with signal " + std::to_string(sig)};
  }
  if (msg.empty()) return {Outcome::kFail, "child exited without a result"};
  return {static_cast<Outcome>(msg[0]), msg.substr(1)};
}

}  // namespace edgepress::runtime::conformance
