// fp16/bf16 -> fp32 bulk conversion (runtime/kernels/elementwise/half_convert.h): the AVX2/F16C path
// against the scalar reference on every one of the 65536 bit patterns and at every tail
// length below two vectors, and the Cast operator that uses it (fp16 weights stored by
// `cast-weights` are widened by Cast(to=float)) on a tensor large enough to be split over
// the thread pool. Exact: the conversion is lossless; only signalling NaNs may differ
// (F16C quiets them), so NaNs are compared as NaN-ness.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"
#include "runtime/eager.h"
#include "runtime/kernel.h"
#include "runtime/kernels/elementwise/half_convert.h"

namespace edgepress::runtime {
namespace {

bool SameFloat(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

std::vector<uint16_t> AllPatterns() {
  std::vector<uint16_t> v(65536);
  for (uint32_t i = 0; i < 65536; ++i) v[i] = static_cast<uint16_t>(i);
  return v;
}

bool HaveF16c() {
  const CpuFeatures& cpu = GetCpuFeatures();
  return cpu.avx2 && cpu.f16c;
}

TEST(HalfConvert, ScalarMatchesIrConversions) {
  const std::vector<uint16_t> src = AllPatterns();
  std::vector<float> h(src.size()), b(src.size());
  HalfToFloatArray(Isa::kScalar, src.data(), h.data(), src.size());
  BFloat16ToFloatArray(Isa::kScalar, src.data(), b.data(), src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    ASSERT_TRUE(SameFloat(h[i], ir::HalfToFloat(src[i]))) << "fp16 0x" << std::hex << i;
    ASSERT_TRUE(SameFloat(b[i], ir::BFloat16ToFloat(src[i]))) << "bf16 0x" << std::hex << i;
  }
}

TEST(HalfConvert, Avx2MatchesScalarOnEveryPattern) {
  if (!HaveF16c()) GTEST_SKIP() << "CPU lacks AVX2+F16C";
  const std::vector<uint16_t> src = AllPatterns();
  std::vector<float> want(src.size()), got(src.size());
  HalfToFloatArray(Isa::kScalar, src.data(), want.data(), src.size());
  HalfToFloatArray(Isa::kAvx2, src.data(), got.data(), src.size());
  for (size_t i = 0; i < src.size(); ++i)
    ASSERT_TRUE(SameFloat(got[i], want[i])) << "fp16 0x" << std::hex << i;
  BFloat16ToFloatArray(Isa::kScalar, src.data(), want.data(), src.size());
  BFloat16ToFloatArray(Isa::kAvx2, src.data(), got.data(), src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    uint32_t x, y;
    std::memcpy(&x, &got[i], 4);
    std::memcpy(&y, &want[i], 4);
    ASSERT_EQ(x, y) << "bf16 0x" << std::hex << i;  // a shift: bit-exact, NaNs included
  }
}

TEST(HalfConvert, Avx2TailsAndOffsets) {
  if (!HaveF16c()) GTEST_SKIP() << "CPU lacks AVX2+F16C";
  std::mt19937 rng(3);
  std::vector<uint16_t> src(64);
  for (uint16_t& v : src) v = static_cast<uint16_t>(rng() & 0x7bff);  // finite fp16
  for (int64_t off = 0; off < 3; ++off)
    for (int64_t n = 0; n <= 40; ++n) {
      const float kSentinel = -12345.f;
      std::vector<float> want(48, kSentinel), got(48, kSentinel);
      HalfToFloatArray(Isa::kScalar, src.data() + off, want.data(), n);
      HalfToFloatArray(Isa::kAvx2, src.data() + off, got.data(), n);
      for (int i = 0; i < 48; ++i) ASSERT_TRUE(SameFloat(got[i], want[i])) << n << "@" << i;
      BFloat16ToFloatArray(Isa::kScalar, src.data() + off, want.data(), n);
      BFloat16ToFloatArray(Isa::kAvx2, src.data() + off, got.data(), n);
      for (int i = 0; i < 48; ++i) ASSERT_TRUE(SameFloat(got[i], want[i])) << n << "@" << i;
      EXPECT_EQ(got[n], kSentinel) << "wrote past n=" << n;
    }
}

std::vector<ir::Tensor> RunCast(const ir::Tensor& x, int64_t to_code, ThreadPool& pool) {
  ir::Graph g;
  ir::Value* in = g.AddInput("x", ir::ValueType::Tensor(x.dtype()));
  ir::Node* node = g.AddNode("Cast", {in}, {"y"}, "cast_w");
  node->set_attr(ir::Attribute::Int("to", to_code));
  return RunNode(*node, {&x}, pool);
}

TEST(HalfConvert, CastOpWidensLargeTensorsExactly) {
  // 300001 elements: above the parallel threshold, with a ragged tail per chunk.
  const int64_t n = 300001;
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.f, 2.f);
  for (ir::DType dt : {ir::DType::kFloat16, ir::DType::kBFloat16}) {
    ir::Tensor x(dt, {n});
    uint16_t* p = x.mutable_data<uint16_t>();
    for (int64_t i = 0; i < n; ++i) {
      const float v = d(rng);
      p[i] = dt == ir::DType::kFloat16 ? ir::FloatToHalf(v) : ir::FloatToBFloat16(v);
    }
    for (int threads : {1, 3}) {
      ThreadPool pool(threads);
      std::vector<ir::Tensor> y = RunCast(x, /*FLOAT=*/1, pool);
      ASSERT_EQ(y[0].dtype(), ir::DType::kFloat32);
      ASSERT_EQ(y[0].shape(), x.shape());
      const float* f = y[0].data<float>();
      for (int64_t i = 0; i < n; ++i) {
        const float want =
            dt == ir::DType::kFloat16 ? ir::HalfToFloat(p[i]) : ir::BFloat16ToFloat(p[i]);
        ASSERT_TRUE(SameFloat(f[i], want)) << ir::DTypeName(dt) << " @" << i;
      }
    }
  }
}

TEST(HalfConvert, CastToOtherTypesKeepsTheGeneralPath) {
  // Must not take the widening path: fp16 -> int32 truncates, float -> fp16 rounds.
  ThreadPool pool(1);
  ir::Tensor h(ir::DType::kFloat16, {3});
  const float vals[] = {2.75f, -1.5f, 65504.f};
  for (int i = 0; i < 3; ++i) h.mutable_data<uint16_t>()[i] = ir::FloatToHalf(vals[i]);
  std::vector<ir::Tensor> yi = RunCast(h, /*INT32=*/6, pool);
  ASSERT_EQ(yi[0].dtype(), ir::DType::kInt32);
  EXPECT_EQ(yi[0].data<int32_t>()[0], 2);
  EXPECT_EQ(yi[0].data<int32_t>()[1], -1);
  EXPECT_EQ(yi[0].data<int32_t>()[2], 65504);
  ir::Tensor f(ir::DType::kFloat32, {1});
  f.mutable_data<float>()[0] = 1.0f + 1.0f / 4096;  // halfway below fp16 precision
  std::vector<ir::Tensor> yh = RunCast(f, /*FLOAT16=*/10, pool);
  ASSERT_EQ(yh[0].dtype(), ir::DType::kFloat16);
  EXPECT_EQ(yh[0].data<uint16_t>()[0], ir::FloatToHalf(1.0f + 1.0f / 4096));
}

}  // namespace
}  // namespace edgepress::runtime
