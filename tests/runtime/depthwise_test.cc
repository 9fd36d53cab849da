// The depthwise plane kernels (runtime/kernels/conv/depthwise/depthwise_*.cc) of every ISA
// this CPU has against the scalar reference: planes narrower than, equal to and wider than one
// vector (8 or 16 columns), 3x3/5x5 (unrolled) and other sizes (run-time taps), strides 1
// and 2 in each direction (3 falls back to the reference), dilations, symmetric and
// asymmetric pads incl. pads wider than the kernel reach, bias and Relu/Clip clamps; the
// heights leave every remainder of the 4- and 8-row (3x3) and 7-row (5x5) passes. The
// kernels must not write past the plane. Tolerance 1e-5 of the sum of |w * x| over taps.
#include "runtime/kernels/conv/depthwise/depthwise.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "runtime/kernel.h"

namespace edgepress::runtime::depthwise {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Output size of the ONNX formula, or 0 when the kernel does not fit.
int64_t OutDim(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe) {
  const int64_t span = (k - 1) * d + 1, padded = in + pb + pe;
  return padded < span ? 0 : (padded - span) / s + 1;
}

void CheckIsa(PlaneFn fn, const char* isa_name) {
  struct K {
    int64_t kh, kw;
  };
  const K kernels[] = {{3, 3}, {5, 5}, {1, 1}, {3, 5}, {7, 7}};
  // 67: stride 2 has a full strip between the two edge strips.
  const int64_t sizes[] = {1, 2, 7, 8, 9, 14, 15, 16, 17, 33, 67};
  const int64_t pads[][4] = {{0, 0, 0, 0}, {1, 1, 1, 1}, {2, 1, 0, 2}, {4, 5, 3, 4}};
  const int64_t strides[][2] = {{1, 1}, {2, 2}, {1, 2}, {2, 1}, {3, 3}};
  int checked = 0;
  for (const K& k : kernels) {
    for (int64_t h : sizes) {
      for (int64_t w : sizes) {
        for (int dil = 1; dil <= 2; ++dil) {
          for (const auto& pad : pads) {
            for (const auto& st : strides) {
              // Thin the grid: all kernels at a few sizes, all sizes for 3x3 and 5x5.
              if ((k.kh != k.kw || k.kh == 1 || k.kh == 7) && (h % 7 != 0 || w % 8 != 1))
                continue;
              DwGeometry g;
              g.h = h;
              g.w = w;
              g.kh = k.kh;
              g.kw = k.kw;
              g.stride_h = st[0];
              g.stride_w = st[1];
              g.dil_h = g.dil_w = dil;
              g.pad_t = pad[0];
              g.pad_l = pad[1];
              g.oh = OutDim(h, k.kh, st[0], dil, pad[0], pad[2]);
              g.ow = OutDim(w, k.kw, st[1], dil, pad[1], pad[3]);
              if (g.oh <= 0 || g.ow <= 0) continue;
              const uint32_t seed = static_cast<uint32_t>(h * 131 + w * 7 + k.kh);
              const std::vector<float> x = Random(h * w, seed), wt = Random(k.kh * k.kw, seed + 1);
              DwEpilogue ep;
              ep.bias = (h + w) % 3 == 0 ? 0.f : 0.375f;
              ep.clamp = (h + w) % 2 == 0;
              ep.lo = (h % 4 == 0) ? -0.5f : 0.f;  // Clip or Relu
              ep.hi = (h % 4 == 0) ? 0.75f : INFINITY;
              const size_t out = static_cast<size_t>(g.oh * g.ow), guard = 40;
              std::vector<float> want(out), got(out + guard, 12345.f);
              PlaneRef(g, x.data(), wt.data(), ep, want.data());
              fn(g, x.data(), wt.data(), ep, got.data());
              const std::string what = std::string(isa_name) + " " + std::to_string(h) + "x" +
                                       std::to_string(w) + " k" + std::to_string(k.kh) + "x" +
                                       std::to_string(k.kw) + " s" + std::to_string(st[0]) +
                                       "," + std::to_string(st[1]) + " d" + std::to_string(dil) +
                                       " pads " + std::to_string(pad[0]) + "," +
                                       std::to_string(pad[1]) + "," + std::to_string(pad[2]) +
                                       "," + std::to_string(pad[3]);
              for (size_t i = 0; i < out; ++i) {
                // Bound by the sum of |w| (|x| <= 1) over all taps.
                double mag = 1;
                for (float v : wt) mag += std::fabs(v);
                ASSERT_NEAR(want[i], got[i], 1e-5 * mag) << what << " @" << i;
              }
              for (size_t i = out; i < out + guard; ++i)
                ASSERT_EQ(got[i], 12345.f) << what << ": wrote past the plane at " << i;
              ++checked;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 1000);
}

TEST(DepthwiseTest, ReferenceMatchesHandComputedTaps) {
  // 3x3 input, 2x2 kernel, stride 1, pad 1 on top/left: y[0][0] reads only x[0][0] * w[1][1].
  DwGeometry g;
  g.h = g.w = 3;
  g.kh = g.kw = 2;
  g.pad_t = g.pad_l = 1;
  g.oh = g.ow = 3;
  const float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 10, 100, 1000};
  DwEpilogue ep;
  ep.bias = 0.5f;
  float y[9];
  PlaneRef(g, x, w, ep, y);
  EXPECT_FLOAT_EQ(y[0], 1000.f + 0.5f);
  // y[1][1]: x[0][0]*1 + x[0][1]*10 + x[1][0]*100 + x[1][1]*1000.
  EXPECT_FLOAT_EQ(y[4], 1 + 20 + 400 + 5000 + 0.5f);
  ep.clamp = true;
  ep.lo = 0.f;
  ep.hi = 6.f;
  PlaneRef(g, x, w, ep, y);
  EXPECT_FLOAT_EQ(y[4], 6.f);
}

TEST(DepthwiseTest, Avx2MatchesReference) {
#if defined(__x86_64__)
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  CheckIsa(PlaneAvx2, "avx2");
#else
  GTEST_SKIP() << "not an x86-64 build";
#endif
}

// Planes8Avx2 (eight planes, channels across the lanes) against PlaneRef per plane, on
// every Planes8Handles geometry of the grid: widths 1..14 (pixel runs of 8 across output
// rows, a last run of 1..7), 3x3 and 5x5 at strides 1 and 2, pads 0..5 incl. past the
// kernel's reach and trailing pads that cut input columns off, each plane with its own
// weights and bias, planes apart by more than their size, clamps and HardSwish after
// them. Nothing past a plane's outputs may be written.
TEST(DepthwiseTest, Planes8Avx2MatchesReference) {
#if defined(__x86_64__)
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  const int64_t sizes[] = {1, 2, 5, 7, 8, 9, 13, 14, 15, 17, 27, 28};
  const int64_t pads[][4] = {{0, 0, 0, 0}, {1, 1, 1, 1}, {2, 1, 0, 2}, {4, 5, 3, 4}};
  int checked = 0;
  for (int64_t k : {3, 5})
    for (int64_t s : {1, 2})
      for (int64_t h : sizes)
        for (int64_t w : sizes)
          for (const auto& pad : pads) {
            DwGeometry g;
            g.h = h;
            g.w = w;
            g.kh = g.kw = k;
            g.stride_h = g.stride_w = s;
            g.pad_t = pad[0];
            g.pad_l = pad[1];
            g.oh = OutDim(h, k, s, 1, pad[0], pad[2]);
            g.ow = OutDim(w, k, s, 1, pad[1], pad[3]);
            if (g.oh <= 0 || g.ow <= 0 || !Planes8Handles(g)) continue;
            const uint32_t seed = static_cast<uint32_t>(h * 131 + w * 7 + k + s);
            const int64_t x_stride = h * w + 3, out = g.oh * g.ow, guard = 11;
            const std::vector<float> x = Random(8 * x_stride, seed), wt = Random(8 * k * k, seed + 1),
                                     bias = Random(8, seed + 2);
            DwEpilogue ep;
            ep.clamp = (h + w) % 2 == 0;
            ep.lo = (h % 4 == 0) ? -0.5f : 0.f;  // Clip or Relu
            ep.hi = (h % 4 == 0) ? 0.75f : INFINITY;
            if ((h + w + k) % 3 == 0) {  // as ParseConvActivation sets it up
              ep.post.kind = conv_act::PostActivation::Kind::kHardSwish;
              ep.post.alpha = 1.f / 6.f;
            }
            std::vector<float> got(8 * (out + guard), 12345.f);
            Planes8Avx2(g, x.data(), x_stride, wt.data(), bias.data(), ep, got.data(), out + guard);
            const std::string what = std::to_string(h) + "x" + std::to_string(w) + " k" +
                                     std::to_string(k) + " s" + std::to_string(s) + " pads " +
                                     std::to_string(pad[0]) + "," + std::to_string(pad[1]) + "," +
                                     std::to_string(pad[2]) + "," + std::to_string(pad[3]);
            for (int c = 0; c < 8; ++c) {
              DwEpilogue ep_c = ep;
              ep_c.bias = bias[c];
              std::vector<float> want(out);
              PlaneRef(g, x.data() + c * x_stride, wt.data() + c * k * k, ep_c, want.data());
              double mag = 2;
              for (int64_t t = 0; t < k * k; ++t) mag += std::fabs(wt[c * k * k + t]);
              const float* yc = got.data() + c * (out + guard);
              for (int64_t i = 0; i < out; ++i)
                ASSERT_NEAR(want[i], yc[i], 1e-5 * mag) << what << " plane " << c << " @" << i;
              for (int64_t i = out; i < out + guard; ++i)
                ASSERT_EQ(yc[i], 12345.f) << what << " plane " << c << ": wrote past it at " << i;
            }
            ++checked;
          }
  EXPECT_GT(checked, 500);
#else
  GTEST_SKIP() << "not an x86-64 build";
#endif
}

TEST(DepthwiseTest, Avx512MatchesReference) {
#if defined(__x86_64__)
  if (!GetCpuFeatures().Has(Isa::kAvx512)) GTEST_SKIP() << "CPU lacks AVX-512F";
  CheckIsa(PlaneAvx512, "avx512");
#else
  GTEST_SKIP() << "not an x86-64 build";
#endif
}

}  // namespace
}  // namespace edgepress::runtime::depthwise
