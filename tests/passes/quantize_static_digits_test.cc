// quantize-static on the bundled digits CNN (examples/digits: calib.npz, 200 training
// images; eval.npz, 360 held-out images with labels): static int8 top-1 within 0.5 point
// of fp32 (99.44%), logits NMSE under a declared bound, mixed precision (exclude,
// keep-float, min-cosine) changes which layers stay float, and the ONNX export of the QDQ
// model runs in onnxruntime with outputs within 1 LSB of the native runtime's (also after
// fuse-qdq when that pass exists). onnxruntime's fused u8s8 kernels saturate on AVX2
// without VNNI, so they are compared exactly on 7-bit weights and only reported on full
// 8-bit ones. The onnxruntime part skips without the project venv.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "formats/onnx/onnx.h"
#include "calibrate/dataset.h"
#include "ir/error.h"
#include "passes/quant/smooth_quant.h"
#include "qdq_ort_util.h"
#include "qdq_test_util.h"

namespace edgepress::passes {
namespace {

const std::string kDir = EDGEPRESS_SOURCE_DIR "/examples/digits";
const std::string kModel = kDir + "/digits_cnn.onnx";
const std::string kCalib = kDir + "/calib.npz";
const std::string kEval = kDir + "/eval.npz";

struct EvalSet {
  ir::Tensor images;
  std::vector<int64_t> labels;
};

const EvalSet& Eval() {
  static const EvalSet e = [] {
    EvalSet s;
    for (auto& [name, t] : formats::LoadNpz(kEval)) {
      if (name == "image") s.images = t;
      if (name == "label") s.labels = t.ToInt64();
    }
    return s;
  }();
  return e;
}

ir::Tensor Logits(const ir::Model& m) {
  return qtest::RunModel(m, {{"image", Eval().images}})[0].second;
}

double Top1(const ir::Tensor& logits) {
  const auto& labels = Eval().labels;
  int64_t classes = logits.shape()[1], right = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* row = logits.data<float>() + i * classes;
    right += std::max_element(row, row + classes) - row == labels[i];
  }
  return 100.0 * right / labels.size();
}

const ir::Model& Fp32() {
  static const std::unique_ptr<ir::Model> m = formats::LoadOnnx(kModel);
  return *m;
}

std::unique_ptr<ir::Model> Quantize(const std::string& pipeline, PassRun* run = nullptr) {
  std::vector<PassRun> runs;
  auto q = qtest::ApplyWithData(Fp32(), pipeline, {kCalib}, &runs);
  if (run) *run = runs.back();
  return q;
}

TEST(QuantizeStaticDigits, Int8Top1WithinHalfAPointOfFp32) {
  ir::Tensor ref = Logits(Fp32());
  double fp32 = Top1(ref);
  EXPECT_NEAR(fp32, 99.44, 0.01);
  struct Case {
    std::string pipeline;
    double nmse_bound;  // declared per configuration
  };
  for (const Case& c : {Case{"quantize-static", 2e-3},
                        Case{"quantize-static{activation-type=int8}", 4e-3},
                        Case{"quantize-static{method=percentile}", 5e-3},
                        Case{"quantize-static{per-channel=false}", 4e-3}}) {
    PassRun run;
    auto q = Quantize(c.pipeline, &run);
    EXPECT_EQ(run.stats["conv-quantized"], 3) << c.pipeline;
    EXPECT_EQ(run.stats["gemm-quantized"], 2) << c.pipeline;
    qtest::ExpectCleanQdq(*q);
    ir::Tensor logits = Logits(*q);
    double top1 = Top1(logits);
    double nmse = qtest::Nmse(logits, ref);
    std::printf("[ info ] %s: top-1 fp32 %.2f%%, int8 %.2f%%, logits NMSE %.3g\n",
                c.pipeline.c_str(), fp32, top1, nmse);
    EXPECT_LE(std::fabs(top1 - fp32), 0.5) << c.pipeline;
    EXPECT_LT(nmse, c.nmse_bound) << c.pipeline;
  }
}

TEST(QuantizeStaticDigits, MixedPrecisionChangesWhichLayersStayFloat) {
  // exclude: the named Gemm keeps its float weight.
  PassRun run;
  auto ex = Quantize("quantize-static{exclude=/head/head.3/Gemm}", &run);
  EXPECT_EQ(run.stats["gemm-quantized"], 1);
  EXPECT_NE(ex->graph->FindValue("head.3.weight"), nullptr);
  EXPECT_EQ(ex->graph->FindValue("head.1.weight"), nullptr);

  // keep-float=1: the layer with the lowest SNR stays float; details list every layer.
  auto k1 = Quantize("quantize-static{keep-float=1}", &run);
  EXPECT_EQ(run.stats["kept-float-by-sensitivity"], 1);
  ASSERT_FALSE(run.details.empty());
  auto d = nlohmann::json::parse(run.details);
  ASSERT_EQ(d["layers"].size(), 5u);  // 3 Conv + 2 Gemm
  std::string kept;
  int floats = 0;
  for (const auto& l : d["layers"]) {
    EXPECT_TRUE(l.contains("snr_db") && l.contains("cosine")) << l.dump();
    if (l["float"].get<bool>()) {
      kept = l["name"].get<std::string>();
      ++floats;
    }
  }
  EXPECT_EQ(floats, 1);
  EXPECT_EQ(d["layers"][0]["name"].get<std::string>(), kept);  // sorted most sensitive first
  std::printf("[ info ] keep-float=1 keeps '%s' (SNR %.1f dB)\n", kept.c_str(),
              d["layers"][0]["snr_db"].get<double>());
  const ir::Node* n = k1->graph->FindNode(kept);
  ASSERT_NE(n, nullptr);
  EXPECT_TRUE(n->input(1)->is_initializer()) << kept << " should read its float weight";
  EXPECT_EQ(run.stats["conv-quantized"] + run.stats["gemm-quantized"], 4);

  // min-cosine above the fully quantized model's cosine keeps layers float until reached.
  double c0 = d["output_cosine_steps"][0]["output_cosine"].get<double>();
  double target = 1.0 - (1.0 - c0) / 4;
  auto mc = Quantize("quantize-static{min-cosine=" + std::to_string(target) + "}", &run);
  auto dm = nlohmann::json::parse(run.details);
  std::printf("[ info ] min-cosine %.8f (all quantized %.8f): %lld layers float, %s\n", target,
              c0, static_cast<long long>(run.stats["kept-float-by-sensitivity"]),
              dm["output_cosine_steps"].dump().c_str());
  EXPECT_GE(run.stats["kept-float-by-sensitivity"], 1);
  EXPECT_TRUE(dm["min_cosine_reached"].get<bool>());
  EXPECT_GE(dm["output_cosine_steps"].back()["output_cosine"].get<double>(), target);
  EXPECT_EQ(run.stats["min-cosine-unmet"], 0);
  // An unreachable target is reported, not an error: everything ends up float.
  Quantize("quantize-static{min-cosine=1}", &run);
  auto du = nlohmann::json::parse(run.details);
  EXPECT_GE(du["output_cosine_steps"].size(), 2u);
}

TEST(QuantizeStaticDigits, TransformerWithAndWithoutSmoothQuant) {
  // The digits transformer (pre-LN encoder: LayerNormalization -> MatMul, attention
  // MatMul of two activations, Softmax/Erf float).
  auto m = formats::LoadOnnx(kDir + "/digits_transformer.onnx");
  ir::Tensor ref = qtest::RunModel(*m, {{"image", Eval().images}})[0].second;
  double fp32 = Top1(ref);
  {
    // SmoothQuant alone keeps the float function (relative to the largest logit).
    auto s = m->Clone();
    calibrate::DataSet data = calibrate::DataSet::Open({kCalib}, *s->graph);
    SmoothQuantResult r = ApplySmoothQuant(*s, data, SmoothQuantOptions{});
    EXPECT_EQ(r.layernorm_folds, 5);  // 2x qkv, 2x fc1, head
    ir::Verify(*s);
    ir::Tensor got = qtest::RunModel(*s, {{"image", Eval().images}})[0].second;
    double scale = 0;
    for (uint64_t i = 0; i < ref.numel(); ++i)
      scale = std::max(scale, std::fabs(double(ref.data<float>()[i])));
    double rel = qtest::MaxAbsDiff(got, ref) / scale;
    std::printf("[ info ] transformer fp32 smoothed vs unsmoothed: max rel diff %.3g\n", rel);
    EXPECT_LT(rel, 1e-4);
  }
  for (std::string p : {"quantize-static", "quantize-static{smoothquant=true}",
                        "quantize-static{activation-type=int8,smoothquant=true}"}) {
    std::vector<PassRun> runs;
    auto q = qtest::ApplyWithData(*m, p, {kCalib}, &runs);
    qtest::ExpectCleanQdq(*q);
    EXPECT_GE(runs[0].stats["matmul-quantized"], 12) << p;
    ir::Tensor logits = qtest::RunModel(*q, {{"image", Eval().images}})[0].second;
    double nmse = qtest::Nmse(logits, ref);
    std::printf("[ info ] transformer %s: top-1 fp32 %.2f%%, int8 %.2f%%, logits NMSE %.3g, "
                "smoothed %lld (LayerNorm folds %lld)\n",
                p.c_str(), fp32, Top1(logits), nmse,
                static_cast<long long>(runs[0].stats["smoothed-layers"]),
                static_cast<long long>(runs[0].stats["smoothed-layernorm-folds"]));
    EXPECT_LE(std::fabs(Top1(logits) - fp32), 1.0) << p;
    EXPECT_LT(nmse, 2e-2) << p;
    if (p.find("smoothquant") != std::string::npos) {
      EXPECT_GE(runs[0].stats["smoothed-layernorm-folds"], 2) << p;
    }
  }
}

TEST(QuantizeStaticDigits, OnnxExportRunsInOnnxruntimeWithinOneLsb) {
  std::string problem = qtest::OrtProblem();
  if (!problem.empty()) GTEST_SKIP() << problem;
  auto q = Quantize("quantize-static");
  std::string dir = qtest::TempDir("ort_static");
  ir::Tensor native = Logits(*q);
  // The logits stay float (a graph output); 1 LSB is the uint8 step of their fp32 range.
  ir::Tensor ref = Logits(Fp32());
  float lo = 0, hi = 0;
  for (uint64_t i = 0; i < ref.numel(); ++i) {
    lo = std::min(lo, ref.data<float>()[i]);
    hi = std::max(hi, ref.data<float>()[i]);
  }
  double lsb = (hi - lo) / 255.0;
  // onnxruntime executing the QDQ graph as written (no QDQ fusion).
  ir::Tensor ort = qtest::RunOrt(*q, dir, kEval, "image", "basic");
  ASSERT_FALSE(ort.empty());
  double diff = qtest::MaxAbsDiff(native, ort);
  std::printf("[ info ] QDQ digits: native vs onnxruntime (QDQ as written) max |diff| %.4g, "
              "1 LSB = %.4g\n", diff, lsb);
  EXPECT_LE(diff, lsb);
  // onnxruntime's fused integer kernels: exact only without u8s8 saturation (7-bit weights;
  // see ReduceWeightRange). With full-range weights the difference is reported, not bounded.
  ir::Tensor ort_all = qtest::RunOrt(*q, dir, kEval, "image", "all");
  ASSERT_FALSE(ort_all.empty());
  std::printf("[ info ] onnxruntime fused int8, full-range weights: max |diff| to native %.4g, "
              "top-1 %.2f%% (u8s8 int16 saturation on AVX2 without VNNI)\n",
              qtest::MaxAbsDiff(native, ort_all), Top1(ort_all));
  EXPECT_GE(Top1(ort_all), Top1(ref) - 1.0);
  auto q7 = q->Clone();
  qtest::ReduceWeightRange(*q7);
  ir::Tensor native7 = Logits(*q7);
  ir::Tensor ort7 = qtest::RunOrt(*q7, dir, kEval, "image", "all");
  ASSERT_FALSE(ort7.empty());
  double diff7 = qtest::MaxAbsDiff(native7, ort7);
  std::printf("[ info ] 7-bit weights: native vs onnxruntime fused int8 max |diff| %.4g\n", diff7);
  EXPECT_LE(diff7, lsb);
  if (FindPass("fuse-qdq")) {
    for (const ir::Model* m : std::vector<const ir::Model*>{q.get(), q7.get()}) {
      auto fused = m->Clone();
      PassContext ctx;
      RunPipeline(*fused, ParsePipeline("fuse-qdq"), ctx, true);
      double fdiff = qtest::MaxAbsDiff(Logits(*fused), Logits(*m));
      std::printf("[ info ] native fused integer path (fuse-qdq) vs native QDQ max |diff| %.4g\n",
                  fdiff);
      EXPECT_LE(fdiff, lsb);
      if (m == q7.get()) {
        double odiff = qtest::MaxAbsDiff(Logits(*fused), ort7);
        std::printf("[ info ] 7-bit weights: native fused vs onnxruntime fused max |diff| %.4g\n",
                    odiff);
        EXPECT_LE(odiff, lsb);
      }
    }
  } else {
    std::printf("[ info ] fuse-qdq not registered yet: fused path not compared\n");
  }
}

}  // namespace
}  // namespace edgepress::passes
