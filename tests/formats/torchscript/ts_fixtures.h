// The TorchScript fixtures of tests/fixtures/make_torchscript.py, exported on demand into
// EDGEPRESS_BINARY_DIR/fixtures/torchscript/<name>/{model.pt, in.npz, ref.npz} with
// Debian's python3-torch, behind one lock per fixture and a stamp of the script's hash
// (as tests/fixtures/model_fixtures.h does for the ONNX fixtures).
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "formats/npy/npy.h"
#include "formats/torchscript/torchscript_import.h"
#include "ir/file_util.h"
#include "tests/fixtures/model_fixtures.h"

namespace edgepress::test_util {

inline const std::string kSystemPython = "/usr/bin/python3";
inline const std::string kTsFixtureDir = EDGEPRESS_BINARY_DIR "/fixtures/torchscript";

inline const std::string& TorchPythonProblem() {
  static const std::string problem = [] {
    if (access(kSystemPython.c_str(), X_OK) != 0) return "no " + kSystemPython;
    RunResult r = RunCommand(ShellQuote(kSystemPython) + " -c 'import numpy, torch, torchvision, onnx'");
    if (r.rc != 0) return "python3 lacks numpy/torch/torchvision/onnx: " + r.output;
    return std::string();
  }();
  return problem;
}

// "" when kTsFixtureDir/<name> holds the current fixture; *skip says why it cannot be
// made here; otherwise the export's error.
inline std::string EnsureTorchScriptFixture(const std::string& name, std::string* skip) {
  const std::string script = EDGEPRESS_SOURCE_DIR "/tests/fixtures/make_torchscript.py";
  mkdir((EDGEPRESS_BINARY_DIR "/fixtures"), 0755);
  mkdir(kTsFixtureDir.c_str(), 0755);
  FileLock lock(kTsFixtureDir + "/" + name + ".lock");
  if (!lock.ok()) return "cannot lock " + kTsFixtureDir + "/" + name + ".lock";
  const std::string folder = kTsFixtureDir + "/" + name;
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : ReadFileToString(script)) h = (h ^ ch) * 1099511628211ull;
  const std::string want = std::to_string(h);
  bool fresh = FileExists(folder + "/script.hash") && ReadFileToString(folder + "/script.hash") == want;
  for (const char* f : {"/model.pt", "/in.npz", "/ref.npz"}) fresh = fresh && FileExists(folder + f);
  if (fresh) return "";
  if (!TorchPythonProblem().empty()) {
    *skip = TorchPythonProblem();
    return "";
  }
  RunResult r = RunCommand(ShellQuote(kSystemPython) + " " + ShellQuote(script) + " " +
                           ShellQuote(kTsFixtureDir) + " --only " + name);
  if (r.rc == 77) {  // the script's "cannot be made here" (e.g. silero-vad not installed)
    *skip = r.output;
    return "";
  }
  if (r.rc != 0)
    return "make_torchscript.py --only " + name + " failed (exit " + std::to_string(r.rc) + "):\n" + r.output;
  WriteFileAtomic(folder + "/script.hash", want);
  return "";
}

// Import options that describe the fixture's inputs exactly (shapes and dtypes from
// in.npz), as the CLI does from a data file.
inline formats::TorchScriptImportOptions OptionsFromInputs(const formats::NamedTensors& inputs) {
  formats::TorchScriptImportOptions o;
  for (const auto& [name, t] : inputs) {
    o.input_shapes[name] = t.shape();
    o.input_dtypes[name] = t.dtype();
  }
  return o;
}

// max |a - b| / max |b| over all elements (0 for two empty tensors); -1 on a shape or
// dtype mismatch.
inline double MaxRelativeError(const ir::Tensor& got, const ir::Tensor& ref) {
  if (got.shape() != ref.shape()) return -1;
  std::vector<double> a = got.ToDouble(), b = ref.ToDouble();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return scale == 0 ? diff : diff / scale;
}

}  // namespace edgepress::test_util
