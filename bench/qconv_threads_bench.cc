// Wall time of whole QLinearConv nodes (uint8 x, int8 per-channel weights, int32 bias, uint8
// y) at mobilenet_v2's shapes on a pool of 1 and of 2 threads, the kernel created once (weights
// packed once, as in a Session), best and 25th percentile of REPS (default 2000) back-to-back
// runs: on a machine shared with other processes the best of many short runs is the one both
// threads had their cores, so the 2t/1t ratio per shape shows the split's own cost. Uses only
// the public kernel API, so the same file linked against an older build's libraries gives the
// baseline in the same minute. Not part of ctest. Build (one line):
//   g++ -O2 -std=c++17 -I. bench/qconv_threads_bench.cc BUILD/runtime/libedgepress_runtime.a
//       BUILD/formats/libedgepress_epk.a BUILD/ir/libedgepress_ir.a -lpthread -lz -o /tmp/qct
// Usage: qconv_threads_bench [REPS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "bench/qconv_node.h"
#include "ir/graph.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

using namespace edgepress;

namespace {

// The smallest KernelContext: fixed inputs, one output kept between runs.
class Ctx : public runtime::KernelContext {
 public:
  Ctx(const ir::Node& n, std::vector<const ir::Tensor*> in, runtime::ThreadPool& p)
      : node_(n), in_(std::move(in)), pool_(p) {}
  const ir::Node& node() const override { return node_; }
  size_t num_inputs() const override { return in_.size(); }
  const ir::Tensor* input(size_t i) const override { return i < in_.size() ? in_[i] : nullptr; }
  size_t num_outputs() const override { return 1; }
  bool output_requested(size_t i) const override { return i == 0; }
  ir::Tensor& AllocateOutput(size_t, ir::DType dtype, std::vector<int64_t> shape) override {
    if (out_.dtype() != dtype || out_.shape() != shape) out_ = ir::Tensor(dtype, std::move(shape));
    return out_;
  }
  void SetOutput(size_t, ir::Tensor t) override { out_ = std::move(t); }
  runtime::ThreadPool& pool() override { return pool_; }
  std::vector<ir::Tensor> RunSubgraph(const ir::Graph&, const std::vector<ir::Tensor>&) override {
    return {};
  }

 private:
  const ir::Node& node_;
  std::vector<const ir::Tensor*> in_;
  runtime::ThreadPool& pool_;
  ir::Tensor out_;
};

double Micros() {
  return std::chrono::duration<double, std::micro>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int main(int argc, char** argv) {
  struct S {
    int64_t c, m, h, k, s, group;
  } shapes[] = {
      {96, 24, 56, 1, 1, 1},   {144, 24, 56, 1, 1, 1},  {24, 144, 56, 1, 1, 1},
      {144, 32, 28, 1, 1, 1},  {192, 32, 28, 1, 1, 1},  {32, 192, 28, 1, 1, 1},
      {192, 64, 14, 1, 1, 1},  {384, 64, 14, 1, 1, 1},  {64, 384, 14, 1, 1, 1},
      {384, 96, 14, 1, 1, 1},  {576, 96, 14, 1, 1, 1},  {96, 576, 14, 1, 1, 1},
      {576, 160, 7, 1, 1, 1},  {960, 160, 7, 1, 1, 1},  {160, 960, 7, 1, 1, 1},
      {960, 320, 7, 1, 1, 1},  {320, 1280, 7, 1, 1, 1}, {144, 144, 56, 3, 1, 144},
      {144, 144, 56, 3, 2, 144}, {192, 192, 28, 3, 2, 192}, {384, 384, 14, 3, 1, 384},
      {576, 576, 14, 3, 2, 576}, {960, 960, 7, 3, 1, 960}};
  const int reps = argc > 1 ? std::atoi(argv[1]) : 2000;
  runtime::ThreadPool pools[2] = {runtime::ThreadPool(1), runtime::ThreadPool(2)};
  std::printf("shape                       1t best   p25 |  2t best   p25 | 2t/1t best\n");
  for (const S& sh : shapes) {
    bench::QConvNode q;
    bench::MakeQConvNode(q, sh.c, sh.h, sh.m, sh.k, sh.s, sh.group, 3, 0.5f, 3);
    const std::vector<const ir::Tensor*> in = q.Inputs();
    const runtime::KernelDef* def = runtime::GlobalKernelRegistry().Find(
        "QLinearConv", "", ir::DType::kUInt8, runtime::GetCpuFeatures(), runtime::ForceScalar());
    runtime::KernelInit init{*q.node, {}};
    for (size_t i = 0; i < q.node->num_inputs(); ++i)
      init.constant_inputs.push_back(q.node->input(i)->initializer());
    std::unique_ptr<runtime::Kernel> kernel = def->create(init);
    double best[2], p25[2];
    for (int t = 0; t < 2; ++t) {
      Ctx ctx(*q.node, in, pools[t]);
      for (int r = 0; r < 20; ++r) kernel->Run(ctx);
      std::vector<double> v;
      for (int r = 0; r < reps; ++r) {
        const double t0 = Micros();
        kernel->Run(ctx);
        v.push_back(Micros() - t0);
      }
      std::sort(v.begin(), v.end());
      best[t] = v[0];
      p25[t] = v[v.size() / 4];
    }
    std::printf("%4ld->%-4ld %ldx%ld s%ld g%-4ld %3ldx%-3ld %7.1f %6.1f | %7.1f %6.1f | %.2f\n",
                static_cast<long>(sh.c), static_cast<long>(sh.m), static_cast<long>(sh.k),
                static_cast<long>(sh.k), static_cast<long>(sh.s), static_cast<long>(sh.group),
                static_cast<long>(sh.h), static_cast<long>(sh.h), best[0], p25[0], best[1], p25[1],
                best[1] / best[0]);
  }
}
