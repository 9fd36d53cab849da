// Broadcasting and padding kernels (see tensor_ops.h): Expand, Tile and Pad (all modes).
// They move elements by byte size, so one template per element width serves every dtype.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/kernels/elementwise/elementwise_common.h"
#include "runtime/kernels/elementwise/elementwise_impl.h"
#include "runtime/kernels/tensor/tensor_index_util.h"
#include "runtime/kernels/tensor/tensor_ops.h"

// gcc 12 reports -Wfree-nonheap-object on the index-counter vectors of the odometer loops
// once they are inlined ("nonzero offset [8, 2^63]"): a false positive, the vectors are
// ordinary heap ones. Silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#endif

namespace edgepress::runtime::kernels {

namespace {

using tensor_detail::ForEachIndex;
using tensor_detail::Strides;

std::unique_ptr<Kernel> CreateExpand(const KernelInit&) {
  return MakeKernel([](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = In(ctx, 0);
    std::vector<int64_t> target = IntValues(ctx, In(ctx, 1), "shape");
    BroadcastPlan plan = MakeBroadcastPlan(node, {x.shape(), target});
    ir::Tensor& out = ctx.AllocateOutput(0, x.dtype(), plan.out_shape);
    if (plan.out_numel == 0) return;
    DispatchBySize(node, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* pi = x.data<T>();
      T* po = out.mutable_data<T>();
      const int64_t s = plan.inner_stride[0];
      ForEachRun(plan, ctx.pool(), kParallelThreshold,
                 [&](int64_t o, const int64_t* offs, int64_t n) {
                   if (s == 1) {
                     std::memcpy(po + o, pi + offs[0], n * sizeof(T));
                   } else {
                     T v = pi[offs[0]];
                     std::fill(po + o, po + o + n, v);
                   }
                 });
    });
  });
}

std::unique_ptr<Kernel> CreateTile(const KernelInit&) {
  return MakeKernel([](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = In(ctx, 0);
    std::vector<int64_t> reps = IntValues(ctx, In(ctx, 1), "repeats");
    int64_t r = x.rank();
    if (static_cast<int64_t>(reps.size()) != r)
      Fail(node,
           "repeats has " + std::to_string(reps.size()) + " entries for rank " + std::to_string(r));
    std::vector<int64_t> shape(r);
    for (int64_t i = 0; i < r; ++i) {
      if (reps[i] < 0) Fail(node, "negative repeat");
      uint64_t d;
      if (MulOverflows(static_cast<uint64_t>(x.shape()[i]), static_cast<uint64_t>(reps[i]), &d) ||
          d > (1ull << 62))
        Fail(node, "tiled shape overflows");
      shape[i] = static_cast<int64_t>(d);
    }
    NumElements(node, shape);
    ir::Tensor& out = ctx.AllocateOutput(0, x.dtype(), shape);
    if (out.numel() == 0) return;
    if (r == 0) {
      std::memcpy(out.mutable_raw(), x.raw(), out.nbytes());
      return;
    }
    std::vector<int64_t> st = Strides(x.shape());
    DispatchBySize(node, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* pi = x.data<T>();
      T* po = out.mutable_data<T>();
      const int64_t inner = shape[r - 1], d_last = x.shape()[r - 1];
      const int64_t rows = out.numel() / inner;
      std::vector<int64_t> row_shape(shape.begin(), shape.end() - 1);
      ForEachIndex(row_shape, [&](int64_t row, const std::vector<int64_t>& c) {
        int64_t off = 0;
        for (int64_t d = 0; d + 1 < r; ++d) off += (c[d] % x.shape()[d]) * st[d];
        T* o = po + row * inner;
        for (int64_t j = 0; j < inner; j += d_last)
          std::memcpy(o + j, pi + off, d_last * sizeof(T));
      });
      (void)rows;
    });
  });
}

std::unique_ptr<Kernel> CreatePad(const KernelInit& init) {
  std::string mode = init.node.attr_string("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap")
    Fail(init.node, "unknown pad mode '" + mode + "'");
  std::vector<int64_t> attr_pads = init.node.attr_ints("pads");
  float attr_value = init.node.attr_float("value", 0.0f);
  return MakeKernel([mode, attr_pads, attr_value](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = In(ctx, 0);
    int64_t r = x.rank();
    std::vector<int64_t> pads = attr_pads;
    if (const ir::Tensor* t = OptIn(ctx, 1)) pads = IntValues(ctx, *t, "pads");
    std::vector<int64_t> axes;
    if (const ir::Tensor* t = OptIn(ctx, 3))
      axes = NormAxes(node, IntValues(ctx, *t, "axes"), r);
    else
      for (int64_t i = 0; i < r; ++i) axes.push_back(i);
    int64_t na = static_cast<int64_t>(axes.size());
    if (static_cast<int64_t>(pads.size()) != 2 * na)
      Fail(node, "pads has " + std::to_string(pads.size()) + " entries, expected " +
                     std::to_string(2 * na));
    std::vector<int64_t> pb(r, 0), pe(r, 0);
    for (int64_t i = 0; i < na; ++i) {
      pb[axes[i]] = pads[i];
      pe[axes[i]] = pads[i + na];
    }
    std::vector<int64_t> shape(r);
    for (int64_t i = 0; i < r; ++i) {
      int64_t d = x.shape()[i];
      if (std::abs(pb[i]) > (1ll << 40) || std::abs(pe[i]) > (1ll << 40))
        Fail(node, "pad value too large");
      shape[i] = d + pb[i] + pe[i];
      if (shape[i] < 0) Fail(node, "pads crop axis " + std::to_string(i) + " below zero");
      if (mode != "constant" && d == 0 && shape[i] > 0)
        Fail(node, "cannot " + mode + "-pad an empty axis");
    }
    NumElements(node, shape);
    ir::Tensor value;
    if (const ir::Tensor* t = OptIn(ctx, 2)) {
      if (t->numel() != 1) Fail(node, "constant_value must have one element");
      value = CastTensor(node, *t, x.dtype());
    } else {
      value = CastTensor(node, ir::Tensor::FromVector<float>(ir::DType::kFloat32, {}, {attr_value}),
                         x.dtype());
    }
    ir::Tensor& out = ctx.AllocateOutput(0, x.dtype(), shape);
    if (out.numel() == 0) return;
    // Per-axis map from output coordinate to input coordinate (-1: constant).
    std::vector<std::vector<int64_t>> map(r);
    for (int64_t a = 0; a < r; ++a) {
      int64_t d = x.shape()[a];
      map[a].resize(shape[a]);
      for (int64_t o = 0; o < shape[a]; ++o) {
        int64_t i = o - pb[a];
        if (i < 0 || i >= d) {
          if (mode == "constant")
            i = -1;
          else if (mode == "edge")
            i = i < 0 ? 0 : d - 1;
          else if (mode == "wrap")
            i = ((i % d) + d) % d;
          else if (d == 1)
            i = 0;
          else {  // reflect without repeating the edge, period 2(d-1)
            int64_t p = 2 * (d - 1);
            i = ((i % p) + p) % p;
            if (i >= d) i = p - i;
          }
        }
        map[a][o] = i;
      }
    }
    std::vector<int64_t> st = Strides(x.shape());
    DispatchBySize(node, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* pi = x.data<T>();
      T* po = out.mutable_data<T>();
      const T cv = *value.data<T>();
      const int64_t inner = shape[r - 1];
      std::vector<int64_t> row_shape(shape.begin(), shape.end() - 1);
      const std::vector<int64_t>& last = map[r - 1];
      ForEachIndex(row_shape, [&](int64_t row, const std::vector<int64_t>& c) {
        int64_t off = 0;
        bool constant = false;
        for (int64_t d = 0; d + 1 < r; ++d) {
          int64_t i = map[d][c[d]];
          if (i < 0) constant = true;
          off += i * st[d];
        }
        T* o = po + row * inner;
        if (constant) {
          std::fill(o, o + inner, cv);
          return;
        }
        for (int64_t j = 0; j < inner; ++j) o[j] = last[j] < 0 ? cv : pi[off + last[j]];
      });
    });
  });
}

}  // namespace

void RegisterTensorExpandKernels(KernelRegistry& r) {
  AddRef(r, "Expand", CreateExpand);
  AddRef(r, "Tile", CreateTile);
  AddRef(r, "Pad", CreatePad);
}

}  // namespace edgepress::runtime::kernels

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
