// Latency and GFLOP/s of edgepress's Conv kernels (every ISA the CPU has) on ResNet-18 and
// MobileNetV2 layer shapes, then MaxPool's (GB/s), batch 1, through runtime::RunNode with constant weights (so
// weights are prepacked as in a Session; the timing includes kernel creation once only).
// Not part of ctest. Usage: conv_bench [threads]; ONLY=substring picks shapes, SKIP_REF=1
// skips the reference entry, EDGEPRESS_CONV_PIXEL_MAJOR=0/1 forces the AVX-512 tile layout
// (12x32 channel-major / 7x64 pixel-major; unset: the kernel's choice),
// EDGEPRESS_CONV_DIRECT=0/1 the direct KxK kernel (conv_direct.h; EDGEPRESS_MAX_ISA=avx2 for
// its AVX2 tile). Build (no CMake
// target): g++ -O2 -std=c++17 -I. bench/conv_bench.cc build/runtime/libedgepress_runtime.a
//   build/formats/libedgepress_epk.a build/formats/libedgepress_npy.a build/ir/libedgepress_ir.a
//   build/runtime/libedgepress_runtime.a build/ir/libedgepress_ir.a -lpthread -lz
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"

using namespace edgepress;

namespace {
ir::Tensor Random(std::vector<int64_t> shape, uint32_t seed) {
  ir::Tensor t(ir::DType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  for (uint64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = d(rng);
  return t;
}

class TimingContext : public runtime::KernelContext {
 public:
  TimingContext(const ir::Node& n, std::vector<const ir::Tensor*> in, runtime::ThreadPool& p)
      : node_(n), in_(std::move(in)), pool_(p) {}
  const ir::Node& node() const override { return node_; }
  size_t num_inputs() const override { return in_.size(); }
  const ir::Tensor* input(size_t i) const override { return i < in_.size() ? in_[i] : nullptr; }
  size_t num_outputs() const override { return 1; }
  bool output_requested(size_t) const override { return true; }
  ir::Tensor& AllocateOutput(size_t, ir::DType dt, std::vector<int64_t> shape) override {
    if (out_.shape() != shape) out_ = ir::Tensor(dt, shape);
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

struct Shape {
  const char* name;
  int64_t c, h, w, m, k, stride, group;
};
// CPU time of the calling thread: on a shared machine it is far less disturbed by other
// processes than wall time (single-threaded runs only).
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
// Best wall and thread-CPU seconds per run over 7 repetitions of >= 50 ms each.
void TimeRuns(runtime::Kernel& kernel, runtime::KernelContext& ctx, double* best,
              double* best_cpu) {
  *best = *best_cpu = 1e9;
  for (int rep = 0; rep < 7; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    const double c0 = ThreadCpuSeconds();
    int iters = 0;
    double el;
    do {
      kernel.Run(ctx);
      ++iters;
      el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (el < 0.05);
    *best = std::min(*best, el / iters);
    *best_cpu = std::min(*best_cpu, (ThreadCpuSeconds() - c0) / iters);
  }
}

// MaxPool shapes (c, h, w, k, stride, pad): every MaxPool kernel, GB/s of input + output.
void BenchMaxPool(runtime::ThreadPool& pool, const char* only) {
  struct PoolShape {
    const char* name;
    int64_t c, h, w, k, stride, pad;
  };
  const PoolShape shapes[] = {{"resnet maxpool 3x3/2 64 112", 64, 112, 112, 3, 2, 1},
                              {"maxpool 2x2/2 64 112", 64, 112, 112, 2, 2, 0},
                              {"maxpool 3x3/1 64 56", 64, 56, 56, 3, 1, 1}};
  for (const PoolShape& s : shapes) {
    if (only && std::string(s.name).find(only) == std::string::npos) continue;
    ir::Graph g;
    ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(ir::DType::kFloat32));
    ir::Node* node = g.AddNode("MaxPool", {x}, {"y"}, "pool");
    node->set_attr(ir::Attribute::Ints("kernel_shape", {s.k, s.k}));
    node->set_attr(ir::Attribute::Ints("pads", {s.pad, s.pad, s.pad, s.pad}));
    node->set_attr(ir::Attribute::Ints("strides", {s.stride, s.stride}));
    ir::Tensor xt = Random({1, s.c, s.h, s.w}, 1);
    const int64_t oh = (s.h + 2 * s.pad - s.k) / s.stride + 1;
    const int64_t ow = (s.w + 2 * s.pad - s.k) / s.stride + 1;
    const double bytes = 4.0 * s.c * (s.h * s.w + oh * ow);
    for (const runtime::KernelDef* def : runtime::KernelsFor("MaxPool", "", ir::DType::kFloat32)) {
      if (def->isa == runtime::Isa::kScalar && std::getenv("SKIP_REF")) continue;
      runtime::KernelInit init{*node, {nullptr}};
      auto kernel = def->create(init);
      TimingContext ctx(*node, {&xt}, pool);
      kernel->Run(ctx);
      double best, best_cpu;
      TimeRuns(*kernel, ctx, &best, &best_cpu);
      std::printf("%-30s %-24s wall %8.3f ms  cpu %8.3f ms %7.1f GB/s(cpu)\n", s.name, def->name,
                  best * 1e3, best_cpu * 1e3, bytes / best_cpu / 1e9);
    }
  }
}
}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  runtime::ThreadPool pool(threads);
  const Shape shapes[] = {
      {"resnet conv1 7x7/2 3->64 224", 3, 224, 224, 64, 7, 2, 1},
      {"resnet 3x3 64->64 56", 64, 56, 56, 64, 3, 1, 1},
      {"resnet 3x3/2 64->128 56", 64, 56, 56, 128, 3, 2, 1},
      {"resnet 3x3 128->128 28", 128, 28, 28, 128, 3, 1, 1},
      {"resnet 3x3 256->256 14", 256, 14, 14, 256, 3, 1, 1},
      {"resnet 3x3 512->512 7", 512, 7, 7, 512, 3, 1, 1},
      {"resnet 3x3/2 256->512 14", 256, 14, 14, 512, 3, 2, 1},
      {"resnet 1x1/2 64->128 56", 64, 56, 56, 128, 1, 2, 1},
      {"resnet 1x1/2 128->256 28", 128, 28, 28, 256, 1, 2, 1},
      {"resnet 1x1/2 256->512 14", 256, 14, 14, 512, 1, 2, 1},
      {"mbv2 3x3/2 3->32 224", 3, 224, 224, 32, 3, 2, 1},
      {"mbv2 dw 3x3 32 112", 32, 112, 112, 32, 3, 1, 32},
      {"mbv2 pw 32->16 112", 32, 112, 112, 16, 1, 1, 1},
      {"mbv2 pw 16->96 112", 16, 112, 112, 96, 1, 1, 1},
      {"mbv2 dw 3x3/2 96 112", 96, 112, 112, 96, 3, 2, 96},
      {"mbv2 dw 3x3 144 56", 144, 56, 56, 144, 3, 1, 144},
      {"mbv2 dw 3x3/2 144 56", 144, 56, 56, 144, 3, 2, 144},
      {"mbv2 dw 3x3/2 192 28", 192, 28, 28, 192, 3, 2, 192},
      {"mbv2 dw 3x3/2 576 14", 576, 14, 14, 576, 3, 2, 576},
      {"mbv2 dw 3x3 960 7", 960, 7, 7, 960, 3, 1, 960},
      {"mbv2 dw 3x3 576 14", 576, 14, 14, 576, 3, 1, 576},
      {"mbv2 dw 3x3 192 28", 192, 28, 28, 192, 3, 1, 192},
      {"mbv2 pw 144->24 56", 144, 56, 56, 24, 1, 1, 1},
      {"mbv2 pw 960->160 7", 960, 7, 7, 160, 1, 1, 1},
      {"mbv2 pw 960->320 7", 960, 7, 7, 320, 1, 1, 1},
      {"mbv2 pw 320->1280 7", 320, 7, 7, 1280, 1, 1, 1},
      {"mbv2 pw 160->960 7", 160, 7, 7, 960, 1, 1, 1},
      {"mbv2 pw 96->576 14", 96, 14, 14, 576, 1, 1, 1},
      {"mbv2 pw 576->96 14", 576, 14, 14, 96, 1, 1, 1},
      {"mbv2 pw 384->64 14", 384, 14, 14, 64, 1, 1, 1},
      {"mbv2 pw 64->384 14", 64, 14, 14, 384, 1, 1, 1},
      {"mbv2 pw 192->32 28", 192, 28, 28, 32, 1, 1, 1},
      {"mbv3 stem 3x3/2 3->16 224", 3, 224, 224, 16, 3, 2, 1},
      {"mbv3 pw 576->96 7", 576, 7, 7, 96, 1, 1, 1},
      {"mbv3 pw 16->72 56", 16, 56, 56, 72, 1, 1, 1},
      {"mbv3 pw 48->288 14", 48, 14, 14, 288, 1, 1, 1},
      {"mbv3 pw 96->576 7", 96, 7, 7, 576, 1, 1, 1},
      {"mbv3 dw 5x5 576 7", 576, 7, 7, 576, 5, 1, 576},
      {"mbv3 dw 5x5 240 14", 240, 14, 14, 240, 5, 1, 240},
      {"mbv3 dw 5x5/2 96 28", 96, 28, 28, 96, 5, 2, 96},
      {"mbv3 dw 3x3/2 16 112", 16, 112, 112, 16, 3, 2, 16},
      {"mbv3 dw 5x5/2 288 14", 288, 14, 14, 288, 5, 2, 288},
      {"mbv3 dw 3x3/2 72 56", 72, 56, 56, 72, 3, 2, 72},
      {"detector 3x3 96->24 80", 96, 80, 80, 24, 3, 1, 1},
      {"detector 3x3 96->24 40", 96, 40, 40, 24, 3, 1, 1},
      {"detector 3x3 96->24 20", 96, 20, 20, 24, 3, 1, 1},
      {"detector 3x3 96->24 10", 96, 10, 10, 24, 3, 1, 1},
      {"pw 576->72 7 (24-blocks)", 576, 7, 7, 72, 1, 1, 1},
      {"detector pw 16->72 80", 16, 80, 80, 72, 1, 1, 1},
      {"detector dw 3x3/2 72 80", 72, 80, 80, 72, 3, 2, 72},
  };
  std::printf("%d thread(s)\n", threads);
  const char* only = std::getenv("ONLY");
  for (const Shape& s : shapes) {
    if (only && std::string(s.name).find(only) == std::string::npos) continue;
    ir::Graph g;
    ir::Value* x = g.AddInput("x", ir::ValueType::Tensor(ir::DType::kFloat32));
    ir::Value* w = g.AddInitializer("w", Random({s.m, s.c / s.group, s.k, s.k}, 2));
    ir::Value* b = g.AddInitializer("b", Random({s.m}, 3));
    ir::Node* node = g.AddNode("Conv", {x, w, b}, {"y"}, "conv");
    const int64_t pad = s.k / 2;
    node->set_attr(ir::Attribute::Ints("pads", {pad, pad, pad, pad}));
    node->set_attr(ir::Attribute::Ints("strides", {s.stride, s.stride}));
    node->set_attr(ir::Attribute::Int("group", s.group));
    ir::Tensor xt = Random({1, s.c, s.h, s.w}, 1);
    const int64_t oh = (s.h + 2 * pad - s.k) / s.stride + 1, ow = (s.w + 2 * pad - s.k) / s.stride + 1;
    const double flops = 2.0 * s.m * oh * ow * (s.c / s.group) * s.k * s.k;
    for (const runtime::KernelDef* def : runtime::KernelsFor("Conv", "", ir::DType::kFloat32)) {
      if (def->isa == runtime::Isa::kScalar && std::getenv("SKIP_REF")) continue;
      runtime::KernelInit init{*node, {nullptr, w->initializer(), b->initializer()}};
      auto kernel = def->create(init);
      TimingContext ctx(*node, {&xt, w->initializer(), b->initializer()}, pool);
      kernel->Run(ctx);
      double best, best_cpu;
      TimeRuns(*kernel, ctx, &best, &best_cpu);
      std::printf("%-30s %-24s wall %8.3f ms  cpu %8.3f ms %7.1f GFLOP/s(cpu)\n", s.name,
                  def->name, best * 1e3, best_cpu * 1e3, flops / best_cpu / 1e9);
    }
  }
  BenchMaxPool(pool, only);
}
