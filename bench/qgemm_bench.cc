// GOP/s (2*M*N*K per product) of the int8 GEMM (qgemm.h, uint8 x int8 -> requantized
// uint8) next to the fp32 Sgemm (gemm.h) at transformer and ResNet conv (im2col) shapes,
// both operands prepacked (as conv weights and im2col panels are), 1 thread by default.
// Not part of ctest. Build against a configured build dir (here build-K1):
//   g++ -O2 -std=c++17 -I. bench/qgemm_bench.cc build-K1/runtime/libedgepress_runtime.a
//       build-K1/ir/libedgepress_ir.a -lpthread -o /tmp/qgemm_bench   (one command line)
// Usage: qgemm_bench [threads]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <vector>

#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/qgemm/qgemm.h"

using namespace edgepress::runtime;

// CPU time of the calling thread: far less disturbed by other processes on a shared
// machine than wall time (meaningful for 1 thread only).
static double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

template <typename F>
static double Time(int threads, F&& fn) {
  fn();  // warm up (and page in)
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    int iters = 0;
    const double c0 = ThreadCpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    double el = 0;
    do {
      fn();
      ++iters;
      el = threads == 1 ? ThreadCpuSeconds() - c0
                        : std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (el < 0.05);
    best = std::min(best, el / iters);
  }
  return best;
}

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  ThreadPool pool(threads);
  struct Shape {
    const char* what;
    int64_t m, n, k;
  };
  const Shape shapes[] = {
      {"bert qkv  128x384x384", 128, 384, 384},    {"bert ffn  128x1536x384", 128, 1536, 384},
      {"gemv      1x768x768", 1, 768, 768},         {"rn18 l1   64x3136x576", 64, 3136, 576},
      {"rn18 l2   128x784x1152", 128, 784, 1152},   {"rn18 l3   256x196x2304", 256, 196, 2304},
      {"rn18 l4   512x49x4608", 512, 49, 4608},
  };
  const Isa qisa = BestQGemmIsa();
  const Isa fisa = BestGemmIsa();
  std::printf("threads %d; int8: %s, fp32: %s\n", threads, QGemmKernelName(qisa),
              GemmKernelName(fisa));
  std::printf("%-26s %10s %10s %8s\n", "shape (MxNxK)", "fp32 GF/s", "int8 GOP/s", "ratio");
  std::mt19937 rng(1);
  for (const Shape& s : shapes) {
    std::vector<float> af(static_cast<size_t>(s.m * s.k)), bf(static_cast<size_t>(s.k * s.n)),
        cf(static_cast<size_t>(s.m * s.n));
    std::uniform_real_distribution<float> d(-1, 1);
    for (float& v : af) v = d(rng);
    for (float& v : bf) v = d(rng);
    std::vector<uint8_t> a8(af.size()), b8(bf.size()), c8(cf.size());
    for (auto& v : a8) v = static_cast<uint8_t>(rng());
    for (auto& v : b8) v = static_cast<uint8_t>(rng());
    const PackedMatrix pa = PackA(fisa, false, s.m, s.k, af.data(), s.k);
    const PackedMatrix pb = PackB(fisa, false, s.k, s.n, bf.data(), s.n);
    const double tf = Time(threads, [&] {
      SgemmEx(fisa, s.m, s.n, s.k, 1.f, GemmOperand::Packed(pa), GemmOperand::Packed(pb), 0.f,
              cf.data(), s.n, &pool);
    });
    int32_t za = 128;
    QSource qa{a8.data(), edgepress::ir::DType::kInt8, s.k, false, nullptr, false};
    QSource qb{b8.data(), edgepress::ir::DType::kUInt8, s.n, false, &za, false};
    const QPacked qpa = QPackA(qisa, s.m, s.k, qa);
    const QPacked qpb = QPackB(qisa, s.k, s.n, qb);
    std::vector<float> scale(static_cast<size_t>(s.m), 1e-4f);
    QOutput o;
    o.kind = QOutput::Kind::kUInt8;
    o.data = c8.data();
    o.ld = s.n;
    o.per_row = true;
    o.scale = scale.data();
    o.per_channel_scale = true;
    o.zero_point = 3;
    const double tq = Time(threads, [&] {
      QGemm(qisa, s.m, s.n, s.k, QOperand::Of(qpa), QOperand::Of(qpb), o, &pool);
    });
    const double ops = 2.0 * s.m * s.n * s.k;
    std::printf("%-26s %10.1f %10.1f %7.2fx\n", s.what, ops / tf * 1e-9, ops / tq * 1e-9, tf / tq);
  }
  return 0;
}
