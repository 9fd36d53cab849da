// Calibration observers on data with known statistics, from fixed-seed generators:
// minmax is exact; percentile matches the distribution's quantile within a declared
// tolerance; entropy and mse clip outliers (range within [p99, max], tighter than minmax);
// non-finite values are counted and skipped; streaming in many batches gives the same
// range as one batch; memory does not grow with the number of batches.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>

#include "calibrate/calibrate.h"
#include "ir/error.h"

namespace edgepress::calibrate {
namespace {

ir::Tensor F32(std::vector<int64_t> shape, const std::vector<float>& v) {
  return ir::Tensor::FromVector<float>(ir::DType::kFloat32, std::move(shape), v);
}
ir::Tensor F32(const std::vector<float>& v) {
  return F32({static_cast<int64_t>(v.size())}, v);
}

// Deterministic across standard libraries: mt19937's output is specified; the
// transforms to uniform and Gaussian are written out here.
class Rng {
 public:
  explicit Rng(uint32_t seed) : g_(seed) {}
  double Uniform() { return (static_cast<double>(g_()) + 0.5) / 4294967296.0; }  // (0, 1)
  double Gauss() {
    double u = Uniform(), v = Uniform();
    return std::sqrt(-2 * std::log(u)) * std::cos(6.283185307179586 * v);
  }

 private:
  std::mt19937 g_;
};

std::vector<float> Gaussian(size_t n, uint32_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(r.Gauss());
  return v;
}

// Gaussian N(0, 1) with `k` far outliers (30σ and more), alternating in sign.
std::vector<float> GaussianWithOutliers(size_t n, size_t k, uint32_t seed) {
  std::vector<float> v = Gaussian(n, seed);
  for (size_t i = 0; i < k; ++i)
    v[i * (n / k)] = (i % 2 ? -1.0f : 1.0f) * (30.0f + static_cast<float>(i));
  return v;
}

ObserverOptions Opts(Method m) {
  ObserverOptions o;
  o.method = m;
  return o;
}

TensorRange RangeOf(const ObserverOptions& o, const std::vector<float>& v) {
  auto obs = MakeObserver("t", o);
  obs->Observe(F32(v));
  return obs->Range();
}

TEST(Observers, MinMaxIsExact) {
  auto obs = MakeObserver("t", Opts(Method::kMinMax));
  obs->Observe(F32({2, 3}, {0.5f, -1.25f, 3.0f, 2.0f, 0.0f, -0.75f}));
  obs->Observe(F32({2}, {4.5f, 1.0f}));
  TensorRange r = obs->Range();
  EXPECT_EQ(r.min, -1.25f);
  EXPECT_EQ(r.max, 4.5f);
  EXPECT_EQ(r.count, 8u);
  EXPECT_EQ(r.nonfinite, 0u);
  EXPECT_EQ(r.axis, -1);
  EXPECT_TRUE(r.channel_min.empty());
}

TEST(Observers, MinMaxSymmetric) {
  ObserverOptions o = Opts(Method::kMinMax);
  o.symmetric = true;
  TensorRange r = RangeOf(o, {-1.0f, 3.0f, 0.5f});
  EXPECT_EQ(r.min, -3.0f);
  EXPECT_EQ(r.max, 3.0f);
}

TEST(Observers, PerChannelMinMax) {
  ObserverOptions o = Opts(Method::kMinMax);
  o.per_channel_axis = 1;
  auto obs = MakeObserver("act", o);
  // [N=2, C=3, 2]: channel c holds values around 10*c.
  obs->Observe(F32({2, 3, 2}, {0, 1, 10, 11, 20, 21, -1, 2, 9, 12, 19, 25}));
  TensorRange r = obs->Range();
  EXPECT_EQ(r.axis, 1);
  EXPECT_EQ(r.channel_min, (std::vector<float>{-1, 9, 19}));
  EXPECT_EQ(r.channel_max, (std::vector<float>{2, 12, 25}));
  EXPECT_EQ(r.min, -1.0f);
  EXPECT_EQ(r.max, 25.0f);
  EXPECT_EQ(r.count, 12u);
}

TEST(Observers, PerChannelErrors) {
  ObserverOptions o = Opts(Method::kMinMax);
  o.per_channel_axis = 2;
  auto obs = MakeObserver("conv1_out", o);
  try {
    obs->Observe(F32({2, 3}, {1, 2, 3, 4, 5, 6}));
    FAIL() << "axis out of range was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv1_out"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("axis 2"), std::string::npos) << e.what();
  }
  o.per_channel_axis = 0;
  auto obs2 = MakeObserver("x", o);
  obs2->Observe(F32({2, 1}, {1, 2}));
  EXPECT_THROW(obs2->Observe(F32({3, 1}, {1, 2, 3})), Error);  // channel count changed
}

TEST(Observers, PerChannelHistogramMethods) {
  // Each channel gets its own histogram; per-tensor range is the union.
  for (Method m : {Method::kPercentile, Method::kEntropy, Method::kMse}) {
    ObserverOptions o = Opts(m);
    o.per_channel_axis = 0;
    auto obs = MakeObserver("x", o);
    std::vector<float> a = Gaussian(20000, 1), v;
    for (float x : a) v.push_back(x);
    for (float x : a) v.push_back(10 * x);
    obs->Observe(F32({2, 20000}, v));
    TensorRange r = obs->Range();
    ASSERT_EQ(r.channel_max.size(), 2u) << MethodName(m);
    EXPECT_GT(r.channel_max[1], 5 * r.channel_max[0]) << MethodName(m);
    EXPECT_LT(r.channel_min[1], 5 * r.channel_min[0]) << MethodName(m);
    EXPECT_EQ(r.max, r.channel_max[1]);
    EXPECT_EQ(r.min, r.channel_min[1]);
  }
}

TEST(Observers, PercentileOnUniform) {
  // U(-1, 3): cutting 0.5% from each tail leaves [-0.98, 2.98].
  Rng rng(7);
  std::vector<float> v(1000000);
  for (float& x : v) x = static_cast<float>(-1 + 4 * rng.Uniform());
  ObserverOptions o = Opts(Method::kPercentile);
  o.percentile = 99;
  TensorRange r = RangeOf(o, v);
  const double kTol = 0.005;  // sampling error ~2e-4, bin width 4/4096
  EXPECT_NEAR(r.min, -0.98, kTol);
  EXPECT_NEAR(r.max, 2.98, kTol);
}

TEST(Observers, PercentileOnGaussianSymmetric) {
  // The 99th percentile of |x| for N(0,1) is 2.5758.
  ObserverOptions o = Opts(Method::kPercentile);
  o.percentile = 99;
  o.symmetric = true;
  TensorRange r = RangeOf(o, Gaussian(1000000, 3));
  const double kTol = 0.02;
  EXPECT_NEAR(r.max, 2.5758, kTol);
  EXPECT_EQ(r.min, -r.max);
}

TEST(Observers, PercentileHundredIsMinMax) {
  ObserverOptions o = Opts(Method::kPercentile);
  o.percentile = 100;
  std::vector<float> v = Gaussian(10000, 5);
  TensorRange p = RangeOf(o, v), m = RangeOf(Opts(Method::kMinMax), v);
  EXPECT_EQ(p.min, m.min);
  EXPECT_EQ(p.max, m.max);
}

// Range in [p99, max] and clearly tighter than minmax, both signs, both modes.
void ExpectClipped(Method m, const std::vector<float>& v) {
  TensorRange mm = RangeOf(Opts(Method::kMinMax), v);
  ASSERT_GE(mm.max, 30.0f);
  ASSERT_LE(mm.min, -30.0f);
  // p99 of |x| for N(0,1) is 2.576; allow a little below for bin effects.
  const double kP99 = 2.4;
  for (bool symmetric : {false, true}) {
    ObserverOptions o = Opts(m);
    o.symmetric = symmetric;
    TensorRange r = RangeOf(o, v);
    SCOPED_TRACE(std::string(MethodName(m)) + (symmetric ? " symmetric" : ""));
    EXPECT_GE(r.max, kP99);
    EXPECT_LE(r.min, -kP99);
    EXPECT_LT(r.max, mm.max / 2);  // clearly tighter than minmax
    EXPECT_GT(r.min, mm.min / 2);
    if (symmetric) {
      EXPECT_EQ(r.min, -r.max);
    }
  }
}

TEST(Observers, EntropyClipsOutliers) {
  // 20 outliers in 200k values: KL ignores the far tail.
  ExpectClipped(Method::kEntropy, GaussianWithOutliers(200000, 20, 11));
}

TEST(Observers, MseClipsRareOutliers) {
  // MSE trades the outliers' clipping error against every value's rounding noise, so it
  // clips only outliers rare enough: at 8 bits, one at 40σ is worth keeping unless
  // there are more than ~160k other values per outlier (here 500k).
  ExpectClipped(Method::kMse, GaussianWithOutliers(1000000, 2, 12));
  // Must not fire: 20 outliers in 200k are worth their rounding noise; mse keeps them.
  TensorRange r = RangeOf(Opts(Method::kMse), GaussianWithOutliers(200000, 20, 11));
  EXPECT_GE(r.max, 30.0f);
}

TEST(Observers, OneSidedAfterRelu) {
  // ReLU output: the lower end stays 0, the upper end is clipped (KL keeps the first
  // outliers: with the zero spike flattened, the empty gap up to them costs no KL).
  std::vector<float> v = GaussianWithOutliers(200000, 20, 13);
  for (float& x : v) x = std::max(x, 0.0f);
  TensorRange r = RangeOf(Opts(Method::kEntropy), v);
  EXPECT_EQ(r.min, 0.0f);
  EXPECT_GE(r.max, 2.4f);
  EXPECT_LT(r.max, RangeOf(Opts(Method::kMinMax), v).max);
  // mse on ReLU(Laplace): 8-bit optimum clips near 11.3 (ACIQ), below the sample max
  // (about ln(500k) = 13.1) and far above the 99th percentile of the positives (4.6).
  Rng rng(14);
  std::vector<float> lap(1000000);
  for (float& x : lap) {
    double u = rng.Uniform() - 0.5;
    x = std::max(0.0f, static_cast<float>(-(u < 0 ? -1 : 1) * std::log(1 - 2 * std::fabs(u))));
  }
  TensorRange mm = RangeOf(Opts(Method::kMinMax), lap);
  TensorRange q = RangeOf(Opts(Method::kMse), lap);
  EXPECT_EQ(q.min, 0.0f);
  EXPECT_GT(q.max, 4.6f);
  EXPECT_LT(q.max, mm.max);
}

TEST(Observers, HistogramMethodsKeepRangeWithoutOutliers) {
  // Must not clip: uniform data has no tail, so entropy and mse keep nearly all of it.
  Rng rng(17);
  std::vector<float> v(100000);
  for (float& x : v) x = static_cast<float>(2 * rng.Uniform() - 1);
  for (Method m : {Method::kEntropy, Method::kMse}) {
    TensorRange r = RangeOf(Opts(m), v);
    SCOPED_TRACE(MethodName(m));
    EXPECT_GT(r.max, 0.95f);
    EXPECT_LT(r.min, -0.95f);
  }
}

TEST(Observers, NonFiniteCountedAndSkipped) {
  for (Method m : {Method::kMinMax, Method::kPercentile, Method::kEntropy, Method::kMse}) {
    ObserverOptions o = Opts(m);
    o.percentile = 100;
    auto obs = MakeObserver("t", o);
    obs->Observe(F32({NAN, 1.0f, INFINITY, -2.0f, -INFINITY, 0.5f}));
    TensorRange r = obs->Range();
    SCOPED_TRACE(MethodName(m));
    EXPECT_EQ(r.count, 3u);
    EXPECT_EQ(r.nonfinite, 3u);
    EXPECT_GE(r.min, -2.0f);
    EXPECT_LE(r.max, 1.0f);
    EXPECT_TRUE(std::isfinite(r.min) && std::isfinite(r.max));
  }
}

TEST(Observers, AllNaNTensorIsAnErrorNamingIt) {
  for (Method m : {Method::kMinMax, Method::kEntropy}) {
    auto obs = MakeObserver("layer3/relu_out", Opts(m));
    obs->Observe(F32({NAN, NAN, INFINITY}));
    try {
      obs->Range();
      FAIL() << "Range() on an all-NaN tensor succeeded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
      EXPECT_NE(std::string(e.what()).find("layer3/relu_out"), std::string::npos) << e.what();
    }
  }
  // Never observed at all: also an error, not a made-up range.
  EXPECT_THROW(MakeObserver("t", Opts(Method::kMinMax))->Range(), Error);
}

TEST(Observers, RejectsNonFloatAndBadOptions) {
  auto obs = MakeObserver("ids", Opts(Method::kMinMax));
  EXPECT_THROW(obs->Observe(ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {2}, {1, 2})),
               Error);
  ObserverOptions o = Opts(Method::kPercentile);
  o.percentile = 0;
  EXPECT_THROW(MakeObserver("t", o), Error);
  o.percentile = 101;
  EXPECT_THROW(MakeObserver("t", o), Error);
}

TEST(Observers, Float16Observed) {
  ir::Tensor t(ir::DType::kFloat16, {3});
  uint16_t* p = t.mutable_data<uint16_t>();
  p[0] = ir::FloatToHalf(-1.5f);
  p[1] = ir::FloatToHalf(2.0f);
  p[2] = ir::FloatToHalf(0.25f);
  auto obs = MakeObserver("h", Opts(Method::kMinMax));
  obs->Observe(t);
  EXPECT_EQ(obs->Range().min, -1.5f);
  EXPECT_EQ(obs->Range().max, 2.0f);
}

TEST(Observers, StreamingInGrowingBatchesMatchesOneBatch) {
  // Batches whose range grows (×1.1 per batch) force many re-binnings; the power-of-two
  // grid makes the histogram, hence the range, identical to observing everything at once.
  std::vector<float> all;
  std::vector<std::vector<float>> batches;
  double scale = 0.01;
  for (int b = 0; b < 60; ++b, scale *= 1.1) {
    std::vector<float> v = Gaussian(2000, 100 + b);
    for (float& x : v) x = static_cast<float>(x * scale + 0.3 * scale);
    batches.push_back(v);
    all.insert(all.end(), v.begin(), v.end());
  }
  for (Method m : {Method::kMinMax, Method::kPercentile, Method::kEntropy, Method::kMse}) {
    ObserverOptions o = Opts(m);
    o.percentile = 99.9;
    auto once = MakeObserver("t", o);
    once->Observe(F32(all));
    auto streamed = MakeObserver("t", o);
    for (const auto& v : batches) streamed->Observe(F32(v));
    TensorRange a = once->Range(), b = streamed->Range();
    SCOPED_TRACE(MethodName(m));
    EXPECT_EQ(a.min, b.min);
    EXPECT_EQ(a.max, b.max);
    EXPECT_EQ(a.count, b.count);
  }
}

TEST(Observers, MemoryIsFlatInTheNumberOfBatches) {
  for (Method m : {Method::kMinMax, Method::kPercentile, Method::kEntropy, Method::kMse}) {
    auto obs = MakeObserver("t", Opts(m));
    obs->Observe(F32(Gaussian(1000, 1)));
    size_t after_one = obs->MemoryBytes();
    for (int b = 0; b < 10; ++b) {
      std::vector<float> v = Gaussian(1000, 2 + b);
      for (float& x : v) x *= static_cast<float>(b + 1);  // growing range: re-binning
      obs->Observe(F32(v));
    }
    SCOPED_TRACE(MethodName(m));
    EXPECT_EQ(obs->MemoryBytes(), after_one);
    EXPECT_LT(after_one, m == Method::kMinMax ? 1024u : 4 * 2048 * 8 + 1024u);
  }
}

TEST(Observers, ConstantTensor) {
  for (Method m : {Method::kMinMax, Method::kPercentile, Method::kEntropy, Method::kMse}) {
    TensorRange r = RangeOf(Opts(m), {0.5f, 0.5f, 0.5f});
    EXPECT_EQ(r.min, 0.5f) << MethodName(m);
    EXPECT_EQ(r.max, 0.5f) << MethodName(m);
  }
}

TEST(Methods, NamesRoundTripAndTyposSuggest) {
  for (Method m : {Method::kMinMax, Method::kPercentile, Method::kEntropy, Method::kMse})
    EXPECT_EQ(ParseMethod(MethodName(m)), m);
  try {
    ParseMethod("entrophy");
    FAIL();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.code(), ErrorCode::kInvalidInput);
    EXPECT_NE(msg.find("did you mean 'entropy'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("minmax, percentile, entropy, mse"), std::string::npos) << msg;
  }
  // Nothing close: no suggestion.
  try {
    ParseMethod("kullback-leibler");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("did you mean"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace edgepress::calibrate

namespace edgepress::calibrate {
namespace {

// Thin statistics: each histogram method falls back to the observed min/max and says why.
TEST(ObserverFallback, TooFewSamplesValuesOrTooMuchClipping) {
  std::vector<float> v = GaussianWithOutliers(200000, 20, 11);
  TensorRange mm = RangeOf(Opts(Method::kMinMax), v);
  for (Method m : {Method::kPercentile, Method::kEntropy, Method::kMse}) {
    SCOPED_TRACE(MethodName(m));
    // Enough of everything: the method's own (clipped) range, no fallback.
    ObserverOptions o = Opts(m);
    o.samples = 200;
    TensorRange r = RangeOf(o, v);
    EXPECT_TRUE(r.fallback.empty()) << r.fallback;
    EXPECT_LT(r.max, mm.max);
    // Four calibration samples: min/max, with the reason.
    o.samples = 4;
    r = RangeOf(o, v);
    EXPECT_EQ(r.min, mm.min);
    EXPECT_EQ(r.max, mm.max);
    EXPECT_NE(r.fallback.find("got 4"), std::string::npos) << r.fallback;
    // A tensor with only 100 values.
    o.samples = -1;
    std::vector<float> few(v.begin(), v.begin() + 100);
    r = RangeOf(o, few);
    TensorRange few_mm = RangeOf(Opts(Method::kMinMax), few);
    EXPECT_EQ(r.max, few_mm.max);
    EXPECT_NE(r.fallback.find("only 100 values"), std::string::npos) << r.fallback;
  }
  // A range that clips half the values (a 50th percentile) is not trusted either.
  ObserverOptions p = Opts(Method::kPercentile);
  p.percentile = 50;
  TensorRange r = RangeOf(p, Gaussian(100000, 3));
  EXPECT_NE(r.fallback.find("clips"), std::string::npos) << r.fallback;
  // minmax never falls back: it is the fallback.
  ObserverOptions m = Opts(Method::kMinMax);
  m.samples = 1;
  EXPECT_TRUE(RangeOf(m, Gaussian(10, 1)).fallback.empty());
}

}  // namespace
}  // namespace edgepress::calibrate
