// Sparse GEMM kernels (runtime/kernels/sparse/): the scalar references against a naive
// dense product in double, and every ISA variant against the scalar reference, at tile
// edges (1, 15/16/17 rows and columns, 8/16-row blocks of A^T, 16-column N:M blocks),
// odd sizes, all-zero columns and rows, fully dense, 50/90/99/100% zeros, 2:4, 1:4 and
// 4:8, with the fused epilogue; and int8 exactly. ISAs the CPU lacks are skipped.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/kernels/sparse/sparse_gemm.h"

namespace edgepress::runtime::sparse {
namespace {

struct Case {
  int64_t m, k, n;
};
// Sizes around the tiles: gather form (m <= 2) and A^T blocks of 8/16 rows.
const Case kCases[] = {{1, 1, 1},    {1, 17, 33},  {2, 64, 16},   {3, 31, 47},  {8, 40, 9},
                       {15, 100, 17}, {16, 64, 32}, {17, 129, 65}, {33, 256, 100}};

std::vector<float> Random(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(count);
  for (float& x : v) x = d(rng);
  return v;
}

// K x N weight with `zeros` of its entries zero; column 0 and (when k > 2) row 1 all zero.
std::vector<float> SparseWeight(int64_t k, int64_t n, double zeros, uint32_t seed) {
  std::vector<float> w = Random(static_cast<size_t>(k * n), seed);
  std::mt19937 rng(seed + 1);
  std::uniform_real_distribution<double> u(0, 1);
  for (float& x : w)
    if (u(rng) < zeros) x = 0.f;
  if (zeros > 0) {
    for (int64_t kk = 0; kk < k; ++kk) w[kk * n] = 0.f;
    if (k > 2)
      for (int64_t j = 0; j < n; ++j) w[n + j] = 0.f;
  }
  return w;
}

// Keeps `nn` of every `mm` along K (positions vary by column and group).
std::vector<float> NMWeightData(int64_t k, int64_t n, int nn, int mm, uint32_t seed) {
  std::vector<float> w = Random(static_cast<size_t>(k * n), seed);
  std::mt19937 rng(seed);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t g = 0; g < k; g += mm) {
      const int start = static_cast<int>(rng() % mm);
      for (int t = 0; t < mm; ++t)
        if ((t - start + mm) % mm >= nn) w[(g + t) * n + j] = 0.f;
    }
  return w;
}

std::vector<float> NaiveDense(int64_t m, int64_t k, int64_t n, const std::vector<float>& a,
                              const std::vector<float>& w, const SparseOut& o) {
  std::vector<float> c(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t kk = 0; kk < k; ++kk) acc += static_cast<double>(a[i * k + kk]) * w[kk * n + j];
      c[i * n + j] = o.Apply(static_cast<float>(acc), j);
    }
  return c;
}

void ExpectClose(const std::vector<float>& want, const std::vector<float>& got, int64_t k,
                 const std::string& what) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(want[i], got[i], 3e-6 * (k + 4) * (1 + std::fabs(want[i]))) << what << " @" << i;
}

// Epilogues: plain, and alpha + bias + clamp.
SparseOut Out(int variant, const std::vector<float>& bias, std::vector<float>* c, int64_t n) {
  SparseOut o;
  o.c = c->data();
  o.ldc = n;
  if (variant == 1) {
    o.alpha = 0.5f;
    o.col_bias = bias.data();
    o.clamp = true;
    o.lo = -0.3f;
    o.hi = 0.4f;
  }
  return o;
}

const Isa kSimdIsas[] = {Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni};

TEST(SparseGemmTest, CsrReferenceMatchesDenseProduct) {
  for (const Case& cs : kCases)
    for (double zeros : {0.0, 0.5, 0.9, 0.99, 1.0})
      for (int variant : {0, 1}) {
        const std::vector<float> a = Random(static_cast<size_t>(cs.m * cs.k), 3);
        const std::vector<float> w = SparseWeight(cs.k, cs.n, zeros, 4);
        const std::vector<float> bias = Random(static_cast<size_t>(cs.n), 5);
        const CsrWeight csr = PackCsr(w.data(), cs.n, false, cs.k, cs.n);
        std::vector<float> c(static_cast<size_t>(cs.m * cs.n), NAN);
        const SparseOut o = Out(variant, bias, &c, cs.n);
        SpmmCsr(SparseKernelsFor(Isa::kScalar), cs.m, a.data(), cs.k, csr, o, nullptr);
        ExpectClose(NaiveDense(cs.m, cs.k, cs.n, a, w, o), c, cs.k,
                    "m=" + std::to_string(cs.m) + " n=" + std::to_string(cs.n));
      }
}

TEST(SparseGemmTest, CsrPackingOfTransposedWeight) {
  // Gemm's transB: the weight is stored N x K.
  const int64_t k = 37, n = 21;
  const std::vector<float> w = SparseWeight(k, n, 0.7, 8);
  std::vector<float> wt(w.size());
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t j = 0; j < n; ++j) wt[j * k + kk] = w[kk * n + j];
  const CsrWeight a = PackCsr(w.data(), n, false, k, n), b = PackCsr(wt.data(), k, true, k, n);
  EXPECT_EQ(a.col_ptr, b.col_ptr);
  EXPECT_EQ(a.k_idx, b.k_idx);
  EXPECT_EQ(a.values, b.values);
  EXPECT_EQ(a.col_ptr[1], 0) << "column 0 is all zero";
}

TEST(SparseGemmTest, CsrIsaVariantsMatchReference) {
  ThreadPool pool(2);
  for (Isa isa : kSimdIsas) {
    if (!SparseIsaAvailable(isa)) {
      std::printf("[  SKIPPED ] %s: CPU lacks the ISA\n", IsaName(isa));
      continue;
    }
    const SparseKernels& ks = SparseKernelsFor(isa);
    for (const Case& cs : kCases)
      for (double zeros : {0.0, 0.5, 0.9, 0.99, 1.0})
        for (int variant : {0, 1}) {
          const std::vector<float> a = Random(static_cast<size_t>(cs.m * cs.k), 13);
          const std::vector<float> w = SparseWeight(cs.k, cs.n, zeros, 14);
          const std::vector<float> bias = Random(static_cast<size_t>(cs.n), 15);
          const CsrWeight csr = PackCsr(w.data(), cs.n, false, cs.k, cs.n);
          std::vector<float> want(static_cast<size_t>(cs.m * cs.n)), got(want.size(), NAN);
          SpmmCsr(SparseKernelsFor(Isa::kScalar), cs.m, a.data(), cs.k, csr,
                  Out(variant, bias, &want, cs.n), nullptr);
          SpmmCsr(ks, cs.m, a.data(), cs.k, csr, Out(variant, bias, &got, cs.n),
                  cs.m > 8 ? &pool : nullptr);
          ExpectClose(want, got, cs.k,
                      std::string(ks.csr_name) + " m=" + std::to_string(cs.m) +
                          " k=" + std::to_string(cs.k) + " n=" + std::to_string(cs.n) +
                          " zeros=" + std::to_string(zeros));
        }
  }
}

TEST(SparseGemmTest, NMDetectionPicksTheTightestPattern) {
  NMWeight w;
  std::vector<float> d = NMWeightData(16, 5, 2, 4, 1);
  ASSERT_TRUE(PackNM(d.data(), 5, false, 16, 5, &w));
  EXPECT_EQ(w.nn, 2);
  EXPECT_EQ(w.m, 4);
  d = NMWeightData(16, 5, 1, 4, 2);
  ASSERT_TRUE(PackNM(d.data(), 5, false, 16, 5, &w));
  EXPECT_EQ(w.nn, 1);
  d = NMWeightData(32, 5, 4, 8, 3);
  ASSERT_TRUE(PackNM(d.data(), 5, false, 32, 5, &w));
  EXPECT_EQ(w.m, 8);
  // Must not fire: 3 of 4 kept somewhere, a dense weight, K not a multiple of 4.
  d = NMWeightData(16, 5, 2, 4, 4);
  d[0] = d[5] = d[10] = d[15] = 1.f;  // column 0, group 0: all four set
  d[40] = 1.f;
  EXPECT_FALSE(PackNM(d.data(), 5, false, 16, 5, &w));
  d = Random(16 * 5, 5);
  EXPECT_FALSE(PackNM(d.data(), 5, false, 16, 5, &w));
  d = NMWeightData(18, 5, 2, 6, 6);
  EXPECT_FALSE(PackNM(d.data(), 5, false, 18, 5, &w));
}

TEST(SparseGemmTest, NMKernelsMatchReferenceAndDenseProduct) {
  ThreadPool pool(2);
  struct Pattern {
    int nn, mm;
  };
  for (Pattern p : {Pattern{2, 4}, Pattern{1, 4}, Pattern{4, 8}, Pattern{3, 8}})
    for (const Case& base : kCases) {
      const Case cs{base.m, (base.k + p.mm - 1) / p.mm * p.mm, base.n};
      for (int variant : {0, 1}) {
        const std::vector<float> a = Random(static_cast<size_t>(cs.m * cs.k), 21);
        const std::vector<float> w = NMWeightData(cs.k, cs.n, p.nn, p.mm, 22);
        const std::vector<float> bias = Random(static_cast<size_t>(cs.n), 23);
        NMWeight nm;
        ASSERT_TRUE(PackNM(w.data(), cs.n, false, cs.k, cs.n, &nm));
        std::vector<float> want(static_cast<size_t>(cs.m * cs.n), NAN);
        SpmmNM(SparseKernelsFor(Isa::kScalar), cs.m, a.data(), cs.k, nm,
               Out(variant, bias, &want, cs.n), nullptr);
        const std::string what = std::to_string(p.nn) + ":" + std::to_string(p.mm) +
                                 " m=" + std::to_string(cs.m) + " k=" + std::to_string(cs.k) +
                                 " n=" + std::to_string(cs.n);
        ExpectClose(NaiveDense(cs.m, cs.k, cs.n, a, w, Out(variant, bias, &want, cs.n)), want,
                    cs.k, "ref " + what);
        for (Isa isa : kSimdIsas) {
          if (!SparseIsaAvailable(isa)) continue;
          const SparseKernels& ks = SparseKernelsFor(isa);
          std::vector<float> got(want.size(), NAN);
          SpmmNM(ks, cs.m, a.data(), cs.k, nm, Out(variant, bias, &got, cs.n),
                 cs.n > 64 ? &pool : nullptr);
          ExpectClose(want, got, cs.k, std::string(ks.nm_name) + " " + what);
        }
      }
    }
}

TEST(SparseGemmTest, Int8CsrIsExact) {
  for (bool is_signed : {true, false})
    for (const Case& cs : kCases) {
      std::mt19937 rng(31);
      std::vector<uint8_t> b(static_cast<size_t>(cs.k * cs.n));
      std::vector<int32_t> zb(static_cast<size_t>(cs.n));
      for (auto& z : zb) z = is_signed ? 0 : static_cast<int32_t>(rng() % 256);
      // 90% of entries at the zero point (sparse after subtracting it); extremes kept.
      for (int64_t kk = 0; kk < cs.k; ++kk)
        for (int64_t j = 0; j < cs.n; ++j) {
          const int32_t v = rng() % 10 == 0 ? static_cast<int32_t>(rng() % 256) : (is_signed ? 0 : zb[j]);
          b[kk * cs.n + j] = static_cast<uint8_t>(is_signed && rng() % 7 == 0 ? 0x80 : v);
        }
      std::vector<int32_t> a(static_cast<size_t>(cs.m * cs.k));
      for (auto& x : a) x = static_cast<int32_t>(rng() % 256) - static_cast<int32_t>(rng() % 256);
      const QCsrWeight w = PackQCsr(b.data(), is_signed, cs.n, false, cs.k, cs.n, zb.data(), true);
      std::vector<int32_t> want(static_cast<size_t>(cs.m * cs.n));
      for (int64_t i = 0; i < cs.m; ++i)
        for (int64_t j = 0; j < cs.n; ++j) {
          int64_t s = 0;
          for (int64_t kk = 0; kk < cs.k; ++kk) {
            const int32_t bv = is_signed ? static_cast<int8_t>(b[kk * cs.n + j]) : b[kk * cs.n + j];
            s += static_cast<int64_t>(a[i * cs.k + kk]) * (bv - zb[j]);
          }
          want[i * cs.n + j] = static_cast<int32_t>(s);
        }
      for (Isa isa : {Isa::kScalar, Isa::kAvx512Vnni}) {
        if (!SparseIsaAvailable(isa)) continue;
        const SparseKernels& ks = SparseKernelsFor(isa);
        std::vector<int32_t> got(want.size(), -1);
        QSpmmCsr(ks, cs.m, a.data(), cs.k, w, got.data(), cs.n, nullptr);
        EXPECT_EQ(want, got) << ks.qcsr_name << " m=" << cs.m << " k=" << cs.k << " n=" << cs.n
                             << (is_signed ? " int8" : " uint8");
      }
    }
}

}  // namespace
}  // namespace edgepress::runtime::sparse
