// Latency of one fp32 Conv vs one QLinearConv (uint8 x int8 -> uint8) at resnet18's conv
// shapes, through runtime::RunNode with the best kernels for this CPU, 1 thread, thread CPU
// time (best of 5). Not part of ctest. Build against a configured build dir:
//   g++ -O2 -std=c++17 -I. bench/qconv_bench.cc build-K1/runtime/libedgepress_runtime.a
//       build-K1/formats/libedgepress_epk.a build-K1/ir/libedgepress_ir.a -lpthread -lz
//       -o /tmp/qconv_bench        (one command line)
#include <chrono>
#include <cstdio>
#include <ctime>
#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
using namespace edgepress;
static double Cpu() { timespec ts; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); return ts.tv_sec + ts.tv_nsec * 1e-9; }
int main() {
  struct S { int64_t c, m, h, k, s; } shapes[] = {{3,64,224,7,2},{64,64,56,3,1},{128,128,28,3,1},{256,256,14,3,1},{512,512,7,3,1},{64,128,56,1,2}};
  runtime::ThreadPool pool(1);
  for (auto sh : shapes) {
    ir::Tensor xf(ir::DType::kFloat32, {1, sh.c, sh.h, sh.h}), wf(ir::DType::kFloat32, {sh.m, sh.c, sh.k, sh.k});
    ir::Tensor xq(ir::DType::kUInt8, {1, sh.c, sh.h, sh.h}), wq(ir::DType::kInt8, {sh.m, sh.c, sh.k, sh.k});
    for (uint64_t i = 0; i < xf.numel(); ++i) { xf.mutable_data<float>()[i] = (i % 13) * 0.1f; xq.mutable_data<uint8_t>()[i] = i % 251; }
    for (uint64_t i = 0; i < wf.numel(); ++i) { wf.mutable_data<float>()[i] = (i % 7) * 0.01f; wq.mutable_data<int8_t>()[i] = i % 101 - 50; }
    int64_t p = sh.k / 2;
    auto sc = ir::Tensor::FromVector(ir::DType::kFloat32, {}, std::vector<float>{0.01f});
    auto zp = ir::Tensor::FromVector(ir::DType::kUInt8, {}, std::vector<uint8_t>{3});
    auto wzp = ir::Tensor(ir::DType::kInt8, {});
    double res[2];
    for (int q = 0; q < 2; ++q) {
      ir::Graph g;
      std::vector<ir::Value*> in;
      std::vector<ir::Tensor> ts = q ? std::vector<ir::Tensor>{xq, sc, zp, wq, sc, wzp, sc, zp} : std::vector<ir::Tensor>{xf, wf};
      for (size_t i = 0; i < ts.size(); ++i) in.push_back(i == 0 ? g.AddInput("x", ir::ValueType::Tensor(ts[0].dtype())) : g.AddInitializer("c" + std::to_string(i), ts[i]));
      ir::Node* n = g.AddNode(q ? "QLinearConv" : "Conv", in, {"y"}, "n");
      n->set_attr(ir::Attribute::Ints("pads", {p, p, p, p}));
      n->set_attr(ir::Attribute::Ints("strides", {sh.s, sh.s}));
      std::vector<const ir::Tensor*> ptr; for (auto& t : ts) ptr.push_back(&t);
      runtime::RunNode(*n, ptr, pool);
      double best = 1e9;
      for (int r = 0; r < 5; ++r) { double t0 = Cpu(); runtime::RunNode(*n, ptr, pool); best = std::min(best, Cpu() - t0); }
      res[q] = best;
    }
    std::printf("conv %3ld->%3ld %3ldx%-3ld k%ld s%ld: fp32 %7.2f ms  int8 %7.2f ms  ratio %.2f\n", sh.c, sh.m, sh.h, sh.h, sh.k, sh.s, res[0]*1e3, res[1]*1e3, res[1]/res[0]);
  }
}
