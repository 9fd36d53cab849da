// Indexing kernels (see tensor_ops.h): Gather, GatherElements, ScatterElements, OneHot and
// Trilu. Every index read from a tensor is checked before the copy loops start:
// ParallelFor tasks must not throw.
// They move elements by byte size, so one template per element width serves every dtype.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "runtime/kernels/elementwise/elementwise_common.h"
#include "runtime/kernels/elementwise/elementwise_impl.h"
#include "runtime/kernels/tensor/tensor_index_util.h"
#include "runtime/kernels/tensor/tensor_ops.h"

namespace edgepress::runtime::kernels {

namespace {

using tensor_detail::ForEachIndex;
using tensor_detail::Prod;
using tensor_detail::Strides;

// Reads indices (int32/int64), normalising negatives against `dim`; throws when any is
// out of range.
std::vector<int64_t> CheckedIndices(KernelContext& ctx, const ir::Tensor& t, int64_t dim) {
  std::vector<int64_t> idx = IntValues(ctx, t, "indices");
  for (int64_t& i : idx) {
    if (i < -dim || i >= dim)
      Fail(ctx.node(),
           "index " + std::to_string(i) + " out of range for axis of size " + std::to_string(dim));
    if (i < 0) i += dim;
  }
  return idx;
}

std::unique_ptr<Kernel> CreateGather(const KernelInit& init) {
  int64_t axis = init.node.attr_int("axis", 0);
  return MakeKernel([axis](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = In(ctx, 0);
    const ir::Tensor& it = In(ctx, 1);
    int64_t r = x.rank();
    int64_t a = NormAxis(node, axis, r);
    int64_t dim = x.shape()[a];
    std::vector<int64_t> idx = CheckedIndices(ctx, it, dim);
    std::vector<int64_t> shape(x.shape().begin(), x.shape().begin() + a);
    shape.insert(shape.end(), it.shape().begin(), it.shape().end());
    shape.insert(shape.end(), x.shape().begin() + a + 1, x.shape().end());
    NumElements(node, shape);
    ir::Tensor& out = ctx.AllocateOutput(0, x.dtype(), shape);
    if (out.numel() == 0) return;
    const int64_t es = ir::DTypeBits(x.dtype()) / 8;
    const int64_t outer = Prod(x.shape(), 0, a), inner = Prod(x.shape(), a + 1, r) * es;
    const int64_t n = static_cast<int64_t>(idx.size());
    const uint8_t* pi = static_cast<const uint8_t*>(x.raw());
    uint8_t* po = static_cast<uint8_t*>(out.mutable_raw());
    ParallelRange(ctx.pool(), outer * n,
                  std::max<int64_t>(1, kParallelThreshold * 4 / std::max<int64_t>(1, inner)),
                  [&](int64_t b, int64_t e) {
                    for (int64_t k = b; k < e; ++k) {
                      int64_t o = k / n, j = k % n;
                      std::memcpy(po + k * inner, pi + (o * dim + idx[j]) * inner, inner);
                    }
                  });
  });
}

std::unique_ptr<Kernel> CreateGatherElements(const KernelInit& init) {
  int64_t axis = init.node.attr_int("axis", 0);
  return MakeKernel([axis](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = In(ctx, 0);
    const ir::Tensor& it = In(ctx, 1);
    int64_t r = x.rank();
    int64_t a = NormAxis(node, axis, r);
    if (it.rank() != r) Fail(node, "indices rank differs from data rank");
    for (int64_t d = 0; d < r; ++d)
      if (d != a && it.shape()[d] > x.shape()[d])
        Fail(node, "indices shape " + ShapeStr(it.shape()) + " exceeds data shape " +
                       ShapeStr(x.shape()));
    std::vector<int64_t> idx = CheckedIndices(ctx, it, x.shape()[a]);
    ir::Tensor& out = ctx.AllocateOutput(0, x.dtype(), it.shape());
    if (out.numel() == 0) return;
    std::vector<int64_t> st = Strides(x.shape());
    DispatchBySize(node, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* pi = x.data<T>();
      T* po = out.mutable_data<T>();
      ForEachIndex(it.shape(), [&](int64_t i, const std::vector<int64_t>& c) {
        int64_t off = 0;
        for (int64_t d = 0; d < r; ++d) off += (d == a ? idx[i] : c[d]) * st[d];
        po[i] = pi[off];
      });
    });
  });
}

std::unique_ptr<Kernel> CreateScatterElements(const KernelInit& init) {
  int64_t axis = init.node.attr_int("axis", 0);
  std::string reduction = init.node.attr_string("reduction", "none");
  if (reduction != "none" && reduction != "add" && reduction != "mul" && reduction != "max" &&
      reduction != "min")
    Fail(init.node, "unknown reduction '" + reduction + "'");
  return MakeKernel([axis, reduction](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = In(ctx, 0);
    const ir::Tensor& it = In(ctx, 1);
    const ir::Tensor& up = In(ctx, 2);
    int64_t r = x.rank();
    int64_t a = NormAxis(node, axis, r);
    if (it.rank() != r || up.shape() != it.shape())
      Fail(node, "indices and updates must have the data's rank and equal shapes");
    if (up.dtype() != x.dtype()) Fail(node, "updates dtype differs from data");
    for (int64_t d = 0; d < r; ++d)
      if (d != a && it.shape()[d] > x.shape()[d])
        Fail(node, "indices shape " + ShapeStr(it.shape()) + " exceeds data shape " +
                       ShapeStr(x.shape()));
    std::vector<int64_t> idx = CheckedIndices(ctx, it, x.shape()[a]);
    std::vector<int64_t> st = Strides(x.shape());
    auto scatter = [&](auto tag, ir::Tensor& out, const ir::Tensor& upd) {
      using T = decltype(tag);
      T* po = out.mutable_data<T>();
      const T* pu = upd.data<T>();
      if (it.numel() == 0) return;
      ForEachIndex(it.shape(), [&](int64_t i, const std::vector<int64_t>& c) {
        int64_t off = 0;
        for (int64_t d = 0; d < r; ++d) off += (d == a ? idx[i] : c[d]) * st[d];
        T v = pu[i];
        if constexpr (std::is_arithmetic_v<T>) {
          if (reduction == "add")
            v = static_cast<T>(po[off] + v);
          else if (reduction == "mul")
            v = static_cast<T>(po[off] * v);
          else if (reduction == "max")
            v = std::max(po[off], v);
          else if (reduction == "min")
            v = std::min(po[off], v);
        }
        po[off] = v;
      });
    };
    if (reduction == "none") {
      ir::Tensor& out = ctx.AllocateOutput(0, x.dtype(), x.shape());
      if (out.nbytes()) std::memcpy(out.mutable_raw(), x.raw(), out.nbytes());
      DispatchBySize(node, x.dtype(), [&](auto tag) { scatter(tag, out, up); });
      return;
    }
    bool half = IsHalfLike(x.dtype());
    ir::Tensor xx = half ? CastTensor(node, x, ir::DType::kFloat32) : x;
    ir::Tensor uu = half ? CastTensor(node, up, ir::DType::kFloat32) : up;
    ir::Tensor res(xx.dtype(), xx.shape());
    if (res.nbytes()) std::memcpy(res.mutable_raw(), xx.raw(), res.nbytes());
    DispatchNumeric(node, xx.dtype(), [&](auto tag) { scatter(tag, res, uu); });
    ir::Tensor back = CastTensor(node, res, x.dtype());
    ir::Tensor& out = ctx.AllocateOutput(0, x.dtype(), x.shape());
    if (out.nbytes()) std::memcpy(out.mutable_raw(), back.raw(), out.nbytes());
  });
}

std::unique_ptr<Kernel> CreateOneHot(const KernelInit& init) {
  int64_t axis = init.node.attr_int("axis", -1);
  return MakeKernel([axis](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& it = In(ctx, 0);
    double depth_d = ScalarValue(ctx, In(ctx, 1), "depth");
    const ir::Tensor& values = In(ctx, 2);
    if (values.numel() != 2) Fail(node, "values must have two elements [off, on]");
    if (!(depth_d >= 1) || depth_d > 1e9) Fail(node, "depth must be in [1, 1e9]");
    int64_t depth = static_cast<int64_t>(depth_d);
    int64_t r = it.rank() + 1;
    int64_t a = NormAxis(node, axis, r);
    std::vector<int64_t> shape = it.shape();
    shape.insert(shape.begin() + a, depth);
    NumElements(node, shape);
    std::vector<double> idx = it.ToDouble();
    ir::Tensor& out = ctx.AllocateOutput(0, values.dtype(), shape);
    if (out.numel() == 0) return;
    const int64_t outer = Prod(it.shape(), 0, a), inner = Prod(it.shape(), a, it.rank());
    DispatchBySize(node, values.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T off = values.data<T>()[0], on = values.data<T>()[1];
      T* po = out.mutable_data<T>();
      std::fill(po, po + out.numel(), off);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          double v = idx[o * inner + i];
          if (v < 0) v += static_cast<double>(depth);
          if (!(v >= 0 && v < static_cast<double>(depth))) continue;
          po[(o * depth + static_cast<int64_t>(v)) * inner + i] = on;
        }
    });
  });
}

std::unique_ptr<Kernel> CreateTrilu(const KernelInit& init) {
  bool upper = init.node.attr_int("upper", 1) != 0;
  return MakeKernel([upper](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = In(ctx, 0);
    int64_t k = 0;
    if (const ir::Tensor* t = OptIn(ctx, 1)) k = IntValues(ctx, *t, "k").at(0);
    if (x.rank() < 2) Fail(node, "input must have rank >= 2");
    ir::Tensor& out = ctx.AllocateOutput(0, x.dtype(), x.shape());
    if (out.numel() == 0) return;
    int64_t rows = x.shape()[x.rank() - 2], cols = x.shape()[x.rank() - 1];
    int64_t batches = static_cast<int64_t>(x.numel()) / (rows * cols);
    DispatchBySize(node, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* pi = x.data<T>();
      T* po = out.mutable_data<T>();
      for (int64_t b = 0; b < batches; ++b)
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < cols; ++j) {
            int64_t o = (b * rows + i) * cols + j;
            bool keep = upper ? (j - i >= k) : (j - i <= k);
            po[o] = keep ? pi[o] : T{};
          }
    });
  });
}

}  // namespace

void RegisterTensorIndexKernels(KernelRegistry& r) {
  AddRef(r, "Gather", CreateGather);
  AddRef(r, "GatherElements", CreateGatherElements);
  AddRef(r, "ScatterElements", CreateScatterElements);
  AddRef(r, "OneHot", CreateOneHot);
  AddRef(r, "Trilu", CreateTrilu);
}

}  // namespace edgepress::runtime::kernels
