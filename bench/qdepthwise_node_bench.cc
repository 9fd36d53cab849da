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

#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"

using namespace edgepress;

static double Cpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main() {
  struct S { int64_t c, h, k, s; } shapes[] = {{32, 112, 3, 1}, {96, 112, 3, 2}, {144, 56, 3, 1},
                                               {144, 56, 3, 2}, {192, 28, 3, 1}, {192, 28, 3, 2},
                                               {384, 14, 3, 1}, {576, 14, 3, 1}, {576, 14, 3, 2},
                                               {960, 7, 3, 1},  {72, 28, 5, 1},  {240, 14, 5, 2}};
  runtime::ThreadPool pool(1);
  double total = 0;
  for (const S& sh : shapes) {
    ir::Tensor x(ir::DType::kUInt8, {1, sh.c, sh.h, sh.h}), w(ir::DType::kInt8, {sh.c, 1, sh.k, sh.k});
    for (uint64_t i = 0; i < x.numel(); ++i) x.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(i * 7 % 251);
    for (uint64_t i = 0; i < w.numel(); ++i) w.mutable_data<int8_t>()[i] = static_cast<int8_t>(i * 13 % 255 - 127);
    std::vector<float> ws(static_cast<size_t>(sh.c));
    std::vector<int32_t> bias(static_cast<size_t>(sh.c));
    for (int64_t c = 0; c < sh.c; ++c) {
      ws[static_cast<size_t>(c)] = 0.001f * static_cast<float>(1 + c % 5);
      bias[static_cast<size_t>(c)] = static_cast<int32_t>(c * 37 % 2001) - 1000;
    }
    const std::vector<ir::Tensor> ts = {
        x,
        ir::Tensor::FromVector(ir::DType::kFloat32, {}, std::vector<float>{0.02f}),
        ir::Tensor::FromVector(ir::DType::kUInt8, {}, std::vector<uint8_t>{7}),
        w,
        ir::Tensor::FromVector(ir::DType::kFloat32, {sh.c}, ws),
        ir::Tensor::FromVector(ir::DType::kInt8, {sh.c}, std::vector<int8_t>(static_cast<size_t>(sh.c), 0)),
        ir::Tensor::FromVector(ir::DType::kFloat32, {}, std::vector<float>{0.05f}),
        ir::Tensor::FromVector(ir::DType::kUInt8, {}, std::vector<uint8_t>{128}),
        ir::Tensor::FromVector(ir::DType::kInt32, {sh.c}, bias)};
    ir::Graph g;
    std::vector<ir::Value*> in;
    for (size_t i = 0; i < ts.size(); ++i)
      in.push_back(i == 0 ? g.AddInput("x", ir::ValueType::Tensor(ts[0].dtype()))
                          : g.AddInitializer("c" + std::to_string(i), ts[i]));
    ir::Node* n = g.AddNode("QLinearConv", in, {"y"}, "n");
    const int64_t p = sh.k / 2;
    n->set_attr(ir::Attribute::Ints("pads", {p, p, p, p}));
    n->set_attr(ir::Attribute::Ints("strides", {sh.s, sh.s}));
    n->set_attr(ir::Attribute::Int("group", sh.c));
    std::vector<const ir::Tensor*> ptr;
    for (const auto& t : ts) ptr.push_back(&t);
    runtime::RunNode(*n, ptr, pool);
    double best = 1e9;
    for (int r = 0; r < 30; ++r) {
      const double t0 = Cpu();
      runtime::RunNode(*n, ptr, pool);
      best = std::min(best, Cpu() - t0);
    }
    total += best;
    std::printf("%4lldc %3lld k%lld s%lld  %8.1f us\n", static_cast<long long>(sh.c),
                static_cast<long long>(sh.h), static_cast<long long>(sh.k),
                static_cast<long long>(sh.s), best * 1e6);
  }
  std::printf("total %8.1f us\n", total * 1e6);
}
