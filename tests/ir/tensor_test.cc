// Tensor storage and element types: copy-on-write sharing, size overflow checks, and the
// half/bfloat16 conversions (subnormals, infinities, NaN, round-to-nearest-even), checked
// against values computed independently of the code under test.
#include "ir/tensor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "ir/dtype.h"
#include "ir/error.h"

namespace edgepress::ir {
namespace {

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(TensorTest, CopiesShareBytesUntilWritten) {
  Tensor a = Tensor::FromVector<float>(DType::kFloat32, {3}, {1, 2, 3});
  Tensor b = a;
  EXPECT_EQ(a.raw(), b.raw());
  b.mutable_data<float>()[0] = 9;
  EXPECT_NE(a.raw(), b.raw());
  EXPECT_EQ(a.data<float>()[0], 1);
  EXPECT_EQ(b.data<float>()[0], 9);
  // Now sole owner: writes go in place.
  const void* before = a.raw();
  a.mutable_data<float>()[1] = 5;
  EXPECT_EQ(a.raw(), before);
  EXPECT_NE(a, b);
}

TEST(TensorTest, WrappedBuffersAreCopiedOnWrite) {
  static const float kData[2] = {4, 5};
  auto buf = Buffer::Wrap(kData, sizeof(kData), nullptr);
  Tensor t(DType::kFloat32, {2}, buf);
  EXPECT_EQ(t.raw(), kData);
  t.mutable_data<float>()[0] = 1;
  EXPECT_NE(t.raw(), static_cast<const void*>(kData));
  EXPECT_EQ(kData[0], 4);
  EXPECT_EQ(t.data<float>()[1], 5);
}

// 2^62 floats are 2^64 bytes: the byte count would wrap to 0 and the "allocated" tensor
// would be far smaller than its shape.
TEST(TensorTest, ElementCountsWhoseBytesOverflowAreRejected) {
  int64_t big = int64_t{1} << 31;
  EXPECT_THROW(Tensor(DType::kFloat32, {big, big}), Error);
  EXPECT_THROW(Tensor(DType::kComplex128, {big, big / 4}), Error);
  EXPECT_EQ(Tensor(DType::kFloat32, {0, big, big}).nbytes(), 0u);  // empty: fine
}

TEST(TensorTest, ViewsPastTheBufferAreRejected) {
  auto buf = Buffer::Allocate(16);
  EXPECT_NO_THROW(Tensor(DType::kFloat32, {2}, buf, 8));
  EXPECT_THROW(Tensor(DType::kFloat32, {3}, buf, 8), Error);
  EXPECT_THROW(Tensor(DType::kFloat32, {1}, buf, std::numeric_limits<uint64_t>::max() - 1), Error);
}

TEST(TensorTest, ElementCountRejectsOverflowAndNegatives) {
  EXPECT_EQ(ElementCount({}), 1u);
  EXPECT_EQ(ElementCount({2, 0, 5}), 0u);
  EXPECT_EQ(ElementCount({1 << 20, 1 << 20}), uint64_t{1} << 40);
  EXPECT_THROW(ElementCount({int64_t{1} << 32, int64_t{1} << 32}), Error);
  EXPECT_THROW(ElementCount({3, -1}), Error);
  EXPECT_THROW(Tensor(DType::kFloat32, {int64_t{1} << 40, int64_t{1} << 40}), Error);
}

TEST(TensorTest, PackedSizesRoundUpPerTensor) {
  EXPECT_EQ(DTypeBytes(DType::kInt4, 3), 2u);
  EXPECT_EQ(DTypeBytes(DType::kTernary, 5), 2u);
  EXPECT_EQ(Tensor(DType::kUInt4, {7}).nbytes(), 4u);
  // Packed data comes as packed bytes; too few bytes is refused rather than over-read.
  Tensor p = Tensor::FromVector<uint8_t>(DType::kInt4, {3}, {0x21, 0x03});
  EXPECT_EQ(p.data<uint8_t>()[0], 0x21);
  EXPECT_THROW(Tensor::FromVector<uint8_t>(DType::kInt4, {6}, {0x21}), std::logic_error);
  EXPECT_TRUE(IsPacked(DType::kInt4));
  EXPECT_FALSE(IsPacked(DType::kInt8));
}

TEST(TensorTest, ToInt64AndToDoubleConvertEveryNumericType) {
  Tensor i32 = Tensor::FromVector<int32_t>(DType::kInt32, {3}, {-1, 0, 7});
  EXPECT_EQ(i32.ToInt64(), (std::vector<int64_t>{-1, 0, 7}));
  Tensor h = Tensor::FromVector<uint16_t>(DType::kFloat16, {2}, {0x3c00, 0xc000});
  EXPECT_EQ(h.ToDouble(), (std::vector<double>{1.0, -2.0}));
  Tensor nan = Tensor::FromVector<float>(DType::kFloat32, {1}, {NAN});
  EXPECT_EQ(nan.ToInt64(), (std::vector<int64_t>{0}));  // no UB on non-finite values
  EXPECT_THROW(Tensor(DType::kInt4, {2}).ToInt64(), Error);
}

TEST(TensorTest, StringTensorsCheckTheirCount) {
  Tensor s = Tensor::Strings({2}, {"a", "b"});
  EXPECT_EQ(s.strings()[1], "b");
  EXPECT_THROW(Tensor::Strings({3}, {"a"}), Error);
}

TEST(HalfTest, ExactValuesRoundTrip) {
  // Every finite half converts to float and back unchanged.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    uint16_t x = static_cast<uint16_t>(h);
    if ((x & 0x7c00) == 0x7c00 && (x & 0x3ff)) continue;  // NaN payloads checked below
    ASSERT_EQ(FloatToHalf(HalfToFloat(x)), x) << std::hex << h;
  }
}

TEST(HalfTest, SpecialValues) {
  EXPECT_EQ(HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(HalfToFloat(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(HalfToFloat(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_TRUE(std::isinf(HalfToFloat(0x7c00)) && HalfToFloat(0x7c00) > 0);
  EXPECT_TRUE(std::isinf(HalfToFloat(0xfc00)) && HalfToFloat(0xfc00) < 0);
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7e00)));
  EXPECT_EQ(Bits(HalfToFloat(0x8000)), 0x80000000u);  // -0
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(INFINITY), 0x7c00);
  EXPECT_EQ(FloatToHalf(-INFINITY), 0xfc00);
  uint16_t qnan = FloatToHalf(NAN);
  EXPECT_EQ(qnan & 0x7c00, 0x7c00);
  EXPECT_NE(qnan & 0x3ff, 0);
  // A signalling float NaN whose payload is only in the low bits must stay a NaN.
  EXPECT_NE(FloatToHalf(FromBits(0x7f800001u)) & 0x3ff, 0);
}

TEST(HalfTest, RoundsToNearestEvenAndOverflows) {
  // 1 + 2^-11 is halfway between 1 and the next half (1 + 2^-10): ties to even -> 1.
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  // 1 + 3*2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even) -> up.
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  // Just above halfway rounds up.
  EXPECT_EQ(FloatToHalf(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3c01);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);  // below the halfway point to 65536
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);  // halfway, ties to even (inf)
  EXPECT_EQ(FloatToHalf(1e10f), 0x7c00);
  // Subnormal results, with ties to even at the smallest step.
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);  // tie -> even 0
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);  // tie 1.5 -> 2
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -26)), 0x0000);
  EXPECT_EQ(FloatToHalf(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.5f, -24)), 0x0400);  // rounds up into the normals
  EXPECT_EQ(FloatToHalf(-std::ldexp(5.0f, -24)), 0x8005);
}

TEST(BFloat16Test, ConversionsAndRounding) {
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3f80);
  EXPECT_EQ(BFloat16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(BFloat16ToFloat(0xc040), -3.0f);
  // Ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7.
  EXPECT_EQ(FloatToBFloat16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(FloatToBFloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(FloatToBFloat16(std::nextafter(1.0f + std::ldexp(1.0f, -8), 2.0f)), 0x3f81);
  EXPECT_EQ(FloatToBFloat16(INFINITY), 0x7f80);
  EXPECT_EQ(FloatToBFloat16(-INFINITY), 0xff80);
  EXPECT_EQ(FloatToBFloat16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
  uint16_t n = FloatToBFloat16(FromBits(0x7f800001u));  // NaN with a low payload only
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(n)));
  // Subnormal floats keep their top bits.
  EXPECT_EQ(FloatToBFloat16(FromBits(0x00010000u)), 0x0001);
  EXPECT_EQ(BFloat16ToFloat(0x0001), FromBits(0x00010000u));
  // Every bf16 value round-trips.
  for (uint32_t b = 0; b < 0x10000; ++b) {
    uint16_t x = static_cast<uint16_t>(b);
    if ((x & 0x7f80) == 0x7f80 && (x & 0x7f)) continue;
    ASSERT_EQ(FloatToBFloat16(BFloat16ToFloat(x)), x) << std::hex << b;
  }
}

TEST(DTypeTest, NamesAndOnnxCodesRoundTrip) {
  for (int i = 1; i <= static_cast<int>(DType::kString); ++i) {
    DType t = static_cast<DType>(i);
    EXPECT_EQ(DTypeFromName(DTypeName(t)), t) << DTypeName(t);
    if (t != DType::kTernary) {
      EXPECT_EQ(DTypeFromOnnx(DTypeToOnnx(t)), t) << DTypeName(t);
    }
  }
  EXPECT_EQ(DTypeFromOnnx(1), DType::kFloat32);
  EXPECT_EQ(DTypeFromOnnx(7), DType::kInt64);
  EXPECT_EQ(DTypeFromOnnx(16), DType::kBFloat16);
  EXPECT_EQ(DTypeFromOnnx(999), DType::kUndefined);
  EXPECT_EQ(DTypeToOnnx(DType::kTernary), 0);
  EXPECT_EQ(DTypeFromName("nope"), DType::kUndefined);
}

}  // namespace
}  // namespace edgepress::ir
