// The torch backend against the native runtime on real models (issue 9, item 2):
// tests/fixtures/make_models.py's mlp, resnet18, mobilenet_v2, BERT- and GPT-style models
// and the digits CNN/transformer of examples/digits, each as imported and after the
// default optimize pipeline (the fused FusedConv/FusedGemm/Gelu/LayerNormalization forms
// the CLI runs); quantized graphs (int8 QDQ from quantize-static, int4 MatMulNBits and
// int8 weights from quantize-weights) run too. Agreement: scaled max error (see
// torch_test_util.h) <= 1e-4 for float graphs; quantized graphs, which both runtimes
// compute with exact integer arithmetic or the same float dequantization, within 1e-4 too.
//
// EDGEPRESS_TEST_CUDA=1 runs every case on device cuda as well (scripts/gpu_check.sh).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/error.h"
#include "ir/verifier.h"
#include "passes/registry.h"
#include "runtime/session.h"
#include "runtime/torch/torch_session.h"
#include "tests/fixtures/model_fixtures.h"
#include "tests/runtime/torch/torch_test_util.h"

namespace edgepress::runtime {
namespace {

constexpr double kTol = 1e-4;

std::vector<std::string> Devices() {
  std::vector<std::string> d{"cpu"};
  const char* cuda = std::getenv("EDGEPRESS_TEST_CUDA");
  if (cuda && std::string(cuda) == "1") d.push_back("cuda");
  return d;
}

std::string TorchPipeline() {
  // The CLI's torch path: the default pipeline without fuse-qdq (tools/model_io.cc).
  std::string p = passes::kDefaultOptimizePipeline;
  size_t at = p.find("fuse-qdq,");
  if (at != std::string::npos) p.erase(at, 9);
  return p;
}

void Optimize(ir::Model& m, const std::string& pipeline) {
  passes::PassContext ctx;
  passes::RunPipeline(m, passes::ParsePipeline(pipeline), ctx);
}

// Runs `model` natively and on the torch backend for every device; returns the worst error.
// `tol`: test_util::kQdqTolerance for static QDQ graphs (see there).
double Agree(const ir::Model& model, const NamedTensors& inputs, const std::string& what,
             double tol = kTol) {
  auto native = Session::Create(std::shared_ptr<const ir::Model>(model.Clone()));
  NamedTensors want = native->Run(inputs);
  double worst = 0;
  for (const std::string& dev : Devices()) {
    TorchSessionOptions o;
    o.device = dev;
    auto ts = TorchSession::Create(std::shared_ptr<ir::Model>(model.Clone()), o);
    test_util::Agreement a = test_util::CompareOutputs(ts->Run(inputs), want);
    EXPECT_LE(a.error, tol) << what << " on " << dev << ": " << a.detail;
    std::printf("%-40s %-5s scaled max error %.3g\n", what.c_str(), dev.c_str(), a.error);
    worst = std::max(worst, a.error);
  }
  return worst;
}

NamedTensors Inputs(const std::string& npz, const ir::Model& m) {
  NamedTensors all = formats::LoadTensorFile(npz), in;
  for (auto& [name, t] : all)
    for (const ir::Value* v : m.graph->inputs())
      if (v->name() == name) in.emplace_back(name, t);
  return in;
}

class FixtureModels : public ::testing::TestWithParam<const char*> {};

TEST_P(FixtureModels, AgreesWithNativeRuntime) {
  std::string skip;
  std::string err = test_util::EnsureModelFixture(GetParam(), &skip);
  ASSERT_EQ(err, "");
  if (!skip.empty()) GTEST_SKIP() << skip;
  std::string dir = test_util::kModelFixtureDir + "/" + GetParam();
  auto model = formats::LoadOnnx(dir + "/model.onnx");
  NamedTensors in = Inputs(dir + "/in.npz", *model);
  ASSERT_FALSE(in.empty());
  Agree(*model, in, std::string(GetParam()) + " (as imported)");
  Optimize(*model, TorchPipeline());
  Agree(*model, in, std::string(GetParam()) + " (optimized)");
}

INSTANTIATE_TEST_SUITE_P(Real, FixtureModels,
                         ::testing::Values("mlp", "resnet18", "mobilenet_v2", "bert", "gpt"));

const std::string kDigits = EDGEPRESS_SOURCE_DIR "/examples/digits/";

NamedTensors DigitsBatch(const ir::Model& m, int64_t n) {
  NamedTensors all = formats::LoadTensorFile(kDigits + "eval.npz");
  for (auto& [name, t] : all)
    if (name == m.graph->inputs()[0]->name()) {
      std::vector<int64_t> shape = t.shape();
      shape[0] = n;
      ir::Tensor part(t.dtype(), shape);
      std::memcpy(part.mutable_raw(), t.raw(), part.nbytes());
      return {{name, part}};
    }
  ADD_FAILURE() << "eval.npz has no input " << m.graph->inputs()[0]->name();
  return {};
}

TEST(DigitsModels, FloatAndQuantizedAgree) {
  for (const char* name : {"digits_cnn", "digits_transformer"}) {
    auto model = formats::LoadOnnx(kDigits + name + ".onnx");
    NamedTensors in = DigitsBatch(*model, 64);
    Agree(*model, in, std::string(name) + " (as imported)");
    Optimize(*model, TorchPipeline());
    Agree(*model, in, std::string(name) + " (optimized)");
  }
}

// Quantized graphs: a QDQ int8 model (quantize-static on the digits calibration set) and
// weight-only int4 MatMulNBits / int8 DequantizeLinear models (quantize-weights).
TEST(DigitsModels, QuantizedGraphsRun) {
  struct Case {
    const char* model;
    const char* pipeline;
    const char* must_have;  // an op the quantized graph must contain
  };
  // accuracy-level=0: LibTorch runs MatMulNBits in float, so the native side must too.
  for (const Case& c :
       {Case{"digits_cnn", "quantize-static", "QuantizeLinear"},
        Case{"digits_transformer", "quantize-static", "QuantizeLinear"},
        Case{"digits_transformer", "quantize-weights{bits=4,group-size=16,accuracy-level=0}", "MatMulNBits"},
        Case{"digits_cnn", "quantize-weights{bits=8}", "DequantizeLinear"}}) {
    auto model = formats::LoadOnnx(kDigits + c.model + ".onnx");
    passes::PassContext ctx;
    ctx.data_files = {kDigits + "calib.npz"};
    passes::RunPipeline(*model, passes::ParsePipeline(c.pipeline), ctx);
    bool found = false;
    for (const ir::Node* n : model->graph->nodes()) found |= n->op_type() == c.must_have;
    ASSERT_TRUE(found) << c.model << " " << c.pipeline << " has no " << c.must_have;
    NamedTensors in = DigitsBatch(*model, 64);
    const bool qdq = std::string(c.pipeline) == "quantize-static";
    Agree(*model, in, std::string(c.model) + " " + c.pipeline,
          qdq ? test_util::kQdqTolerance : kTol);
  }
}

TEST(TorchSession, UnsupportedOpsAreListedTogetherBeforeRunning) {
  auto model = formats::LoadOnnx(kDigits + "digits_cnn.onnx");
  // Two nodes the backend cannot run: an unknown op and a known op with an unsupported mode.
  ir::Graph& g = *model->graph;
  ir::Value* x = g.inputs()[0];
  ir::Node* a = g.AddNode("NoSuchOp", {x}, {"weird"}, "weird_node", "example.domain");
  ir::Node* b = g.AddNode("BatchNormalization", {x, x, x, x, x}, {"bn_out"}, "bn_training");
  b->set_attr(ir::Attribute::Int("training_mode", 1));
  g.AddOutput(a->output(0));
  g.AddOutput(b->output(0));
  try {
    TorchSession::Create(std::shared_ptr<ir::Model>(std::move(model)));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    std::string w = e.what();
    EXPECT_NE(w.find("2 node(s)"), std::string::npos) << w;
    EXPECT_NE(w.find("weird_node"), std::string::npos) << w;
    EXPECT_NE(w.find("example.domain::NoSuchOp"), std::string::npos) << w;
    EXPECT_NE(w.find("bn_training"), std::string::npos) << w;
    EXPECT_NE(w.find("training_mode=1"), std::string::npos) << w;
  }
}

TEST(TorchSession, DeviceAndInputErrorsAreClear) {
  auto model = std::shared_ptr<ir::Model>(formats::LoadOnnx(kDigits + "digits_cnn.onnx"));
  TorchSessionOptions o;
  o.device = "tpu";
  try {
    TorchSession::Create(model, o);
    FAIL() << "expected an error for device tpu";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("tpu"), std::string::npos);
  }
  if (!TorchSession::CudaAvailable()) {
    o.device = "cuda";
    try {
      TorchSession::Create(model, o);
      FAIL() << "expected an error: no CUDA here";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
      EXPECT_NE(std::string(e.what()).find("cuda"), std::string::npos) << e.what();
    }
  }
  o.device = "cpu";
  o.trainable = {"no_such_weight"};
  EXPECT_THROW(TorchSession::Create(model, o), Error);
  o.trainable = {};
  auto ts = TorchSession::Create(model, o);
  ir::Tensor wrong(ir::DType::kFloat32, {2, 3});
  try {
    ts->Run({{"image", wrong}});
    FAIL() << "expected a shape error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("image"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ts->Run({{"not_an_input", wrong}}), Error);
}

}  // namespace
}  // namespace edgepress::runtime
