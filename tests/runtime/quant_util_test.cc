// The vectorised helpers of DynamicQuantizeMatMul's activation quantization
// (runtime/kernels/quant/quantize_util.h) against their scalar definitions, bit for bit:
// DynamicU8Params' min/max (NaN ignored, range always containing 0) and QuantizeU8
// (divide, round half to even, saturate, NaN -> zero point) on lengths around the 8-lane
// vector, with halves, NaN, signed zeros and values far out of range.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/kernels/quant/quantize_util.h"

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
  for (int64_t n : {0, 1, 7, 8, 9, 17, 64, 1000, 1003})
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

}  // namespace
}  // namespace edgepress::runtime
