// Elementwise kernels: unary math/activations, numpy-broadcasting binary and variadic
// ops, comparisons, logical ops, Where, PRelu, Identity and Dropout (inference).
//
// Every op has a scalar reference entry named "any_<op>__ref" (dtype kUndefined: it
// accepts every dtype the ONNX spec lists for the op, with f16/bf16 computed in f32);
// the hot f32 ops also have "f32_<op>__avx2" entries (elementwise_avx2.cc), and the ones
// transformers spend time in "f32_<op>__avx512" entries (elementwise_avx512.cc).
#pragma once

#include "runtime/kernel.h"

namespace edgepress::runtime {

void RegisterElementwiseKernels(KernelRegistry& r);

namespace kernels {
// The AVX2 and AVX-512 entries; registered by RegisterElementwiseKernels when compiled for
// x86-64.
void RegisterElementwiseAvx2Kernels(KernelRegistry& r);
void RegisterElementwiseAvx512Kernels(KernelRegistry& r);
}  // namespace kernels

}  // namespace edgepress::runtime
