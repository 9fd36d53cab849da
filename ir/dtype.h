// Element types of the IR. Packed sub-byte types (int4/uint4: two values per byte,
// low nibble first as in ONNX; ternary: four 2-bit values per byte) have bits() < 8
// and their byte size is rounded up per tensor, not per element.
#pragma once

#include <cstdint>
#include <string>

namespace edgepress::ir {

enum class DType : uint8_t {
  kUndefined = 0,
  kFloat32,
  kFloat16,
  kBFloat16,
  kFloat64,
  kInt64,
  kInt32,
  kInt16,
  kInt8,
  kUInt64,
  kUInt32,
  kUInt16,
  kUInt8,
  kBool,
  kInt4,     // packed, 2 per byte
  kUInt4,    // packed, 2 per byte
  kTernary,  // packed {-1,0,+1} as 2-bit codes, 4 per byte (values 0b00=0, 0b01=+1, 0b11=-1)
  kComplex64,
  kComplex128,
  kString,  // carried through import/export; never computed on by kernels
};

// Bits per element (1..128); 0 for kUndefined and kString.
int DTypeBits(DType t);
// Bytes needed for `count` elements (packed types round up); 0 for kString.
uint64_t DTypeBytes(DType t, uint64_t count);
// Short lowercase name: f32, f16, bf16, f64, i64, ..., i4, u4, ternary, string.
const char* DTypeName(DType t);
// Inverse of DTypeName; kUndefined when unknown.
DType DTypeFromName(const std::string& name);
bool IsFloat(DType t);    // f32 f16 bf16 f64
bool IsInteger(DType t);  // signed/unsigned ints incl. packed
bool IsPacked(DType t);   // bits < 8
// ONNX TensorProto.DataType codes (as in Cast's `to`, ConstantOfShape's value); kUndefined /
// 0 when there is no counterpart. kTernary has no ONNX code.
DType DTypeFromOnnx(int64_t onnx_type);
int64_t DTypeToOnnx(DType t);

}  // namespace edgepress::ir
