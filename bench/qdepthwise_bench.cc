// Thread CPU time of the integer depthwise plane kernels
// (runtime/kernels/conv/depthwise/qdepthwise.h) at mobilenet_v2's depthwise shapes, uint8 in and out, per ISA this CPU has, with the
// parts: quad rows (QuadRows, scalar builder) and epilogue (StorePlane) alone. Best of 7,
// 1 thread. `qdepthwise_bench ISA [CHANNELS]`: whole planes of one ISA (and one shape,
// best of 200) only, for perf.
// Not part of ctest. Build against a configured build dir (one command line):
//   g++ -O2 -std=c++17 -I. bench/qdepthwise_bench.cc build/runtime/libedgepress_runtime.a
//       build/formats/libedgepress_epk.a build/ir/libedgepress_ir.a -lpthread -lz
//       -o /tmp/qdepthwise_bench
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "runtime/kernel.h"
#include "runtime/kernels/conv/depthwise/qdepthwise.h"

using namespace edgepress::runtime;

int main(int argc, char** argv) {  // argv[1]: only this ISA (IsaName), whole planes only
  struct S { int64_t c, h, k, s; } shapes[] = {{32, 112, 3, 1}, {96, 112, 3, 2}, {144, 56, 3, 1},
                                               {144, 56, 3, 2}, {192, 28, 3, 1}, {384, 14, 3, 1},
                                               {576, 14, 3, 2}, {960, 7, 3, 1},  {72, 28, 5, 1},
                                               {240, 14, 5, 2}};
  const Isa isas[] = {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Vnni};
  std::printf("%-18s %-12s %10s %10s %10s\n", "shape", "isa", "plane_us", argc > 1 ? "" : "quads_us",
              argc > 1 ? "" : "store_us");
  for (const S& sh : shapes) {
    if (argc > 2 && sh.c != std::atoll(argv[2])) continue;  // argv[2]: only this channel count
    qdw::Geometry g;
    g.h = g.w = sh.h;
    g.kh = g.kw = sh.k;
    g.stride_h = g.stride_w = sh.s;
    g.pad_t = g.pad_l = sh.k / 2;
    g.oh = g.ow = (sh.h + 2 * g.pad_t - sh.k) / sh.s + 1;
    std::vector<uint8_t> x(static_cast<size_t>(sh.c * sh.h * sh.h)), y(static_cast<size_t>(sh.c * g.oh * g.ow));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<uint8_t>(i * 7 % 251);
    std::vector<int16_t> w(static_cast<size_t>(sh.c * sh.k * sh.k));
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int16_t>(static_cast<int>(i * 13 % 255) - 127);
    std::vector<float> scale(static_cast<size_t>(sh.c), 0.003f);
    std::vector<int32_t> bias(static_cast<size_t>(sh.c), 100), acc(static_cast<size_t>(g.oh * g.ow), 5);
    QOutput out;
    out.kind = QOutput::Kind::kUInt8;
    out.per_row = true;
    out.scale = scale.data();
    out.per_channel_scale = true;
    out.bias = bias.data();
    out.zero_point = 128;
    for (Isa isa : isas) {
      if (!GetCpuFeatures().Has(isa) || (argc > 1 && std::string(argv[1]) != IsaName(isa))) continue;
      double best[3] = {1e9, 1e9, 1e9};
      for (int r = 0; r < (argc > 2 ? 200 : 7); ++r) {
        for (int part = 0; part < (argc > 1 ? 1 : 3); ++part) {
          const double t0 = edgepress::bench::ThreadCpuSeconds();
          for (int64_t c = 0; c < sh.c; ++c) {
            qdw::Plane p{&g, x.data() + c * sh.h * sh.h, false, 3, w.data() + c * sh.k * sh.k,
                         &out, c, y.data() + c * g.oh * g.ow};
            qdw::QuadRows q;
            if (part == 0) qdw::RunPlane(isa, p);
            if (part == 1 && q.Init(p, 16, nullptr)) q.Row((g.oh - 1) * g.stride_h + g.kh - 1);
            if (part == 2) qdw::StorePlane(isa == Isa::kAvx512Vnni ? Isa::kAvx512 : isa, p, acc.data());
          }
          best[part] = std::min(best[part], edgepress::bench::ThreadCpuSeconds() - t0);
        }
      }
      char name[40];
      std::snprintf(name, sizeof name, "%lldc %lld k%lld s%lld", static_cast<long long>(sh.c),
                    static_cast<long long>(sh.h), static_cast<long long>(sh.k), static_cast<long long>(sh.s));
      if (argc > 1)
        std::printf("%-18s %-12s %10.1f\n", name, IsaName(isa), best[0] * 1e6);
      else
        std::printf("%-18s %-12s %10.1f %10.1f %10.1f\n", name, IsaName(isa), best[0] * 1e6,
                    best[1] * 1e6, best[2] * 1e6);
    }
  }
}
