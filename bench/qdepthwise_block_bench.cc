// Thread CPU time of the integer depthwise kernels at mobilenet_v2's shapes: one plane a
// call (RunPlane, AVX-512 VNNI) against 16-channel blocks (RunBlock), uint8 in and out,
// best of 30, 1 thread. Blocks run here at every shape, past kBlockMaxPixels too, to
// show where the threshold belongs ('*': BlockHandles takes the shape).
// Not part of ctest. Build against a configured build dir (one command line):
//   g++ -O2 -std=c++17 -I. bench/qdepthwise_block_bench.cc build/runtime/libedgepress_runtime.a
//       build/formats/libedgepress_epk.a build/ir/libedgepress_ir.a -lpthread -lz
//       -o /tmp/qdepthwise_block_bench
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <vector>

#include "bench/bench_util.h"
#include "runtime/kernel.h"
#include "runtime/kernels/conv/depthwise/qdepthwise.h"

using namespace edgepress::runtime;

int main() {
  if (!GetCpuFeatures().avx512vnni || !GetCpuFeatures().avx512vbmi) {
    std::printf("this CPU lacks AVX-512 VNNI or VBMI\n");
    return 0;
  }
  struct S {
    int64_t c, h, k, s;
  } shapes[] = {{32, 112, 3, 1}, {96, 112, 3, 2}, {144, 56, 3, 1}, {144, 56, 3, 2},
                {192, 28, 3, 1}, {192, 28, 3, 2}, {384, 14, 3, 1}, {576, 14, 3, 1},
                {576, 14, 3, 2}, {960, 7, 3, 1},  {72, 28, 5, 1},  {240, 14, 5, 2}};
  std::printf("%-18s %10s %10s %7s\n", "shape", "plane_us", "block_us", "ratio");
  for (const S& sh : shapes) {
    qdw::Geometry g;
    g.h = g.w = sh.h;
    g.kh = g.kw = sh.k;
    g.stride_h = g.stride_w = sh.s;
    g.pad_t = g.pad_l = sh.k / 2;
    g.oh = g.ow = (sh.h + 2 * g.pad_t - sh.k) / sh.s + 1;
    const int64_t hw = sh.h * sh.h, ohw = g.oh * g.ow, ks = sh.k * sh.k;
    std::vector<uint8_t> x(static_cast<size_t>(sh.c * hw)), y(static_cast<size_t>(sh.c * ohw));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint8_t>(i * 7 % 251);
    std::vector<int16_t> w(static_cast<size_t>(sh.c * ks));
    for (size_t i = 0; i < w.size(); ++i)
      w[i] = static_cast<int16_t>(static_cast<int>(i * 13 % 255) - 127);
    std::vector<float> scale(static_cast<size_t>(sh.c), 0.003f);
    std::vector<int32_t> bias(static_cast<size_t>(sh.c), 100);
    QOutput out;
    out.kind = QOutput::Kind::kUInt8;
    out.per_row = true;
    out.scale = scale.data();
    out.per_channel_scale = true;
    out.bias = bias.data();
    out.zero_point = 128;
    const qdw::Block b{&g, x.data(), false, 3, w.data(), &out, 0, sh.c, y.data()};
    double best[2] = {1e9, 1e9};
    for (int r = 0; r < 30; ++r) {
      double t0 = edgepress::bench::ThreadCpuSeconds();
      for (int64_t c = 0; c < sh.c; ++c) {
        qdw::Plane p{&g, x.data() + c * hw, false, 3, w.data() + c * ks, &out,
                     c,  y.data() + c * ohw};
        qdw::RunPlane(Isa::kAvx512Vnni, p);
      }
      best[0] = std::min(best[0], edgepress::bench::ThreadCpuSeconds() - t0);
      t0 = edgepress::bench::ThreadCpuSeconds();
      qdw::RunBlock(Isa::kAvx512Vnni, b);
      best[1] = std::min(best[1], edgepress::bench::ThreadCpuSeconds() - t0);
    }
    char name[40];
    std::snprintf(name, sizeof name, "%lldc %lld k%lld s%lld%s", static_cast<long long>(sh.c),
                  static_cast<long long>(sh.h), static_cast<long long>(sh.k),
                  static_cast<long long>(sh.s), qdw::BlockHandles(Isa::kAvx512Vnni, b) ? " *" : "");
    std::printf("%-18s %10.1f %10.1f %7.2f\n", name, best[0] * 1e6, best[1] * 1e6,
                best[1] / best[0]);
  }
}
