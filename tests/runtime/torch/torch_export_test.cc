// TorchScript export (issue 9, item 3): every fixture model (mlp, resnet18, mobilenet_v2,
// BERT- and GPT-style; the digits CNN and transformer, float and quantized) is written as
// a .pt, loaded by Python's torch.jit.load (Debian's /usr/bin/python3 with python3-torch)
// and run there; its outputs must agree with the native runtime's (scaled max error
// <= 1e-4, torch_test_util.h). Quantized weights stay quantized in the file: int8 weights
// and MatMulNBits' packed 4-bit blocks are buffers next to their scales. Unsupported ops
// are listed in one error; an unwritable path is an error and leaves no file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "formats/torchscript/torchscript_export.h"
#include "ir/error.h"
#include "ir/file_util.h"
#include "passes/registry.h"
#include "runtime/session.h"
#include "tests/fixtures/model_fixtures.h"
#include "tests/runtime/torch/torch_test_util.h"
#include "tests/tools/cli_run.h"

namespace edgepress::formats {
namespace {

const std::string kPython = "/usr/bin/python3";
const std::string kRunPt = EDGEPRESS_SOURCE_DIR "/tests/runtime/torch/run_pt.py";
const std::string kDigits = EDGEPRESS_SOURCE_DIR "/examples/digits/";

const std::string& PythonProblem() {
  static const std::string p = [] {
    test_util::RunResult r = test_util::RunCommand(kPython + " -c 'import torch, numpy'");
    return r.rc == 0 ? std::string() : "no Debian python3-torch: " + r.output;
  }();
  return p;
}

// Exports `model`, runs it in Python on `inputs`, compares with the native runtime.
// `tol`: test_util::kQdqTolerance for static QDQ graphs (see there).
void ExportAndCompare(const ir::Model& model, const runtime::NamedTensors& inputs,
                      const std::string& tag, double tol = 1e-4) {
  std::string dir = ::testing::TempDir() + "/pt_" + tag;
  mkdir(dir.c_str(), 0755);
  std::string pt = dir + "/model.pt", in = dir + "/in.npz", out = dir + "/out.npz";
  SaveTorchScript(model, pt);
  SaveNpz(inputs, in);
  std::string names;
  for (const auto& [n, t] : inputs) names += (names.empty() ? "" : ",") + n;
  test_util::RunResult r = test_util::RunCommand(
      kPython + " " + test_util::ShellQuote(kRunPt) + " " + test_util::ShellQuote(pt) + " " +
      test_util::ShellQuote(in) + " " + test_util::ShellQuote(out) + " " + names);
  ASSERT_EQ(r.rc, 0) << tag << ": torch.jit.load/forward failed:\n" << r.output;
  auto native = runtime::Session::Create(std::shared_ptr<const ir::Model>(model.Clone()));
  runtime::NamedTensors want = native->Run(inputs);
  NamedTensors got = LoadTensorFile(out);
  ASSERT_EQ(got.size(), want.size()) << tag;
  for (size_t i = 0; i < got.size(); ++i) got[i].first = want[i].first;
  test_util::Agreement a = test_util::CompareOutputs(got, want);
  std::printf("%-40s python torch.jit.load vs native: scaled max error %.3g (%llu bytes)\n",
              tag.c_str(), a.error, static_cast<unsigned long long>(FileSize(pt)));
  EXPECT_LE(a.error, tol) << tag << ": " << a.detail;
}

runtime::NamedTensors FeedsFor(const ir::Model& m, const std::string& npz, int64_t batch = 0) {
  runtime::NamedTensors all = LoadTensorFile(npz), in;
  for (const ir::Value* v : m.graph->inputs())
    for (auto& [name, t] : all)
      if (v->name() == name) {
        if (batch > 0 && t.shape()[0] > batch) {
          std::vector<int64_t> s = t.shape();
          s[0] = batch;
          ir::Tensor part(t.dtype(), s);
          std::memcpy(part.mutable_raw(), t.raw(), part.nbytes());
          in.emplace_back(name, part);
        } else {
          in.emplace_back(name, t);
        }
      }
  return in;
}

class ExportFixtures : public ::testing::TestWithParam<const char*> {};

TEST_P(ExportFixtures, PythonLoadsAndMatches) {
  if (!PythonProblem().empty()) GTEST_SKIP() << PythonProblem();
  std::string skip;
  ASSERT_EQ(test_util::EnsureModelFixture(GetParam(), &skip), "");
  if (!skip.empty()) GTEST_SKIP() << skip;
  std::string dir = test_util::kModelFixtureDir + "/" + GetParam();
  auto model = LoadOnnx(dir + "/model.onnx");
  ExportAndCompare(*model, FeedsFor(*model, dir + "/in.npz"), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Real, ExportFixtures,
                         ::testing::Values("mlp", "resnet18", "mobilenet_v2", "bert", "gpt"));

// After the optimize pipeline resnet18's blocks are FusedConv nodes with the residual as
// the sum input Z (fuse-conv-add): the export adds it before the activation.
TEST(ExportFixturesOptimized, Resnet18WithResidualSums) {
  if (!PythonProblem().empty()) GTEST_SKIP() << PythonProblem();
  std::string skip;
  ASSERT_EQ(test_util::EnsureModelFixture("resnet18", &skip), "");
  if (!skip.empty()) GTEST_SKIP() << skip;
  std::string dir = test_util::kModelFixtureDir + "/resnet18";
  auto model = LoadOnnx(dir + "/model.onnx");
  passes::PassContext ctx;
  passes::RunPipeline(*model, passes::ParsePipeline(passes::kDefaultOptimizePipeline), ctx);
  int sums = 0;
  for (const ir::Node* n : model->graph->nodes())
    sums += n->op_type() == "FusedConv" && n->num_inputs() > 3 && n->input(3);
  ASSERT_EQ(sums, 8);
  ExportAndCompare(*model, FeedsFor(*model, dir + "/in.npz"), "resnet18_optimized");
}

TEST(ExportDigits, FloatOptimizedAndQuantized) {
  if (!PythonProblem().empty()) GTEST_SKIP() << PythonProblem();
  struct Case {
    const char* model;
    const char* pipeline;  // "" = as imported
  };
  // accuracy-level=0: LibTorch runs MatMulNBits in float, so the native side must too.
  for (const Case& c : {Case{"digits_cnn", ""}, Case{"digits_transformer", ""},
                        Case{"digits_cnn", passes::kDefaultOptimizePipeline},
                        Case{"digits_transformer", passes::kDefaultOptimizePipeline},
                        Case{"digits_cnn", "quantize-weights{bits=8}"},
                        Case{"digits_transformer", "quantize-weights{bits=4,group-size=16,accuracy-level=0}"},
                        Case{"digits_cnn", "quantize-static"}}) {
    auto model = LoadOnnx(kDigits + c.model + ".onnx");
    if (*c.pipeline) {
      passes::PassContext ctx;
      ctx.data_files = {kDigits + "calib.npz"};
      passes::RunPipeline(*model, passes::ParsePipeline(c.pipeline), ctx);
    }
    std::string tag =
        std::string(c.model) + (*c.pipeline ? "+" : "") + std::string(c.pipeline).substr(0, 24);
    for (char& ch : tag)
      if (ch == '{' || ch == '}' || ch == ',' || ch == '=') ch = '_';
    std::string source;
    try {
      source = TorchScriptSource(*model);
    } catch (const Error& e) {
      ADD_FAILURE() << tag << ": " << e.what();
      continue;
    }
    const bool qdq = std::string(c.pipeline) == "quantize-static";
    ExportAndCompare(*model, FeedsFor(*model, kDigits + "eval.npz", 32), tag,
                     qdq ? test_util::kQdqTolerance : 1e-4);
    if (std::string(c.pipeline).rfind("quantize-weights", 0) == 0) {
      // Weights stay quantized in the file: the .pt is far smaller than the float one.
      std::string qpt = ::testing::TempDir() + "/q.pt", fpt = ::testing::TempDir() + "/f.pt";
      SaveTorchScript(*model, qpt);
      SaveTorchScript(*LoadOnnx(kDigits + c.model + ".onnx"), fpt);
      EXPECT_LT(FileSize(qpt) * 2, FileSize(fpt)) << tag;
      EXPECT_NE(
          source.find(std::string(c.pipeline).find("bits=4") != std::string::npos ? "_nbits"
                                                                                  : "_dequant"),
          std::string::npos);
    }
  }
}

TEST(ExportErrors, UnsupportedOpsListedAndNothingWritten) {
  auto model = LoadOnnx(kDigits + "digits_cnn.onnx");
  ir::Graph& g = *model->graph;
  ir::Value* x = g.inputs()[0];
  g.AddOutput(g.AddNode("Resize", {x}, {"r1"}, "resize_a")->output(0));
  g.AddOutput(g.AddNode("NoSuchOp", {x}, {"r2"}, "odd_b", "my.domain")->output(0));
  std::string pt = ::testing::TempDir() + "/never.pt";
  std::remove(pt.c_str());
  try {
    SaveTorchScript(*model, pt);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    std::string w = e.what();
    EXPECT_NE(w.find("2 node(s)"), std::string::npos) << w;
    EXPECT_NE(w.find("resize_a"), std::string::npos) << w;
    EXPECT_NE(w.find("my.domain::NoSuchOp"), std::string::npos) << w;
  }
  EXPECT_FALSE(FileExists(pt));
  auto ok = LoadOnnx(kDigits + "digits_cnn.onnx");
  EXPECT_THROW(SaveTorchScript(*ok, "/nonexistent-dir/x.pt"), Error);
}

}  // namespace
}  // namespace edgepress::formats
