// edgepress::TernaryMatMul's kernel (2-bit ternary weights, one scale per column; tiles of
// columns x rows sharing each decoded +1/0/-1 vector, ternary_matmul.h) against the fp32 GEMM/GEMV
// on the same shape (SgemmEx with B packed once, as the MatMul kernel runs a constant weight), at M
// = 1..64 for transformer-sized K x N (BERT-base attention/FFN projections, an LLM-sized 4096 x
// 4096). Rounds are interleaved (every shape and M once per round, fp32 and ternary back to back)
// and the table reports the median over rounds of each time and of the per-round ratio tern/fp32 (<
// 1: ternary is faster), for the CPU's best ISA and for AVX2 (what AMD Zen 2/3 runs). Times are
// thread CPU time at 1 thread (less disturbed by a loaded machine), wall time otherwise. Not part
// of ctest.
//
// Build (after building the edgepress_runtime target in a build dir B, e.g. build):
//   g++ -O2 -std=c++17 -I. bench/ternary_gemv_bench.cc B/runtime/libedgepress_runtime.a
//       B/formats/epk/libedgepress_epk.a B/ir/libedgepress_ir.a -lz -lpthread -o ternary_gemv_bench
// Usage: ternary_gemv_bench [--rounds R] [--threads T]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/lowbit/ternary_matmul.h"

using namespace edgepress::runtime;

// Best of 3 repetitions of >= 50 ms each, seconds per call.
template <class F>
static double TimeIt(F&& f, int threads) {
  return edgepress::bench::BestSecondsPerCall(f, threads, 3, 0.05);
}

using edgepress::bench::Median;

struct Shape {
  int64_t k, n;
  std::vector<float> wf;
  std::vector<int8_t> t;
  std::vector<float> scales;
  edgepress::ir::Tensor codes;
};

int main(int argc, char** argv) {
  int rounds = 3, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
  }
  ThreadPool pool(threads);
  const CpuFeatures& cpu = GetCpuFeatures();
  std::vector<Isa> isas;
  if (cpu.Has(Isa::kAvx512)) isas.push_back(Isa::kAvx512);
  if (cpu.Has(Isa::kAvx2)) isas.push_back(Isa::kAvx2);
  if (isas.empty()) isas.push_back(Isa::kScalar);
  std::printf("%s; %d thread(s), %d interleaved rounds\n", cpu.model_name.c_str(), threads, rounds);

  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  std::uniform_int_distribution<int> code(-1, 1);
  std::vector<Shape> shapes = {{768, 768}, {768, 3072}, {3072, 768}, {4096, 4096}};
  for (Shape& s : shapes) {
    s.t.resize(s.k * s.n);  // [n][k]
    for (int8_t& x : s.t) x = static_cast<int8_t>(code(rng));
    s.scales.assign(s.n, 0.05f);
    s.wf.resize(s.k * s.n);  // the dequantized weight, [k][n] for the fp32 GEMM
    for (int64_t c = 0; c < s.n; ++c)
      for (int64_t kk = 0; kk < s.k; ++kk) s.wf[kk * s.n + c] = s.scales[c] * s.t[c * s.k + kk];
    s.codes = PackTernary(s.t.data(), s.n, s.k);
  }
  const int64_t ms[] = {1, 2, 4, 8, 16, 32, 64};
  // [isa][shape][m] -> per-round times
  std::map<std::tuple<Isa, size_t, int64_t>, std::vector<double>> t_f32, t_tern, ratio;
  for (int r = 0; r < rounds; ++r)
    for (Isa isa : isas)
      for (size_t si = 0; si < shapes.size(); ++si) {
        Shape& s = shapes[si];
        const PackedMatrix pb = PackB(isa, false, s.k, s.n, s.wf.data(), s.n);
        TernaryWeights w;
        w.n = s.n;
        w.k = s.k;
        w.kp = TernaryPaddedK(s.k);
        w.codes = static_cast<const uint8_t*>(s.codes.raw());
        w.scales = s.scales.data();
        for (int64_t m : ms) {
          std::vector<float> a(m * s.k), y(m * s.n);
          for (float& x : a) x = u(rng);
          const double f = TimeIt(
              [&] {
                SgemmEx(isa, m, s.n, s.k, 1.f, GemmOperand::Raw(a.data(), s.k),
                        GemmOperand::Packed(pb), 0.f, y.data(), s.n, &pool);
              },
              threads);
          const double t = TimeIt(
              [&] { TernaryMatMul(isa, a.data(), m, w, nullptr, y.data(), &pool); }, threads);
          const auto key = std::make_tuple(isa, si, m);
          t_f32[key].push_back(f);
          t_tern[key].push_back(t);
          ratio[key].push_back(t / f);
        }
      }
  std::printf("%-7s %-11s %3s %9s %9s %9s %8s %8s\n", "isa", "K x N", "M", "fp32 ms", "tern ms",
              "tern/f32", "f32 GF/s", "tern GF/s");
  for (Isa isa : isas)
    for (size_t si = 0; si < shapes.size(); ++si)
      for (int64_t m : ms) {
        const auto key = std::make_tuple(isa, si, m);
        const double f = Median(t_f32[key]), t = Median(t_tern[key]);
        const double flop = 2.0 * m * shapes[si].k * shapes[si].n * 1e-9;
        char name[32];
        std::snprintf(name, sizeof(name), "%lldx%lld", static_cast<long long>(shapes[si].k),
                      static_cast<long long>(shapes[si].n));
        std::printf("%-7s %-11s %3lld %9.4f %9.4f %9.2f %8.1f %8.1f\n", IsaName(isa), name,
                    static_cast<long long>(m), f * 1e3, t * 1e3, Median(ratio[key]), flop / f,
                    flop / t);
      }
  return 0;
}
