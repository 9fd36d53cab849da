// Shared helpers for the elementwise, tensor, reduction and softmax kernels: input and
// attribute access that throws edgepress::Error naming the node, axis normalisation,
// numpy broadcasting plans (coalesced so inner loops are long and contiguous), dtype
// dispatch, casting between every numeric dtype, and a parallel loop with a size threshold.
//
// Kernels validate everything before any ParallelFor (tasks must not throw).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime::kernels {

// Below this many elements a cheap elementwise op runs on the calling thread: waking
// workers costs more than the work (a few microseconds).
constexpr int64_t kParallelThreshold = 1 << 15;

// A kernel whose Run is a function of the context; `create` functions parse attributes
// once and capture them.
class FnKernel : public Kernel {
 public:
  explicit FnKernel(std::function<void(KernelContext&)> fn) : fn_(std::move(fn)) {}
  void Run(KernelContext& ctx) override { fn_(ctx); }

 private:
  std::function<void(KernelContext&)> fn_;
};
inline std::unique_ptr<Kernel> MakeKernel(std::function<void(KernelContext&)> fn) {
  return std::make_unique<FnKernel>(std::move(fn));
}

[[noreturn]] void Fail(const ir::Node& node, const std::string& what);
[[noreturn]] void FailUnsupported(const ir::Node& node, const std::string& what);

// Input i; throws when it is absent.
const ir::Tensor& In(KernelContext& ctx, size_t i);
// com.microsoft FastGelu (the tanh form of GELU, what fuse-gelu writes) with its optional
// bias input: that bias is not implemented, so such a node is refused by name rather than
// run without it.
void RefuseFastGeluBias(const KernelInit& init);
// Input i or nullptr when absent or empty (an omitted optional input).
const ir::Tensor* OptIn(KernelContext& ctx, size_t i);
// Values of an integer tensor input (axes, shapes, pads...); throws unless int32/int64.
std::vector<int64_t> IntValues(KernelContext& ctx, const ir::Tensor& t, const char* what);
// A scalar (or 1-element) input as double.
double ScalarValue(KernelContext& ctx, const ir::Tensor& t, const char* what);

// Normalises a possibly negative axis into [0, rank); throws naming the node.
int64_t NormAxis(const ir::Node& node, int64_t axis, int64_t rank);
// Normalises a list of axes, rejecting duplicates.
std::vector<int64_t> NormAxes(const ir::Node& node, const std::vector<int64_t>& axes,
                              int64_t rank);

// Overflow-checked element count of a shape (throws naming the node).
int64_t NumElements(const ir::Node& node, const std::vector<int64_t>& shape);
std::string ShapeStr(const std::vector<int64_t>& shape);

// Numpy broadcasting of any number of shapes; throws naming the node when incompatible.
std::vector<int64_t> BroadcastShapes(const ir::Node& node,
                                     const std::vector<std::vector<int64_t>>& shapes);

// Iteration plan for an N-input broadcast: the output is `outer` rows of `inner`
// elements; in row r, input k starts at RowOffset(k, r) and advances by inner_stride[k]
// (0 or 1) per element.
struct BroadcastPlan {
  std::vector<int64_t> out_shape;
  int64_t out_numel = 0;
  int64_t outer = 0, inner = 0;
  std::vector<int64_t> dims;                  // coalesced output dims (last = inner)
  std::vector<std::vector<int64_t>> strides;  // per input, per coalesced dim
  std::vector<int64_t> inner_stride;          // per input
  int64_t RowOffset(size_t k, int64_t row) const;
};
BroadcastPlan MakeBroadcastPlan(const ir::Node& node,
                                const std::vector<std::vector<int64_t>>& shapes);

// Runs fn(out_offset, in_offsets, n) over the plan in contiguous runs, in parallel when
// the output has at least `threshold` elements. in_offsets has one entry per input.
void ForEachRun(const BroadcastPlan& plan, ThreadPool& pool, int64_t threshold,
                const std::function<void(int64_t, const int64_t*, int64_t)>& fn);

// Splits [0, n) over the pool when n >= threshold; fn(begin, end).
void ParallelRange(ThreadPool& pool, int64_t n, int64_t threshold,
                   const std::function<void(int64_t, int64_t)>& fn);

// Converts a tensor to another dtype (all numeric dtypes incl. f16/bf16 and bool;
// float->int truncates toward zero, NaN->int gives 0, out-of-range saturates).
ir::Tensor CastTensor(const ir::Node& node, const ir::Tensor& t, ir::DType to);

bool IsSupportedNumeric(ir::DType t);

// Calls f(T{}) with the C++ type of a computable dtype (bool as uint8_t); f16/bf16
// are not dispatched here (callers upcast them to f32). Throws kUnsupported otherwise.
template <class F>
void DispatchNumeric(const ir::Node& node, ir::DType dt, F&& f) {
  switch (dt) {
    case ir::DType::kFloat32: f(float{}); return;
    case ir::DType::kFloat64: f(double{}); return;
    case ir::DType::kInt64: f(int64_t{}); return;
    case ir::DType::kInt32: f(int32_t{}); return;
    case ir::DType::kInt16: f(int16_t{}); return;
    case ir::DType::kInt8: f(int8_t{}); return;
    case ir::DType::kUInt64: f(uint64_t{}); return;
    case ir::DType::kUInt32: f(uint32_t{}); return;
    case ir::DType::kUInt16: f(uint16_t{}); return;
    case ir::DType::kUInt8: f(uint8_t{}); return;
    case ir::DType::kBool: f(uint8_t{}); return;
    default: FailUnsupported(node, std::string("dtype ") + ir::DTypeName(dt) + " not supported");
  }
}

// Calls f(T{}) with an unsigned integer type of the element's byte size, for ops that
// only move elements (works for every fixed-size dtype incl. f16/bf16/bool).
template <class F>
void DispatchBySize(const ir::Node& node, ir::DType dt, F&& f) {
  if (dt == ir::DType::kString || ir::IsPacked(dt) || dt == ir::DType::kUndefined)
    FailUnsupported(node, std::string("dtype ") + ir::DTypeName(dt) + " not supported");
  switch (ir::DTypeBits(dt)) {
    case 8: f(uint8_t{}); return;
    case 16: f(uint16_t{}); return;
    case 32: f(uint32_t{}); return;
    case 64: f(uint64_t{}); return;
    case 128: {
      struct U128 { uint64_t lo, hi; };
      f(U128{});
      return;
    }
    default: FailUnsupported(node, std::string("dtype ") + ir::DTypeName(dt) + " not supported");
  }
}

bool IsHalfLike(ir::DType t);  // f16 or bf16

}  // namespace edgepress::runtime::kernels
