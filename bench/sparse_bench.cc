// Dense vs sparse latency of one linear layer (K = N = 1024 by default) at M = 1, 4, 16,
// 64: unstructured 50/70/90% (CSR kernels) and 2:4 (N:M kernels), fp32 and int8, printed
// as sparse/dense ratios (< 1 = sparse faster). Single thread, thread CPU time, best of
// several runs. Not part of ctest. Build (after building edgepress_runtime):
//   g++ -O2 -std=c++17 -I. bench/sparse_bench.cc build/runtime/libedgepress_runtime.a \
//       build/formats/libedgepress_epk.a build/ir/libedgepress_ir.a -lz -lpthread -o sparse_bench
// Usage: sparse_bench [K N]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <vector>

#include "bench/bench_util.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/qgemm/qgemm.h"
#include "runtime/kernels/sparse/sparse_gemm.h"

using namespace edgepress::runtime;

namespace {

using edgepress::bench::ThreadCpuSeconds;

// Best per-call time over 5 batches of calls lasting >= 20 ms each.
template <typename F>
double Time(F&& f) {
  f();
  double best = 1e30;
  for (int batch = 0; batch < 5; ++batch) {
    int calls = 0;
    const double t0 = ThreadCpuSeconds();
    double t = t0;
    while (t - t0 < 0.02) {
      f();
      ++calls;
      t = ThreadCpuSeconds();
    }
    best = std::min(best, (t - t0) / calls);
  }
  return best;
}

// Weight K x N with `zeros` of its entries zero (unstructured), or 2 of every 4 along K.
std::vector<float> Weight(int64_t k, int64_t n, double zeros, bool two_four, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> w(static_cast<size_t>(k * n));
  for (float& x : w) x = d(rng);
  if (two_four) {
    for (int64_t j = 0; j < n; ++j)
      for (int64_t g = 0; g < k; g += 4) {
        int keep0 = static_cast<int>(rng() % 4), keep1 = (keep0 + 1 + static_cast<int>(rng() % 3)) % 4;
        for (int t = 0; t < 4; ++t)
          if (t != keep0 && t != keep1) w[(g + t) * n + j] = 0;
      }
  } else {
    std::uniform_real_distribution<double> u(0, 1);
    for (float& x : w)
      if (u(rng) < zeros) x = 0;
  }
  return w;
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t k = argc > 2 ? std::atoll(argv[1]) : 1024, n = argc > 2 ? std::atoll(argv[2]) : 1024;
  const Isa isa = BestGemmIsa(), qisa = BestQGemmIsa();
  const sparse::SparseKernels& ks = sparse::SparseKernelsFor(isa == Isa::kAvx512 ? Isa::kAvx512Vnni : isa);
  std::printf("K=%lld N=%lld, 1 thread; dense %s / %s; sparse %s, %s, %s\n",
              static_cast<long long>(k), static_cast<long long>(n), GemmKernelName(isa),
              QGemmKernelName(qisa), ks.csr_name, ks.nm_name, ks.qcsr_name);
  std::printf("%-8s %-14s %4s %12s %12s %8s\n", "dtype", "pattern", "M", "dense us", "sparse us",
              "ratio");
  std::mt19937 rng(42);
  struct Pattern {
    const char* name;
    double zeros;
    bool two_four;
  };
  const Pattern patterns[] = {{"50% unstr.", 0.5, false}, {"70% unstr.", 0.7, false},
                              {"90% unstr.", 0.9, false}, {"2:4", 0.5, true}};
  const int64_t ms[] = {1, 4, 16, 64};
  std::vector<float> a(static_cast<size_t>(64 * k)), c(static_cast<size_t>(64 * n));
  std::uniform_real_distribution<float> d(-1, 1);
  for (float& x : a) x = d(rng);
  std::vector<int32_t> a32(a.size()), acc(c.size());
  std::vector<uint8_t> a8(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    a8[i] = static_cast<uint8_t>(rng() & 0xFF);
    a32[i] = static_cast<int32_t>(a8[i]) - 128;
  }
  for (const Pattern& p : patterns) {
    const std::vector<float> w = Weight(k, n, p.zeros, p.two_four, rng);
    const PackedMatrix dense = PackB(isa, false, k, n, w.data(), n);
    const sparse::CsrWeight csr = sparse::PackCsr(w.data(), n, false, k, n);
    sparse::NMWeight nm;
    const bool has_nm = p.two_four && sparse::PackNM(w.data(), n, false, k, n, &nm);
    // int8 weight: the same pattern, values in [-127, 127].
    std::vector<int8_t> w8(w.size());
    for (size_t i = 0; i < w.size(); ++i) w8[i] = static_cast<int8_t>(w[i] * 127.f);
    const int32_t zb = 0;
    const QSource bsrc{w8.data(), edgepress::ir::DType::kInt8, n, false, &zb, false};
    const QPacked qdense = QPackB(qisa, k, n, bsrc);
    const sparse::QCsrWeight qcsr = sparse::PackQCsr(w8.data(), true, n, false, k, n, &zb, false);
    std::vector<int16_t> apack(static_cast<size_t>(QPackedASize(qisa, 64, k)));
    for (int64_t m : ms) {
      sparse::SparseOut o;
      o.c = c.data();
      o.ldc = n;
      const double td = Time([&] {
        SgemmEx(isa, m, n, k, 1.f, GemmOperand::Raw(a.data(), k), GemmOperand::Packed(dense), 0.f,
                c.data(), n, nullptr);
      });
      const double ts = has_nm ? Time([&] { sparse::SpmmNM(ks, m, a.data(), k, nm, o, nullptr); })
                               : Time([&] { sparse::SpmmCsr(ks, m, a.data(), k, csr, o, nullptr); });
      std::printf("%-8s %-14s %4lld %12.1f %12.1f %8.2f  %s\n", "fp32", p.name,
                  static_cast<long long>(m), td * 1e6, ts * 1e6, ts / td,
                  has_nm ? ks.nm_name : ks.csr_name);
      const int32_t za = 128;
      const QSource asrc{a8.data(), edgepress::ir::DType::kUInt8, k, false, &za, false};
      QOutput qo;
      qo.kind = QOutput::Kind::kInt32;
      qo.data = acc.data();
      qo.ld = n;
      const double tqd = Time([&] {
        const int64_t panels = (m + QGemmMr(qisa) - 1) / QGemmMr(qisa);
        QPackAPanels(qisa, m, k, asrc, 0, panels, apack.data());
        QGemm(qisa, m, n, k, QOperand{apack.data(), qisa, m, k}, QOperand::Of(qdense), qo, nullptr);
      });
      const double tqs = Time([&] {
        // The sparse path widens A - za to int32 per call (part of its cost).
        for (int64_t i = 0; i < m * k; ++i) a32[i] = static_cast<int32_t>(a8[i]) - za;
        sparse::QSpmmCsr(ks, m, a32.data(), k, qcsr, acc.data(), n, nullptr);
      });
      std::printf("%-8s %-14s %4lld %12.1f %12.1f %8.2f  %s\n", "int8", p.name,
                  static_cast<long long>(m), tqd * 1e6, tqs * 1e6, tqs / tqd, ks.qcsr_name);
    }
  }
  return 0;
}
