// Pointwise (1x1) and small-K QLinearConv on every registered kernel against the scalar
// kernel, exactly: the shapes of mobilenet's expand/project convs, where the byte kernels
// interleave X's rows directly into B panels, AMX multiplies only ceil(K/4) groups and the
// AVX-512 store folds the zero-point correction into the requantization. Input channels
// K = 1, 3, 16, 24, 63, 64, 65; pixel counts below, at and between the 32-pixel panels
// (odd ones included); x zero points 0/128/255; symmetric weights (zero point 0 for every
// channel, the store's fast path) and per-channel ones; a Relu; uint8 and float outputs.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

using ir::DType;
using ir::Tensor;

template <typename T>
Tensor Random(DType dt, std::vector<int64_t> shape, uint32_t seed, int lo, int hi) {
  Tensor t(dt, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  for (uint64_t i = 0; i < t.numel(); ++i) t.mutable_data<T>()[i] = static_cast<T>(d(rng));
  return t;
}

template <typename T>
Tensor Scalar(DType dt, T v) {
  return Tensor::FromVector(dt, {}, std::vector<T>{v});
}

struct Case {
  int64_t c, m, h, w;
  uint8_t xz;
  bool wz_per_channel, relu, float_out;
};

// Runs the conv on every kernel with 1, 2 and 3 threads; all must equal the scalar kernel.
void ExpectAllKernelsAgree(const Case& s, uint32_t seed) {
  const Tensor x = Random<uint8_t>(DType::kUInt8, {1, s.c, s.h, s.w}, seed, 0, 255);
  const Tensor w = Random<int8_t>(DType::kInt8, {s.m, s.c, 1, 1}, seed + 1, -127, 127);
  std::vector<float> ws(static_cast<size_t>(s.m));
  std::vector<int8_t> wz(static_cast<size_t>(s.m), 0);
  std::vector<int32_t> bias(static_cast<size_t>(s.m));
  for (int64_t i = 0; i < s.m; ++i) {
    ws[static_cast<size_t>(i)] = 0.004f * static_cast<float>(1 + i % 4);
    if (s.wz_per_channel) wz[static_cast<size_t>(i)] = static_cast<int8_t>((i % 5) - 2);
    bias[static_cast<size_t>(i)] = static_cast<int32_t>(i * 331 % 6000) - 3000;
  }
  const bool ep = s.relu || s.float_out;  // edgepress-domain QLinearConv
  std::vector<Tensor> in = {x,
                            Scalar<float>(DType::kFloat32, 0.05f),
                            Scalar<uint8_t>(DType::kUInt8, s.xz),
                            w,
                            Tensor::FromVector(DType::kFloat32, {s.m}, ws),
                            Tensor::FromVector(DType::kInt8, {s.m}, wz),
                            s.float_out ? Tensor() : Scalar<float>(DType::kFloat32, 0.025f),
                            s.float_out ? Tensor() : Scalar<uint8_t>(DType::kUInt8, 100),
                            Tensor::FromVector(DType::kInt32, {s.m}, bias)};
  ir::Graph g;
  std::vector<ir::Value*> vals;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i].empty())
      vals.push_back(nullptr);
    else if (i == 0)
      vals.push_back(g.AddInput("x", ir::ValueType::Tensor(in[i].dtype())));
    else
      vals.push_back(g.AddInitializer("c" + std::to_string(i), in[i]));
  }
  ir::Node* node = g.AddNode("QLinearConv", vals, {"y"}, "pw", ep ? "edgepress" : "");
  if (s.relu) node->set_attr(ir::Attribute::String("activation", "Relu"));
  std::vector<const Tensor*> ptrs;
  for (const auto& t : in) ptrs.push_back(t.empty() ? nullptr : &t);
  const auto defs = KernelsFor("QLinearConv", ep ? "edgepress" : "", DType::kUInt8);
  ASSERT_GE(defs.size(), 1u);
  ASSERT_EQ(defs[0]->isa, Isa::kScalar);
  const std::string what = std::to_string(s.c) + "->" + std::to_string(s.m) + " on " +
                           std::to_string(s.h) + "x" + std::to_string(s.w) + " xz " +
                           std::to_string(s.xz) + (s.wz_per_channel ? ", per-channel wz" : "") +
                           (s.relu ? ", Relu" : "") + (s.float_out ? ", float out" : "");
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    const Tensor ref = RunNode(*node, ptrs, pool, defs[0])[0];
    if (!s.float_out && !s.relu) {  // the case must saturate both ways
      int lo = 0, hi = 0;
      for (uint64_t i = 0; i < ref.numel(); ++i) {
        lo += ref.data<uint8_t>()[i] == 0;
        hi += ref.data<uint8_t>()[i] == 255;
      }
      if (s.c >= 16) {
        EXPECT_GT(lo, 0) << what;
        EXPECT_GT(hi, 0) << what;
      }
    }
    for (const KernelDef* def : defs) {
      const Tensor y = RunNode(*node, ptrs, pool, def)[0];
      ASSERT_EQ(y.shape(), ref.shape()) << def->name << " " << what;
      EXPECT_TRUE(y == ref) << def->name << " differs from " << defs[0]->name << ": " << what
                            << " (" << threads << " threads)";
    }
  }
}

TEST(QConvPointwiseTest, EveryKernelMatchesScalar) {
  std::printf("QLinearConv kernels:");
  for (const KernelDef* d : KernelsFor("QLinearConv", "", DType::kUInt8)) std::printf(" %s", d->name);
  std::printf("\n");
  uint32_t seed = 7;
  for (int64_t c : {1, 3, 16, 24, 63, 64, 65})
    for (auto hw : {std::pair<int64_t, int64_t>{1, 31}, {4, 8}, {5, 13}, {9, 11}})
      for (uint8_t xz : {0, 128, 255})
        ExpectAllKernelsAgree({c, 40, hw.first, hw.second, xz, false, false, false}, seed += 2);
  // 3192 pixels: one L2 chunk at 1 thread; 2 threads cut it into 2 shares of 50 panels,
  // the last panel ragged (mobilenet's 112x112 expand conv, smaller).
  ExpectAllKernelsAgree({16, 40, 56, 57, 131, true, false, false}, seed += 2);
  ExpectAllKernelsAgree({24, 33, 56, 57, 3, false, true, false}, seed += 2);
  // K = 300: 27-panel L2 chunks, so each thread's share of 97 panels (48 + 49 at 2 threads,
  // 32 + 32 + 33 at 3) runs as two chunks of its own: 4 and 6 chunks of 24-25 and 16-17.
  ExpectAllKernelsAgree({300, 40, 56, 55, 131, false, false, false}, seed += 2);
  // 14x14 (mobilenet's 96->576 stage, smaller): 7 panels of 32 pixels do not divide
  // among 2 or 3 threads, so the rows are split instead where there are 4 32-row tiles a
  // thread: 270 rows (9 tiles, the last ragged) at 2 threads only, 400 (13) at 2 and 3;
  // 64 and 96 rows are not split.
  ExpectAllKernelsAgree({24, 270, 14, 14, 131, true, false, false}, seed += 2);
  ExpectAllKernelsAgree({96, 64, 14, 14, 3, false, true, false}, seed += 2);
  ExpectAllKernelsAgree({40, 400, 14, 14, 131, true, false, true}, seed += 2);
  ExpectAllKernelsAgree({33, 96, 14, 14, 131, false, false, false}, seed += 2);
  // Per-channel weight zero points, Relu and float output, at mobilenet's K.
  for (int64_t c : {16, 24, 65}) {
    ExpectAllKernelsAgree({c, 96, 7, 9, 131, true, false, false}, seed += 2);
    ExpectAllKernelsAgree({c, 33, 7, 9, 131, false, true, false}, seed += 2);
    ExpectAllKernelsAgree({c, 33, 7, 9, 131, true, false, true}, seed += 2);
  }
}

}  // namespace
}  // namespace edgepress::runtime
