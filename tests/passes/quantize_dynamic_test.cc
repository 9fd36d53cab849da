// quantize-dynamic: MatMul/Gemm with constant float weights become com.microsoft
// DynamicQuantizeMatMul (int8 weights per column or per tensor, Gemm's alpha, beta and
// bias folded, transB transposed), outputs keep their names, the verifier passes, the
// outputs stay within a declared NMSE of fp32 (when the runtime has the kernel), the
// digits CNN keeps its accuracy, the ONNX export runs in onnxruntime and agrees with the
// native runtime, and the cases where it must not fire.
#include <gtest/gtest.h>
#include "formats/onnx/onnx.h"
#include "ir/error.h"
#include "ir/shape_inference.h"
#include "qdq_ort_util.h"
#include "qdq_test_util.h"
#include "runtime/kernel.h"

namespace edgepress::passes {
namespace {

using ir::Attribute;
using ir::DType;
using ir::GraphBuilder;

const std::string kDigits = EDGEPRESS_SOURCE_DIR "/examples/digits";

ir::Tensor Uniform(std::vector<int64_t> shape, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  ir::Tensor t(DType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  for (uint64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = d(rng);
  return t;
}

bool HasDynamicKernel() {
  auto ops = runtime::GlobalKernelRegistry().SupportedOps();
  return std::find(ops.begin(), ops.end(), "com.microsoft::DynamicQuantizeMatMul") != ops.end();
}

std::unique_ptr<ir::Model> Apply(const ir::Model& m, const std::string& pipeline,
                                 PassRun* run = nullptr) {
  auto copy = m.Clone();
  PassContext ctx;
  auto runs = RunPipeline(*copy, ParsePipeline(pipeline), ctx, /*verify=*/true);
  if (run) *run = runs.back();
  return copy;
}

// x[4, 32] -> MatMul(w1 [32, 24]) -> Relu -> Gemm(w2^T [16, 24], c [16], alpha, beta) -> y
std::unique_ptr<ir::Model> Mlp() {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {4, 32});
  auto* h = b.Op("MatMul", {x, b.Const("w1", Uniform({32, 24}, 1))}, {}, "fc1");
  auto* r = b.Op("Relu", {h}, {}, "relu");
  b.Output(b.Op("Gemm", {r, b.Const("w2", Uniform({16, 24}, 2)), b.Const("c", Uniform({16}, 3))},
                {Attribute::Int("transB", 1), Attribute::Float("alpha", 0.5f),
                 Attribute::Float("beta", 2.f)},
                "fc2"));
  auto m = b.Build();
  ir::InferShapes(*m);
  return m;
}

TEST(QuantizeDynamic, MatMulAndGemmBecomeDynamicQuantizeMatMul) {
  auto m = Mlp();
  for (bool per_channel : {true, false}) {
    PassRun run;
    auto q = Apply(*m, std::string("quantize-dynamic{per-channel=") +
                           (per_channel ? "true" : "false") + "}", &run);
    EXPECT_TRUE(run.changed);
    EXPECT_EQ(run.stats["nodes-quantized"], 2);
    EXPECT_EQ(qtest::Count(*q, "DynamicQuantizeMatMul"), 2);
    EXPECT_EQ(qtest::Count(*q, "MatMul") + qtest::Count(*q, "Gemm"), 0);
    EXPECT_GE(q->OpsetVersion("com.microsoft"), 1);
    EXPECT_EQ(q->graph->outputs()[0]->name(), m->graph->outputs()[0]->name());
    const ir::Node* fc1 = q->graph->FindNode("fc1");
    ASSERT_NE(fc1, nullptr);
    EXPECT_EQ(fc1->domain(), "com.microsoft");
    EXPECT_EQ(fc1->output(0)->name(), m->graph->FindNode("fc1")->output(0)->name());
    const ir::Tensor* w2 = q->graph->FindValue("w2_quantized")->initializer();
    EXPECT_EQ(w2->dtype(), DType::kInt8);
    EXPECT_EQ(w2->shape(), (std::vector<int64_t>{24, 16}));  // transposed to [K, N]
    EXPECT_EQ(q->graph->FindValue("w2_scale")->initializer()->numel(), per_channel ? 16u : 1u);
    EXPECT_EQ(q->graph->FindValue("w2"), nullptr);
    EXPECT_EQ(q->graph->FindNode("fc2")->num_inputs(), 5u);  // beta * c folded into the bias
    if (!HasDynamicKernel()) continue;
    for (uint32_t s = 10; s < 14; ++s) {
      runtime::NamedTensors feed = {{"x", Uniform({4, 32}, s)}};
      double nmse = qtest::Nmse(qtest::RunModel(*q, feed)[0].second,
                                qtest::RunModel(*m, feed)[0].second);
      EXPECT_LT(nmse, 1e-3) << per_channel;  // declared bound: uint8 A x int8 B
    }
  }
}

TEST(QuantizeDynamic, EmbeddingTablesBecomeInt8PerRow) {
  // ids -> Gather(table [50, 16]) -> MatMul(w [16, 8]); plus a Gather of an activation.
  GraphBuilder b;
  auto* ids = b.Input("ids", DType::kInt64, {2, 3});
  auto* x = b.Input("x", DType::kFloat32, {50, 4});
  auto* e = b.Op("Gather", {b.Const("table", Uniform({50, 16}, 8)), ids}, {}, "embed");
  b.Output(b.Op("MatMul", {e, b.Const("w", Uniform({16, 8}, 9))}, {}, "proj"));
  b.Output(b.Op("Gather", {x, ids}, {}, "gather_act"));  // data is not a constant: stays
  auto m = b.Build();
  m->SetOpsetVersion("", 13);
  ir::InferShapes(*m);
  PassRun run;
  auto q = Apply(*m, "quantize-dynamic", &run);
  EXPECT_EQ(run.stats["gathers-quantized"], 1);
  EXPECT_EQ(run.stats["nodes-quantized"], 1);
  const ir::Tensor* t = q->graph->FindValue("table_quantized")->initializer();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype(), DType::kInt8);
  EXPECT_EQ(q->graph->FindValue("table_scale")->initializer()->numel(), 50u);  // one per row
  EXPECT_EQ(q->graph->FindValue("table"), nullptr);
  EXPECT_EQ(q->graph->FindNode("gather_act")->input(0)->name(), "x");
  // At load (fold-constants) the table's DequantizeLinear folds: lookups read float rows
  // instead of dequantizing the whole table per inference.
  auto folded = Apply(*q, "fold-constants");
  EXPECT_EQ(qtest::Count(*folded, "DequantizeLinear"), 0);
  EXPECT_EQ(qtest::Count(*folded, "DynamicQuantizeMatMul"), 1);
  // Without Gather in op-types the table stays float.
  PassRun only_mm;
  auto q2 = Apply(*m, "quantize-dynamic{op-types=MatMul}", &only_mm);
  EXPECT_EQ(only_mm.stats["gathers-quantized"], 0);
  EXPECT_NE(q2->graph->FindValue("table"), nullptr);
  if (!HasDynamicKernel()) return;
  std::vector<int64_t> idv = {0, 7, 49, 3, 3, 21};
  runtime::NamedTensors feed = {{"ids", ir::Tensor::FromVector(DType::kInt64, {2, 3}, idv)},
                                {"x", Uniform({50, 4}, 10)}};
  double nmse = qtest::Nmse(qtest::RunModel(*q, feed)[0].second, qtest::RunModel(*m, feed)[0].second);
  EXPECT_LT(nmse, 1e-3);  // declared bound: int8 rows and int8 weights
}

TEST(QuantizeDynamic, MustNotFire) {
  // Two activations, transA, an excluded node, a non-row Gemm C: nothing to do.
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {4, 8});
  auto* y = b.Input("y", DType::kFloat32, {8, 4});
  b.Output(b.Op("MatMul", {x, y}, {}, "act_act"));
  b.Output(b.Op("Gemm", {b.Input("xt", DType::kFloat32, {8, 4}), b.Const("w", Uniform({8, 3}, 4))},
                {Attribute::Int("transA", 1)}, "trans_a"));
  b.Output(b.Op("MatMul", {x, b.Const("w3", Uniform({8, 3}, 5))}, {}, "skip_me"));
  b.Output(b.Op("Gemm", {x, b.Const("w4", Uniform({8, 3}, 6)), b.Const("c4", Uniform({4, 3}, 7))},
                {}, "full_c"));
  auto m = b.Build();
  ir::InferShapes(*m);
  PassRun run;
  auto q = Apply(*m, "quantize-dynamic{exclude=skip_*}", &run);
  EXPECT_FALSE(run.changed);
  EXPECT_EQ(qtest::Count(*q, "DynamicQuantizeMatMul"), 0);
  EXPECT_EQ(q->OpsetVersion("com.microsoft"), 0);
  EXPECT_THROW(CreatePass("quantize-dynamic", {{"per-chanel", "true"}}), Error);
}

TEST(QuantizeDynamic, DigitsKeepAccuracyAndOnnxruntimeAgrees) {
  if (!HasDynamicKernel()) GTEST_SKIP() << "no native DynamicQuantizeMatMul kernel yet";
  auto m = formats::LoadOnnx(kDigits + "/digits_cnn.onnx");
  ir::Tensor images, labels;
  for (auto& [name, t] : formats::LoadNpz(kDigits + "/eval.npz")) {
    if (name == "image") images = t;
    if (name == "label") labels = t;
  }
  PassRun run;
  auto q = Apply(*m, "quantize-dynamic", &run);
  EXPECT_EQ(run.stats["nodes-quantized"], 2);  // the two Gemm layers; Convs stay float
  auto top1 = [&](const ir::Tensor& logits) {
    auto l = labels.ToInt64();
    int right = 0;
    for (size_t i = 0; i < l.size(); ++i) {
      const float* row = logits.data<float>() + i * 10;
      right += std::max_element(row, row + 10) - row == l[i];
    }
    return 100.0 * right / l.size();
  };
  ir::Tensor ref = qtest::RunModel(*m, {{"image", images}})[0].second;
  ir::Tensor got = qtest::RunModel(*q, {{"image", images}})[0].second;
  double nmse = qtest::Nmse(got, ref);
  std::printf("[ info ] dynamic int8 digits: top-1 fp32 %.2f%%, dynamic %.2f%%, NMSE %.3g\n",
              top1(ref), top1(got), nmse);
  EXPECT_LE(std::fabs(top1(got) - top1(ref)), 0.5);
  EXPECT_LT(nmse, 1e-3);

  std::string problem = qtest::OrtProblem();
  if (!problem.empty()) GTEST_SKIP() << problem;
  std::string dir = qtest::TempDir("ort_dynamic");
  std::string eval = kDigits + "/eval.npz";
  double range = 0;
  for (uint64_t i = 0; i < ref.numel(); ++i)
    range = std::max(range, std::fabs(double(ref.data<float>()[i])));
  // Full-range int8 weights: onnxruntime's u8s8 kernel saturates int16 pair sums on AVX2
  // without VNNI (reported); with 7-bit weights both compute the same integers.
  ir::Tensor ort = qtest::RunOrt(*q, dir, eval, "image", "all");
  ASSERT_FALSE(ort.empty());
  std::printf("[ info ] dynamic, full-range weights: native vs onnxruntime max |diff| %.4g "
              "(max |logit| %.3g), onnxruntime top-1 %.2f%%\n",
              qtest::MaxAbsDiff(got, ort), range, top1(ort));
  EXPECT_GE(top1(ort), top1(ref) - 1.0);
  auto q7 = q->Clone();
  qtest::ReduceWeightRange(*q7);
  ir::Tensor got7 = qtest::RunModel(*q7, {{"image", images}})[0].second;
  ir::Tensor ort7 = qtest::RunOrt(*q7, dir, eval, "image", "all");
  ASSERT_FALSE(ort7.empty());
  double diff = qtest::MaxAbsDiff(got7, ort7);
  double mean = 0;
  for (uint64_t i = 0; i < got7.numel(); ++i)
    mean += std::fabs(double(got7.data<float>()[i]) - ort7.data<float>()[i]);
  mean /= static_cast<double>(got7.numel());
  std::printf("[ info ] dynamic, 7-bit weights: native vs onnxruntime max |diff| %.4g, mean %.3g\n",
              diff, mean);
  // Same integer products; the run-time quantization of A is not bit-specified: its input
  // comes from float convolutions whose summation order differs between implementations
  // and ISAs (1e-6 relative), which flips the rounding of a few activations to the
  // neighbouring uint8 step: on logits of range 18 the largest difference was 0.0077
  // (scalar kernels), 0.009 (AVX-512) and 0.029 (AVX2's direct convolutions), the mean
  // 1.0e-5 to 4.5e-5. A real disagreement of the integer products (saturated pair sums,
  // a wrong zero point) moves every logit: the mean stays below 2e-5 of the range only
  // when nearly all outputs agree.
  EXPECT_LE(diff, 4e-3 * range);
  EXPECT_LE(mean, 2e-5 * range);
}

}  // namespace
}  // namespace edgepress::passes
