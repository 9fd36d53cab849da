// GFLOP/s of edgepress's Sgemm at square and ResNet-like conv (im2col) shapes, 1 and 2
// threads. Not part of ctest. Build: see bench/README or
//   g++ -O2 -std=c++17 -I. bench/gemm_bench.cc <runtime objects> -lpthread
// Usage: gemm_bench [threads] [copies]
//   copies > 1: the packed-B shapes cycle through that many copies of the weights (16 is
//   16 MB for the gpt shapes), so B streams from L3 or memory as in a whole model.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench/bench_util.h"
#include "runtime/kernels/gemm/gemm.h"

using edgepress::runtime::GemmOperand;
using edgepress::runtime::PackA;
using edgepress::runtime::PackedMatrix;
using edgepress::runtime::SgemmEx;
using edgepress::runtime::ThreadPool;

using edgepress::bench::ThreadCpuSeconds;

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const int copies = argc > 2 ? std::max(1, std::atoi(argv[2])) : 1;
  ThreadPool pool(threads);
  struct Shape {
    const char* name;
    int64_t m, n, k;
    bool prepack_a;
    bool prepack_b = false;  // constant weights, packed at session creation (MatMul/Gemm)
  };
  const Shape shapes[] = {
      {"square 256", 256, 256, 256, false},
      {"square 512", 512, 512, 512, false},
      {"resnet conv1 7x7 s2 (64x12544x147)", 64, 12544, 147, true},
      {"resnet layer1 3x3 (64x3136x576)", 64, 3136, 576, true},
      {"resnet layer2 3x3 (128x784x1152)", 128, 784, 1152, true},
      {"resnet layer3 3x3 (256x196x2304)", 256, 196, 2304, true},
      {"resnet layer4 3x3 (512x49x4608)", 512, 49, 4608, true},
      {"bert ffn (128x1536x384)", 128, 1536, 384, false},
      // The BERT fixture's (batch 2, seq 128, hidden 384) Linear layers with packed weights.
      {"bert ff1 packed B (256x1536x384)", 256, 1536, 384, false, true},
      {"bert ff2 packed B (256x384x1536)", 256, 384, 1536, false, true},
      {"bert qkv/o packed B (256x384x384)", 256, 384, 384, false, true},
      {"bert attn P.V one head (128x32x128)", 128, 32, 128, false},
      {"bert attn Q.K^T one head (128x128x32)", 128, 128, 32, false},
      // MobileNetV2 1x1 convolutions: X is a raw B (K = input channels, N = pixels).
      {"mbv2 1x1 expand (96x12544x16)", 96, 12544, 16, true},
      {"mbv2 1x1 project (24x3136x144)", 24, 3136, 144, true},
      {"mbv2 1x1 late (960x49x160)", 960, 49, 160, true},
      {"mlp gemv (1x1024x1024)", 1, 1024, 1024, false},
      {"mlp gemv packed B (1x1024x1024)", 1, 1024, 1024, false, true},
      {"gemv M=4 packed B (4x1024x1024)", 4, 1024, 1024, false, true},
      {"gemv large packed B (1x4096x4096)", 1, 4096, 4096, false, true},
      {"gemv large raw B (1x4096x4096)", 1, 4096, 4096, false},
      {"mbv2 classifier packed B (1x1000x1280)", 1, 1000, 1280, false, true},
      {"gpt qkv packed B (64x768x256)", 64, 768, 256, false, true},
      {"gpt fc packed B (64x1024x256)", 64, 1024, 256, false, true},
      {"gpt out packed B (64x256x1024)", 64, 256, 1024, false, true},
      {"gpt attn QK^T (64x64x64)", 64, 64, 64, false},
  };
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1, 1);
  const auto isa = edgepress::runtime::BestGemmIsa();
  std::printf("kernel %s, %d thread(s), %d copies of packed B\n",
              edgepress::runtime::GemmKernelName(isa), threads, copies);
  for (const Shape& s : shapes) {
    std::vector<float> a(s.m * s.k), b(s.k * s.n), c(s.m * s.n);
    for (float& x : a) x = d(rng);
    for (float& x : b) x = d(rng);
    PackedMatrix pa;
    GemmOperand oa = GemmOperand::Raw(a.data(), s.k);
    if (s.prepack_a) {
      pa = PackA(isa, false, s.m, s.k, a.data(), s.k);
      oa = GemmOperand::Packed(pa);
    }
    std::vector<PackedMatrix> pb;
    // Only weights up to 4 MB get copies (the 64 MB GEMV weights are out of cache anyway).
    const int n_copies = s.k * s.n <= (int64_t{1} << 20) ? copies : 1;
    if (s.prepack_b)
      for (int i = 0; i < n_copies; ++i)
        pb.push_back(edgepress::runtime::PackB(isa, false, s.k, s.n, b.data(), s.n));
    size_t call = 0;
    auto run = [&] {
      const GemmOperand ob = pb.empty() ? GemmOperand::Raw(b.data(), s.n)
                                        : GemmOperand::Packed(pb[call++ % pb.size()]);
      SgemmEx(isa, s.m, s.n, s.k, 1.f, oa, ob, 0.f, c.data(), s.n, &pool);
    };
    run();
    double best = 1e9, best_cpu = 1e9;
    for (int rep = 0; rep < 5; ++rep) {
      int iters = 0;
      auto t0 = std::chrono::steady_clock::now();
      const double c0 = ThreadCpuSeconds();
      double el = 0;
      do {
        run();
        ++iters;
        el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      } while (el < 0.1);
      best = std::min(best, el / iters);
      best_cpu = std::min(best_cpu, (ThreadCpuSeconds() - c0) / iters);
    }
    const double flops = 2.0 * s.m * s.n * s.k;
    std::printf("%-40s wall %9.3f ms %6.1f GFLOP/s   cpu %9.3f ms %6.1f GFLOP/s", s.name,
                best * 1e3, flops / best / 1e9, best_cpu * 1e3, flops / best_cpu / 1e9);
    // GEMV (M <= 4) is bound by streaming B: report its bandwidth (wall time).
    if (s.m <= 4) std::printf("   B %5.1f GB/s", 4.0 * s.k * s.n / best / 1e9);
    std::printf("\n");
  }
  return 0;
}
