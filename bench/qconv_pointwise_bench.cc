// Latency of one QLinearConv (uint8 x int8 -> uint8, per-channel weights with zero point 0,
// int32 bias) at mobilenet_v2's pointwise and first-conv shapes and two resnet-like ones,
// through runtime::RunNode with the best kernels for this CPU (or EDGEPRESS_MAX_ISA), 1
// thread, thread CPU time, best of REPS (default 40); SHAPE picks one row (for perf).
// Each call also creates the kernel, so the weights are packed per call here (the session
// packs them once): that is noticeable only for the 320->1280 and 64->64 rows. Not part of
// ctest. Build against a configured build dir (one command line):
//   g++ -O2 -std=c++17 -I. bench/qconv_pointwise_bench.cc build/runtime/libedgepress_runtime.a
//       build/formats/libedgepress_epk.a build/ir/libedgepress_ir.a -lpthread -lz
//       -o /tmp/qconv_pointwise_bench
// Usage: qconv_pointwise_bench [REPS] [SHAPE]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "bench/qconv_node.h"
#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"

using namespace edgepress;

int main(int argc, char** argv) {
  struct S {
    int64_t c, m, h, k, s;
  } shapes[] = {{16, 96, 112, 1, 1}, {24, 144, 56, 1, 1}, {144, 24, 56, 1, 1},
                {32, 16, 112, 1, 1}, {3, 32, 224, 3, 2},  {64, 64, 56, 3, 1},
                {320, 1280, 7, 1, 1}, {960, 160, 7, 1, 1}};
  runtime::ThreadPool pool(1);
  const int reps = argc > 1 ? std::atoi(argv[1]) : 40;
  const int only = argc > 2 ? std::atoi(argv[2]) : -1;
  int idx = -1;
  for (const S& sh : shapes) {
    if (only >= 0 && ++idx != only) continue;
    bench::QConvNode q;
    bench::MakeQConvNode(q, sh.c, sh.h, sh.m, sh.k, sh.s, 1, 3, 0.5f, 3);
    ir::Node* n = q.node;
    const std::vector<const ir::Tensor*> ptr = q.Inputs();
    runtime::RunNode(*n, ptr, pool);
    double best = 1e9;
    for (int r = 0; r < reps; ++r) {
      const double t0 = bench::ThreadCpuSeconds();
      runtime::RunNode(*n, ptr, pool);
      best = std::min(best, bench::ThreadCpuSeconds() - t0);
    }
    std::printf("%4ld->%-4ld %ldx%ld s%ld on %3ldx%-3ld %.3f ms\n", static_cast<long>(sh.c),
                static_cast<long>(sh.m), static_cast<long>(sh.k), static_cast<long>(sh.k),
                static_cast<long>(sh.s), static_cast<long>(sh.h), static_cast<long>(sh.h), best * 1e3);
  }
}
