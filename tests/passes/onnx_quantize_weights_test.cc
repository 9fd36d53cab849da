// quantize-weights exported to ONNX and run by onnxruntime (the interop check): int8 QDQ
// and int4 MatMulNBits models must give what the float reference of the quantized weights
// gives (edgepress's own evaluation) within 1e-4 relative. On the bert/gpt fixtures that
// tests/fixtures/make_models.py exports (tests/fixtures/model_fixtures.h), the quantized model's outputs in onnxruntime are compared with the
// fp32 outputs and the sizes are reported. Skips without the project venv.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "tests/fixtures/model_fixtures.h"
#include "tests/tools/cli_run.h"
#include "formats/npy/npy.h"
#include "ir/file_util.h"
#include "quant_test_util.h"
#include "runtime/session.h"
#include "tools/model_io.h"

namespace edgepress::passes {
namespace {

using ir::DType;
using ir::GraphBuilder;
using testing::RandomTensor;

const std::string kPython = EDGEPRESS_SOURCE_DIR "/.venv/bin/python";
const std::string kScript = EDGEPRESS_SOURCE_DIR "/tests/fixtures/ort_run.py";

std::string PythonProblem() {
  static const std::string problem = [] {
    if (access(kPython.c_str(), X_OK) != 0) return "no project venv at " + kPython;
    auto r = test_util::RunCommand(test_util::ShellQuote(kPython) +
                                   " -c 'import numpy, onnxruntime'");
    return r.rc == 0 ? std::string() : "the venv lacks numpy/onnxruntime: " + r.output;
  }();
  return problem;
}

// Saves `m` as ONNX, runs it in onnxruntime on `feeds`, returns its outputs by name.
std::map<std::string, ir::Tensor> RunOrt(const ir::Model& m,
                                         const std::map<std::string, ir::Tensor>& feeds,
                                         const std::string& dir) {
  std::string model = dir + "/model.onnx", in = dir + "/in.npz", out = dir + "/out.npz";
  tools::SaveModel(m, model);
  formats::NamedTensors arrays(feeds.begin(), feeds.end());
  formats::SaveNpz(arrays, in);
  auto r = test_util::RunCommand(test_util::ShellQuote(kPython) + " " +
                                 test_util::ShellQuote(kScript) + " " + model + " " + in + " " + out);
  EXPECT_EQ(r.rc, 0) << r.output;
  std::map<std::string, ir::Tensor> result;
  if (r.rc != 0) return result;
  for (auto& [name, t] : formats::LoadNpz(out)) result[name] = t;
  return result;
}

std::unique_ptr<ir::Model> Quantize(const ir::Model& m, const std::string& pipeline,
                                    PassContext& ctx, PassRun* run = nullptr) {
  auto copy = m.Clone();
  auto runs = RunPipeline(*copy, ParsePipeline(pipeline), ctx, /*verify=*/true);
  if (run) *run = runs.back();
  return copy;
}

TEST(QuantizeWeightsOnnx, OnnxruntimeAgreesWithTheQuantizedWeights) {
  if (!PythonProblem().empty()) GTEST_SKIP() << PythonProblem();
  testing::ScratchDir dir;
  // Rank-3 MatMul input (K=200: a partial last block), a Gemm with transB, alpha, beta.
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2, 5, 200});
  auto* h = b.Op("MatMul", {x, b.Const("w1", RandomTensor({200, 96}, 7))}, {}, "fc1");
  b.Output(b.Op("MatMul", {b.Op("Relu", {h}), b.Const("w2", RandomTensor({96, 40}, 8))}, {}, "fc2"));
  auto* g = b.Input("g", DType::kFloat32, {3, 64});
  b.Output(b.Op("Gemm", {g, b.Const("wg", RandomTensor({48, 64}, 9)), b.Const("c", RandomTensor({48}, 10))},
                {ir::Attribute::Int("transB", 1), ir::Attribute::Float("alpha", 0.75f),
                 ir::Attribute::Float("beta", 1.5f)}, "gemm"));
  auto m = b.Build();
  ir::InferShapes(*m);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({2, 5, 200}, 1)},
                                          {"g", RandomTensor({3, 64}, 2)}};
  // accuracy-level=0: float activations, both runtimes reproduce the codes; the default
  // accuracy-level=4: both quantize A to int8 per block (onnxruntime's CompInt8), so they
  // agree with each other but only within that rounding with the float reference.
  for (std::string p : {"quantize-weights", "quantize-weights{symmetric=false}",
                        "quantize-weights{bits=4,accuracy-level=0}",
                        "quantize-weights{bits=4,symmetric=false,group-size=64,accuracy-level=0}",
                        "quantize-weights{bits=4,group-size=16,accuracy-level=0}",
                        "quantize-weights{bits=4}",
                        "quantize-weights{bits=4,symmetric=false,group-size=64}"}) {
    PassContext ctx;
    auto q = Quantize(*m, p, ctx);
    auto ort = RunOrt(*q, feeds, dir.path());
    ASSERT_EQ(ort.size(), 2u) << p;
    auto ref = testing::Evaluate(*testing::Materialize(*q), feeds);
    const bool int8_a = p.find("bits=4") != std::string::npos &&
                        p.find("accuracy-level=0") == std::string::npos;
    double err = testing::MaxRelError(ort, ref);
    EXPECT_LT(err, int8_a ? 2e-2 : 1e-4) << p;
    double native = testing::MaxRelError(testing::Evaluate(*q, feeds), ort);
    EXPECT_LT(native, int8_a ? 1e-3 : 1e-4) << p << ": native runtime vs onnxruntime";
    std::printf("[ info ] %s: max rel. error onnxruntime vs float reference %.2e, native vs onnxruntime %.2e\n",
                p.c_str(), err, native);
  }
}

// The fixture's quantized model in onnxruntime against its fp32 outputs.
// `int8_a`: the pipeline writes MatMulNBits with accuracy_level 4, which both runtimes run
// with int8 activations; they round A's codes at a few different points, which a deep model
// amplifies, so they are compared by NMSE rather than element by element.
void CheckFixture(const std::string& name, const std::string& pipeline, double max_nmse,
                  bool int8_a = false) {
  std::string skip;
  ASSERT_EQ(test_util::EnsureModelFixture(name, &skip), "");
  if (!skip.empty()) GTEST_SKIP() << skip;
  if (!PythonProblem().empty()) GTEST_SKIP() << PythonProblem();
  const std::string folder = test_util::kModelFixtureDir + "/" + name;
  testing::ScratchDir dir;
  auto m = tools::LoadModel(folder + "/model.onnx");
  PassContext ctx;
  ctx.data_files = {folder + "/in.npz"};
  PassRun run;
  auto q = Quantize(*m, pipeline, ctx, &run);
  std::map<std::string, ir::Tensor> feeds, want;
  for (auto& [k, t] : formats::LoadNpz(folder + "/in.npz")) feeds[k] = t;
  for (auto& [k, t] : formats::LoadNpz(folder + "/ort.npz")) want[k] = t;
  auto got = RunOrt(*q, feeds, dir.path());
  ASSERT_EQ(got.size(), want.size());
  // The native runtime runs the same quantized model (DequantizeLinear, MatMulNBits).
  std::shared_ptr<const ir::Model> shared = q->Clone();
  auto session = runtime::Session::Create(shared);
  std::map<std::string, ir::Tensor> native;
  for (auto& [k, t] : session->Run(runtime::NamedTensors(feeds.begin(), feeds.end()))) native[k] = t;
  double agree = int8_a ? testing::Nmse(native, got) : testing::MaxRelError(native, got);
  EXPECT_LT(agree, 1e-4) << name << " " << pipeline
                                         << ": native runtime vs onnxruntime";
  double nmse = testing::Nmse(got, want);
  std::string stats;
  for (auto& [k, v] : run.stats) stats += " " + k + "=" + std::to_string(v);
  std::printf("[ info ] %s %s: NMSE vs fp32 %.3g, max scaled error %.3g, native vs onnxruntime "
              "%.2e, bytes %.3f MB -> %.3f MB (%.3f);%s\n",
              name.c_str(), pipeline.c_str(), nmse, testing::MaxRelError(got, want), agree,
              run.stats["bytes-before"] / 1e6, run.stats["bytes-after"] / 1e6,
              double(run.stats["bytes-after"]) / run.stats["bytes-before"], stats.c_str());
  EXPECT_LT(nmse, max_nmse) << name << " " << pipeline;
}

TEST(QuantizeWeightsOnnx, BertInt8) { CheckFixture("bert", "quantize-weights", 1e-3); }
TEST(QuantizeWeightsOnnx, BertInt4) {
  CheckFixture("bert", "quantize-weights{bits=4,accuracy-level=0}", 2e-2);
  CheckFixture("bert", "quantize-weights{bits=4}", 2e-2, /*int8_a=*/true);
}
TEST(QuantizeWeightsOnnx, GptInt8) { CheckFixture("gpt", "quantize-weights", 1e-3); }
TEST(QuantizeWeightsOnnx, GptInt4) {
  CheckFixture("gpt", "quantize-weights{bits=4,accuracy-level=0}", 2e-2);
  CheckFixture("gpt", "quantize-weights{bits=4}", 2e-2, /*int8_a=*/true);
}
// The calibration data is the fixture's own input (gpt: one sample of 64 tokens), so the
// GPTQ/AWQ errors are in-sample.
TEST(QuantizeWeightsOnnx, GptInt4Gptq) {
  CheckFixture("gpt", "quantize-weights{bits=4,method=gptq}", 2e-2, /*int8_a=*/true);
}
TEST(QuantizeWeightsOnnx, GptInt4Awq) {
  CheckFixture("gpt", "quantize-weights{bits=4,awq=true}", 2e-2, /*int8_a=*/true);
}
TEST(QuantizeWeightsOnnx, BertCastFp16) { CheckFixture("bert", "cast-weights", 1e-5); }
TEST(QuantizeWeightsOnnx, BertCastBf16) { CheckFixture("bert", "cast-weights{dtype=bf16}", 1e-3); }

}  // namespace
}  // namespace edgepress::passes
