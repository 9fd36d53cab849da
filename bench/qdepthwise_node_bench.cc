// Thread CPU time of whole depthwise QLinearConv nodes (uint8 x, int8 per-channel weights,
// int32 bias, uint8 y) at mobilenet_v2's depthwise shapes through runtime::RunNode with the
// best kernel for this CPU, 1 thread, best of 30. Uses only the public node API, so the
// same file linked against an older build's libraries gives the baseline of a kernel
// change on the same machine in the same minute. Not part of ctest. Build (one line):
//   g++ -O2 -std=c++17 -I. bench/qdepthwise_node_bench.cc BUILD/runtime/libedgepress_runtime.a
//       BUILD/formats/libedgepress_epk.a BUILD/ir/libedgepress_ir.a -lpthread -lz -o /tmp/qdw_node
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "bench/qconv_node.h"
#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"

using namespace edgepress;

int main() {
  struct S { int64_t c, h, k, s; } shapes[] = {{32, 112, 3, 1}, {96, 112, 3, 2}, {144, 56, 3, 1},
                                               {144, 56, 3, 2}, {192, 28, 3, 1}, {192, 28, 3, 2},
                                               {384, 14, 3, 1}, {576, 14, 3, 1}, {576, 14, 3, 2},
                                               {960, 7, 3, 1},  {72, 28, 5, 1},  {240, 14, 5, 2}};
  runtime::ThreadPool pool(1);
  double total = 0;
  for (const S& sh : shapes) {
    bench::QConvNode q;
    bench::MakeQConvNode(q, sh.c, sh.h, sh.c, sh.k, sh.s, sh.c, 7, 0.05f, 128);
    ir::Node* n = q.node;
    const std::vector<const ir::Tensor*> ptr = q.Inputs();
    runtime::RunNode(*n, ptr, pool);
    double best = 1e9;
    for (int r = 0; r < 30; ++r) {
      const double t0 = bench::ThreadCpuSeconds();
      runtime::RunNode(*n, ptr, pool);
      best = std::min(best, bench::ThreadCpuSeconds() - t0);
    }
    total += best;
    std::printf("%4lldc %3lld k%lld s%lld  %8.1f us\n", static_cast<long long>(sh.c),
                static_cast<long long>(sh.h), static_cast<long long>(sh.k),
                static_cast<long long>(sh.s), best * 1e6);
  }
  std::printf("total %8.1f us\n", total * 1e6);
}
