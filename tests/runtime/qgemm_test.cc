// The int8 GEMM (qgemm.h): every micro-kernel the CPU has against the naive reference, at
// sizes around the tiles (M around mr = 6/8/16/32, N around nr = 16/32, K odd, even and
// not a multiple of 4 or of AMX's 64, including K = 1), uint8 x int8 and the other sign
// combinations (the byte kernels shift them by 128), per-row/per-column zero points
// including extreme ones, saturating values, and every epilogue (int32, float with bias
// and clamp, requantized uint8/int8 with a Relu clamp). Integer results must agree
// exactly; so must requantized ones (same float operations, round half to even both
// ways). Each ISA is its own test case; ISAs the CPU lacks skip with the reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "runtime/kernels/qgemm/qgemm.h"
#include "runtime/kernels/quant/quantize_util.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

struct Case {
  int64_t m, n, k;
};

std::vector<Case> EdgeCases() {
  std::vector<Case> c;
  for (int64_t m : {1, 5, 6, 7, 8, 9, 13})
    for (int64_t n : {1, 15, 16, 17, 33})
      for (int64_t k : {1, 2, 3, 7, 64, 301}) c.push_back({m, n, k});
  // Around AMX's 16-row panels and 32-row tiles, K around its 64-byte tile rows.
  for (int64_t m : {16, 17, 31, 32, 33, 48, 70})
    for (int64_t n : {1, 31, 33})
      for (int64_t k : {5, 63, 64, 65, 130}) c.push_back({m, n, k});
  c.push_back({64, 200, 576});  // conv-like, threaded
  return c;
}

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(0, 255);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(d(rng));
  return v;
}

// Each test runs on one ISA (the parameter) and skips, saying why, where the CPU lacks it.
class QGemmIsaTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!QGemmIsaSupported(GetParam()))
      GTEST_SKIP() << "this CPU lacks " << IsaName(GetParam()) << " (model: "
                   << GetCpuFeatures().model_name << ")";
    const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    if (test.rfind("MatchesReference", 0) == 0)  // once per ISA
      std::printf("[ %s ] kernels: m=1 %s, m=64 %s\n", IsaName(GetParam()),
                  QGemmKernelName(GetParam(), 1), QGemmKernelName(GetParam(), 64));
  }
};

// Runs one product on `isa` and on the reference with the given output kind; compares
// the outputs byte for byte.
void Check(Isa isa, const Case& c, ir::DType at, ir::DType bt, QOutput::Kind kind, bool trans_b,
           bool per_col_zp, ThreadPool* pool) {
  const std::vector<uint8_t> a = RandomBytes(static_cast<size_t>(c.m * c.k), 11);
  const std::vector<uint8_t> b = RandomBytes(static_cast<size_t>(c.k * c.n), 12);
  std::vector<int32_t> za(static_cast<size_t>(c.m));
  for (int64_t i = 0; i < c.m; ++i)
    za[static_cast<size_t>(i)] = (at == ir::DType::kUInt8 ? 131 : -3) + (per_col_zp ? static_cast<int32_t>(i % 3) : 0);
  std::vector<int32_t> zb(static_cast<size_t>(c.n));
  for (int64_t j = 0; j < c.n; ++j) zb[static_cast<size_t>(j)] = per_col_zp ? static_cast<int32_t>(j % 5) - 2 : 0;
  std::vector<float> scale(static_cast<size_t>(c.n));
  std::vector<int32_t> bias(static_cast<size_t>(c.n));
  std::vector<float> fbias(static_cast<size_t>(c.n));
  for (int64_t j = 0; j < c.n; ++j) {
    scale[static_cast<size_t>(j)] = 1e-4f * static_cast<float>(1 + j % 7);
    bias[static_cast<size_t>(j)] = static_cast<int32_t>(j * 37) - 500;
    fbias[static_cast<size_t>(j)] = 0.25f * static_cast<float>(j % 3);
  }
  QSource sa{a.data(), at, c.k, false, za.data(), per_col_zp};  // per row of A
  QSource sb{b.data(), bt, trans_b ? c.k : c.n, trans_b, zb.data(), per_col_zp};
  QOutput o;
  o.kind = kind;
  o.per_row = false;
  o.bias = bias.data();
  o.scale = scale.data();
  o.per_channel_scale = true;
  o.zero_point = kind == QOutput::Kind::kInt8 ? -5 : 7;
  o.ld = c.n;
  if (kind == QOutput::Kind::kFloat) {
    o.float_bias = fbias.data();
    o.lo = 0.f;
  } else {
    o.q_lo = o.zero_point;  // a fused Relu
  }
  const size_t bytes = static_cast<size_t>(c.m * c.n) * 4;
  std::vector<uint8_t> want(bytes, 0xAB), got(bytes, 0xAB);
  o.data = want.data();
  QGemmReference(c.m, c.n, c.k, sa, sb, o);
  const QPacked pa = QPackA(isa, c.m, c.k, sa);
  const QPacked pb = QPackB(isa, c.k, c.n, sb);
  o.data = got.data();
  QGemm(isa, c.m, c.n, c.k, QOperand::Of(pa), QOperand::Of(pb), o, pool);
  if (kind == QOutput::Kind::kFloat) {
    // The reference and the kernels may fuse the bias add into an FMA differently.
    const float* w = reinterpret_cast<const float*>(want.data());
    const float* g = reinterpret_cast<const float*>(got.data());
    for (int64_t i = 0; i < c.m * c.n; ++i)
      ASSERT_NEAR(g[i], w[i], 1e-6 * (1 + std::fabs(w[i])))
          << QGemmKernelName(isa) << " m=" << c.m << " n=" << c.n << " k=" << c.k << " at " << i;
  } else {
    ASSERT_EQ(got, want) << QGemmKernelName(isa) << " m=" << c.m << " n=" << c.n << " k=" << c.k;
  }
}

TEST_P(QGemmIsaTest, MatchesReferenceAtTileEdges) {
  ThreadPool pool(2);
  const Isa isa = GetParam();
  for (const Case& c : EdgeCases())
      for (QOutput::Kind kind : {QOutput::Kind::kInt32, QOutput::Kind::kUInt8, QOutput::Kind::kInt8,
                                 QOutput::Kind::kFloat})
        Check(isa, c, ir::DType::kUInt8, ir::DType::kInt8, kind, false, false, &pool);
}

TEST_P(QGemmIsaTest, SignCombinationsTransposedBAndPerChannelZeroPoints) {
  const Isa isa = GetParam();
  for (const Case& c : {Case{7, 17, 9}, Case{6, 32, 128}, Case{1, 40, 33}, Case{40, 33, 70}})
      for (ir::DType at : {ir::DType::kUInt8, ir::DType::kInt8})
        for (ir::DType bt : {ir::DType::kUInt8, ir::DType::kInt8}) {
          Check(isa, c, at, bt, QOutput::Kind::kInt32, true, true, nullptr);
          Check(isa, c, at, bt, QOutput::Kind::kUInt8, false, true, nullptr);
        }
}

// Extreme values, where vpmaddubsw would saturate (2 * 255 * 128 > 32767) and the
// zero-point correction terms are largest: every (a - za) and (b - zb) at its extreme,
// reached through raw values, through zero points, and through both signednesses.
struct Extreme {
  ir::DType at;
  int av, za;
  ir::DType bt;
  int bv, zb;
};

int32_t RunConstant(Isa isa, const Extreme& e, int64_t m, int64_t n, int64_t k) {
  std::vector<uint8_t> a(static_cast<size_t>(m * k), static_cast<uint8_t>(e.av));
  std::vector<uint8_t> b(static_cast<size_t>(k * n), static_cast<uint8_t>(e.bv));
  const int32_t za = e.za, zb = e.zb;
  QSource sa{a.data(), e.at, k, false, &za, false};
  QSource sb{b.data(), e.bt, n, false, &zb, false};
  std::vector<int32_t> y(static_cast<size_t>(m * n));
  QOutput o;
  o.data = y.data();
  o.ld = n;
  const QPacked pa = QPackA(isa, m, k, sa), pb = QPackB(isa, k, n, sb);
  QGemm(isa, m, n, k, QOperand::Of(pa), QOperand::Of(pb), o, nullptr);
  for (int32_t v : y)
    if (v != y[0]) ADD_FAILURE() << QGemmKernelName(isa, m) << ": entries differ";
  return y[0];
}

TEST_P(QGemmIsaTest, NoSaturationAtExtremes) {
  using ir::DType;
  const Extreme cases[] = {
      {DType::kUInt8, 255, 0, DType::kInt8, -128, 0},    // 255 x -128
      {DType::kUInt8, 255, 0, DType::kInt8, 127, 0},     // 255 x 127
      {DType::kUInt8, 0, 255, DType::kInt8, 127, -128},  // zero points: -255 x 255
      {DType::kInt8, -128, 127, DType::kUInt8, 255, 0},  // int8 A, uint8 B: -255 x 255
      {DType::kInt8, 127, -128, DType::kInt8, -128, 127},  // both int8: 255 x -255
      {DType::kUInt8, 255, 0, DType::kUInt8, 0, 255},    // both uint8: 255 x -255
  };
  for (const Extreme& e : cases)
    for (const Case& c : {Case{6, 16, 64}, Case{33, 40, 1000}, Case{1, 32, 4097}, Case{8, 16, 301},
                          Case{9, 17, 64}, Case{10, 33, 1001}}) {
      const int64_t want = static_cast<int64_t>(e.av - e.za) * (e.bv - e.zb) * c.k;
      EXPECT_EQ(RunConstant(GetParam(), e, c.m, c.n, c.k), want)
          << QGemmKernelName(GetParam(), c.m) << " a=" << e.av << "-" << e.za << " b=" << e.bv
          << "-" << e.zb << " k=" << c.k;
    }
}

// Requantization saturates to the output type's range (and the fused clamp) exactly as
// the reference does, with per-row scales large enough to overflow both ways: int16 (the
// packed stores saturate int32 -> int16 before the zero point is added) and, at `mult`
// 1e4, int32 itself (|acc * scale| beyond 2^30: the AVX-512 stores take the float clamp).
TEST_P(QGemmIsaTest, RequantizeSaturatesPerRow) {
  const Isa isa = GetParam();
  const int64_t m = 9, n = 35, k = 37;
  const std::vector<uint8_t> a = RandomBytes(static_cast<size_t>(m * k), 5);
  const std::vector<uint8_t> b = RandomBytes(static_cast<size_t>(k * n), 6);
  const int32_t za = 3, zb = -7;
  QSource sa{a.data(), ir::DType::kUInt8, k, false, &za, false};
  QSource sb{b.data(), ir::DType::kInt8, n, false, &zb, false};
  std::vector<float> scale(static_cast<size_t>(m));
  for (float mult : {1.f, 1e4f}) {
    for (QOutput::Kind kind : {QOutput::Kind::kUInt8, QOutput::Kind::kInt8}) {
      for (int64_t i = 0; i < m; ++i)
        scale[static_cast<size_t>(i)] = (i % 2 ? mult : 1e-5f) * static_cast<float>(1 + i);
      QOutput o;
      o.kind = kind;
      o.per_row = true;
      o.scale = scale.data();
      o.per_channel_scale = true;
      o.zero_point = kind == QOutput::Kind::kUInt8 ? 250 : -120;
      o.q_hi = kind == QOutput::Kind::kUInt8 ? 252 : 100;  // a Clip bound inside the range
      o.ld = n;
      std::vector<uint8_t> want(static_cast<size_t>(m * n)), got(want.size());
      o.data = want.data();
      QGemmReference(m, n, k, sa, sb, o);
      const QPacked pa = QPackA(isa, m, k, sa), pb = QPackB(isa, k, n, sb);
      o.data = got.data();
      QGemm(isa, m, n, k, QOperand::Of(pa), QOperand::Of(pb), o, nullptr);
      EXPECT_EQ(got, want) << QGemmKernelName(isa, m) << " scale x" << mult;
      int at_bound = 0;
      for (uint8_t v : got) at_bound += v == (kind == QOutput::Kind::kUInt8 ? 252 : 0u) ||
                                        v == (kind == QOutput::Kind::kUInt8 ? 0 : 0x80u);
      EXPECT_GT(at_bound, 0) << "the case must reach a saturation bound";
    }
  }
}

// A pointwise conv's product (per-row channels, K = input channels 1..65, pixels around
// the 16/32-column panels), with B packed as the conv packs it: QPackBPanelFromRows
// straight from X's uint8 rows (stride n, flipped) for whole panels, a zero-filled copy
// for the last one, into a buffer full of garbage (AMX's padding groups are left
// unwritten and must not matter). x zero points 0/128/255, weight zero points one for all
// rows (the AVX-512 store's fast path) and varying per row, outputs saturating both ways
// under a Relu, int8 outputs and float outputs.
TEST_P(QGemmIsaTest, PointwiseConvShapesFromRows) {
  const Isa isa = GetParam();
  int checked = 0;
  for (int64_t m : {5, 16, 33, 96})
    for (int64_t n : {16, 31, 33, 64, 97})
      for (int64_t k : {1, 3, 16, 24, 32, 63, 64, 65})
        for (int32_t xz : {0, 128, 255})
          for (bool wz_per_row : {false, true}) {
            const std::vector<uint8_t> w = RandomBytes(static_cast<size_t>(m * k), 21);
            const std::vector<uint8_t> x = RandomBytes(static_cast<size_t>(k * n), 22);
            std::vector<int32_t> wz(static_cast<size_t>(m), 0), bias(static_cast<size_t>(m));
            std::vector<float> scale(static_cast<size_t>(m));
            for (int64_t i = 0; i < m; ++i) {
              if (wz_per_row) wz[static_cast<size_t>(i)] = static_cast<int32_t>(i % 5) - 2;
              bias[static_cast<size_t>(i)] = static_cast<int32_t>(i * 211 % 4000) - 2000;
              scale[static_cast<size_t>(i)] = 0.002f * static_cast<float>(1 + i % 5);
            }
            QSource sa{w.data(), ir::DType::kInt8, k, false, wz.data(), true};
            QSource sb{x.data(), ir::DType::kUInt8, n, false, &xz, false};
            std::vector<int16_t> pb(static_cast<size_t>(QPackedBSize(isa, k, n)));
            if (QGemmBytes(isa)) {
              std::fill(pb.begin(), pb.end(), int16_t{0x5A5A});
              const int nr = QGemmNr(isa);
              std::vector<int8_t> rows(static_cast<size_t>(k * nr));
              for (int64_t q = 0; q * nr < n; ++q) {
                if ((q + 1) * nr <= n) {
                  QPackBPanelFromRows(isa, k, n, xz - 128, q,
                                      reinterpret_cast<const int8_t*>(x.data() + q * nr), pb.data(),
                                      n, 0x80);
                  continue;
                }
                std::fill(rows.begin(), rows.end(), int8_t{0});
                for (int64_t kk = 0; kk < k; ++kk)
                  for (int64_t j = q * nr; j < n; ++j)
                    rows[static_cast<size_t>(kk * nr + j - q * nr)] =
                        static_cast<int8_t>(x[static_cast<size_t>(kk * n + j)] ^ 0x80);
                QPackBPanelFromRows(isa, k, n, xz - 128, q, rows.data(), pb.data());
              }
            } else {
              const QPacked p = QPackB(isa, k, n, sb);
              pb = p.data;
            }
            const QPacked pa = QPackA(isa, m, k, sa);
            for (QOutput::Kind kind : {QOutput::Kind::kUInt8, QOutput::Kind::kInt8,
                                       QOutput::Kind::kFloat}) {
              QOutput o;
              o.kind = kind;
              o.per_row = true;
              o.bias = bias.data();
              o.scale = scale.data();
              o.per_channel_scale = true;
              o.ld = n;
              if (kind == QOutput::Kind::kFloat) {
                o.lo = 0.f;
              } else {
                o.zero_point = kind == QOutput::Kind::kUInt8 ? 120 : -9;
                o.q_lo = o.zero_point;  // a fused Relu
              }
              std::vector<uint8_t> want(static_cast<size_t>(m * n) * 4, 0xAB), got(want);
              o.data = want.data();
              QGemmReference(m, n, k, sa, sb, o);
              o.data = got.data();
              QGemm(isa, m, n, k, QOperand::Of(pa), QOperand{pb.data(), isa, n, k}, o, nullptr);
              const std::string what = std::string(QGemmKernelName(isa, m)) + " m=" +
                                       std::to_string(m) + " n=" + std::to_string(n) + " k=" +
                                       std::to_string(k) + " xz=" + std::to_string(xz) +
                                       (wz_per_row ? " per-row wz" : " one wz");
              if (kind == QOutput::Kind::kFloat) {
                const float* wf = reinterpret_cast<const float*>(want.data());
                const float* gf = reinterpret_cast<const float*>(got.data());
                for (int64_t i = 0; i < m * n; ++i)
                  ASSERT_NEAR(gf[i], wf[i], 1e-6 * (1 + std::fabs(wf[i]))) << what << " at " << i;
              } else {
                ASSERT_EQ(got, want) << what;
                if (kind == QOutput::Kind::kUInt8 && k >= 16) {  // both bounds are reached
                  int lo = 0, hi = 0;
                  for (int64_t i = 0; i < m * n; ++i) {
                    lo += got[static_cast<size_t>(i)] == 120;
                    hi += got[static_cast<size_t>(i)] == 255;
                  }
                  ASSERT_GT(lo, 0) << what;
                  ASSERT_GT(hi, 0) << what;
                }
              }
              ++checked;
            }
          }
  EXPECT_EQ(checked, 4 * 5 * 8 * 3 * 2 * 3);
}

INSTANTIATE_TEST_SUITE_P(Isas, QGemmIsaTest,
                         ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx512,
                                           Isa::kAvx512Vnni, Isa::kAmx),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(IsaName(info.param));
                         });

// Which kernel dispatch chose on this CPU (printed, so CI logs show it), and that a CPU
// with VNNI gets the byte kernels and one with usable AMX the tile kernel for large m.
TEST(QGemmTest, DispatchChoiceIsPrinted) {
  const Isa best = BestQGemmIsa();
  std::printf("qgemm dispatch: isa %s; m=1: %s; m=256: %s (cpu: %s)\n", IsaName(best),
              QGemmKernelName(best, 1), QGemmKernelName(best, 256),
              GetCpuFeatures().model_name.c_str());
  if (ForceScalar()) {
    EXPECT_EQ(best, Isa::kScalar);
    return;
  }
  if (GetCpuFeatures().Has(Isa::kAvx512Vnni)) {
    EXPECT_TRUE(QGemmBytes(best)) << IsaName(best);
    EXPECT_NE(std::string(QGemmKernelName(best, 1)).find("vnni"), std::string::npos);
  }
  if (best == Isa::kAmx) {
    EXPECT_NE(std::string(QGemmKernelName(best, 256)).find("amx"), std::string::npos);
  }
}

// The AVX-512 VNNI A panels (packed by a vectorised transposition) byte for byte against
// the layout qgemm.h defines: panel p, group g, row r, byte b at p*panel + (g*8 + r)*4 + b,
// then a zero point (shifted by 128 for int8) and a uint8 byte sum per row; rows past M
// and k past K are 0. Strided rows, K around the 16-byte steps, both signs.
TEST(QGemmTest, VnniAPanelsFollowTheLayout) {
  if (!QGemmIsaSupported(Isa::kAvx512Vnni)) GTEST_SKIP() << "this CPU lacks avx512vnni";
  const Isa isa = Isa::kAvx512Vnni;
  for (int64_t m : {1, 7, 8, 9, 17})
    for (int64_t k : {1, 3, 4, 15, 16, 17, 33, 64, 301})
      for (ir::DType dt : {ir::DType::kUInt8, ir::DType::kInt8}) {
        const int64_t ld = k + 3;
        const std::vector<uint8_t> a = RandomBytes(static_cast<size_t>(m * ld), 21);
        std::vector<int32_t> za(static_cast<size_t>(m));
        for (int64_t i = 0; i < m; ++i) za[static_cast<size_t>(i)] = static_cast<int32_t>(i % 4) - 1;
        const QSource s{a.data(), dt, ld, false, za.data(), true};
        const QPacked p = QPackA(isa, m, k, s);
        const uint8_t* bytes = reinterpret_cast<const uint8_t*>(p.data.data());
        const int64_t panels = (m + 7) / 8, k4 = (k + 3) / 4, pb = k4 * 32;
        const int32_t* zp = reinterpret_cast<const int32_t*>(bytes + panels * pb);
        const int32_t* sum = zp + panels * 8;
        const uint8_t flip = dt == ir::DType::kInt8 ? 0x80 : 0;
        for (int64_t i = 0; i < panels * 8; ++i) {
          const int64_t pi = i / 8, r = i % 8;
          int32_t want_sum = 0;
          for (int64_t kk = 0; kk < k4 * 4; ++kk) {
            const uint8_t want = i < m && kk < k ? a[static_cast<size_t>(i * ld + kk)] ^ flip : 0;
            want_sum += want;
            ASSERT_EQ(bytes[pi * pb + ((kk / 4) * 8 + r) * 4 + kk % 4], want)
                << "m=" << m << " k=" << k << " row " << i << " k " << kk;
          }
          EXPECT_EQ(sum[i], want_sum) << "m=" << m << " k=" << k << " row " << i;
          EXPECT_EQ(zp[i], i < m ? za[static_cast<size_t>(i)] + (flip ? 128 : 0) : 0);
        }
      }
}

// DynamicQuantizeMatMul's fused path: float rows quantized straight into A panels give the
// bytes (panels, zero points, sums) of QuantizeU8 followed by QPackAPanels, including NaN,
// infinities, saturating values and halves (round half to even), packed in two parts as
// two threads would.
void CheckQuantizedPack(Isa isa) {
  ASSERT_TRUE(QGemmQuantizesInPack(isa));
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.f, 3.f);
  const int64_t mr = QGemmMr(isa);
  for (int64_t m : {1, 2, 5, 6, 7, 8, 13, 24})
    for (int64_t k : {1, 2, 5, 7, 8, 9, 16, 17, 47, 384}) {
      std::vector<float> x(static_cast<size_t>(m * k));
      for (float& v : x) v = d(rng);
      const float specials[] = {std::nanf(""), INFINITY, -INFINITY, 1e30f, -1e30f, 0.5f, 1.5f, -2.5f};
      for (size_t i = 0; i < 8 && i < x.size(); ++i) x[(i * 7919) % x.size()] = specials[i];
      const qutil::U8Params q = qutil::DynamicU8Params(x.data(), static_cast<int64_t>(x.size()));
      // Scale 1 for the halves, with zero points away from 0 (NaN -> zp, saturation at both
      // ends); the range's own for the rest (saturation via 1e30 either way).
      const std::pair<float, int32_t> params[] = {{1.f, 37}, {1.f, 250}, {q.scale, q.zero_point}};
      for (const auto& [scale, zp] : params) {
        std::vector<uint8_t> a8(x.size());
        qutil::QuantizeU8(x.data(), static_cast<int64_t>(x.size()), scale, zp, a8.data());
        const QPacked want = QPackA(isa, m, k, {a8.data(), ir::DType::kUInt8, k, false, &zp, false});
        std::vector<int16_t> got(want.data.size(), 0x5555);
        const int64_t panels = (m + mr - 1) / mr, half = panels / 2;
        QPackAPanelsQuantized(isa, m, k, x.data(), k, scale, zp, 0, half, got.data());
        QPackAPanelsQuantized(isa, m, k, x.data(), k, scale, zp, half, panels, got.data());
        EXPECT_EQ(got, want.data) << IsaName(isa) << " m=" << m << " k=" << k << " scale " << scale
                                    << " zp " << zp;
      }
    }
}

TEST(QGemmTest, QuantizedPackEqualsQuantizeThenPack) {
  if (!QGemmIsaSupported(Isa::kAvx512Vnni)) GTEST_SKIP() << "this CPU lacks avx512vnni";
  CheckQuantizedPack(Isa::kAvx512Vnni);
}

// The same for AVX2's int16 pairs (zero point subtracted, rows padded to 6 with zeros).
TEST(QGemmTest, Avx2QuantizedPackEqualsQuantizeThenPack) {
  if (!QGemmIsaSupported(Isa::kAvx2) || QGemmBytes(Isa::kAvx2))
    GTEST_SKIP() << "needs the AVX2 int16-pair kernel (AVX2 without AVX-VNNI)";
  CheckQuantizedPack(Isa::kAvx2);
}

// The AVX2 kernel's tile epilogue (per-column float output, DynamicQuantizeMatMul's)
// stores the bytes of its row epilogue: QGemm to int32, then QStoreRowIsa(kAvx2) per row.
// M leaves 1-5 rows in the last panel (the 2- and 4-row tiles), N full and partial
// 16-column panels; with and without int32/float bias, per-column and single scale, and
// a clamp; 1 and 2 threads.
TEST(QGemmTest, Avx2TileEpilogueEqualsRowEpilogue) {
  if (!QGemmIsaSupported(Isa::kAvx2) || QGemmBytes(Isa::kAvx2))
    GTEST_SKIP() << "needs the AVX2 int16-pair kernel (AVX2 without AVX-VNNI)";
  const Isa isa = Isa::kAvx2;
  ThreadPool pool(2);
  for (int64_t m : {1, 2, 3, 4, 5, 8, 9, 10, 11, 128})
    for (int64_t n : {16, 17, 48, 40})
      for (int64_t k : {3, 64, 383})
        for (int variant = 0; variant < 4; ++variant) {
          const std::vector<uint8_t> a = RandomBytes(static_cast<size_t>(m * k), 21);
          const std::vector<uint8_t> b = RandomBytes(static_cast<size_t>(k * n), 22);
          const int32_t za = 255, zb = -128;  // |a - za|, |b - zb| up to 255
          const QSource sa{a.data(), ir::DType::kUInt8, k, false, &za, false};
          const QSource sb{b.data(), ir::DType::kInt8, n, false, &zb, false};
          std::vector<float> scale(static_cast<size_t>(n)), fbias(static_cast<size_t>(n));
          std::vector<int32_t> bias(static_cast<size_t>(n));
          for (int64_t j = 0; j < n; ++j) {
            scale[static_cast<size_t>(j)] = 3e-5f * static_cast<float>(1 + j % 5);
            fbias[static_cast<size_t>(j)] = -0.5f + 0.125f * static_cast<float>(j % 9);
            bias[static_cast<size_t>(j)] = static_cast<int32_t>(j * 97) - 900;
          }
          QOutput o;
          o.kind = QOutput::Kind::kFloat;
          o.ld = n;
          o.scale = scale.data();
          o.per_channel_scale = variant != 1;
          o.float_bias = variant & 1 ? fbias.data() : nullptr;
          o.bias = variant >= 2 ? bias.data() : nullptr;
          if (variant == 3) o.lo = -0.75f, o.hi = 2.f;
          const QPacked pa = QPackA(isa, m, k, sa), pb = QPackB(isa, k, n, sb);
          std::vector<int32_t> acc(static_cast<size_t>(m * n));
          QOutput oi;
          oi.data = acc.data();
          oi.ld = n;
          QGemm(isa, m, n, k, QOperand::Of(pa), QOperand::Of(pb), oi, nullptr);
          std::vector<float> want(static_cast<size_t>(m * n));
          o.data = want.data();
          for (int64_t i = 0; i < m; ++i)
            QStoreRowIsa(isa, acc.data() + i * n, static_cast<int>(n), i, 0, o);
          for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
            std::vector<float> got(static_cast<size_t>(m * n), 7.f);
            o.data = got.data();
            QGemm(isa, m, n, k, QOperand::Of(pa), QOperand::Of(pb), o, p);
            ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)))
                << "m=" << m << " n=" << n << " k=" << k << " variant " << variant
                << (p ? " 2 threads" : " 1 thread");
          }
        }
}

// AVX2's A packing (8 k x 6 rows at a time) writes the scalar PackPanel's int16 pairs:
// uint8 and int8, one zero point or one per row (extremes included: |a - za| = 255), rows
// `ld` apart with ld > k, M leaving 1-6 rows in the last panel, K with 8-wide tails and
// odd K, packed in two halves as two threads would.
TEST(QGemmTest, Avx2PackAEqualsScalarPack) {
  if (!QGemmIsaSupported(Isa::kAvx2) || QGemmBytes(Isa::kAvx2))
    GTEST_SKIP() << "needs the AVX2 int16-pair kernel (AVX2 without AVX-VNNI)";
  for (ir::DType dt : {ir::DType::kUInt8, ir::DType::kInt8})
    for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 12, 13, 17})
      for (int64_t k : {1, 2, 7, 8, 9, 15, 16, 17, 64, 301})
        for (int zcase = 0; zcase < 3; ++zcase) {
          const int64_t ld = k + 5;
          const std::vector<uint8_t> a = RandomBytes(static_cast<size_t>(m * ld), 31);
          const bool u8 = dt == ir::DType::kUInt8;
          std::vector<int32_t> zp(static_cast<size_t>(m));
          for (int64_t i = 0; i < m; ++i) {
            const int32_t spread = static_cast<int32_t>(i * 41 % 256) - (u8 ? 0 : 128);
            const int32_t extreme = zcase == 0 ? (u8 ? 255 : -128) : (u8 ? 0 : 127);
            zp[static_cast<size_t>(i)] = zcase == 2 ? spread : extreme;
          }
          const QSource s{a.data(), dt, ld, false, zp.data(), zcase == 2};
          const QPacked want = QPackA(Isa::kScalar, m, k, s);
          std::vector<int16_t> got(want.data.size(), 0x5555);
          const int64_t panels = (m + 5) / 6, half = panels / 2;
          QPackAPanels(Isa::kAvx2, m, k, s, 0, half, got.data());
          QPackAPanels(Isa::kAvx2, m, k, s, half, panels, got.data());
          ASSERT_EQ(got, want.data) << ir::DTypeName(dt) << " m=" << m << " k=" << k
                                    << " zero points " << zcase;
        }
}

TEST(QGemmTest, MismatchedPackedOperandIsAnInternalError) {
  std::vector<uint8_t> a(16, 1);  // [3,4] as A, and [4,3] with ld 4 as B (15 bytes read)
  QSource s{a.data(), ir::DType::kUInt8, 4, false, nullptr, false};
  const QPacked pa = QPackA(Isa::kScalar, 3, 4, s);
  const QPacked pb = QPackB(Isa::kScalar, 4, 3, s);
  std::vector<int32_t> y(9);
  QOutput o;
  o.data = y.data();
  o.ld = 3;
  EXPECT_THROW(QGemm(Isa::kScalar, 3, 3, 5, QOperand::Of(pa), QOperand::Of(pb), o, nullptr),
               std::exception);
}

}  // namespace
}  // namespace edgepress::runtime
