// quantize-weights and its math (quant_util, weight_quant): error bounds of per-channel
// int8 and group-wise int4 rounding, the MatMulNBits layout, GPTQ against RTN on
// correlated inputs, AWQ never worse than RTN, the pass on small models (statistics,
// verifier, NMSE of outputs, size), and the cases where it must not fire. Quantized models
// run on the native DequantizeLinear/MatMulNBits kernels, checked against Materialize()
// (the float weights the codes stand for) within 1e-4.
#include <gtest/gtest.h>

#include <random>

#include "calibrate/dataset.h"
#include "formats/npy/npy.h"
#include "ir/error.h"
#include "quant_test_util.h"
#include "runtime/session.h"

namespace edgepress::passes {
namespace {

using ir::DType;
using ir::GraphBuilder;
using testing::Evaluate;
using testing::Materialize;
using testing::Nmse;
using testing::RandomTensor;

// --- quant_util -----------------------------------------------------------------

TEST(QuantUtil, ChooseQParamsIncludesZeroAndHandlesDegenerateRanges) {
  quant::QParams p = quant::ChooseQParams(1.f, 3.f, DType::kUInt8, false);  // widened to [0, 3]
  EXPECT_FLOAT_EQ(p.scale, 3.f / 255);
  EXPECT_EQ(p.zero_point, 0);
  p = quant::ChooseQParams(-2.f, 1.f, DType::kInt8, true);
  EXPECT_FLOAT_EQ(p.scale, 2.f / 127);
  EXPECT_EQ(p.zero_point, 0);
  p = quant::ChooseQParams(-1.f, 1.f, DType::kUInt8, true);
  EXPECT_EQ(p.zero_point, 128);
  p = quant::ChooseQParams(-1.f, 3.f, DType::kInt8, false);
  EXPECT_FLOAT_EQ(p.scale, 4.f / 255);
  EXPECT_EQ(quant::QuantizeValue(0.f, p, -128, 127), p.zero_point);  // 0 is exact
  p = quant::ChooseQParams(0.f, 0.f, DType::kInt8, false);
  EXPECT_EQ(p.scale, 1.f);
  EXPECT_EQ(quant::QuantizeValue(0.f, p, -128, 127), p.zero_point);
  EXPECT_THROW(quant::ChooseQParams(0.f, INFINITY, DType::kInt8, true), Error);
  EXPECT_THROW(quant::ChooseQParams(0.f, 1.f, DType::kFloat32, true), Error);
}

TEST(QuantUtil, QuantizeRoundsHalfToEvenAndSaturates) {
  quant::QParams p{1.f, 0};
  EXPECT_EQ(quant::QuantizeValue(2.5f, p, -128, 127), 2);
  EXPECT_EQ(quant::QuantizeValue(3.5f, p, -128, 127), 4);
  EXPECT_EQ(quant::QuantizeValue(-2.5f, p, -128, 127), -2);
  EXPECT_EQ(quant::QuantizeValue(1000.f, p, -128, 127), 127);
  EXPECT_EQ(quant::QuantizeValue(-1000.f, p, -127, 127), -127);
  EXPECT_FLOAT_EQ(quant::DequantizeValue(5, {0.5f, 3}), 1.f);
}

TEST(QuantUtil, MatchGlob) {
  EXPECT_TRUE(quant::MatchGlob("*", ""));
  EXPECT_TRUE(quant::MatchGlob("layer.*.fc?", "layer.3.fc1"));
  EXPECT_FALSE(quant::MatchGlob("layer.*.fc?", "layer.3.fc10"));
  EXPECT_TRUE(quant::MatchGlob("*attn*", "blocks/0/attn/q"));
  EXPECT_FALSE(quant::MatchGlob("lm_head", "lm_head2"));
  EXPECT_TRUE(quant::MatchGlob("a*b*c", "axxbyyc"));
  EXPECT_FALSE(quant::MatchGlob("a*b*c", "axxbyy"));
  EXPECT_TRUE(quant::MatchAnyGlob({"x", "fc*"}, "fc2"));
  EXPECT_FALSE(quant::MatchAnyGlob({}, "fc2"));
}

TEST(QuantUtil, PerChannelInt8ErrorBound) {
  // Columns of very different magnitude: per-channel scales keep each column's error
  // relative to its own range.
  ir::Tensor w = RandomTensor({64, 48}, 3);
  for (int64_t k = 0; k < 64; ++k)
    for (int64_t n = 0; n < 48; ++n) w.mutable_data<float>()[k * 48 + n] *= std::pow(10.f, n % 4 - 2);
  for (bool sym : {true, false}) {
    quant::QuantizedTensor q = quant::QuantizeWeightPerChannel(w, 1, sym, "w");
    ASSERT_EQ(q.data.dtype(), DType::kInt8);
    ASSERT_EQ(q.scale.shape(), std::vector<int64_t>{48});
    ir::Tensor dq = quant::Dequantize(q);
    for (int64_t n = 0; n < 48; ++n) {
      float maxabs = 0, maxerr = 0;
      for (int64_t k = 0; k < 64; ++k) {
        float a = w.data<float>()[k * 48 + n], b = dq.data<float>()[k * 48 + n];
        maxabs = std::max(maxabs, std::fabs(a));
        maxerr = std::max(maxerr, std::fabs(a - b));
      }
      float s = q.scale.data<float>()[n];
      EXPECT_LE(maxerr, 0.5f * s * (1 + 1e-5f)) << "column " << n;
      // Relative to the column range: at most half a step of 254 (255) steps.
      EXPECT_LE(maxerr / maxabs, (sym ? 1.0 / 127 : 2.0 / 255) * 0.5 + 1e-6) << "column " << n;
      if (sym) {
        EXPECT_EQ(q.zero_point.data<int8_t>()[n], 0);
      }
    }
  }
  EXPECT_THROW(quant::QuantizeWeightPerChannel(w, 2, true, "w"), Error);
}

// --- weight_quant ---------------------------------------------------------------

TEST(WeightQuant, Int4GroupwiseErrorBoundAndPacking) {
  for (int64_t K : {256, 100}) {  // 100: a partial last block
    ir::Tensor w = RandomTensor({K, 24}, 5);
    for (int64_t group : {32, 64, 128}) {
      for (bool sym : {true, false}) {
        wq::Scheme s{4, group, sym};
        wq::QuantizedMatrix q = wq::QuantizeRtn(w.data<float>(), K, 24, s);
        std::vector<float> dq = q.Dequantize();
        int64_t nb = q.blocks();
        ASSERT_EQ(nb, (K + group - 1) / group);
        for (int64_t k = 0; k < K; ++k)
          for (int64_t n = 0; n < 24; ++n) {
            float sc = std::fabs(q.scales[n * nb + k / group]);
            float err = std::fabs(w.data<float>()[k * 24 + n] - dq[k * 24 + n]);
            // Symmetric blocks map the largest magnitude to code 0 (-8 steps); the other
            // sign saturates at +7 steps, so its error is at most one step.
            ASSERT_LE(err, (sym ? 1.0f : 0.5f) * sc * (1 + 1e-5f))
                << "K=" << K << " group=" << group << " sym=" << sym;
            ASSERT_GE(q.codes[k * 24 + n], 0);
            ASSERT_LE(q.codes[k * 24 + n], 15);
          }
        // The MatMulNBits tensors hold exactly these codes.
        wq::NBitsTensors t = wq::PackMatMulNBits(q);
        EXPECT_EQ(t.b.shape(), (std::vector<int64_t>{24, nb, group / 2}));
        EXPECT_EQ(t.scales.shape(), (std::vector<int64_t>{24 * nb}));
        EXPECT_EQ(t.zero_points.empty(), sym);
        if (!sym) {
          EXPECT_EQ(t.zero_points.numel(), uint64_t(24 * ((nb + 1) / 2)));
        }
        std::vector<float> back = wq::UnpackMatMulNBits(t.b, t.scales, sym ? nullptr : &t.zero_points,
                                                        K, 24, group);
        EXPECT_EQ(back, dq);
      }
    }
  }
}

TEST(WeightQuant, PackingLayoutMatchesTheContribOpSpec) {
  // K=4, N=1, one block of 16 (padded): codes 1,2,3,4 -> bytes 0x21, 0x43; zero point 9.
  wq::QuantizedMatrix q;
  q.K = 4;
  q.N = 1;
  q.group = 16;
  q.bits = 4;
  q.symmetric = false;
  q.codes = {1, 2, 3, 4};
  q.scales = {0.5f};
  q.zero_points = {9};
  wq::NBitsTensors t = wq::PackMatMulNBits(q);
  ASSERT_EQ(t.b.numel(), 8u);
  EXPECT_EQ(t.b.data<uint8_t>()[0], 0x21);
  EXPECT_EQ(t.b.data<uint8_t>()[1], 0x43);
  EXPECT_EQ(t.b.data<uint8_t>()[2], 0x99);  // padding holds the zero point
  EXPECT_EQ(t.zero_points.data<uint8_t>()[0], 0x09);
}

// Correlated input rows: x = z·A with a random mixing A and channel scales spread over
// two decades, as activations of real layers are.
std::vector<float> CorrelatedRows(int64_t rows, int64_t K, uint32_t seed, uint32_t mix_seed = 99) {
  std::mt19937 rng(mix_seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> a(K * K);
  for (float& v : a) v = nd(rng);
  std::vector<float> chan(K);
  for (int64_t k = 0; k < K; ++k) chan[k] = std::pow(10.f, (k % 7) / 3.f - 1.f);
  std::mt19937 r2(seed);
  std::vector<float> x(rows * K, 0.f), z(K);
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : z) v = nd(r2);
    for (int64_t i = 0; i < 8; ++i)  // low-rank: 8 latent factors dominate
      for (int64_t k = 0; k < K; ++k) x[r * K + k] += z[i] * a[i * K + k] * chan[k];
    for (int64_t k = 0; k < K; ++k) x[r * K + k] += 0.1f * z[k] * chan[k];
  }
  return x;
}

std::vector<double> SecondMoment(const std::vector<float>& x, int64_t K) {
  int64_t rows = static_cast<int64_t>(x.size()) / K;
  std::vector<double> h(K * K, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < K; ++j) h[i * K + j] += double(x[r * K + i]) * x[r * K + j];
  return h;
}

TEST(WeightQuant, GptqHasLowerOutputErrorThanRtn) {
  const int64_t K = 128, N = 64;
  ir::Tensor w = RandomTensor({K, N}, 11);
  std::vector<float> calib = CorrelatedRows(1024, K, 1);
  std::vector<float> test = CorrelatedRows(512, K, 2);  // held out, same distribution
  std::vector<double> h = SecondMoment(calib, K);
  for (wq::Scheme s : {wq::Scheme{4, 32, true}, wq::Scheme{4, 64, false}, wq::Scheme{8, 0, true}}) {
    auto rtn = wq::QuantizeRtn(w.data<float>(), K, N, s);
    bool fell_back = true;
    auto gptq = wq::QuantizeGptq(w.data<float>(), K, N, s, h, 0.01, &fell_back);
    EXPECT_FALSE(fell_back);
    double e_rtn = wq::OutputError(w.data<float>(), rtn.Dequantize(), K, N, test.data(), 512);
    double e_gptq = wq::OutputError(w.data<float>(), gptq.Dequantize(), K, N, test.data(), 512);
    // Declared: GPTQ removes at least a third of RTN's output error on correlated inputs.
    EXPECT_LT(e_gptq, 0.67 * e_rtn) << "bits=" << s.bits << " rtn " << e_rtn << " gptq " << e_gptq;
  }
}

// Gauss-Jordan inverse of a small symmetric positive definite matrix.
std::vector<double> Inverse(std::vector<double> a, int64_t n) {
  std::vector<double> inv(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i) inv[i * n + i] = 1;
  for (int64_t c = 0; c < n; ++c) {
    double p = a[c * n + c];
    for (int64_t j = 0; j < n; ++j) a[c * n + j] /= p, inv[c * n + j] /= p;
    for (int64_t r = 0; r < n; ++r) {
      if (r == c) continue;
      double f = a[r * n + c];
      for (int64_t j = 0; j < n; ++j) a[r * n + j] -= f * a[c * n + j], inv[r * n + j] -= f * inv[c * n + j];
    }
  }
  return inv;
}

TEST(WeightQuant, GptqMatchesTheOptimalBrainSurgeonUpdate) {
  // The paper's update in its direct form: after rounding row i, the rows F = {i+1..K-1}
  // still to be quantized move by -(w_i - q_i) / [H_F'⁻¹]_00 · [H_F'⁻¹]_0,1.. with
  // F' = {i..K-1}. The pass's Cholesky form must give the same codes.
  const int64_t K = 12, N = 3;
  ir::Tensor w = RandomTensor({K, N}, 17);
  std::vector<float> x = CorrelatedRows(64, K, 3);
  std::vector<double> h = SecondMoment(x, K);
  double mean = 0;
  for (int64_t i = 0; i < K; ++i) mean += h[i * K + i] / K;
  std::vector<double> hd = h;
  for (int64_t i = 0; i < K; ++i) hd[i * K + i] += 0.01 * mean;
  wq::Scheme s{8, 0, true};
  wq::QuantizedMatrix q = wq::QuantizeGptq(w.data<float>(), K, N, s, h, 0.01);
  std::vector<double> work(w.data<float>(), w.data<float>() + K * N);
  for (int64_t i = 0; i < K; ++i) {
    int64_t f = K - i;
    std::vector<double> sub(f * f);
    for (int64_t a = 0; a < f; ++a)
      for (int64_t b = 0; b < f; ++b) sub[a * f + b] = hd[(i + a) * K + (i + b)];
    std::vector<double> inv = Inverse(sub, f);
    for (int64_t n = 0; n < N; ++n) {
      quant::QParams p{q.scales[n], q.zero_points[n]};
      int32_t code = quant::QuantizeValue(static_cast<float>(work[i * N + n]), p, -127, 127);
      ASSERT_EQ(code, q.codes[i * N + n]) << "row " << i << " column " << n;
      double err = (work[i * N + n] - quant::DequantizeValue(code, p)) / inv[0];
      for (int64_t b = 1; b < f; ++b) work[(i + b) * N + n] -= err * inv[b];
    }
  }
}

TEST(WeightQuant, GptqFallsBackToRtnOnABrokenHessian) {
  const int64_t K = 16, N = 4;
  ir::Tensor w = RandomTensor({K, N}, 3);
  std::vector<double> h(K * K, 0.0);
  for (int64_t i = 0; i < K; ++i) h[i * K + i] = 1;
  h[1] = h[K] = NAN;
  bool fell_back = false;
  auto q = wq::QuantizeGptq(w.data<float>(), K, N, wq::Scheme{4, 16, true}, h, 0.01, &fell_back);
  EXPECT_TRUE(fell_back);
  EXPECT_EQ(q.codes, wq::QuantizeRtn(w.data<float>(), K, N, wq::Scheme{4, 16, true}).codes);
}

// The factor GPTQ and SparseGPT read (Eigen LLT of the order-reversed, damped H and one
// triangular solve): upper triangular, and Uᵀ·U·(H + d·I) = I.
TEST(WeightQuant, DampedInverseCholeskyIsTheUpperFactorOfTheInverse) {
  const int64_t K = 37;  // not a multiple of any SIMD width
  ir::Tensor a = RandomTensor({K + 5, K}, 21);
  std::vector<double> h(K * K, 0.0);
  for (int64_t r = 0; r < K + 5; ++r)
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < K; ++j)
        h[i * K + j] += double(a.data<float>()[r * K + i]) * a.data<float>()[r * K + j];
  double mean_diag = 0;
  for (int64_t i = 0; i < K; ++i) mean_diag += h[i * K + i] / K;
  std::vector<double> u;
  ASSERT_TRUE(wq::DampedInverseCholesky(h, K, 0.01, &u));
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < i; ++j) ASSERT_EQ(u[i * K + j], 0.0);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) {
      double v = 0;  // (Uᵀ·U·H_damped)[i][j]
      for (int64_t k = 0; k < K; ++k) {
        double utu = 0;
        for (int64_t l = 0; l <= std::min(i, k); ++l) utu += u[l * K + i] * u[l * K + k];
        v += utu * (h[k * K + j] + (k == j ? 0.01 * mean_diag : 0.0));
      }
      ASSERT_NEAR(v, i == j ? 1.0 : 0.0, 1e-8) << i << "," << j;
    }
  std::vector<double> bad = h;
  bad[3] = NAN;
  EXPECT_FALSE(wq::DampedInverseCholesky(bad, K, 0.01, &u));
}

TEST(WeightQuant, AwqIsNeverWorseThanRtnAndHelpsWithOutlierChannels) {
  const int64_t K = 128, N = 48, rows = 256;
  ir::Tensor w = RandomTensor({K, N}, 21);
  std::vector<float> x = CorrelatedRows(rows, K, 5);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < K; k += 16) x[r * K + k] *= 30.f;  // outlier channels
  std::vector<double> mean(K, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < K; ++k) mean[k] += std::fabs(x[r * K + k]) / rows;
  wq::AwqChoice c = wq::SearchAwq(w.data<float>(), K, N, wq::Scheme{4, 32, true}, mean, x.data(), rows);
  EXPECT_LE(c.error, c.rtn_error);
  EXPECT_GT(c.alpha, 0.0);
  EXPECT_LT(c.error, 0.9 * c.rtn_error) << "rtn " << c.rtn_error << " awq " << c.error;
}

// --- the pass -------------------------------------------------------------------

// x[M, K] -> MatMul(w1) -> Relu -> MatMul(w2) -> y, with types inferred.
std::unique_ptr<ir::Model> TwoLayerMlp(int64_t M, int64_t K, int64_t H, int64_t N,
                                       std::vector<int64_t> x_dims = {}) {
  GraphBuilder b;
  if (x_dims.empty()) x_dims = {M, K};
  auto* x = b.Input("x", DType::kFloat32, x_dims);
  auto* h = b.Op("MatMul", {x, b.Const("w1", RandomTensor({K, H}, 7))}, {}, "fc1");
  auto* r = b.Op("Relu", {h});
  b.Output(b.Op("MatMul", {r, b.Const("w2", RandomTensor({H, N}, 8))}, {}, "fc2"));
  auto m = b.Build();
  ir::InferShapes(*m);
  return m;
}

std::unique_ptr<ir::Model> ApplyWith(const ir::Model& m, const std::string& pipeline,
                                     PassContext& ctx, PassRun* run = nullptr) {
  auto copy = m.Clone();
  auto runs = RunPipeline(*copy, ParsePipeline(pipeline), ctx, /*verify=*/true);
  if (run) *run = runs.back();
  return copy;
}

// A copy of `q` whose MatMulNBits nodes (main graph) carry `level` as accuracy_level.
std::unique_ptr<ir::Model> WithAccuracyLevel(const ir::Model& q, int64_t level) {
  auto copy = q.Clone();
  for (ir::Node* n : copy->graph->nodes())
    if (n->op_type() == "MatMulNBits") n->set_attr(ir::Attribute::Int("accuracy_level", level));
  return copy;
}

// Runs a quantized model natively (DequantizeLinear and MatMulNBits kernels) and checks it
// against the float reference of its codes (Materialize); returns the native outputs.
// The check runs with float activations (accuracy_level 0), where the kernels reproduce
// the codes up to float rounding; the outputs returned are those of `q` as written (the
// pass's default accuracy_level 4 quantizes activations to int8, whose small extra error
// the callers' NMSE bounds include).
std::map<std::string, ir::Tensor> EvaluateQuantized(const ir::Model& q,
                                                    const std::map<std::string, ir::Tensor>& feeds) {
  auto ref = Evaluate(*Materialize(q), feeds);
  EXPECT_TRUE(testing::HasKernel("DequantizeLinear"));
  EXPECT_TRUE(testing::HasKernel("com.microsoft::MatMulNBits"));
  auto exact = Evaluate(*WithAccuracyLevel(q, 0), feeds);
  EXPECT_LT(testing::MaxRelError(exact, ref), 1e-4) << "native kernels vs float reference";
  return Evaluate(q, feeds);
}

TEST(QuantizeWeights, Int8PerChannelKeepsOutputsClose) {
  auto m = TwoLayerMlp(8, 128, 96, 32);
  PassContext ctx;
  PassRun run;
  auto q = ApplyWith(*m, "quantize-weights", ctx, &run);
  EXPECT_TRUE(run.changed);
  EXPECT_EQ(run.stats["matmul-int8"], 2);
  EXPECT_EQ(testing::CountOpsAll(*q, "DequantizeLinear"), 2);
  EXPECT_EQ(testing::CountOpsAll(*q, "MatMul"), 2);
  EXPECT_GE(q->OpsetVersion(""), 13);
  // Names as agreed: w1_quantized, w1_scale, w1_zero_point; outputs keep their names.
  EXPECT_NE(q->graph->FindValue("w1_quantized"), nullptr);
  EXPECT_NE(q->graph->FindValue("w1_scale"), nullptr);
  EXPECT_NE(q->graph->FindValue("w1_zero_point"), nullptr);
  EXPECT_EQ(q->graph->FindValue("w1"), nullptr);  // float weight removed
  EXPECT_EQ(q->graph->outputs()[0]->name(), m->graph->outputs()[0]->name());
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({8, 128}, 1)}};
  double nmse = Nmse(EvaluateQuantized(*q, feeds), Evaluate(*m, feeds));
  EXPECT_LT(nmse, 2e-4);  // declared bound for int8 per-channel on uniform weights
  // Size: int8 codes plus a scale and zero point per channel.
  double ratio = double(run.stats["bytes-after"]) / run.stats["bytes-before"];
  EXPECT_LE(ratio, 0.27);
}

TEST(QuantizeWeights, Int4MatMulNBitsKeepsOutputsClose) {
  auto m = TwoLayerMlp(8, 256, 128, 64);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({8, 256}, 2)}};
  auto want = Evaluate(*m, feeds);
  for (int group : {32, 64, 128}) {
    for (bool sym : {true, false}) {
      PassContext ctx;
      PassRun run;
      std::string p = "quantize-weights{bits=4,group-size=" + std::to_string(group) +
                      ",symmetric=" + (sym ? "true" : "false") + "}";
      auto q = ApplyWith(*m, p, ctx, &run);
      EXPECT_EQ(run.stats["matmul-int4"], 2) << p;
      ASSERT_EQ(testing::CountOpsAll(*q, "MatMulNBits"), 2) << p;
      EXPECT_EQ(testing::CountOpsAll(*q, "MatMul"), 0) << p;
      EXPECT_EQ(q->OpsetVersion("com.microsoft"), 1);
      for (ir::Node* n : q->graph->nodes()) {
        if (n->op_type() != "MatMulNBits") continue;
        EXPECT_EQ(n->num_inputs(), sym ? 3u : 4u);
        EXPECT_EQ(n->attr_int("block_size", 0), group);
        EXPECT_EQ(n->attr_int("bits", 0), 4);
        EXPECT_TRUE(n->name == "fc1" || n->name == "fc2") << n->name;
      }
      double nmse = Nmse(EvaluateQuantized(*q, feeds), want);
      EXPECT_LT(nmse, 1.5e-2) << p;  // declared bound for 4-bit RTN on uniform weights
      double ratio = double(run.stats["bytes-after"]) / run.stats["bytes-before"];
      if (group >= 64 && sym) {
        EXPECT_LE(ratio, 0.15) << p;
      }
      std::printf("[ info ] %s: nmse %.3g, bytes %lld -> %lld (%.3f)\n", p.c_str(), nmse,
                  (long long)run.stats["bytes-before"], (long long)run.stats["bytes-after"], ratio);
    }
  }
}

TEST(QuantizeWeights, GemmAndConv) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {4, 64});
  auto* c = b.Const("bias", RandomTensor({32}, 3));
  auto* y = b.Op("Gemm", {x, b.Const("wg", RandomTensor({32, 64}, 4)), c},
                 {ir::Attribute::Int("transB", 1), ir::Attribute::Float("alpha", 0.5f),
                  ir::Attribute::Float("beta", 2.f)}, "gemm");
  b.Output(y);
  auto* img = b.Input("img", DType::kFloat32, {1, 3, 8, 8});
  b.Output(b.Op("Conv", {img, b.Const("wc", RandomTensor({16, 3, 3, 3}, 5))},
                {ir::Attribute::Ints("pads", {1, 1, 1, 1})}, "conv"));
  auto m = b.Build();
  ir::InferShapes(*m);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({4, 64}, 6)},
                                          {"img", RandomTensor({1, 3, 8, 8}, 7)}};
  auto want = Evaluate(*m, feeds);
  PassContext ctx;
  PassRun run;
  auto q8 = ApplyWith(*m, "quantize-weights", ctx, &run);
  EXPECT_EQ(run.stats["gemm-int8"], 1);
  EXPECT_EQ(run.stats["conv-int8"], 1);
  EXPECT_LT(Nmse(EvaluateQuantized(*q8, feeds), want), 2e-4);
  auto q4 = ApplyWith(*m, "quantize-weights{bits=4,group-size=16}", ctx, &run);
  EXPECT_EQ(run.stats["gemm-int4"], 1);
  EXPECT_EQ(run.stats["conv-int8"], 1);
  EXPECT_EQ(run.stats["conv-int4-fallback"], 1);
  EXPECT_EQ(testing::CountOpsAll(*q4, "MatMulNBits"), 1);
  EXPECT_EQ(testing::CountOpsAll(*q4, "Gemm"), 0);
  EXPECT_EQ(testing::CountOpsAll(*q4, "Add"), 1);  // beta * C after MatMulNBits
  EXPECT_LT(Nmse(EvaluateQuantized(*q4, feeds), want), 1.5e-2);
}

TEST(QuantizeWeights, MustNotFire) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2, 16});
  auto* wb = b.Input("w_runtime", DType::kFloat32, {16, 8});
  // A weight that is a graph input is not constant.
  b.Output(b.Op("MatMul", {x, wb}, {}, "dynamic"));
  // Already quantized: the weight comes from a DequantizeLinear.
  auto* qw = b.Const("qw", ir::Tensor(DType::kInt8, {16, 8}));
  auto* dq = b.Op("DequantizeLinear", {qw, b.Const("qs", ir::FloatTensor({}, {0.1f}))});
  b.Output(b.Op("MatMul", {x, dq}, {}, "prequantized"));
  // Excluded by a glob.
  b.Output(b.Op("MatMul", {x, b.Const("wl", RandomTensor({16, 8}, 1))}, {}, "lm_head"));
  // An int weight is not a float weight.
  b.Output(b.Op("MatMul", {b.Input("xi", DType::kInt32, {2, 16}),
                           b.Const("wi", ir::Tensor(DType::kInt32, {16, 8}))}, {}, "intmm"));
  auto m = b.Build();
  ir::InferShapes(*m);
  PassContext ctx;
  PassRun run;
  auto out = ApplyWith(*m, "quantize-weights{bits=4,exclude=lm_*}", ctx, &run);
  EXPECT_FALSE(run.changed);
  EXPECT_EQ(run.stats["skipped-not-constant"], 3);
  EXPECT_EQ(run.stats["skipped-excluded"], 1);
  EXPECT_EQ(run.stats["bytes-before"], run.stats["bytes-after"]);
  EXPECT_EQ(testing::CountOpsAll(*out, "MatMulNBits"), 0);
  // op-types leaves out what is not listed.
  auto out2 = ApplyWith(*m, "quantize-weights{op-types=Conv}", ctx, &run);
  EXPECT_FALSE(run.changed);
}

TEST(QuantizeWeights, NonFiniteWeightIsAnErrorNamingTheNode) {
  GraphBuilder b;
  ir::Tensor w = RandomTensor({8, 4}, 1);
  w.mutable_data<float>()[5] = NAN;
  b.Output(b.Op("MatMul", {b.Input("x", DType::kFloat32, {2, 8}), b.Const("wn", w)}, {}, "bad"));
  auto m = b.Build();
  PassContext ctx;
  try {
    ApplyWith(*m, "quantize-weights", ctx);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("'bad' (MatMul)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'wn'"), std::string::npos) << e.what();
  }
}

TEST(QuantizeWeights, SharedWeightIsQuantizedOnce) {
  GraphBuilder b;
  auto* w = b.Const("shared", RandomTensor({32, 16}, 3));
  b.Output(b.Op("MatMul", {b.Input("a", DType::kFloat32, {2, 32}), w}, {}, "m1"));
  b.Output(b.Op("MatMul", {b.Input("c", DType::kFloat32, {2, 32}), w}, {}, "m2"));
  auto m = b.Build();
  ir::InferShapes(*m);
  PassContext ctx;
  auto q = ApplyWith(*m, "quantize-weights", ctx);
  EXPECT_EQ(testing::CountOpsAll(*q, "DequantizeLinear"), 1);
  auto q4 = ApplyWith(*m, "quantize-weights{bits=4}", ctx);
  EXPECT_EQ(testing::CountOpsAll(*q4, "MatMulNBits"), 2);
  EXPECT_EQ(q4->graph->initializers().size(), 2u);  // one packed B, one scales
}

TEST(QuantizeWeights, QuantizesInsideIfBranchesWithOuterWeights) {
  // Both branches read the main graph's weight: each branch gets its own codes and the
  // float weight goes away; the If still computes what it did.
  auto m = std::make_unique<ir::Model>();
  ir::Graph& g = *m->graph;
  ir::Value* c = g.AddInput("c", ir::ValueType::Tensor(DType::kBool, ir::MakeShape({})));
  ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(DType::kFloat32, ir::MakeShape({2, 32})));
  ir::Value* w = g.AddInitializer("w", RandomTensor({32, 16}, 4));
  ir::Node* n = g.AddNode("If", {c}, {"y"}, "if");
  std::shared_ptr<ir::Graph> branches[2];
  for (int i = 0; i < 2; ++i) {
    branches[i] = std::make_shared<ir::Graph>();
    branches[i]->SetParent(&g, n);
    ir::Value* mm = branches[i]->AddNode("MatMul", {x, w}, {i ? "e_mm" : "t_mm"}, i ? "e_fc" : "t_fc")->output(0);
    ir::Value* out = i ? branches[i]->AddNode("Neg", {mm}, {"e_out"})->output(0) : mm;
    branches[i]->AddOutput(out);
  }
  n->set_attr(ir::Attribute::GraphValue("then_branch", branches[0]));
  n->set_attr(ir::Attribute::GraphValue("else_branch", branches[1]));
  g.AddOutput(n->output(0));
  for (const char* p : {"quantize-weights", "quantize-weights{bits=4}"}) {
    PassContext ctx;
    PassRun run;
    auto q = ApplyWith(*m, p, ctx, &run);
    EXPECT_EQ(run.stats[std::string(p).find("bits=4") != std::string::npos ? "matmul-int4" : "matmul-int8"], 2) << p;
    EXPECT_EQ(q->graph->FindValue("w"), nullptr) << p;
    std::shared_ptr<const ir::Model> fm = m->Clone(), qm = q->Clone();
    auto fs = runtime::Session::Create(fm), qs = runtime::Session::Create(qm);
    ir::Tensor xv = RandomTensor({2, 32}, 9);
    for (bool cond : {true, false}) {
      runtime::NamedTensors feeds{
          {"c", ir::Tensor::FromVector<uint8_t>(DType::kBool, {}, {uint8_t(cond)})}, {"x", xv}};
      std::map<std::string, ir::Tensor> a{{"y", qs->Run(feeds)[0].second}}, b{{"y", fs->Run(feeds)[0].second}};
      EXPECT_LT(Nmse(a, b), 1.5e-2) << p << " cond " << cond;
    }
  }
}

TEST(QuantizeWeights, RaisesOpsetAndKeepsSoftmaxMeaning) {
  GraphBuilder b;
  auto* x = b.Input("x", DType::kFloat32, {2, 3, 16});
  auto* y = b.Op("MatMul", {x, b.Const("w", RandomTensor({16, 16}, 2))}, {}, "fc");
  b.Output(b.Op("Softmax", {y}, {ir::Attribute::Int("axis", 2)}, "sm"));
  auto m = b.Build();
  m->SetOpsetVersion("", 11);
  ir::InferShapes(*m);
  PassContext ctx;
  PassRun run;
  auto q = ApplyWith(*m, "quantize-weights", ctx, &run);
  EXPECT_EQ(run.stats["opset-raised"], 1);
  EXPECT_EQ(q->OpsetVersion(""), 13);
  EXPECT_EQ(q->graph->FindNode("sm")->attr_int("axis", 0), -1);
  // A Softmax that coerces to 2-D at a middle axis becomes Flatten/Softmax/Reshape
  // (passes/graph/opset_upgrade.h) and quantizes too.
  GraphBuilder b2;
  auto* x2 = b2.Input("x", DType::kFloat32, {2, 3, 16});
  auto* y2 = b2.Op("MatMul", {x2, b2.Const("w", RandomTensor({16, 16}, 2))}, {}, "fc");
  b2.Output(b2.Op("Softmax", {y2}, {}, "sm"));  // opset 11 default axis 1
  auto m2 = b2.Build();
  m2->SetOpsetVersion("", 11);
  ir::InferShapes(*m2);
  PassRun run2;
  auto q2 = ApplyWith(*m2, "quantize-weights", ctx, &run2);
  EXPECT_EQ(run2.stats["opset-raised"], 1);
  int flatten = 0;
  for (ir::Node* n : q2->graph->nodes()) flatten += n->op_type() == "Flatten";
  EXPECT_EQ(flatten, 1);
}

TEST(QuantizeWeights, OptionErrors) {
  PassContext ctx;
  auto m = TwoLayerMlp(2, 32, 16, 8);
  EXPECT_THROW(ApplyWith(*m, "quantize-weights{bits=5}", ctx), Error);
  EXPECT_THROW(ApplyWith(*m, "quantize-weights{bits=4,group-size=48}", ctx), Error);
  EXPECT_THROW(ApplyWith(*m, "quantize-weights{op-types=Relu}", ctx), Error);
  try {
    ApplyWith(*m, "quantize-weights{method=gptq}", ctx);
    ADD_FAILURE() << "gptq without data must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUsage);
    EXPECT_NE(std::string(e.what()).find("--data"), std::string::npos) << e.what();
  }
}

// One linear layer on [1, T, K] inputs with correlated rows, and a calibration file.
struct CalibratedCase {
  std::unique_ptr<ir::Model> model;
  std::string data_file;
  std::map<std::string, ir::Tensor> calib_feeds, test_feeds;  // all samples as one batch
};

CalibratedCase MakeCalibratedCase(const std::string& dir, bool outliers) {
  const int64_t T = 16, K = 128, N = 64, S = 16;
  GraphBuilder b;
  auto* x = b.InputShape("x", DType::kFloat32,
                         {ir::Dim::Symbol("batch"), ir::Dim::Known(T), ir::Dim::Known(K)});
  b.Output(b.Op("MatMul", {x, b.Const("w", RandomTensor({K, N}, 31))}, {}, "proj"));
  CalibratedCase c;
  c.model = b.Build();
  ir::InferShapes(*c.model);
  auto rows = [&](uint32_t seed) {
    std::vector<float> x = CorrelatedRows(S * T, K, seed);
    if (outliers)
      for (int64_t r = 0; r < S * T; ++r)
        for (int64_t k = 0; k < K; k += 16) x[r * K + k] *= 30.f;
    return ir::Tensor::FromVector(DType::kFloat32, {S, T, K}, x);
  };
  ir::Tensor calib = rows(1), test = rows(2);
  c.data_file = dir + "/calib.npz";
  formats::SaveNpz({{"x", calib}}, c.data_file);
  c.calib_feeds = {{"x", calib}};
  c.test_feeds = {{"x", test}};
  return c;
}

TEST(QuantizeWeights, GptqPassBeatsRtnOnHeldOutData) {
  testing::ScratchDir dir;
  CalibratedCase c = MakeCalibratedCase(dir.path(), false);
  auto want = Evaluate(*c.model, c.test_feeds);
  for (std::string opts : {"bits=4", "bits=8"}) {
    PassContext ctx;
    ctx.data_files = {c.data_file};
    PassRun run;
    auto rtn = ApplyWith(*c.model, "quantize-weights{" + opts + "}", ctx, &run);
    auto gptq = ApplyWith(*c.model, "quantize-weights{" + opts + ",method=gptq}", ctx, &run);
    EXPECT_EQ(run.stats["gptq-layers"], 1);
    EXPECT_EQ(run.stats["calib-fallback-rtn"], 0);
    double e_rtn = Nmse(EvaluateQuantized(*rtn, c.test_feeds), want);
    double e_gptq = Nmse(EvaluateQuantized(*gptq, c.test_feeds), want);
    std::printf("[ info ] %s: held-out NMSE rtn %.3g, gptq %.3g\n", opts.c_str(), e_rtn, e_gptq);
    EXPECT_LT(e_gptq, 0.67 * e_rtn) << opts;
  }
}

TEST(QuantizeWeights, AwqPassIsNotWorseThanRtn) {
  testing::ScratchDir dir;
  CalibratedCase c = MakeCalibratedCase(dir.path(), true);
  // 16 samples x 16 rows = 256 rows: the AWQ reservoir holds all of them, so on the
  // calibration data the choice is provably no worse than RTN.
  auto want = Evaluate(*c.model, c.calib_feeds);
  PassContext ctx;
  ctx.data_files = {c.data_file};
  PassRun run;
  auto rtn = ApplyWith(*c.model, "quantize-weights{bits=4}", ctx);
  auto awq = ApplyWith(*c.model, "quantize-weights{bits=4,awq=true}", ctx, &run);
  EXPECT_EQ(run.stats["awq-layers"], 1);
  EXPECT_EQ(testing::CountOpsAll(*awq, "Mul"), 1);  // outlier channels: a scale was chosen
  double e_rtn = Nmse(EvaluateQuantized(*rtn, c.calib_feeds), want);
  double e_awq = Nmse(EvaluateQuantized(*awq, c.calib_feeds), want);
  std::printf("[ info ] calibration NMSE rtn %.3g, awq %.3g\n", e_rtn, e_awq);
  EXPECT_LE(e_awq, e_rtn * (1 + 1e-6));
  // AWQ and GPTQ together.
  auto both = ApplyWith(*c.model, "quantize-weights{bits=4,awq=true,method=gptq}", ctx, &run);
  EXPECT_EQ(run.stats["gptq-layers"], 1);
  EXPECT_LT(Nmse(EvaluateQuantized(*both, c.calib_feeds), want), e_rtn);
}

// accuracy-level is written as given (default 4) and 4 only adds the small error of int8
// activations; values onnxruntime defines but this runtime does not run are refused.
TEST(QuantizeWeights, AccuracyLevelOption) {
  auto m = TwoLayerMlp(16, 256, 96, 32);
  std::map<std::string, ir::Tensor> feeds{{"x", RandomTensor({16, 256}, 3)}};
  auto want = Evaluate(*m, feeds);
  PassContext ctx;
  auto q4 = ApplyWith(*m, "quantize-weights{bits=4}", ctx);
  auto q0 = ApplyWith(*m, "quantize-weights{bits=4,accuracy-level=0}", ctx);
  int checked = 0;
  for (auto* q : {q4.get(), q0.get()})
    for (ir::Node* n : q->graph->nodes())
      if (n->op_type() == "MatMulNBits") {
        EXPECT_EQ(n->attr_int("accuracy_level", -1), q == q4.get() ? 4 : 0);
        ++checked;
      }
  EXPECT_EQ(checked, 4);
  const double e4 = Nmse(EvaluateQuantized(*q4, feeds), want);
  const double e0 = Nmse(EvaluateQuantized(*q0, feeds), want);
  std::printf("[ info ] NMSE vs fp32: accuracy_level 0 %.3g, 4 %.3g\n", e0, e4);
  EXPECT_LT(e4, e0 * 1.1 + 1e-6);
  EXPECT_THROW(ApplyWith(*m, "quantize-weights{bits=4,accuracy-level=2}", ctx), Error);
}

}  // namespace
}  // namespace edgepress::passes
