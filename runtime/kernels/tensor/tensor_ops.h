// Tensor-manipulation kernels: shape ops (tensor_shape.cc: Reshape, Flatten, Squeeze,
// Unsqueeze, Shape, Size, Cast, CastLike, ConstantOfShape, Range, Constant, EyeLike),
// data movement (tensor_move.cc: Transpose, Concat, Split, Slice, DepthToSpace,
// SpaceToDepth), broadcasting (tensor_expand.cc: Expand, Tile, Pad), indexing
// (tensor_index.cc: Gather, GatherElements, ScatterElements, OneHot, Trilu) and search
// (tensor_search.cc: TopK, ArgMax, ArgMin, CumSum, NonZero). All are scalar reference entries
// that accept every fixed-size dtype (they move elements by size); Transpose has blocked
// fast paths and an AVX2 entry (8 x 8 register blocks for 4-byte elements).
#pragma once

#include <vector>

#include "runtime/kernel.h"

namespace edgepress::runtime {

void RegisterTensorKernels(KernelRegistry& r);

namespace kernels {
void RegisterTensorShapeKernels(KernelRegistry& r);
void RegisterTensorMoveKernels(KernelRegistry& r);
void RegisterTensorExpandKernels(KernelRegistry& r);
void RegisterTensorIndexKernels(KernelRegistry& r);
void RegisterTensorSearchKernels(KernelRegistry& r);
// Maps an ONNX TensorProto data type code to a DType; throws naming the node otherwise.
ir::DType DTypeFromOnnxCode(const ir::Node& node, int64_t code);
// Permutes `x` into `out` (already allocated with the permuted shape).
// `simd`: use the AVX2 block transpose for 4-byte elements (the caller checked the CPU).
void TransposeInto(const ir::Node& node, ThreadPool& pool, const ir::Tensor& x,
                   const std::vector<int64_t>& perm, ir::Tensor& out, bool simd = false);
#if defined(__x86_64__)
// dst[a * b_n + b] = src[a + b * sb] for a < a_n, b < b_n (transpose_avx2.cc; AVX2).
void Transpose2DAvx2(const uint32_t* src, int64_t sb, uint32_t* dst, int64_t a_n, int64_t b_n);
#endif
}  // namespace kernels

}  // namespace edgepress::runtime
