// MatMulNBits (4-bit weights, block 32 with zero points) against the fp32 GEMM on the same
// shape (SgemmEx on B packed once, as the MatMul kernel runs a constant weight), at
// M = 1, 4, 16, 64 and 256 rows: the LLM-sized shapes and the GPT/BERT fixtures' shapes.
// Columns: "int4" is accuracy_level 0 (fp32 arithmetic: the multi-row GEMV below 8 rows,
// dequantize + Sgemm above); "a4" is accuracy_level 4 as the operator runs it (A quantized
// to int8 per block: the packed q4s8 GEMM of nbits_int8.h with the CPU's best kernel, or
// without VNNI at M = 1 the int8 GEMV on B's layout), "a4avx2" the same with the plain AVX2
// kernel (what a CPU without any VNNI runs), next to "f32avx2", the fp32 GEMM's AVX2 kernel (what such a
// CPU runs for fp32; "a4/f avx2" is the ratio there). GF/s counts 2 M K N; GB/s is the int4 weight bytes (4.5 bits
// per weight with scales and packed zero points) per second, and %copy that over a
// measured memcpy read bandwidth (meaningful at small M, where the product is
// bandwidth-bound). Single thread by default. Not part of ctest.
//
// Build (after building the edgepress_runtime target in a build dir B, e.g. build):
//   g++ -O2 -std=c++17 -I. bench/int4_gemv_bench.cc B/runtime/libedgepress_runtime.a
//       B/formats/libedgepress_epk.a B/ir/libedgepress_ir.a -lz -lpthread -o int4_gemv_bench
// Usage: int4_gemv_bench [threads]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <vector>

#include "bench/bench_util.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/lowbit/matmul_nbits.h"
#include "runtime/kernels/lowbit/nbits_int8.h"

using namespace edgepress::runtime;

// Best-of-5 seconds per call, each repetition running for at least 0.2 s.
template <class F>
static double TimeIt(F&& f, int threads) {
  return edgepress::bench::BestSecondsPerCall(f, threads, 5, 0.2);
}

// Memory bandwidth the GEMVs are measured against: memcpy of a 256 MiB buffer (far past
// the last-level cache), in bytes read per second (a copy reads and writes each byte once;
// a GEMV only reads, so bytes read is the like-for-like figure). Single thread, best of 5,
// in thread CPU time like the 1-thread GEMV timings.
static double CopyReadGBps() {
  const size_t bytes = size_t{256} << 20;
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  double best = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = edgepress::bench::ThreadCpuSeconds();
    std::memcpy(dst.data(), src.data(), bytes);
    best = std::min(best, edgepress::bench::ThreadCpuSeconds() - t0);
    src[rep] = dst[bytes - 1 - rep];  // keep the copies observable
  }
  return bytes / best * 1e-9;
}

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  ThreadPool pool(threads);
  const double copy_gbps = CopyReadGBps();
  std::printf("memcpy 256 MiB: %.2f GB/s read (+ as much written)\n", copy_gbps);
  const Isa isa = BestGemmIsa();
  const bool avx2 = GetCpuFeatures().Has(Isa::kAvx2) && !ForceScalar();
  const Isa q4_isa = avx2 ? Isa::kAvx2 : Isa::kScalar;
  const Isa a4_isa = !avx2 ? Isa::kScalar
                     : GetCpuFeatures().Has(Isa::kAvx512Vnni) ? Isa::kAvx512Vnni
                                                              : Isa::kAvx2;
  std::printf("fp32 %s, int4 %s, a4 %s, %d thread(s), block_size 32 with zero points\n",
              GemmKernelName(isa), avx2 ? "q4_matmul_nbits__avx2" : "q4_matmul_nbits__ref",
              Q4Int8KernelName(a4_isa), threads);
  std::printf("%-12s %3s %8s %8s %8s %7s %7s %7s %7s %7s %6s %6s | %8s %8s %10s\n", "K x N",
              "M", "fp32 ms", "int4 ms", "a4 ms", "fp32GF", "int4GF", "a4 GF", "int4/f", "a4/f",
              "i4%cp", "a4%cp", "f32avx2", "a4avx2", "a4/f avx2");
  struct Shape {
    int64_t k, n;
  };
  const Shape shapes[] = {{4096, 4096}, {4096, 11008}, {256, 768},
                          {1024, 256},  {384, 1536},   {1536, 384}};
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1), s(0.01f, 0.1f);
  std::uniform_int_distribution<int> byte(0, 255);
  for (const Shape& sh : shapes) {
    const int64_t k = sh.k, n = sh.n, bs = 32, kb = (k + bs - 1) / bs;
    std::vector<float> wf(k * n);
    for (float& x : wf) x = u(rng);
    const PackedMatrix pb = PackB(isa, false, k, n, wf.data(), n);
    const PackedMatrix pb2 = PackB(Isa::kAvx2, false, k, n, wf.data(), n);
    std::vector<float>().swap(wf);
    std::vector<uint8_t> packed(n * kb * bs / 2), zp(n * ((kb + 1) / 2));
    for (uint8_t& x : packed) x = static_cast<uint8_t>(byte(rng));
    for (uint8_t& x : zp) x = static_cast<uint8_t>(byte(rng));
    std::vector<float> scales(n * kb);
    for (float& x : scales) x = s(rng);
    const Q4Params params = MakeQ4Params(n, kb, scales.data(), zp.data(), nullptr);
    Q4Weights w;
    w.n = n;
    w.k = k;
    w.block_size = bs;
    w.k_blocks = kb;
    w.packed = packed.data();
    w.params = &params;
    const Q4Int8Packed pk = PackQ4Int8(w);  // once, as the operator does at load
    const double q4_bytes = packed.size() + scales.size() * 4.0 + zp.size();
    for (int64_t m : {1, 4, 16, 64, 256}) {
      std::vector<float> a(m * k), y(m * n);
      for (float& x : a) x = u(rng);
      const double t_f32 = TimeIt(
          [&] {
            SgemmEx(isa, m, n, k, 1.f, GemmOperand::Raw(a.data(), k), GemmOperand::Packed(pb),
                    0.f, y.data(), n, &pool);
          },
          threads);
      const double t_q4 =
          TimeIt([&] { Q4MatMul(q4_isa, a.data(), m, w, nullptr, y.data(), &pool); }, threads);
      auto a4 = [&](const Q4Int8Impl& impl) {
        return TimeIt(
            [&] {
              if (m == 1 && impl.kernel == nbits_detail::Q4Int8GemmAvx2 &&
                  Q4MatMulInt8(q4_isa, a.data(), m, w, nullptr, y.data(), &pool))
                return;
              Q4Int8MatMul(impl, a.data(), m, pk, nullptr, y.data(), &pool);
            },
            threads);
      };
      const Q4Int8Impl best = Q4Int8ImplFor(a4_isa);
      const Q4Int8Impl plain_avx2 = {nbits_detail::Q4Int8GemmAvx2,
                                     nbits_detail::QuantizeQ8RowsAvx2, "q4s8_gemm__avx2"};
      const double t_a4 = a4(best);
      const double t_a4_avx2 = avx2 && best.kernel != plain_avx2.kernel ? a4(plain_avx2) : t_a4;
      const double t_f32_avx2 =
          !avx2 ? t_f32
          : isa == Isa::kAvx2
              ? t_f32
              : TimeIt(
                    [&] {
                      SgemmEx(Isa::kAvx2, m, n, k, 1.f, GemmOperand::Raw(a.data(), k),
                              GemmOperand::Packed(pb2), 0.f, y.data(), n, &pool);
                    },
                    threads);
      const double flop = 2.0 * m * k * n * 1e-9;
      char name[64];
      std::snprintf(name, sizeof(name), "%lld x %lld", static_cast<long long>(k),
                    static_cast<long long>(n));
      std::printf(
          "%-12s %3lld %8.3f %8.3f %8.3f %7.1f %7.1f %7.1f %7.2f %7.2f %5.0f%% %5.0f%% | %8.3f "
          "%8.3f %10.2f\n",
          name, static_cast<long long>(m), t_f32 * 1e3, t_q4 * 1e3, t_a4 * 1e3, flop / t_f32,
          flop / t_q4, flop / t_a4, t_q4 / t_f32, t_a4 / t_f32,
          100.0 * q4_bytes / t_q4 * 1e-9 / copy_gbps, 100.0 * q4_bytes / t_a4 * 1e-9 / copy_gbps,
          t_f32_avx2 * 1e3, t_a4_avx2 * 1e3, t_a4_avx2 / t_f32_avx2);
      std::fflush(stdout);
    }
  }
  return 0;
}
