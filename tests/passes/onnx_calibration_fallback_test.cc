// Calibration that degrades gracefully: with 1, 4 or many calibration samples, every
// method keeps a statically quantized model close to fp32 (output cosine >= 0.95), because
// histogram methods fall back per tensor to min/max when their statistics are too thin —
// and the pass counts those fallbacks. Models: the digits CNN on real digits, and the
// mobilenet_v2 fixture (random weights) on smooth random images.
#include <gtest/gtest.h>

#include <cmath>

#include "formats/npy/npy.h"
#include "formats/onnx/onnx.h"
#include "passes/registry.h"
#include "runtime/session.h"
#include "tests/fixtures/model_fixtures.h"

namespace edgepress::passes {
namespace {

// Cosine between the float and quantized models' first outputs over `feeds` (each a batch).
double OutputCosine(const ir::Model& fp32, const ir::Model& q, const formats::NamedTensors& feeds,
                    const std::string& input, int64_t samples) {
  auto a = runtime::Session::Create(std::shared_ptr<const ir::Model>(fp32.Clone()));
  auto b = runtime::Session::Create(std::shared_ptr<const ir::Model>(q.Clone()));
  const ir::Tensor& all = feeds[0].second;
  const uint64_t row = all.nbytes() / static_cast<uint64_t>(all.shape()[0]);
  double dot = 0, na = 0, nb = 0;
  for (int64_t i = 0; i < samples; ++i) {
    std::vector<int64_t> shape = all.shape();
    shape[0] = 1;
    ir::Tensor x(all.dtype(), shape, all.buffer(), all.offset() + row * static_cast<uint64_t>(i));
    ir::Tensor ya = a->Run({{input, x}})[0].second, yb = b->Run({{input, x}})[0].second;
    for (uint64_t k = 0; k < ya.numel(); ++k) {
      double p = ya.data<float>()[k], r = yb.data<float>()[k];
      dot += p * r, na += p * p, nb += r * r;
    }
  }
  return dot / std::sqrt(na * nb + 1e-30);
}

// Quantizes `model` with each method on the first n of `calib` for each n in `sizes`.
void ExpectEveryMethodHolds(const ir::Model& model, const std::string& input,
                            const ir::Tensor& calib, const std::vector<int64_t>& sizes,
                            const formats::NamedTensors& eval, int64_t eval_samples,
                            const std::string& dir) {
  for (int64_t n : sizes) {
    std::vector<int64_t> shape = calib.shape();
    shape[0] = n;
    ir::Tensor part(calib.dtype(), shape, calib.buffer(), calib.offset());
    std::string file = dir + "/calib" + std::to_string(n) + ".npz";
    formats::SaveNpz({{input, part}}, file);
    for (const char* method : {"minmax", "percentile", "entropy", "mse"}) {
      SCOPED_TRACE(std::string(method) + " on " + std::to_string(n) + " samples");
      std::unique_ptr<ir::Model> q = model.Clone();
      PassContext ctx;
      ctx.data_files = {file};
      auto runs = RunPipeline(*q, ParsePipeline(std::string("quantize-static{method=") + method + "}"),
                              ctx, true);
      double cos = OutputCosine(model, *q, eval, input, eval_samples);
      std::printf("calibration fallback: %s, %s on %lld samples: cosine %.4f, %lld fallbacks\n",
                  model.graph->name.c_str(), method, static_cast<long long>(n), cos,
                  static_cast<long long>(runs[0].stats["calibration-fallbacks"]));
      EXPECT_GE(cos, 0.95);
      // Too few samples for a histogram: every range is min/max, and counted.
      if (n < 8 && std::string(method) != "minmax") {
        EXPECT_GT(runs[0].stats["calibration-fallbacks"], 0);
      }
      if (std::string(method) == "minmax") {
        EXPECT_EQ(runs[0].stats["calibration-fallbacks"], 0);
      }
    }
  }
}

std::string TempDir() {
  char tmpl[] = "/tmp/ep_calib_fallback_XXXXXX";
  return mkdtemp(tmpl) ? tmpl : "/tmp";
}

TEST(CalibrationFallback, DigitsCnnKeepsCosineWithOneFourAndTwoHundredSamples) {
  const std::string dir = EDGEPRESS_SOURCE_DIR "/examples/digits";
  auto model = formats::LoadOnnx(dir + "/digits_cnn.onnx");
  formats::NamedTensors calib = formats::LoadNpz(dir + "/calib.npz");
  formats::NamedTensors eval = formats::LoadNpz(dir + "/eval.npz");
  formats::NamedTensors feeds;
  for (auto& [name, t] : eval)
    if (name == "image") feeds.emplace_back(name, t);
  ExpectEveryMethodHolds(*model, "image", calib[0].second, {1, 4, 200}, feeds, 360, TempDir());
}

TEST(CalibrationFallback, MobileNetKeepsCosineWithOneFourAndSixteenSamples) {
  std::string skip, err = test_util::EnsureModelFixture("mobilenet_v2", &skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_EQ(err, "");
  auto model = formats::LoadOnnx(test_util::kModelFixtureDir + "/mobilenet_v2/model.onnx");
  // Smooth random images (8x8 blocks of N(0,1)), 16 to calibrate and 4 to evaluate.
  ir::Tensor images(ir::DType::kFloat32, {20, 3, 224, 224});
  uint64_t state = 42;
  auto gauss = [&] {  // Box-Muller on a 64-bit LCG: reproducible without <random>'s ranges
    auto u = [&] {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      return (static_cast<double>(state >> 11) + 0.5) / 9007199254740992.0;
    };
    return std::sqrt(-2 * std::log(u())) * std::cos(6.283185307179586 * u());
  };
  float* p = images.mutable_data<float>();
  for (int64_t b = 0; b < 20 * 3; ++b)
    for (int by = 0; by < 28; ++by)
      for (int bx = 0; bx < 28; ++bx) {
        float v = static_cast<float>(gauss());
        for (int y = 0; y < 8; ++y)
          for (int x = 0; x < 8; ++x) p[(b * 224 + by * 8 + y) * 224 + bx * 8 + x] = v;
      }
  const uint64_t row = images.nbytes() / 20;
  ir::Tensor eval(ir::DType::kFloat32, {4, 3, 224, 224}, images.buffer(), row * 16);
  ExpectEveryMethodHolds(*model, "input", images, {1, 4, 16}, {{"input", eval}}, 4, TempDir());
}

}  // namespace
}  // namespace edgepress::passes
