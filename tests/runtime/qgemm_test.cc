// The int8 GEMM (qgemm.h): every micro-kernel the CPU has against the naive reference, at
// sizes around the tiles (M around mr = 6, N around nr = 16/32, K odd and even, including
// K = 1), uint8 x int8 and the other sign combinations, per-row/per-column zero points,
// and every epilogue (int32, float with bias and clamp, requantized uint8/int8 with a
// Relu clamp). Integer results must agree exactly; so must requantized ones (same float
// operations, round half to even both ways). ISAs the CPU lacks are skipped.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/kernels/qgemm/qgemm.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

struct Case {
  int64_t m, n, k;
};

std::vector<Case> EdgeCases() {
  std::vector<Case> c;
  for (int64_t m : {1, 5, 6, 7, 13})
    for (int64_t n : {1, 15, 16, 17, 33})
      for (int64_t k : {1, 2, 7, 64, 301}) c.push_back({m, n, k});
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

std::vector<Isa> Isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni})
    if (QGemmIsaSupported(isa)) v.push_back(isa);
  return v;
}

// Runs one product on `isa` and on the reference with the given output kind; compares
// the outputs byte for byte.
void Check(Isa isa, const Case& c, ir::DType at, ir::DType bt, QOutput::Kind kind, bool trans_b,
           bool per_col_zp, ThreadPool* pool) {
  const std::vector<uint8_t> a = RandomBytes(static_cast<size_t>(c.m * c.k), 11);
  const std::vector<uint8_t> b = RandomBytes(static_cast<size_t>(c.k * c.n), 12);
  std::vector<int32_t> za = {at == ir::DType::kUInt8 ? 131 : -3};
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
  QSource sa{a.data(), at, c.k, false, za.data(), false};
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

TEST(QGemmTest, EveryIsaMatchesReferenceAtTileEdges) {
  ThreadPool pool(2);
  for (Isa isa : Isas())
    for (const Case& c : EdgeCases())
      for (QOutput::Kind kind : {QOutput::Kind::kInt32, QOutput::Kind::kUInt8, QOutput::Kind::kInt8,
                                 QOutput::Kind::kFloat})
        Check(isa, c, ir::DType::kUInt8, ir::DType::kInt8, kind, false, false, &pool);
}

TEST(QGemmTest, SignCombinationsTransposedBAndPerColumnZeroPoints) {
  for (Isa isa : Isas())
    for (const Case& c : {Case{7, 17, 9}, Case{6, 32, 128}, Case{1, 40, 33}})
      for (ir::DType at : {ir::DType::kUInt8, ir::DType::kInt8})
        for (ir::DType bt : {ir::DType::kUInt8, ir::DType::kInt8}) {
          Check(isa, c, at, bt, QOutput::Kind::kInt32, true, true, nullptr);
          Check(isa, c, at, bt, QOutput::Kind::kUInt8, false, true, nullptr);
        }
}

// Extreme values: |a - za| = 255 and |b| = 128 everywhere, the case where vpmaddubsw
// would saturate (2 * 255 * 128 > 32767); the int16-pair kernels must stay exact.
TEST(QGemmTest, NoSaturationAtExtremes) {
  const int64_t m = 6, n = 16, k = 64;
  std::vector<uint8_t> a(static_cast<size_t>(m * k), 255);
  std::vector<int8_t> b(static_cast<size_t>(k * n), -128);
  int32_t za = 0;
  QSource sa{a.data(), ir::DType::kUInt8, k, false, &za, false};
  QSource sb{b.data(), ir::DType::kInt8, n, false, nullptr, false};
  for (Isa isa : Isas()) {
    std::vector<int32_t> y(static_cast<size_t>(m * n));
    QOutput o;
    o.data = y.data();
    o.ld = n;
    const QPacked pa = QPackA(isa, m, k, sa), pb = QPackB(isa, k, n, sb);
    QGemm(isa, m, n, k, QOperand::Of(pa), QOperand::Of(pb), o, nullptr);
    for (int32_t v : y) ASSERT_EQ(v, -255 * 128 * k) << QGemmKernelName(isa);
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
