// The vectorised helpers of DynamicQuantizeMatMul's activation quantization
// (runtime/kernels/quant/quantize_util.h) against their scalar definitions, bit for bit:
// DynamicU8Params' min/max (NaN ignored, range always containing 0) and QuantizeU8
// (divide, round half to even, saturate, NaN -> zero point) on lengths around the 8-lane
// vector, with halves, NaN, signed zeros and values far out of range; the min/max scan's
// four 8-lane chains each holding the extreme, and its split over a 2-thread pool (from
// 4 grains of 16384 up) giving the serial bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/kernels/quant/quantize_util.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

std::vector<float> Data(int64_t n, uint32_t seed, float spread) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.5f, spread);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  if (n > 3) {
    v[1] = std::numeric_limits<float>::quiet_NaN();
    v[2] = -0.f;
    v[3] = 1e30f;
  }
  return v;
}

TEST(QuantUtilTest, DynamicParamsAndQuantizeMatchScalarDefinition) {
  std::printf("avx2 path: %s\n", GetCpuFeatures().Has(Isa::kAvx2) && !ForceScalar() ? "yes" : "no");
  for (int64_t n : {0, 1, 7, 8, 9, 17, 31, 32, 33, 40, 64, 1000, 1003})
    for (float spread : {0.001f, 1.f, 300.f}) {
      const std::vector<float> x = Data(n, static_cast<uint32_t>(n) + 3, spread);
      float mn = 0.f, mx = 0.f;
      for (float v : x) {
        mn = std::min(mn, v);
        mx = std::max(mx, v);
      }
      const qutil::U8Params p = qutil::DynamicU8Params(x.data(), n);
      const float want_scale = mx == mn ? 1.f : (mx - mn) / 255.f;
      ASSERT_EQ(p.scale, want_scale) << "n=" << n;
      // Halfway cases: x / scale = k + 0.5 must round to even.
      std::vector<float> y = x;
      for (int64_t i = 4; i < n; i += 5) y[static_cast<size_t>(i)] = (static_cast<float>(i % 11) + 0.5f) * p.scale;
      std::vector<uint8_t> got(static_cast<size_t>(n));
      qutil::QuantizeU8(y.data(), n, p.scale, p.zero_point, got.data());
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(got[static_cast<size_t>(i)],
                  qutil::Saturate<uint8_t>(y[static_cast<size_t>(i)] / p.scale, p.zero_point))
            << "n=" << n << " i=" << i << " x=" << y[static_cast<size_t>(i)];
    }
}

// The scan keeps four chains of 8 lanes (32 floats a step), then a tail of 8s and of
// singles: the minimum and the maximum at every position of 32 + 8 + 3 floats, so each
// chain's lanes and both tails must carry them to the result.
TEST(QuantUtilTest, DynamicParamsFindExtremesInEveryLane) {
  const int64_t n = 43;
  for (int64_t pos = 0; pos < n; ++pos) {
    std::vector<float> x(static_cast<size_t>(n), 0.25f);
    x[static_cast<size_t>(pos)] = -3.f;
    x[static_cast<size_t>((pos + 17) % n)] = 7.f;
    const qutil::U8Params p = qutil::DynamicU8Params(x.data(), n);
    ASSERT_EQ(p.scale, (7.f - -3.f) / 255.f) << "pos=" << pos;
  }
}

// With a pool the bounds are folded per part; below 4 grains the caller scans alone. Both
// give the serial parameters, with the extremes near the end and NaN inside.
TEST(QuantUtilTest, DynamicParamsWithPoolMatchSerial) {
  ThreadPool pool(2);
  for (int64_t n : {int64_t{3} * 16384, int64_t{4} * 16384 - 1, int64_t{4} * 16384, int64_t{196608} + 5}) {
    std::vector<float> x = Data(n, static_cast<uint32_t>(n), 2.f);
    x[static_cast<size_t>(n - 2)] = -50.f;
    x[static_cast<size_t>(n - 1)] = 60.f;
    const qutil::U8Params serial = qutil::DynamicU8Params(x.data(), n);
    const qutil::U8Params pooled = qutil::DynamicU8Params(x.data(), n, &pool);
    EXPECT_EQ(serial.scale, pooled.scale) << "n=" << n;
    EXPECT_EQ(serial.zero_point, pooled.zero_point) << "n=" << n;
    // x[3] = 1e30 is the maximum
    EXPECT_EQ(serial.scale, (1e30f - -50.f) / 255.f) << "n=" << n;
  }
}

}  // namespace
}  // namespace edgepress::runtime
