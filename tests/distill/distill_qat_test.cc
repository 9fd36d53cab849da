// Distillation-aware quantization (distill/fake_quant.h) on the real digits CNN.
//
// Fake quantization must reproduce the export pass: the fake-quantized weights of the
// teacher give the same logits as quantize-weights' model (int8, int4), and weights
// already on the grid come out of the pass unchanged. Training through it (straight-
// through estimator, the teacher as teacher and as the starting student) must beat
// post-training quantization of the same student: the student's accuracy before training
// IS its post-training-quantized accuracy (evaluation runs fake-quantized), and the
// exported model's native accuracy must equal what the trainer measured.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "distill/distill.h"
#include "distill/fake_quant.h"
#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "ir/error.h"
#include "passes/registry.h"
#include "runtime/session.h"
#include "runtime/torch/torch_session.h"
#include "tests/distill/digits_data.h"

namespace edgepress::distill {
namespace {

using test_util::kDigitsCnn;
using test_util::kDigitsEval;
using test_util::kDigitsTrain;

std::shared_ptr<ir::Model> Prepared(const std::string& more = "") {
  return test_util::PrepareDigitsModel(kDigitsCnn, more);
}

std::shared_ptr<ir::Model> Apply(const ir::Model& m, const std::string& pipeline) {
  std::shared_ptr<ir::Model> out = m.Clone();
  passes::PassContext ctx;
  passes::RunPipeline(*out, passes::ParsePipeline(pipeline), ctx, /*verify=*/true);
  return out;
}

ir::Tensor Logits(const ir::Model& m) {
  auto s = runtime::Session::Create(std::shared_ptr<const ir::Model>(m.Clone()));
  return s->Run({{"image", formats::LoadNpz(kDigitsEval)[0].second}})[0].second;
}

double Top1(const ir::Tensor& logits) { return test_util::DigitsTop1(logits); }

double MaxAbsDiff(const ir::Tensor& a, const ir::Tensor& b) {
  double d = 0;
  for (uint64_t i = 0; i < a.numel(); ++i)
    d = std::max(d, static_cast<double>(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
  return d;
}

// The model with every fake-quant target's weight replaced by its fake-quantized value.
std::shared_ptr<ir::Model> Snapped(const ir::Model& m, FakeQuantMode mode) {
  std::shared_ptr<ir::Model> out = m.Clone();
  for (const FakeQuantTarget& t : FindFakeQuantTargets(*out->graph)) {
    ir::Value* v = out->graph->FindValue(t.weight);
    *v->mutable_initializer() = FakeQuantize(*v->initializer(), t, mode, 32);
  }
  return out;
}

TEST(FakeQuant, TargetsAreTheWeightsTheExportQuantizes) {
  std::shared_ptr<ir::Model> m = Prepared();
  std::vector<FakeQuantTarget> t = FindFakeQuantTargets(*m->graph);
  ASSERT_EQ(t.size(), 5u);  // 3 Conv + 2 Gemm weights; biases are not targets
  int convs = 0, int4 = 0;
  for (const auto& x : t) convs += x.kind == FakeQuantTarget::Kind::kConv, int4 += x.int4;
  EXPECT_EQ(convs, 3);
  EXPECT_EQ(int4, 2);  // the Gemms become MatMulNBits under int4; Conv falls back to int8
  // Must not fire: mode none is the identity.
  const ir::Tensor& w = *m->graph->FindValue(t[0].weight)->initializer();
  EXPECT_EQ(FakeQuantize(w, t[0], FakeQuantMode::kNone, 32), w);
  EXPECT_THROW(ParseFakeQuantMode("int3"), Error);
}

TEST(FakeQuant, MatchesQuantizeWeightsAndIsItsFixedPoint) {
  std::shared_ptr<ir::Model> teacher = Prepared();
  for (auto [mode, pass] :
       {std::pair{FakeQuantMode::kInt8, "quantize-weights{bits=8}"},
        // accuracy-level 0: weight-only, what int4 fake quantization models (the pass's
        // default, level 4, also rounds the activations to int8 at run time).
        std::pair{FakeQuantMode::kInt4, "quantize-weights{bits=4,group-size=32,accuracy-level=0}"}}) {
    SCOPED_TRACE(FakeQuantModeName(mode));
    std::shared_ptr<ir::Model> fq = Snapped(*teacher, mode);
    const ir::Tensor a = Logits(*fq), b = Logits(*Apply(*teacher, pass));
    // Same grid, same values: the fake-quantized float model computes what the pass's does
    // (up to the order of float operations in the kernels).
    EXPECT_LT(MaxAbsDiff(a, b), 1e-3) << "logits range ~10";
    // Weights on the grid pass through the export unchanged.
    EXPECT_LT(MaxAbsDiff(Logits(*Apply(*fq, pass)), a), 1e-3);
  }
  // int8 fake quantization is also quantize-static's weight grid (the same quantizer).
  std::shared_ptr<ir::Model> t8 = Snapped(*teacher, FakeQuantMode::kInt8);
  for (const FakeQuantTarget& t : FindFakeQuantTargets(*t8->graph)) {
    const ir::Tensor& w = *t8->graph->FindValue(t.weight)->initializer();
    EXPECT_EQ(FakeQuantize(w, t, FakeQuantMode::kInt8, 32), w) << t.weight << " is a fixed point";
  }
}

TEST(FakeQuant, TernaryHasThreeValuesPerChannelAndKeepsZeros) {
  std::shared_ptr<ir::Model> pruned = Prepared("prune-magnitude{sparsity=0.5}");
  std::shared_ptr<ir::Model> tern = Snapped(*pruned, FakeQuantMode::kTernary);
  for (const FakeQuantTarget& t : FindFakeQuantTargets(*tern->graph)) {
    const ir::Tensor& before = *pruned->graph->FindValue(t.weight)->initializer();
    const ir::Tensor& w = *tern->graph->FindValue(t.weight)->initializer();
    // Output channels: Conv axis 0; Gemm transB=1 rows of [N, K].
    const int64_t channels = w.shape()[0], len = static_cast<int64_t>(w.numel()) / channels;
    ASSERT_TRUE(t.kind == FakeQuantTarget::Kind::kConv || t.transposed) << t.weight;
    for (int64_t c = 0; c < channels; ++c) {
      float alpha = 0;
      for (int64_t i = 0; i < len; ++i) {
        float v = w.data<float>()[c * len + i];
        if (before.data<float>()[c * len + i] == 0.f) {
          EXPECT_EQ(v, 0.f);  // pruned stays pruned
        }
        if (v == 0.f) continue;
        if (alpha == 0) alpha = std::fabs(v);
        ASSERT_EQ(std::fabs(v), alpha) << t.weight << " channel " << c;
      }
    }
  }
  // quantize-weights bits 8 stores the three values exactly (codes -127, 0, 127).
  EXPECT_LT(MaxAbsDiff(Logits(*Apply(*tern, "quantize-weights{bits=8}")), Logits(*tern)), 1e-3);
}

// Activations: the ranges quantize-static calibrates, applied through the torch backend's
// value hook, with the biases on quantize-static's int32 grid, make the float student
// compute what the int8 QDQ model computes.
TEST(FakeQuant, ActivationRangesAndBiasesReproduceQuantizeStatic) {
  std::shared_ptr<ir::Model> w8 = Snapped(*Prepared(), FakeQuantMode::kInt8);
  std::shared_ptr<ir::Model> qdq = w8->Clone();
  passes::PassContext ctx;
  ctx.data_files = {EDGEPRESS_SOURCE_DIR "/examples/digits/calib.npz"};
  passes::RunPipeline(*qdq, passes::ParsePipeline("quantize-static"), ctx, /*verify=*/true);
  std::vector<ActivationQuant> acts = ActivationQuantsOf(*qdq);
  ASSERT_EQ(acts.size(), 6u);  // the image, three conv ReLUs, the Flatten, the Gemm ReLU
  for (const ActivationQuant& a : acts) {
    EXPECT_NE(w8->graph->FindValue(a.value), nullptr) << a.value;
    EXPECT_GT(a.scale, 0.f);
  }
  std::shared_ptr<ir::Model> full = w8->Clone();
  int biases = 0;
  for (const FakeQuantTarget& t : FindFakeQuantTargets(*full->graph)) {
    auto sx =
        std::find_if(acts.begin(), acts.end(), [&](const auto& a) { return a.value == t.input; });
    ASSERT_NE(sx, acts.end()) << t.input;
    ASSERT_FALSE(t.bias.empty()) << t.weight;
    ir::Value* b = full->graph->FindValue(t.bias);
    *b->mutable_initializer() = FakeQuantizeBias(
        *b->initializer(), *full->graph->FindValue(t.weight)->initializer(), t, sx->scale);
    ++biases;
  }
  EXPECT_EQ(biases, 5);
  const ir::Tensor ref = Logits(*qdq);
  const ir::Tensor image = formats::LoadNpz(kDigitsEval)[0].second;
  auto error = [&](const ir::Model& m, std::shared_ptr<runtime::TorchValueHook> hook) {
    runtime::TorchSessionOptions so;
    so.value_hook = std::move(hook);
    ir::Tensor x = runtime::TorchSession::Create(m.Clone(), so)->Run({{"image", image}})[0].second;
    double d = 0;
    for (uint64_t i = 0; i < x.numel(); ++i)
      d += std::fabs(x.data<float>()[i] - ref.data<float>()[i]);
    return d / static_cast<double>(x.numel());
  };
  const double weights_only = error(*w8, nullptr),
               acts_only = error(*w8, ActivationFakeQuantHook(acts)),
               all = error(*full, ActivationFakeQuantHook(acts));
  std::printf(
      "int8 logits vs quantize-static, mean |diff|: weights %.3g, + activations %.3g, + biases "
      "%.3g\n",
      weights_only, acts_only, all);
  // What is left is the kernels' float order flipping a rare rounding.
  EXPECT_LT(all, 0.01 * weights_only);
}

struct Qat {
  double ptq = 0, qat = 0, exported = 0, teacher = 0;
  std::shared_ptr<ir::Model> student;  // trained, fake-quantized weights (float)
};
// Trains the teacher's own copy through `mode`, exports it with `pass`, measures natively.
Qat TrainAndExport(FakeQuantMode mode, const std::string& pass, int64_t steps) {
  std::shared_ptr<ir::Model> teacher = Prepared();
  std::shared_ptr<ir::Model> student = teacher->Clone();
  DistillOptions o;
  o.steps = steps;
  o.lr = 1e-3;
  o.warmup_steps = 10;
  o.seed = 1;
  o.fake_quant = FakeQuantModeName(mode);
  DistillResult r = Distill(teacher, student, {kDigitsTrain}, {kDigitsEval}, o);
  EXPECT_EQ(r.fake_quantized, 16 * 9 + 32 * 16 * 9 + 32 * 32 * 9 + 64 * 512 + 10 * 64);
  Qat q;
  q.teacher = r.teacher.top1;
  q.ptq = r.evals.front().top1;
  q.qat = r.best.top1;
  q.exported = Top1(Logits(*Apply(*student, pass)));
  q.student = student;
  // The trainer's "before" is the post-training quantization of the same student, as the
  // export pass makes it.
  EXPECT_NEAR(q.ptq, Top1(Logits(*Apply(*Snapped(*teacher, mode), pass))), 1.5 / 360);
  std::printf("%s: teacher %.4f, post-training %.4f, distillation-aware %.4f, exported %.4f\n",
              FakeQuantModeName(mode), q.teacher, q.ptq, q.qat, q.exported);
  return q;
}

// The ternary export is pack-ternary: the Gemms as 2-bit TernaryMatMul, the convolutions
// as 2-bit TernaryConv.
TEST(DistillQat, TernaryTrainingBeatsPostTrainingTernary) {
  const std::string pass = "pack-ternary";
  Qat q = TrainAndExport(FakeQuantMode::kTernary, pass, 300);
  EXPECT_LT(q.ptq, q.teacher - 0.02);  // the premise: ternary costs points without training
  EXPECT_GT(q.qat, q.ptq + 0.02);      // measured: 95.83% -> 99.17%
  EXPECT_GE(q.qat, q.teacher - 0.02);  // issue 11's ternary target: within 2 points
  // The quantized export is the trained fake-quant model (one image of slack for ties).
  EXPECT_NEAR(q.exported, q.qat, 1.5 / 360);
  // Every trained weight is ternary per channel, so all of them were packed, and the
  // packed model computes what the int8-code export of the same weights computes.
  std::shared_ptr<ir::Model> packed = Apply(*q.student, pass);
  int matmul = 0, conv = 0, float_ops = 0;
  for (const ir::Node* n : packed->graph->nodes()) {
    matmul += n->op_type() == "TernaryMatMul";
    conv += n->op_type() == "TernaryConv";
    float_ops += n->op_type() == "Gemm" || n->op_type() == "Conv";
  }
  EXPECT_EQ(matmul, 2);
  EXPECT_EQ(conv, 3);
  EXPECT_EQ(float_ops, 0);
  EXPECT_LT(MaxAbsDiff(Logits(*packed), Logits(*Apply(*q.student, "quantize-weights{bits=8}"))),
            1e-3);
}

TEST(DistillQat, Int4TrainingIsNotWorseAndExportsAsTrained) {
  Qat q = TrainAndExport(FakeQuantMode::kInt4, "quantize-weights{bits=4,group-size=32}", 300);
  EXPECT_GE(q.qat, q.ptq);             // measured: 99.17% -> 99.44%
  EXPECT_GE(q.qat, q.teacher - 0.01);  // issue 11's int4 target: within 1 point
  EXPECT_NEAR(q.exported, q.qat, 1.5 / 360);
}

TEST(DistillQat, BadFakeQuantOptionsAreUsageErrors) {
  DistillOptions o;
  o.steps = 1;
  o.fake_quant = "int3";
  try {
    Distill(Prepared(), Prepared(), {kDigitsTrain}, {}, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("'int3'"), std::string::npos) << e.what();
  }
  o.fake_quant = "int4";
  o.fake_quant_group = 24;
  try {
    Distill(Prepared(), Prepared(), {kDigitsTrain}, {}, o);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("power of 2"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace edgepress::distill
