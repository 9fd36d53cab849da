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

#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"

using namespace edgepress;

static double Cpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

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
    ir::Tensor x(ir::DType::kUInt8, {1, sh.c, sh.h, sh.h}), w(ir::DType::kInt8, {sh.m, sh.c, sh.k, sh.k});
    for (uint64_t i = 0; i < x.numel(); ++i) x.mutable_data<uint8_t>()[i] = (i * 7919) % 251;
    for (uint64_t i = 0; i < w.numel(); ++i) w.mutable_data<int8_t>()[i] = static_cast<int8_t>((i * 31) % 201 - 100);
    std::vector<float> wsv(static_cast<size_t>(sh.m));
    std::vector<int8_t> wzv(static_cast<size_t>(sh.m), 0);
    std::vector<int32_t> bv(static_cast<size_t>(sh.m));
    for (int64_t i = 0; i < sh.m; ++i) {
      wsv[static_cast<size_t>(i)] = 0.001f * static_cast<float>(1 + i % 5);
      bv[static_cast<size_t>(i)] = static_cast<int32_t>(i * 37 - 700);
    }
    const auto f32 = [](float v) { return ir::Tensor::FromVector(ir::DType::kFloat32, {}, std::vector<float>{v}); };
    const auto zp = ir::Tensor::FromVector(ir::DType::kUInt8, {}, std::vector<uint8_t>{3});
    const std::vector<ir::Tensor> ts{x, f32(0.02f), zp, w,
                                     ir::Tensor::FromVector(ir::DType::kFloat32, {sh.m}, wsv),
                                     ir::Tensor::FromVector(ir::DType::kInt8, {sh.m}, wzv),
                                     f32(0.5f), zp,
                                     ir::Tensor::FromVector(ir::DType::kInt32, {sh.m}, bv)};
    ir::Graph g;
    std::vector<ir::Value*> in;
    for (size_t i = 0; i < ts.size(); ++i)
      in.push_back(i == 0 ? g.AddInput("x", ir::ValueType::Tensor(ts[0].dtype()))
                          : g.AddInitializer("c" + std::to_string(i), ts[i]));
    ir::Node* n = g.AddNode("QLinearConv", in, {"y"}, "n");
    const int64_t p = sh.k / 2;
    n->set_attr(ir::Attribute::Ints("pads", {p, p, p, p}));
    n->set_attr(ir::Attribute::Ints("strides", {sh.s, sh.s}));
    std::vector<const ir::Tensor*> ptr;
    for (const auto& t : ts) ptr.push_back(&t);
    runtime::RunNode(*n, ptr, pool);
    double best = 1e9;
    for (int r = 0; r < reps; ++r) {
      const double t0 = Cpu();
      runtime::RunNode(*n, ptr, pool);
      best = std::min(best, Cpu() - t0);
    }
    std::printf("%4ld->%-4ld %ldx%ld s%ld on %3ldx%-3ld %.3f ms\n", static_cast<long>(sh.c),
                static_cast<long>(sh.m), static_cast<long>(sh.k), static_cast<long>(sh.k),
                static_cast<long>(sh.s), static_cast<long>(sh.h), static_cast<long>(sh.h), best * 1e3);
  }
}
