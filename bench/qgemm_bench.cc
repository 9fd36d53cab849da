// GOP/s (2*M*N*K per product) of the int8 GEMM (qgemm.h, int8 weights x uint8
// activations -> requantized uint8) on every integer ISA the CPU has (int16 pairs: avx2/
// avx512; bytes: avxvnni (as avx2), avx512vnni, amx) next to the fp32 Sgemm (gemm.h) at
// transformer (M = tokens 1..128) and ResNet conv (im2col) shapes, both operands
// prepacked (as conv weights and im2col panels are), 1 thread by default. The M sweep
// at 768x768 is what sets QGemmAmxMinM().
// Not part of ctest. Build against a configured build dir (here build):
//   g++ -O2 -std=c++17 -I. bench/qgemm_bench.cc build/runtime/libedgepress_runtime.a
//       build/ir/libedgepress_ir.a -lpthread -o /tmp/qgemm_bench   (one command line)
// Usage: qgemm_bench [threads]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <vector>

#include "bench/bench_util.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/qgemm/qgemm.h"

using namespace edgepress::runtime;

using edgepress::bench::ThreadCpuSeconds;

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
      {"tok m=1   1x768x768", 1, 768, 768},         {"tok m=4   4x768x768", 4, 768, 768},
      {"tok m=8   8x768x768", 8, 768, 768},         {"tok m=16  16x768x768", 16, 768, 768},
      {"tok m=24  24x768x768", 24, 768, 768},       {"tok m=32  32x768x768", 32, 768, 768},
      {"tok m=64  64x768x768", 64, 768, 768},       {"bert qkv  128x384x384", 128, 384, 384},
      {"bert ffn  128x1536x384", 128, 1536, 384},   {"rn18 l1   64x3136x576", 64, 3136, 576},
      {"rn18 l2   128x784x1152", 128, 784, 1152},   {"rn18 l3   256x196x2304", 256, 196, 2304},
      {"rn18 l4   512x49x4608", 512, 49, 4608},     {"mbv2 pw   96x3136x24", 96, 3136, 24},
      {"mbv2 pw   32x784x192", 32, 784, 192},       {"mbv2 pw   320x49x960", 320, 49, 960},
  };
  std::vector<Isa> qisas;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni, Isa::kAmx})
    if (QGemmIsaSupported(isa)) qisas.push_back(isa);
  const Isa fisa = BestGemmIsa();
  std::printf("threads %d; best int8: %s; fp32: %s; CPU time per thread (1t), wall (2t)\n",
              threads, IsaName(BestQGemmIsa()), GemmKernelName(fisa));
  std::printf("%-24s %9s", "shape (MxNxK)", "fp32 GF/s");
  for (Isa isa : qisas) std::printf(" %11s", IsaName(isa));
  std::printf("  (int8 GOP/s)  best/fp32\n");
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
    const double ops = 2.0 * s.m * s.n * s.k;
    std::printf("%-24s %9.1f", s.what, ops / tf * 1e-9);
    double best = 1e30;
    for (Isa qisa : qisas) {
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
      best = std::min(best, tq);
      std::printf(" %11.1f", ops / tq * 1e-9);
    }
    std::printf("  %12.2fx\n", tf / best);
  }
  return 0;
}
