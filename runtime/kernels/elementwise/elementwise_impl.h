// Internal interface between the elementwise kernel files (reference, binary and AVX2):
// the shared unary/binary drivers and registration helpers. Not for use outside
// runtime/kernels.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "runtime/kernel.h"

namespace edgepress::runtime::kernels {

// Which dtypes a unary op accepts: floats only, or floats and integers.
enum class UnaryKind { kFloat, kNumeric, kSigned };

// Validates input 0, allocates output 0 with the same dtype and shape, and calls
// typed(dtype, x, y, n) over contiguous chunks (in parallel for large tensors). f16/bf16
// inputs are computed in f32 (typed sees kFloat32) and rounded back.
void RunUnary(KernelContext& ctx, UnaryKind kind,
              const std::function<void(ir::DType, const void*, void*, int64_t)>& typed);

// Inner loop of a broadcast binary op on typed pointers: out[i] = a[i*sa] op b[i*sb],
// with sa, sb in {0, 1}.
using BinaryInner = std::function<void(ir::DType, void* out, const void* a, int64_t sa,
                                       const void* b, int64_t sb, int64_t n)>;
// Broadcasts inputs a and b (same dtype required), allocates output 0 of `out_dtype`
// (kUndefined = the inputs' dtype), and runs `inner` over contiguous runs. f16/bf16
// inputs are computed in f32 and the result rounded back (unless out_dtype is bool).
void RunBinary(KernelContext& ctx, const ir::Tensor& a, const ir::Tensor& b,
               ir::DType out_dtype, const BinaryInner& inner);

// "f32_leaky_relu__avx2" etc.; the returned pointer stays valid for the process.
const char* KernelName(const std::string& dtype, const std::string& op, const char* isa);
// Registers the scalar reference entry "any_<op>__ref" (dtype kUndefined).
void AddRef(KernelRegistry& r, const char* op,
            std::unique_ptr<Kernel> (*create)(const KernelInit&), const char* domain = "");

void RegisterBinaryRef(KernelRegistry& r);

}  // namespace edgepress::runtime::kernels
