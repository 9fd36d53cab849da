// Decoder-shaped GEMV (M = 1) with 4-bit weights (MatMulNBits' Q4MatMul) against the fp32
// GEMV (SgemmEx with M = 1 on B packed once, as the MatMul kernel runs a constant weight)
// and the int8 GEMM of the quantized operators (QGemm on an int8 B packed once, A uint8
// packed per call, int32 out: the core of DynamicQuantizeMatMul / QLinearMatMul),
// single thread. Reports time per call, weight bytes streamed per second (4.5 bits per
// weight with scales and packed zero points for int4; 32 bits for fp32) and the speedup
// of int4 over fp32 and over int8. "int4a4" is MatMulNBits with accuracy_level 4 (A
// quantized to int8 per block, integer dot products; M = 1 only, else the fp32 path).
// Also M = 4 and M = 16 rows (multi-row GEMV / dequantize + GEMM paths). Not part of ctest.
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

#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/gemm/matmul_nbits.h"
#include "runtime/kernels/qgemm/qgemm.h"

using namespace edgepress::runtime;

// CPU time of the calling thread: less disturbed by other processes on a shared machine
// than wall time (meaningful for 1 thread only).
static double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Best-of-5 seconds per call, each repetition running for at least 0.2 s.
template <class F>
static double TimeIt(F&& f, int threads) {
  f();
  double best = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    int iters = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = ThreadCpuSeconds();
    double el = 0;
    do {
      f();
      ++iters;
      el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (el < 0.2);
    const double t = threads == 1 ? (ThreadCpuSeconds() - c0) : el;
    best = std::min(best, t / iters);
  }
  return best;
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
    const double t0 = ThreadCpuSeconds();
    std::memcpy(dst.data(), src.data(), bytes);
    best = std::min(best, ThreadCpuSeconds() - t0);
    src[rep] = dst[bytes - 1 - rep];  // keep the copies observable
  }
  return bytes / best * 1e-9;
}

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  ThreadPool pool(threads);
  const double copy_gbps = CopyReadGBps();
  std::printf("memcpy 256 MiB: %.2f GB/s read (+ as much written); int4/copy below is the "
              "int4 GEMV's weight bytes per second over this\n",
              copy_gbps);
  const Isa isa = BestGemmIsa();
  const Isa q4_isa = GetCpuFeatures().Has(Isa::kAvx2) && !ForceScalar() ? Isa::kAvx2
                                                                         : Isa::kScalar;
  std::printf("fp32 %s, int4 %s, %d thread(s), block_size 32 with zero points\n",
              GemmKernelName(isa), q4_isa == Isa::kAvx2 ? "q4_matmul_nbits__avx2"
                                                        : "q4_matmul_nbits__ref",
              threads);
  const Isa qisa = BestQGemmIsa();
  std::printf("int8 %s\n", QGemmKernelName(qisa));
  std::printf("%-14s %3s %8s %8s %8s %8s %9s %9s %9s %9s %10s %9s\n", "shape (K x N)", "M",
              "fp32 ms", "int8 ms", "int4 ms", "int4a4ms", "fp32 GB/s", "int4 GB/s",
              "int4/fp32", "int4/int8", "int4a4/int8", "int4/copy");
  struct Shape {
    int64_t k, n;
  };
  const Shape shapes[] = {{2048, 2048}, {4096, 4096}, {4096, 11008}, {11008, 4096}};
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1), s(0.01f, 0.1f);
  std::uniform_int_distribution<int> byte(0, 255);
  for (const Shape& sh : shapes) {
    const int64_t k = sh.k, n = sh.n, bs = 32, kb = (k + bs - 1) / bs;
    std::vector<float> wf(k * n);
    for (float& x : wf) x = u(rng);
    const PackedMatrix pb = PackB(isa, false, k, n, wf.data(), n);
    std::vector<float>().swap(wf);
    std::vector<uint8_t> packed(n * kb * bs / 2), zp(n * ((kb + 1) / 2));
    for (uint8_t& x : packed) x = static_cast<uint8_t>(byte(rng));
    for (uint8_t& x : zp) x = static_cast<uint8_t>(byte(rng));
    std::vector<float> scales(n * kb);
    for (float& x : scales) x = s(rng);
    const Q4Params params = MakeQ4Params(n, kb, scales.data(), zp.data(), nullptr);
    std::vector<int8_t> b8(k * n);
    for (int8_t& x : b8) x = static_cast<int8_t>(byte(rng) - 128);
    QSource qb;
    qb.data = b8.data();
    qb.dtype = edgepress::ir::DType::kInt8;
    qb.ld = n;
    const QPacked qpb = QPackB(qisa, k, n, qb);
    std::vector<int8_t>().swap(b8);
    Q4Weights w;
    w.n = n;
    w.k = k;
    w.block_size = bs;
    w.k_blocks = kb;
    w.packed = packed.data();
    w.params = &params;
    const double q4_bytes = packed.size() + scales.size() * 4.0 + zp.size();
    const double f32_bytes = 4.0 * k * n;
    for (int64_t m : {1, 4, 16}) {
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
      std::vector<uint8_t> a8(m * k);
      for (uint8_t& x : a8) x = static_cast<uint8_t>(byte(rng));
      std::vector<int32_t> acc(m * n);
      QSource qa;
      qa.data = a8.data();
      qa.ld = k;
      QOutput out;
      out.data = acc.data();
      out.ld = n;
      const double t_i8 = TimeIt(
          [&] {
            const QPacked qpa = QPackA(qisa, m, k, qa);
            QGemm(qisa, m, n, k, QOperand::Of(qpa), QOperand::Of(qpb), out, &pool);
          },
          threads);
      const double t_q4a4 = TimeIt(
          [&] {
            if (!Q4MatMulInt8(q4_isa, a.data(), m, w, nullptr, y.data(), &pool))
              Q4MatMul(q4_isa, a.data(), m, w, nullptr, y.data(), &pool);
          },
          threads);
      char name[64];
      std::snprintf(name, sizeof(name), "%lld x %lld", static_cast<long long>(k),
                    static_cast<long long>(n));
      std::printf(
          "%-14s %3lld %8.3f %8.3f %8.3f %8.3f %9.2f %9.2f %8.2fx %8.2fx %9.2fx %8.0f%%\n", name,
          static_cast<long long>(m), t_f32 * 1e3, t_i8 * 1e3, t_q4 * 1e3, t_q4a4 * 1e3,
          f32_bytes / t_f32 * 1e-9, q4_bytes / t_q4 * 1e-9, t_f32 / t_q4, t_i8 / t_q4,
          t_i8 / t_q4a4, 100.0 * q4_bytes / t_q4 * 1e-9 / copy_gbps);
    }
  }
  return 0;
}
