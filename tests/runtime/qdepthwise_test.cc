// The integer depthwise plane kernels (runtime/kernels/conv/depthwise/qdepthwise.h), each
// ISA against the scalar reference, exactly: output widths around the vector tiles (8 and 16 columns),
// strides 1/2, 3x3/5x5 (unrolled) and other sizes/dilations (the general loop), pads,
// uint8 and int8 input with extreme zero points, weights at the int8 limits and beyond
// (the reference fallback), saturating multipliers, per-channel scales, bias, the fused
// Relu, and float/int32 outputs. The reference itself is checked against a direct sum.
// ISAs this CPU lacks skip with the reason.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/kernels/conv/depthwise/qdepthwise.h"
#include "runtime/kernels/qgemm/qgemm.h"

namespace edgepress::runtime {
namespace {

struct Case {
  int64_t k, stride, dil, pad, ow, oh;
  bool s8;
  int32_t x_zp;
  QOutput::Kind kind;
  bool relu = false;
  float scale = 0.01f;  // multiplier (x_scale * w_scale / y_scale)
  int w_lo = -128, w_hi = 127;
};

qdw::Geometry GeometryOf(const Case& c) {
  qdw::Geometry g;
  g.kh = g.kw = c.k;
  g.stride_h = g.stride_w = c.stride;
  g.dil_h = g.dil_w = c.dil;
  g.pad_t = g.pad_l = c.pad;
  g.oh = c.oh;
  g.ow = c.ow;
  // Input just large enough for the output with the same pad at both ends (or one less).
  g.h = (c.oh - 1) * c.stride + (c.k - 1) * c.dil + 1 - 2 * c.pad + (c.oh % 2);
  g.w = (c.ow - 1) * c.stride + (c.k - 1) * c.dil + 1 - 2 * c.pad + (c.ow % 2);
  if (g.h < 1) g.h = 1;
  if (g.w < 1) g.w = 1;
  return g;
}

std::string Describe(const Case& c) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "k%lld s%lld d%lld pad%lld %lldx%lld %s zp%d kind%d relu%d scale%g",
                static_cast<long long>(c.k), static_cast<long long>(c.stride),
                static_cast<long long>(c.dil), static_cast<long long>(c.pad),
                static_cast<long long>(c.oh), static_cast<long long>(c.ow), c.s8 ? "s8" : "u8",
                c.x_zp, static_cast<int>(c.kind), c.relu, c.scale);
  return buf;
}

// Runs `run` and the reference on 3 channels of random data; outputs must match bytewise.
void ExpectMatchesRef(void (*run)(const qdw::Plane&), const Case& c, uint32_t seed) {
  const qdw::Geometry g = GeometryOf(c);
  std::mt19937 rng(seed);
  const int channels = 3;
  std::vector<uint8_t> x(static_cast<size_t>(g.h * g.w));
  std::uniform_int_distribution<int> byte(0, 255), wd(c.w_lo, c.w_hi), bias(-5000, 5000);
  std::vector<int16_t> w(static_cast<size_t>(channels * c.k * c.k));
  for (auto& v : w) v = static_cast<int16_t>(wd(rng));
  // Extremes on the first taps: the largest |products| and the int8 weight limits.
  w[0] = static_cast<int16_t>(c.w_lo);
  w[1] = static_cast<int16_t>(c.w_hi);
  std::vector<float> scales = {c.scale, c.scale * 3.f, c.scale * 0.25f};
  std::vector<int32_t> biases(channels);
  for (auto& b : biases) b = bias(rng);
  QOutput out;
  out.kind = c.kind;
  out.per_row = true;
  out.scale = scales.data();
  out.per_channel_scale = true;
  out.bias = biases.data();
  out.zero_point = c.kind == QOutput::Kind::kInt8 ? -3 : 131;
  if (c.relu) {
    out.q_lo = out.zero_point;
    out.lo = 0.f;
  }
  const size_t elem = c.kind == QOutput::Kind::kUInt8 || c.kind == QOutput::Kind::kInt8 ? 1 : 4;
  const size_t ybytes = static_cast<size_t>(g.oh * g.ow) * elem;
  for (int ch = 0; ch < channels; ++ch) {
    for (auto& v : x) v = static_cast<uint8_t>(byte(rng));
    x[0] = 0;
    x[1] = 255;
    std::vector<uint8_t> want(ybytes, 0xAB), got(ybytes, 0xCD);
    qdw::Plane p;
    p.g = &g;
    p.x = x.data();
    p.x_s8 = c.s8;
    p.x_zp = c.x_zp;
    p.w = w.data() + ch * c.k * c.k;
    p.out = &out;
    p.channel = ch;
    p.y = want.data();
    qdw::PlaneRef(p);
    p.y = got.data();
    run(p);
    ASSERT_EQ(0, std::memcmp(want.data(), got.data(), ybytes)) << Describe(c) << " channel " << ch;
  }
}

struct IsaCase {
  const char* name;
  Isa isa;
  void (*run)(const qdw::Plane&);
};

void PrintTo(const IsaCase& c, std::ostream* os) { *os << c.name; }

class QDepthwiseIsaTest : public ::testing::TestWithParam<IsaCase> {
 protected:
  void SetUp() override {
    if (!GetCpuFeatures().Has(GetParam().isa))
      GTEST_SKIP() << "this CPU lacks " << IsaName(GetParam().isa) << " ("
                   << GetCpuFeatures().model_name << ")";
  }
};

TEST_P(QDepthwiseIsaTest, HotShapesAtTileEdgesMatchReference) {
  int n = 0;
  for (int64_t k : {3, 5})
    for (int64_t stride : {1, 2})
      for (int64_t ow : {1, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 112})
        for (bool s8 : {false, true}) {
          const int32_t zp = s8 ? (ow % 3 == 0 ? -128 : ow % 3 == 1 ? 0 : 127)
                                : (ow % 3 == 0 ? 0 : ow % 3 == 1 ? 128 : 255);
          Case c{k, stride, 1, k / 2, ow, ow > 20 ? 5 : 4, s8, zp, QOutput::Kind::kUInt8};
          c.relu = ow % 2 == 1;
          ExpectMatchesRef(GetParam().run, c, static_cast<uint32_t>(++n));
        }
}

// Planes over 32 KiB of quads (AVX-512 with VBMI) are built a few rows at a time in a
// ring, smaller ones whole (3x3 stride 1 as one linear run); without VBMI always the
// ring. 80 output rows: 112 and 130 columns take the ring, 17 and 64 (stride 1) not.
TEST_P(QDepthwiseIsaTest, LargePlanesInTheRingMatchReference) {
  int n = 50;
  for (int64_t k : {3, 5})
    for (int64_t stride : {1, 2})
      for (int64_t ow : {17, 64, 112, 130}) {
        Case c{k, stride, 1, k / 2, ow, 80, ow % 2 == 0, ow % 2 == 0 ? -7 : 200,
               QOutput::Kind::kUInt8};
        ExpectMatchesRef(GetParam().run, c, static_cast<uint32_t>(++n));
      }
}

TEST_P(QDepthwiseIsaTest, OutputKindsSaturationAndPadsMatchReference) {
  int n = 100;
  for (QOutput::Kind kind : {QOutput::Kind::kUInt8, QOutput::Kind::kInt8, QOutput::Kind::kFloat,
                             QOutput::Kind::kInt32})
    for (float scale : {0.002f, 5.f})  // 5: almost every output saturates
      for (int64_t pad : {0, 1, 2}) {
        Case c{3, 2, 1, pad, 17, 6, kind == QOutput::Kind::kInt8, 3, kind};
        c.scale = scale;
        c.relu = pad == 1;
        ExpectMatchesRef(GetParam().run, c, static_cast<uint32_t>(++n));
        c.k = 5;
        c.stride = 1;
        c.ow = 16;
        ExpectMatchesRef(GetParam().run, c, static_cast<uint32_t>(++n));
      }
}

TEST_P(QDepthwiseIsaTest, GeneralSizesDilationsAndStridesMatchReference) {
  int n = 200;
  const Case cases[] = {
      {1, 1, 1, 0, 19, 3, false, 7, QOutput::Kind::kUInt8},   // 1x1: one group, 1 tap
      {2, 2, 1, 0, 9, 4, true, -5, QOutput::Kind::kUInt8},    // even size
      {7, 1, 1, 3, 23, 9, false, 200, QOutput::Kind::kUInt8}, // two groups, 7 rows
      {7, 2, 1, 3, 16, 5, true, 100, QOutput::Kind::kInt8},
      {9, 1, 1, 4, 17, 3, false, 1, QOutput::Kind::kUInt8},   // three groups
      {3, 1, 2, 2, 18, 7, false, 128, QOutput::Kind::kUInt8}, // dilation: scalar quads
      {3, 2, 3, 3, 17, 5, true, -1, QOutput::Kind::kUInt8},
      {5, 1, 2, 4, 33, 4, false, 250, QOutput::Kind::kFloat},
      {3, 3, 1, 1, 20, 6, false, 128, QOutput::Kind::kUInt8}, // stride 3: reference
      {3, 1, 1, 5, 4, 12, false, 9, QOutput::Kind::kUInt8},   // pads wider than the plane
  };
  for (const Case& c : cases) ExpectMatchesRef(GetParam().run, c, static_cast<uint32_t>(++n));
}

TEST_P(QDepthwiseIsaTest, WeightsBeyondInt8FallBackExactly) {
  // uint8 weights with a zero point make (w - w_zp) up to +-255: not int8, so the plane
  // takes the reference (and says so), with the same result.
  Case c{3, 1, 1, 1, 33, 5, false, 128, QOutput::Kind::kUInt8};
  c.w_lo = -255;
  c.w_hi = 255;
  ExpectMatchesRef(GetParam().run, c, 999);
  const qdw::Geometry g = GeometryOf(c);
  std::vector<int16_t> w(9, 1);
  w[4] = 200;
  qdw::Plane p;
  p.g = &g;
  p.w = w.data();
  EXPECT_STREQ(qdw::PlaneKernelName(GetParam().isa, p), "ref");
  w[4] = 127;
  EXPECT_STRNE(qdw::PlaneKernelName(GetParam().isa, p), "ref");
  std::printf("[ dispatch ] qdepthwise %s: %s\n", IsaName(GetParam().isa),
              qdw::PlaneKernelName(GetParam().isa, p));
}

#if defined(__x86_64__)
INSTANTIATE_TEST_SUITE_P(
    Isa, QDepthwiseIsaTest,
    ::testing::Values(IsaCase{"avx2", Isa::kAvx2, qdw::PlaneAvx2},
                      IsaCase{"avx512bw", Isa::kAvx512, qdw::PlaneAvx512},
                      IsaCase{"avx512vnni", Isa::kAvx512Vnni, qdw::PlaneAvx512Vnni}),
    [](const ::testing::TestParamInfo<IsaCase>& i) { return std::string(i.param.name); });
#endif

// Channel blocks (RunBlock, 16 channels a vector) against PlaneRef per channel: channel
// counts around the block of 16 (1, 15, 17, 63, 65) and 960, output planes 1x1 to 28x28 and
// 56x56 and 112x112 (over 64 pixels: several chunks of the transposes),
// strides 1/2, 3x3/5x5 and a 1x7 (the general tap loop), extreme zero points, uint8/int8
// in and out, Relu, per-tensor and per-channel multipliers, a channel0 offset into the
// per-channel tables.
// Runs `isa`'s block kernel (AVX-512 VNNI: qdepthwise_block_avx512.cc; AVX2:
// qdepthwise_block_avx2.cc) and returns whether it took the case: VNNI must take every case
// here, AVX2 declines planes over 28x28 outputs (kMaxOutPixels), which the callers count.
bool ExpectBlockMatchesRef(Isa isa, const Case& c, int64_t channels, bool per_channel,
                           uint32_t seed, int64_t kh = 0, bool clip = false) {
  qdw::Geometry g = GeometryOf(c);
  if (kh > 0) {  // a kh x c.k kernel, vertical pads kh / 2
    g.kh = kh;
    g.pad_t = kh / 2;
    g.h = (c.oh - 1) * c.stride + kh - 2 * g.pad_t;
  }
  const int64_t ks = g.kh * g.kw, c0 = 5, hw = g.h * g.w, ohw = g.oh * g.ow;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255), wd(-128, 127), bias(-5000, 5000);
  std::uniform_real_distribution<float> sc(0.2f, 3.f);
  std::vector<uint8_t> x(static_cast<size_t>(channels * hw));
  for (auto& v : x) v = static_cast<uint8_t>(byte(rng));
  x[0] = 0;
  x[x.size() - 1] = 255;
  std::vector<int16_t> w(static_cast<size_t>(channels * ks));
  for (auto& v : w) v = static_cast<int16_t>(wd(rng));
  w[0] = -128;
  w[w.size() - 1] = 127;
  std::vector<float> scales(static_cast<size_t>(c0 + channels));
  for (auto& v : scales) v = c.scale * sc(rng);
  std::vector<int32_t> biases(static_cast<size_t>(c0 + channels));
  for (auto& v : biases) v = bias(rng);
  QOutput out;
  out.kind = c.kind;
  out.per_row = true;
  out.scale = per_channel ? scales.data() : scales.data() + 1;
  out.per_channel_scale = per_channel;
  out.bias = biases.data();
  out.zero_point = c.kind == QOutput::Kind::kInt8 ? -3 : 131;
  if (c.relu) {
    out.q_lo = out.zero_point;
    out.lo = 0.f;
  }
  if (clip) {  // a two-sided fused Clip, inside either output type's range
    out.q_lo = out.zero_point - 20;
    out.q_hi = out.zero_point + 40;
  }
  std::vector<uint8_t> want(static_cast<size_t>(channels * ohw), 0xAB);
  std::vector<uint8_t> got(want.size() + 64, 0xCD);
  for (int64_t ch = 0; ch < channels; ++ch) {
    qdw::Plane p{&g, x.data() + ch * hw, c.s8, c.x_zp, w.data() + ch * ks, &out, c0 + ch,
                 want.data() + ch * ohw};
    qdw::PlaneRef(p);
  }
  qdw::Block b{&g, x.data(), c.s8, c.x_zp, w.data(), &out, c0, channels, got.data()};
  if (!qdw::BlockHandles(isa, b)) {
    EXPECT_EQ(isa, Isa::kAvx2) << "the VNNI blocks declined " << Describe(c);
    return false;
  }
  qdw::RunBlock(isa, b);
  for (int64_t i = 0; i < channels * ohw; ++i)
    if (want[static_cast<size_t>(i)] != got[static_cast<size_t>(i)]) {
      ADD_FAILURE() << IsaName(isa) << " " << Describe(c) << " channels " << channels << " kh "
                    << g.kh << " at channel " << i / ohw << " pixel " << i % ohw << ": "
                    << int(got[static_cast<size_t>(i)]) << " vs "
                    << int(want[static_cast<size_t>(i)]);
      return true;
    }
  for (size_t i = want.size(); i < got.size(); ++i)
    if (got[i] != 0xCD) {
      ADD_FAILURE() << IsaName(isa) << " wrote past the last plane, " << Describe(c);
      return true;
    }
  return true;
}

// The block kernels of both ISAs against the reference: AVX-512 VNNI (with VBMI) and AVX2.
class QDepthwiseBlockTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    const CpuFeatures& f = GetCpuFeatures();
    if (GetParam() == Isa::kAvx2 && !f.avx2)
      GTEST_SKIP() << "this CPU lacks AVX2 (" << f.model_name << ")";
    if (GetParam() == Isa::kAvx512Vnni && (!f.avx512vnni || !f.avx512vbmi))
      GTEST_SKIP() << "this CPU lacks AVX-512 VNNI or VBMI (" << f.model_name << ")";
  }
};

TEST_P(QDepthwiseBlockTest, PlanesAndChannelCountsMatchReference) {
  uint32_t n = 0;
  for (int64_t k : {3, 5})
    for (int64_t stride : {1, 2})
      for (int64_t o : {1, 3, 7, 14, 28})
        for (int64_t channels : {1, 15, 17, 63, 65}) {
          const bool s8 = (o + channels) % 2 == 1;
          const int32_t zps[3] = {0, 128, 255};
          const int32_t zp = zps[n % 3] - (s8 ? 128 : 0);
          Case c{k, stride, 1, k / 2, o, o, s8, zp,
                 n % 4 == 3 ? QOutput::Kind::kInt8 : QOutput::Kind::kUInt8};
          c.relu = n % 2 == 1;
          const bool per_channel = n % 3 != 2;
          EXPECT_TRUE(ExpectBlockMatchesRef(GetParam(), c, channels, per_channel, ++n));
        }
}

// Multipliers small enough for the byte clamp (every |round(acc * scale)| < 2^30) and large
// enough to need the float clamp (1e5, 1e9: conversions would overflow), with a Relu, a
// two-sided Clip and none, both output types: the two epilogues give the reference's bytes.
TEST_P(QDepthwiseBlockTest, ByteAndFloatClampsMatchReference) {
  uint32_t n = 100;
  for (float scale : {0.01f, 5.f, 1e5f, 1e9f})
    for (int act = 0; act < 3; ++act)
      for (QOutput::Kind kind : {QOutput::Kind::kUInt8, QOutput::Kind::kInt8})
        for (int64_t o : {7, 28}) {
          Case c{3, 1, 1, 1, o, o, act == 2, act == 2 ? -5 : 130, kind, act == 1};
          c.scale = scale;
          const bool per_channel = n % 2 == 0;
          EXPECT_TRUE(ExpectBlockMatchesRef(GetParam(), c, 33, per_channel, ++n, 0, act == 2));
        }
}

TEST_P(QDepthwiseBlockTest, MobilenetShapesAndGeneralKernelsMatchReference) {
  const Isa isa = GetParam();
  int taken = 0;
  // mobilenet_v2's 7x7 x 960 (stride 1) and 14x14 -> 7x7 (stride 2) planes.
  taken += ExpectBlockMatchesRef(
      isa, Case{3, 1, 1, 1, 7, 7, false, 128, QOutput::Kind::kUInt8, true}, 960, true, 1);
  taken += ExpectBlockMatchesRef(isa, Case{3, 2, 1, 1, 7, 7, true, 0, QOutput::Kind::kInt8, false},
                                 960, true, 2);
  taken += ExpectBlockMatchesRef(
      isa, Case{3, 1, 1, 1, 56, 56, false, 3, QOutput::Kind::kUInt8, true}, 18, true, 6);
  taken += ExpectBlockMatchesRef(
      isa, Case{3, 2, 1, 1, 56, 56, true, -128, QOutput::Kind::kUInt8, false}, 3, true, 7);
  taken += ExpectBlockMatchesRef(
      isa, Case{3, 1, 1, 1, 112, 112, true, 0, QOutput::Kind::kUInt8, true}, 17, true, 8);
  // 1x7 and 7x7 kernels (two groups of taps, the tap loop not unrolled), 2x3 (kh 2).
  taken += ExpectBlockMatchesRef(
      isa, Case{7, 1, 1, 3, 7, 5, false, 255, QOutput::Kind::kUInt8, true}, 17, true, 3, 1);
  taken += ExpectBlockMatchesRef(
      isa, Case{7, 2, 1, 3, 5, 6, true, 127, QOutput::Kind::kUInt8, false}, 33, false, 4);
  taken += ExpectBlockMatchesRef(isa, Case{3, 1, 1, 1, 9, 4, false, 7, QOutput::Kind::kInt8, true},
                                 20, true, 5, 2);
  // AVX2 declines the three planes of over 28x28 outputs (56x56 twice, 112x112).
  EXPECT_EQ(taken, isa == Isa::kAvx2 ? 5 : 8);
}

#if defined(__x86_64__)
INSTANTIATE_TEST_SUITE_P(Isa, QDepthwiseBlockTest, ::testing::Values(Isa::kAvx2, Isa::kAvx512Vnni),
                         [](const ::testing::TestParamInfo<Isa>& i) {
                           return std::string(IsaName(i.param));
                         });
#endif

// What each ISA's blocks take is a predicate of the shape (no CPU needed) but for VNNI,
// which also asks for VBMI.
TEST(QDepthwiseBlockDeclines, WhatEachIsaDoesNotHandle) {
  Case c{3, 1, 1, 1, 7, 7, false, 128, QOutput::Kind::kUInt8};
  qdw::Geometry g = GeometryOf(c);
  std::vector<int16_t> w(9 * 2, 1);
  std::vector<float> scale = {0.1f};
  QOutput out;
  out.kind = QOutput::Kind::kUInt8;
  out.per_row = true;
  out.scale = scale.data();
  qdw::Block b{&g, nullptr, false, 128, w.data(), &out, 0, 2, nullptr};
  const CpuFeatures& f = GetCpuFeatures();
  const bool vnni = f.avx512vnni && f.avx512vbmi;
  EXPECT_EQ(qdw::BlockHandles(Isa::kAvx512Vnni, b), vnni);
  EXPECT_FALSE(qdw::BlockHandles(Isa::kAvx512, b)) << "no AVX-512 blocks without VNNI";
#if defined(__x86_64__)
  EXPECT_TRUE(qdw::BlockHandles(Isa::kAvx2, b));
#endif
  out.kind = QOutput::Kind::kFloat;
  EXPECT_FALSE(qdw::BlockHandles(Isa::kAvx512Vnni, b)) << "float output";
  EXPECT_FALSE(qdw::BlockHandles(Isa::kAvx2, b)) << "float output";
  out.kind = QOutput::Kind::kUInt8;
  w[12] = 128;
  EXPECT_FALSE(qdw::BlockHandles(Isa::kAvx512Vnni, b)) << "weight beyond int8";
  EXPECT_FALSE(qdw::BlockHandles(Isa::kAvx2, b)) << "weight beyond int8";
  w[12] = 1;
  g.dil_w = 2;
  EXPECT_FALSE(qdw::BlockHandles(Isa::kAvx512Vnni, b)) << "dilation across";
  g.dil_w = 1;
  g.oh = g.ow = 29;
  g.h = g.w = 29;
  EXPECT_FALSE(qdw::BlockHandles(Isa::kAvx2, b)) << "29x29 output (over 28x28)";
  EXPECT_EQ(qdw::BlockHandles(Isa::kAvx512Vnni, b), vnni) << "29x29 output";
  g.oh = g.ow = 113;
  g.h = g.w = 113;
  EXPECT_FALSE(qdw::BlockHandles(Isa::kAvx512Vnni, b)) << "113x113 output";
  g.oh = g.ow = 64;
  g.h = g.w = 127;
  g.stride_h = g.stride_w = 2;
  EXPECT_FALSE(qdw::BlockHandles(Isa::kAvx512Vnni, b)) << "padded plane of 129x129";
}

// The reference against a direct sum of (x - zx) * w with padding skipped (int32 output,
// no bias: the accumulators themselves).
TEST(QDepthwiseRefTest, MatchesDirectSum) {
  for (bool s8 : {false, true}) {
    Case c{3, 2, 1, 1, 9, 7, s8, s8 ? -20 : 140, QOutput::Kind::kInt32};
    const qdw::Geometry g = GeometryOf(c);
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> byte(0, 255), wd(-128, 127);
    std::vector<uint8_t> x(static_cast<size_t>(g.h * g.w));
    for (auto& v : x) v = static_cast<uint8_t>(byte(rng));
    std::vector<int16_t> w(9);
    for (auto& v : w) v = static_cast<int16_t>(wd(rng));
    QOutput out;
    out.per_row = true;
    std::vector<int32_t> y(static_cast<size_t>(g.oh * g.ow));
    qdw::Plane p{&g, x.data(), s8, c.x_zp, w.data(), &out, 0, y.data()};
    qdw::PlaneRef(p);
    for (int64_t oh = 0; oh < g.oh; ++oh)
      for (int64_t ow = 0; ow < g.ow; ++ow) {
        int32_t s = 0;
        for (int64_t i = 0; i < 3; ++i)
          for (int64_t j = 0; j < 3; ++j) {
            const int64_t ih = oh * 2 + i - 1, iw = ow * 2 + j - 1;
            if (ih < 0 || iw < 0 || ih >= g.h || iw >= g.w) continue;
            const uint8_t b = x[static_cast<size_t>(ih * g.w + iw)];
            const int32_t xv = s8 ? static_cast<int8_t>(b) : b;
            s += (xv - c.x_zp) * w[static_cast<size_t>(i * 3 + j)];
          }
        ASSERT_EQ(y[static_cast<size_t>(oh * g.ow + ow)], s) << oh << "," << ow;
      }
  }
}

}  // namespace
}  // namespace edgepress::runtime
