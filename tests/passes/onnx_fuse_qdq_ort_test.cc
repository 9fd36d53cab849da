// fuse-qdq against onnxruntime: tests/fixtures/qdq_models.py writes a QDQ model (conv+relu,
// maxpool, nearest resize, 1x1 conv, residual add+relu, global average pool, flatten, matmul) with
// onnx.helper and records onnxruntime's output (which runs it through its own QDQ fusions,
// i.e. integer kernels). edgepress loads it, runs the default optimize pipeline (which
// ends with fuse-qdq), checks that the model became integer, and must agree with
// onnxruntime within 1 LSB of the output scale (0.06), both onnxruntime's optimised
// (integer) and unoptimised (float between Q/DQ) results. The unfused QDQ model is held to
// the same bound. The fixture's weights are 7-bit: see qdq_models.py for why onnxruntime's
// own AVX2 int8 kernels need that. Skips without the project venv.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "passes/registry.h"
#include "runtime/session.h"

namespace edgepress::passes {
namespace {

const ir::Tensor& Find(const formats::NamedTensors& t, const std::string& name) {
  for (const auto& [n, v] : t)
    if (n == name) return v;
  throw std::runtime_error("missing tensor " + name);
}

double MaxAbsDiff(const ir::Tensor& a, const ir::Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double d = 0;
  for (uint64_t i = 0; i < a.numel() && i < b.numel(); ++i)
    d = std::max(d, std::fabs(double(a.data<float>()[i]) - b.data<float>()[i]));
  return d;
}

int Count(const ir::Model& m, const std::string& op) {
  int n = 0;
  for (ir::Node* node : m.graph->nodes()) n += node->op_type() == op;
  return n;
}

TEST(FuseQdqOrtTest, AgreesWithOnnxruntimeWithin1Lsb) {
  const std::string py = std::string(EDGEPRESS_SOURCE_DIR) + "/.venv/bin/python";
  if (access(py.c_str(), X_OK) != 0) GTEST_SKIP() << "no project venv at " << py;
  if (std::system((py + " -c 'import onnxruntime, onnx' 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "onnxruntime/onnx not importable from " << py;
  const std::string dir = ::testing::TempDir() + "/edgepress_qdq_ort_" + std::to_string(getpid());
  const std::string cmd = py + " " + EDGEPRESS_SOURCE_DIR + "/tests/fixtures/qdq_models.py " + dir;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const formats::NamedTensors io = formats::LoadNpz(dir + "/qdq_net_io.npz");
  const ir::Tensor& x = Find(io, "x");
  const ir::Tensor& want = Find(io, "out_y");
  const ir::Tensor& want_unopt = Find(io, "out_y_unoptimized");

  std::shared_ptr<ir::Model> raw = formats::LoadOnnx(dir + "/qdq_net.onnx");
  auto fused = raw->Clone();
  PassContext ctx;
  RunPipeline(*fused, ParsePipeline(kDefaultOptimizePipeline), ctx, /*verify=*/true);
  EXPECT_EQ(Count(*fused, "Conv") + Count(*fused, "MatMul") + Count(*fused, "Add"), 0);
  EXPECT_EQ(Count(*fused, "QLinearConv"), 2);
  EXPECT_EQ(Count(*fused, "QLinearMatMul"), 1);
  EXPECT_EQ(Count(*fused, "QuantizeLinear"), 1);  // the model input
  for (ir::Node* n : fused->graph->nodes()) {  // the nearest Resize reads the uint8 MaxPool
    if (n->op_type() == "Resize") {
      ASSERT_NE(n->input(0)->producer(), nullptr);
      EXPECT_EQ(n->input(0)->producer()->op_type(), "MaxPool");
    }
  }
  EXPECT_EQ(Count(*fused, "Resize"), 1);

  const double lsb = 0.06;
  for (auto* m : {&raw, static_cast<std::shared_ptr<ir::Model>*>(nullptr)}) {
    std::shared_ptr<const ir::Model> model = m ? *m : std::shared_ptr<const ir::Model>(fused->Clone());
    auto session = runtime::Session::Create(model);
    const formats::NamedTensors out = session->Run({{"x", x}});
    const double d = MaxAbsDiff(Find(out, "y"), want);
    const double du = MaxAbsDiff(Find(out, "y"), want_unopt);
    EXPECT_LE(d, lsb * 1.0001) << (m ? "unfused" : "fused") << " differs by " << d / lsb << " LSB";
    EXPECT_LE(du, lsb * 1.0001) << (m ? "unfused" : "fused") << " differs by " << du / lsb
                                << " LSB from onnxruntime without graph optimisations";
    std::printf("%s: max |edgepress - onnxruntime| = %.2f LSB (optimised), %.2f LSB (not)\n",
                m ? "unfused" : "fused", d / lsb, du / lsb);
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace edgepress::passes
