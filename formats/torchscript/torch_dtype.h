// ir::DType to LibTorch's scalar type: the one table the TorchScript exporter and the LibTorch
// backend (runtime/torch) share. Packed 4-bit types map to their byte storage (the backend
// holds them unpacked, one value a byte); callers that cannot carry them refuse them first.
#pragma once

#include <optional>

#include <c10/core/ScalarType.h>

#include "ir/dtype.h"

namespace edgepress::torch_dtype {

// nullopt where LibTorch has no type for `t`; the caller names the node or file in its error.
inline std::optional<at::ScalarType> ToScalarType(ir::DType t) {
  switch (t) {
    case ir::DType::kFloat32:
      return at::kFloat;
    case ir::DType::kFloat16:
      return at::kHalf;
    case ir::DType::kBFloat16:
      return at::kBFloat16;
    case ir::DType::kFloat64:
      return at::kDouble;
    case ir::DType::kInt64:
      return at::kLong;
    case ir::DType::kInt32:
      return at::kInt;
    case ir::DType::kInt16:
      return at::kShort;
    case ir::DType::kInt8:
    case ir::DType::kInt4:
      return at::kChar;
    case ir::DType::kUInt8:
    case ir::DType::kUInt4:
      return at::kByte;
    case ir::DType::kBool:
      return at::kBool;
    default:
      return std::nullopt;
  }
}

}  // namespace edgepress::torch_dtype
