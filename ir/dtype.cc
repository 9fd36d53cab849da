#include "ir/dtype.h"

#include <cstring>

namespace edgepress::ir {
namespace {
struct DTypeInfo {
  DType type;
  int bits;
  const char* name;
};
constexpr DTypeInfo kInfos[] = {
    {DType::kUndefined, 0, "undefined"}, {DType::kFloat32, 32, "f32"},
    {DType::kFloat16, 16, "f16"},        {DType::kBFloat16, 16, "bf16"},
    {DType::kFloat64, 64, "f64"},        {DType::kInt64, 64, "i64"},
    {DType::kInt32, 32, "i32"},          {DType::kInt16, 16, "i16"},
    {DType::kInt8, 8, "i8"},             {DType::kUInt64, 64, "u64"},
    {DType::kUInt32, 32, "u32"},         {DType::kUInt16, 16, "u16"},
    {DType::kUInt8, 8, "u8"},            {DType::kBool, 8, "bool"},
    {DType::kInt4, 4, "i4"},             {DType::kUInt4, 4, "u4"},
    {DType::kTernary, 2, "ternary"},     {DType::kComplex64, 64, "c64"},
    {DType::kComplex128, 128, "c128"},   {DType::kString, 0, "string"},
};
const DTypeInfo& Info(DType t) {
  auto i = static_cast<size_t>(t);
  return i < sizeof(kInfos) / sizeof(kInfos[0]) ? kInfos[i] : kInfos[0];
}
}  // namespace

int DTypeBits(DType t) { return Info(t).bits; }

uint64_t DTypeBytes(DType t, uint64_t count) {
  uint64_t bits = static_cast<uint64_t>(Info(t).bits);
  if (bits >= 8) return count * (bits / 8);
  return (count * bits + 7) / 8;
}

const char* DTypeName(DType t) { return Info(t).name; }

DType DTypeFromName(const std::string& name) {
  for (const auto& info : kInfos)
    if (name == info.name) return info.type;
  return DType::kUndefined;
}

bool IsFloat(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16 ||
         t == DType::kFloat64;
}
bool IsInteger(DType t) {
  switch (t) {
    case DType::kInt64: case DType::kInt32: case DType::kInt16: case DType::kInt8:
    case DType::kUInt64: case DType::kUInt32: case DType::kUInt16: case DType::kUInt8:
    case DType::kInt4: case DType::kUInt4: case DType::kTernary:
      return true;
    default:
      return false;
  }
}
bool IsPacked(DType t) { return Info(t).bits > 0 && Info(t).bits < 8; }

namespace {
struct OnnxCode {
  int64_t code;
  DType type;
};
constexpr OnnxCode kOnnxCodes[] = {
    {1, DType::kFloat32},  {2, DType::kUInt8},     {3, DType::kInt8},        {4, DType::kUInt16},
    {5, DType::kInt16},    {6, DType::kInt32},     {7, DType::kInt64},       {8, DType::kString},
    {9, DType::kBool},     {10, DType::kFloat16},  {11, DType::kFloat64},    {12, DType::kUInt32},
    {13, DType::kUInt64},  {14, DType::kComplex64}, {15, DType::kComplex128}, {16, DType::kBFloat16},
    {21, DType::kUInt4},   {22, DType::kInt4},
};
}  // namespace

DType DTypeFromOnnx(int64_t onnx_type) {
  for (const auto& c : kOnnxCodes)
    if (c.code == onnx_type) return c.type;
  return DType::kUndefined;
}

int64_t DTypeToOnnx(DType t) {
  for (const auto& c : kOnnxCodes)
    if (c.type == t) return c.code;
  return 0;
}

}  // namespace edgepress::ir
