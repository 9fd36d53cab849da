// Tensor-manipulation kernels: shape ops (tensor_shape.cc: Reshape, Flatten, Squeeze,
// Unsqueeze, Shape, Size, Cast, CastLike, ConstantOfShape, Range, Constant, EyeLike) and
// data-movement/indexing ops (tensor_index.cc: Transpose, Concat, Split, Slice, Gather,
// GatherElements, ScatterElements, Expand, Tile, Pad, OneHot, Trilu, TopK, ArgMax,
// ArgMin, CumSum, NonZero, DepthToSpace, SpaceToDepth). All are scalar reference entries
// that accept every fixed-size dtype (they move elements by size); Transpose has blocked
// fast paths.
#pragma once

#include <vector>

#include "runtime/kernel.h"

namespace edgepress::runtime {

void RegisterTensorKernels(KernelRegistry& r);

namespace kernels {
void RegisterTensorShapeKernels(KernelRegistry& r);
void RegisterTensorIndexKernels(KernelRegistry& r);
// Maps an ONNX TensorProto data type code to a DType; throws naming the node otherwise.
ir::DType DTypeFromOnnxCode(const ir::Node& node, int64_t code);
// Permutes `x` into `out` (already allocated with the permuted shape).
void TransposeInto(const ir::Node& node, ThreadPool& pool, const ir::Tensor& x,
                   const std::vector<int64_t>& perm, ir::Tensor& out);
}  // namespace kernels

}  // namespace edgepress::runtime
