// The SGEMM driver and every micro-kernel the CPU has, against the naive reference, at
// sizes around the tile edges (mr = 6 or 12, nr = 16 or 32, K block 256), with transposes,
// alpha/beta, the fused epilogue, prepacked operands and a thread pool.
#include "runtime/kernels/gemm/gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ir/error.h"

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace edgepress::runtime {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<Isa> IsasToTest() {
  std::vector<Isa> out{Isa::kScalar};
  if (GetCpuFeatures().Has(Isa::kAvx2)) out.push_back(Isa::kAvx2);
  if (GetCpuFeatures().Has(Isa::kAvx512)) out.push_back(Isa::kAvx512);
  return out;
}

void ExpectNear(const std::vector<float>& want, const std::vector<float>& got, int64_t k,
                const std::string& what) {
  ASSERT_EQ(want.size(), got.size());
  const float tol = 1e-5f * static_cast<float>(k + 4);
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(want[i], got[i], tol * (1 + std::fabs(want[i]))) << what << " at " << i;
}

struct Case {
  bool ta, tb;
  int64_t m, n, k;
  float alpha, beta;
};

void RunCase(Isa isa, const Case& cs, ThreadPool* pool, const GemmEpilogue* ep,
             bool prepack_a, bool prepack_b) {
  const int64_t lda = (cs.ta ? cs.m : cs.k) + 3, ldb = (cs.tb ? cs.k : cs.n) + 1,
                ldc = cs.n + 2;
  const int64_t a_rows = cs.ta ? cs.k : cs.m, b_rows = cs.tb ? cs.n : cs.k;
  std::vector<float> a = Random(a_rows * lda, 1), b = Random(b_rows * ldb, 2);
  std::vector<float> c0 = Random(cs.m * ldc, 3);
  std::vector<float> want = c0, got = c0;
  SgemmReference(cs.ta, cs.tb, cs.m, cs.n, cs.k, cs.alpha, a.data(), lda, b.data(), ldb,
                 cs.beta, want.data(), ldc, ep);
  PackedMatrix pa, pb;
  GemmOperand oa = GemmOperand::Raw(a.data(), lda, cs.ta);
  GemmOperand ob = GemmOperand::Raw(b.data(), ldb, cs.tb);
  if (prepack_a) {
    pa = PackA(isa, cs.ta, cs.m, cs.k, a.data(), lda);
    oa = GemmOperand::Packed(pa);
  }
  if (prepack_b) {
    pb = PackB(isa, cs.tb, cs.k, cs.n, b.data(), ldb);
    ob = GemmOperand::Packed(pb);
  }
  SgemmEx(isa, cs.m, cs.n, cs.k, cs.alpha, oa, ob, cs.beta, got.data(), ldc, pool, ep);
  ExpectNear(want, got, cs.k,
             std::string(GemmKernelName(isa)) + " m=" + std::to_string(cs.m) +
                 " n=" + std::to_string(cs.n) + " k=" + std::to_string(cs.k) +
                 " ta=" + std::to_string(cs.ta) + " tb=" + std::to_string(cs.tb));
  // The padding columns of C (past n) must be untouched.
  for (int64_t i = 0; i < cs.m; ++i)
    for (int64_t j = cs.n; j < ldc; ++j) ASSERT_EQ(got[i * ldc + j], c0[i * ldc + j]);
}

TEST(GemmTest, TileEdgesAllIsas) {
  const int64_t sizes[] = {1, 2, 5, 6, 7, 15, 16, 17, 31, 33, 64, 100};
  for (Isa isa : IsasToTest()) {
    for (int64_t m : sizes)
      for (int64_t n : sizes)
        for (int64_t k : {1, 7, 17, 64})
          RunCase(isa, {false, false, m, n, k, 1.f, 0.f}, nullptr, nullptr, false, false);
  }
}

// The AVX-512 tile (12 x 32) is a template on its row count and stores ragged columns
// with masks: every M from 5 to 25 leaves each edge-panel height 1..12 (and 1..6 for the
// 6-row tiles), N around 16 and 32 splits the column masks, K odd and past the 4x unroll,
// with alpha, beta and both bias kinds plus a clamp applied through the masked stores.
TEST(GemmTest, EveryEdgePanelHeightWithEpilogue) {
  std::vector<float> col_bias = Random(80, 9), row_bias = Random(32, 10);
  GemmEpilogue per_col, per_row;
  per_col.bias_kind = GemmEpilogue::Bias::kPerCol;
  per_col.bias = col_bias.data();
  per_col.clamp = true;
  per_col.lo = -0.5f;
  per_col.hi = 0.75f;
  per_row.bias_kind = GemmEpilogue::Bias::kPerRow;
  per_row.bias = row_bias.data();
  for (Isa isa : IsasToTest())
    for (int64_t m = 5; m <= 25; ++m)
      for (int64_t n : {3, 16, 17, 31, 32, 47, 65})
        for (int64_t k : {1, 5, 13})
          RunCase(isa, {false, false, m, n, k, m % 2 ? 1.f : 0.5f, n % 2 ? 0.f : 0.25f},
                  nullptr, k == 5 ? &per_row : &per_col, false, m % 3 == 0);
}

// A raw B whose leading dimension is a power of two (attention's K^T: rows of 128 or 64
// floats) is read in place when K is short and packed when it is long; both with a ragged
// last column panel, against the reference.
TEST(GemmTest, RawBPowerOfTwoLeadingDimensionShortAndLongK) {
  for (Isa isa : IsasToTest()) {
    for (int64_t ldb : {64, 128}) {
      for (int64_t n : {ldb, ldb - 28}) {
        for (int64_t k : {7, 32, 64, 65, 300}) {
          const int64_t m = 37;
          std::vector<float> a = Random(m * k, 11), b = Random(k * ldb, 12), c(m * n, 0.f);
          std::vector<float> want(m * n, 0.f);
          SgemmReference(false, false, m, n, k, 1.f, a.data(), k, b.data(), ldb, 0.f,
                         want.data(), n);
          SgemmEx(isa, m, n, k, 1.f, GemmOperand::Raw(a.data(), k),
                  GemmOperand::Raw(b.data(), ldb), 0.f, c.data(), n, nullptr);
          ExpectNear(want, c, k,
                     std::string(GemmKernelName(isa)) + " ldb=" + std::to_string(ldb) +
                         " n=" + std::to_string(n) + " k=" + std::to_string(k));
        }
      }
    }
  }
}

// M <= 4 takes the GEMV kernels: every row count, column counts around the ISA's block
// width (16 or 32) incl. a ragged last block of raw B, K around the 4x unroll, packed and
// raw B, alpha/beta, each epilogue, and the pool splitting the column blocks.
TEST(GemmTest, GemvRowsBlocksAndEpilogues) {
  ThreadPool pool(2);
  std::vector<float> col_bias = Random(300, 7), row_bias = Random(4, 8);
  GemmEpilogue per_col, per_row, relu;
  per_col.bias_kind = GemmEpilogue::Bias::kPerCol;
  per_col.bias = col_bias.data();
  per_row.bias_kind = GemmEpilogue::Bias::kPerRow;
  per_row.bias = row_bias.data();
  per_row.clamp = true;
  per_row.lo = -0.25f;
  per_row.hi = 0.5f;
  relu.clamp = true;
  relu.lo = 0.f;
  for (Isa isa : IsasToTest()) {
    for (int64_t m : {1, 2, 3, 4}) {
      for (int64_t n : {1, 7, 15, 16, 17, 31, 32, 33, 65, 300}) {
        for (int64_t k : {1, 3, 4, 5, 9, 258}) {
          const Case cs{false, false, m, n, k, m == 2 ? 0.5f : 1.f, m == 3 ? 0.75f : 0.f};
          const GemmEpilogue* ep = n % 2 ? &per_col : m == 4 ? &per_row : &relu;
          for (bool packed : {false, true})
            for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool})
              RunCase(isa, cs, p, ep, false, packed);
        }
      }
    }
  }
}

TEST(GemmTest, LargeKCrossesKBlocks) {
  for (Isa isa : IsasToTest())
    for (int64_t k : {255, 256, 257, 600})
      for (int64_t mn : {7, 33, 100})
        RunCase(isa, {false, false, mn, mn + 3, k, 1.f, 0.5f}, nullptr, nullptr, false, false);
}

TEST(GemmTest, Size257) {
  for (Isa isa : IsasToTest())
    RunCase(isa, {false, true, 257, 257, 257, 1.f, 0.f}, nullptr, nullptr, false, false);
}

TEST(GemmTest, TransposesAlphaBeta) {
  for (Isa isa : IsasToTest())
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (float alpha : {1.f, -0.75f})
          for (float beta : {0.f, 1.f, 2.5f})
            for (int64_t s : {5, 17, 33})
              RunCase(isa, {ta, tb, s, s + 14, s + 1, alpha, beta}, nullptr, nullptr, false,
                      false);
}

TEST(GemmTest, BetaZeroIgnoresNanInC) {
  for (Isa isa : IsasToTest()) {
    std::vector<float> a = Random(7 * 9, 4), b = Random(9 * 18, 5);
    std::vector<float> c(7 * 18, std::nanf("")), want(7 * 18, 0.f);
    SgemmReference(false, false, 7, 18, 9, 1.f, a.data(), 9, b.data(), 18, 0.f, want.data(),
                   18);
    SgemmEx(isa, 7, 18, 9, 1.f, GemmOperand::Raw(a.data(), 9), GemmOperand::Raw(b.data(), 18),
            0.f, c.data(), 18, nullptr);
    ExpectNear(want, c, 9, GemmKernelName(isa));
  }
}

TEST(GemmTest, EpilogueBiasAndClamp) {
  std::vector<float> row_bias = Random(100, 6), col_bias = Random(100, 7);
  for (Isa isa : IsasToTest()) {
    for (auto kind : {GemmEpilogue::Bias::kPerRow, GemmEpilogue::Bias::kPerCol}) {
      GemmEpilogue ep;
      ep.bias_kind = kind;
      ep.bias = kind == GemmEpilogue::Bias::kPerRow ? row_bias.data() : col_bias.data();
      ep.clamp = true;
      ep.lo = 0.f;  // Relu
      RunCase(isa, {false, false, 31, 33, 300, 1.f, 0.f}, nullptr, &ep, false, false);
      ep.lo = -0.5f;
      ep.hi = 0.25f;  // Clip
      RunCase(isa, {true, false, 17, 40, 20, 0.5f, 1.f}, nullptr, &ep, false, false);
    }
  }
}

TEST(GemmTest, KZeroScalesC) {
  for (Isa isa : IsasToTest()) {
    std::vector<float> c = Random(5 * 6, 8), want = c;
    for (float& v : want) v *= 2.f;
    SgemmEx(isa, 5, 6, 0, 1.f, GemmOperand::Raw(nullptr, 1), GemmOperand::Raw(nullptr, 6), 2.f,
            c.data(), 6, nullptr);
    ExpectNear(want, c, 0, GemmKernelName(isa));
  }
}

TEST(GemmTest, PrepackedOperands) {
  for (Isa isa : IsasToTest())
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        RunCase(isa, {ta, tb, 17, 33, 300, 1.f, 0.f}, nullptr, nullptr, true, false);
        RunCase(isa, {ta, tb, 1, 100, 64, 1.f, 0.f}, nullptr, nullptr, false, true);
        RunCase(isa, {ta, tb, 64, 7, 257, 2.f, 1.f}, nullptr, nullptr, true, true);
      }
}

TEST(GemmTest, PackedOperandOfWrongShapeIsRejected) {
  std::vector<float> a = Random(6 * 8, 9), c(6 * 16);
  PackedMatrix pa = PackA(Isa::kScalar, false, 6, 8, a.data(), 8);
  EXPECT_THROW(SgemmEx(Isa::kScalar, 6, 16, 9, 1.f, GemmOperand::Packed(pa),
                       GemmOperand::Raw(a.data(), 16), 0.f, c.data(), 16, nullptr),
               Error);
}

TEST(GemmTest, ThreadPoolMatchesReference) {
  ThreadPool pool(2);
  GemmEpilogue ep;
  std::vector<float> bias = Random(300, 10);
  ep.bias_kind = GemmEpilogue::Bias::kPerCol;
  ep.bias = bias.data();
  for (Isa isa : IsasToTest()) {
    RunCase(isa, {false, false, 1, 300, 128, 1.f, 0.f}, &pool, &ep, false, true);
    RunCase(isa, {false, true, 130, 200, 100, 1.f, 0.f}, &pool, nullptr, false, false);
    RunCase(isa, {true, false, 257, 31, 300, 1.f, 1.f}, &pool, nullptr, true, false);
  }
}

#if defined(__x86_64__)
// Denormal operands are flushed inside the GEMM (their FMA assists made the causal-masked
// attention of a decoder 2.4x slower), and the caller's MXCSR is restored afterwards, on the
// calling thread and the pool's.
TEST(GemmTest, DenormalOperandsFlushAndMxcsrIsRestored) {
  ThreadPool pool(2);
  // Control bits only: bits 0-5 are sticky exception flags the arithmetic itself sets.
  constexpr unsigned kControl = ~0x3Fu;
  const unsigned before = _mm_getcsr() & kControl;
  ASSERT_EQ(before & 0x8040u, 0u) << "test expects the default MXCSR (no FTZ/DAZ)";
  for (Isa isa : IsasToTest()) {
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
      const int64_t m = 64, n = 64, k = 64;
      std::vector<float> a = Random(m * k, 5), b = Random(k * n, 6), c(m * n, -1.f);
      const float denorm = 1e-39f;  // below FLT_MIN (1.18e-38)
      ASSERT_TRUE(std::fpclassify(denorm) == FP_SUBNORMAL);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t kk = i % 2; kk < k; kk += 2) a[i * k + kk] = denorm;
      std::vector<float> flushed = a;
      for (float& x : flushed)
        if (x == denorm) x = 0.f;
      std::vector<float> want(m * n);
      SgemmReference(false, false, m, n, k, 1.f, flushed.data(), k, b.data(), n, 0.f,
                     want.data(), n);
      SgemmEx(isa, m, n, k, 1.f, GemmOperand::Raw(a.data(), k), GemmOperand::Raw(b.data(), n),
              0.f, c.data(), n, p);
      ExpectNear(want, c, k, GemmKernelName(isa));
      // A row of only denormals times B is exactly zero (it would be ~1e-38 unflushed).
      std::vector<float> a1(k, denorm), c1(n, -1.f);
      SgemmEx(isa, 1, n, k, 1.f, GemmOperand::Raw(a1.data(), k), GemmOperand::Raw(b.data(), n),
              0.f, c1.data(), n, p);
      for (int64_t j = 0; j < n; ++j) ASSERT_EQ(c1[j], 0.f) << GemmKernelName(isa) << " " << j;
      ASSERT_EQ(_mm_getcsr() & kControl, before) << GemmKernelName(isa);
      // A denormal computed after the call is still a denormal (FTZ/DAZ were not left on).
      volatile float tiny = 1e-30f;
      const float prod = tiny * 1e-9f;
      ASSERT_TRUE(std::fpclassify(prod) == FP_SUBNORMAL);
    }
  }
}
#endif

TEST(GemmTest, PublicSgemmUsesBestIsa) {
  std::vector<float> a = Random(20 * 30, 11), b = Random(30 * 40, 12);
  std::vector<float> want(20 * 40), got(20 * 40);
  SgemmReference(false, false, 20, 40, 30, 1.f, a.data(), 30, b.data(), 40, 0.f, want.data(),
                 40);
  Sgemm(false, false, 20, 40, 30, 1.f, a.data(), 30, b.data(), 40, 0.f, got.data(), 40);
  ExpectNear(want, got, 30, "Sgemm");
  EXPECT_NE(std::string(GemmKernelName(BestGemmIsa())).find("f32_gemm__"), std::string::npos);
}

}  // namespace
}  // namespace edgepress::runtime
