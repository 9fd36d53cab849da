// Every TorchScript fixture of tests/fixtures/make_torchscript.py imports, passes the
// verifier, and runs on the native runtime with outputs within 1e-4 (relative to the
// largest reference value) of LibTorch's own execution of the .pt; the imported graph
// exported as .onnx runs in onnxruntime to the same outputs. Skips when Debian's
// python3-torch (fixtures) or the project venv (onnxruntime) is missing.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "formats/torchscript/torchscript_import.h"
#include "ir/error.h"
#include "ir/verifier.h"
#include "runtime/session.h"
#include "tests/formats/torchscript/ts_fixtures.h"

namespace fs = std::filesystem;
using namespace edgepress;
using namespace edgepress::test_util;

namespace {


class TorchScriptImport : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    std::string skip;
    std::string err = EnsureTorchScriptFixture(GetParam(), &skip);
    if (!skip.empty()) GTEST_SKIP() << skip;
    ASSERT_EQ(err, "");
    dir_ = kTsFixtureDir + "/" + GetParam();
    inputs_ = formats::LoadNpz(dir_ + "/in.npz");
    refs_ = formats::LoadNpz(dir_ + "/ref.npz");
  }

  // Largest relative error over all outputs, each checked by name and shape.
  double Compare(const runtime::NamedTensors& got) {
    EXPECT_EQ(got.size(), refs_.size());
    double worst = 0;
    for (const auto& [name, ref] : refs_) {
      ir::Tensor t;
      for (const auto& [n, v] : got)
        if (n == name) t = v;
      EXPECT_FALSE(t.empty()) << "no output '" << name << "'";
      if (t.empty()) return 1e9;
      if (t.dtype() != ir::DType::kFloat32 && ref.dtype() == ir::DType::kFloat32) {
        ADD_FAILURE() << name << " has dtype " << ir::DTypeName(t.dtype());
        return 1e9;
      }
      double e = MaxRelativeError(t, ref);
      EXPECT_GE(e, 0) << name << ": shape mismatch";
      worst = std::max(worst, e < 0 ? 1e9 : e);
    }
    return worst;
  }

  std::string dir_;
  formats::NamedTensors inputs_, refs_;
};

TEST_P(TorchScriptImport, NativeRuntimeMatchesLibTorch) {
  std::unique_ptr<ir::Model> m =
      formats::ImportTorchScript(dir_ + "/model.pt", OptionsFromInputs(inputs_));
  ir::Verify(*m);
  auto session = runtime::Session::Create(std::shared_ptr<const ir::Model>(std::move(m)));
  double err = Compare(session->Run(inputs_));
  std::printf("[ fixture ] %s: native max relative error %.3g\n", GetParam(), err);
  EXPECT_LE(err, 1e-4);
}

TEST_P(TorchScriptImport, OnnxExportMatchesInOnnxruntime) {
  if (!FixturePythonProblem().empty()) GTEST_SKIP() << FixturePythonProblem();
  std::unique_ptr<ir::Model> m =
      formats::ImportTorchScript(dir_ + "/model.pt", OptionsFromInputs(inputs_));
  const std::string onnx = dir_ + "/imported.onnx", out = dir_ + "/ort_out.npz";
  formats::SaveOnnx(*m, onnx);
  RunResult r = RunCommand(ShellQuote(kVenvPython) + " " +
                           ShellQuote(EDGEPRESS_SOURCE_DIR "/tests/fixtures/ort_run.py") + " " +
                           ShellQuote(onnx) + " " + ShellQuote(dir_ + "/in.npz") + " " + ShellQuote(out));
  ASSERT_EQ(r.rc, 0) << r.output;
  double err = Compare(formats::LoadNpz(out));
  std::printf("[ fixture ] %s: onnxruntime max relative error %.3g\n", GetParam(), err);
  EXPECT_LE(err, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TorchScriptImport,
                         ::testing::Values("resnet18", "mobilenet_v2", "mobilenet_v3_small",
                                           "transformer_traced", "transformer_scripted", "lstm",
                                           "gru", "control_flow", "nontensor", "ops", "ops2", "digits_cnn",
                                           "digits_transformer"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace

namespace {

// Without any shape (how `edgepress inspect model.pt` imports): the model either imports
// with symbolic dims and still matches, or says it needs the input shapes.
TEST_P(TorchScriptImport, WithoutShapesMatchesOrAsksForThem) {
  std::unique_ptr<ir::Model> m;
  formats::TorchScriptImportOptions o;
  for (const auto& [name, t] : inputs_) o.input_dtypes[name] = t.dtype();
  try {
    m = formats::ImportTorchScript(dir_ + "/model.pt", o);
  } catch (const Error& e) {
    std::printf("[ fixture ] %s: without shapes: %s\n", GetParam(), e.what());
    EXPECT_NE(std::string(e.what()).find("input shapes"), std::string::npos) << e.what();
    return;
  }
  ir::Verify(*m);
  auto session = runtime::Session::Create(std::shared_ptr<const ir::Model>(std::move(m)));
  double err = Compare(session->Run(inputs_));
  std::printf("[ fixture ] %s: without shapes, native max relative error %.3g\n", GetParam(), err);
  EXPECT_LE(err, 1e-4);
}

}  // namespace
