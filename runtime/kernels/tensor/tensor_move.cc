// Data-movement kernels (see tensor_ops.h): Transpose (blocked, with an AVX2 entry for
// 4-byte elements), Concat, Split, Slice and DepthToSpace/SpaceToDepth.
// They move elements by byte size, so one template per element width serves every dtype.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "runtime/kernels/elementwise/elementwise_common.h"
#include "runtime/kernels/elementwise/elementwise_impl.h"
#include "runtime/kernels/tensor/tensor_index_util.h"
#include "runtime/kernels/tensor/tensor_ops.h"

namespace edgepress::runtime::kernels {

ir::Tensor ViewAs(KernelContext& ctx, const ir::Tensor& x, std::vector<int64_t> shape);

namespace {

using tensor_detail::Prod;
using tensor_detail::Strides;

// out (contiguous, shape `dims`) = in[base + sum(idx_k * strides_k)]; strides may be 0 or
// negative. Rows (all dims but the last) are split over the pool for large outputs.
template <class T>
void StridedGather(ThreadPool& pool, const T* in, int64_t base, const std::vector<int64_t>& dims,
                   const std::vector<int64_t>& strides, T* out) {
  if (dims.empty()) {
    out[0] = in[base];
    return;
  }
  const size_t r = dims.size();
  const int64_t inner = dims[r - 1], s_in = strides[r - 1];
  const int64_t rows = Prod(dims, 0, r - 1);
  if (inner == 0 || rows == 0) return;
  ParallelRange(pool, rows, std::max<int64_t>(1, kParallelThreshold / std::max<int64_t>(1, inner)),
                [&](int64_t rb, int64_t re) {
                  // Row index as an odometer: one div/mod walk per chunk, then carries.
                  // (A walk per row cost more than copying attention's 32-float rows.)
                  std::vector<int64_t> pos(r - 1);
                  int64_t off = base, rem = rb;
                  for (size_t d = r - 1; d-- > 0;) {
                    pos[d] = rem % dims[d];
                    off += pos[d] * strides[d];
                    rem /= dims[d];
                  }
                  for (int64_t row = rb; row < re; ++row) {
                    T* o = out + row * inner;
                    const T* p = in + off;
                    if (s_in == 1) {
                      std::memcpy(o, p, inner * sizeof(T));
                    } else {
                      for (int64_t j = 0; j < inner; ++j) o[j] = p[j * s_in];
                    }
                    for (size_t d = r - 1; d-- > 0;) {
                      off += strides[d];
                      if (++pos[d] < dims[d]) break;
                      off -= dims[d] * strides[d];
                      pos[d] = 0;
                    }
                  }
                });
}

template <class T>
void TransposeTyped(ThreadPool& pool, const T* in, const std::vector<int64_t>& shape,
                    const std::vector<int64_t>& perm, T* out, bool simd) {
  std::vector<int64_t> st = Strides(shape);
  // Output-order dims with their input strides; size-1 dims dropped, chains merged.
  std::vector<int64_t> dims, strides;
  for (int64_t p : perm) {
    if (shape[p] == 1) continue;
    if (!dims.empty() && strides.back() == st[p] * shape[p]) {
      dims.back() *= shape[p];
      strides.back() = st[p];
    } else {
      dims.push_back(shape[p]);
      strides.push_back(st[p]);
    }
  }
  int64_t n = Prod(shape, 0, shape.size());
  if (n == 0) return;
  if (dims.size() <= 1) {
    std::memcpy(out, in, n * sizeof(T));
    return;
  }
  size_t r = dims.size();
  if (strides[r - 1] != 1 && strides[r - 2] == 1) {
    // Batched 2-D transpose: tile so both reads and writes stay in cache lines.
    const int64_t a_n = dims[r - 2], b_n = dims[r - 1], sb = strides[r - 1];
    const int64_t batches = Prod(dims, 0, r - 2);
    constexpr int64_t kTile = 32;
    ParallelRange(pool, batches, std::max<int64_t>(1, kParallelThreshold / (a_n * b_n)),
                  [&](int64_t bb, int64_t be) {
                    for (int64_t batch = bb; batch < be; ++batch) {
                      int64_t off = 0, rem = batch;
                      for (size_t d = r - 2; d-- > 0;) {
                        off += (rem % dims[d]) * strides[d];
                        rem /= dims[d];
                      }
                      const T* src = in + off;
                      T* dst = out + batch * a_n * b_n;
#if defined(__x86_64__)
                      if constexpr (sizeof(T) == 4 && std::is_trivially_copyable_v<T>) {
                        if (simd) {
                          Transpose2DAvx2(reinterpret_cast<const uint32_t*>(src), sb,
                                          reinterpret_cast<uint32_t*>(dst), a_n, b_n);
                          continue;
                        }
                      }
#endif
                      for (int64_t a0 = 0; a0 < a_n; a0 += kTile)
                        for (int64_t b0 = 0; b0 < b_n; b0 += kTile) {
                          int64_t a1 = std::min(a_n, a0 + kTile), b1 = std::min(b_n, b0 + kTile);
                          for (int64_t a = a0; a < a1; ++a)
                            for (int64_t b = b0; b < b1; ++b) dst[a * b_n + b] = src[a + b * sb];
                        }
                    }
                  });
    return;
  }
  StridedGather(pool, in, 0, dims, strides, out);
}

}  // namespace

void TransposeInto(const ir::Node& node, ThreadPool& pool, const ir::Tensor& x,
                   const std::vector<int64_t>& perm, ir::Tensor& out, bool simd) {
  if (x.numel() == 0) return;
  DispatchBySize(node, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    TransposeTyped(pool, x.data<T>(), x.shape(), perm, out.mutable_data<T>(), simd);
  });
}

namespace {

template <bool kSimd>
std::unique_ptr<Kernel> CreateTranspose(const KernelInit& init) {
  bool has = init.node.has_attr("perm");
  std::vector<int64_t> attr_perm = init.node.attr_ints("perm");
  return MakeKernel([has, attr_perm](KernelContext& ctx) {
    const ir::Tensor& x = In(ctx, 0);
    int64_t r = x.rank();
    std::vector<int64_t> perm = attr_perm;
    if (!has) {
      perm.resize(r);
      for (int64_t i = 0; i < r; ++i) perm[i] = r - 1 - i;
    }
    if (static_cast<int64_t>(perm.size()) != r)
      Fail(ctx.node(),
           "perm has " + std::to_string(perm.size()) + " entries for rank " + std::to_string(r));
    perm = NormAxes(ctx.node(), perm, r);
    std::vector<int64_t> shape(r);
    for (int64_t i = 0; i < r; ++i) shape[i] = x.shape()[perm[i]];
    ir::Tensor& out = ctx.AllocateOutput(0, x.dtype(), shape);
    TransposeInto(ctx.node(), ctx.pool(), x, perm, out, kSimd);
  });
}

std::unique_ptr<Kernel> CreateConcat(const KernelInit& init) {
  int64_t axis = init.node.attr_int("axis", 0);
  return MakeKernel([axis](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    if (ctx.num_inputs() == 0) Fail(node, "needs at least one input");
    const ir::Tensor& first = In(ctx, 0);
    int64_t r = first.rank();
    int64_t a = NormAxis(node, axis, r);
    std::vector<int64_t> shape = first.shape();
    shape[a] = 0;
    std::vector<const ir::Tensor*> ins;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      const ir::Tensor& t = In(ctx, i);
      if (t.dtype() != first.dtype() || t.rank() != r)
        Fail(node, "input " + std::to_string(i) + " has dtype/rank " + ir::DTypeName(t.dtype()) +
                       "/" + std::to_string(t.rank()) + ", expected " +
                       ir::DTypeName(first.dtype()) + "/" + std::to_string(r));
      for (int64_t d = 0; d < r; ++d)
        if (d != a && t.shape()[d] != first.shape()[d])
          Fail(node, "input shapes " + ShapeStr(first.shape()) + " and " + ShapeStr(t.shape()) +
                         " differ outside axis " + std::to_string(a));
      shape[a] += t.shape()[a];
      ins.push_back(&t);
    }
    NumElements(node, shape);
    ir::Tensor& out = ctx.AllocateOutput(0, first.dtype(), shape);
    if (out.numel() == 0) return;
    const int64_t es = ir::DTypeBits(first.dtype()) / 8;
    const int64_t outer = Prod(shape, 0, a), inner = Prod(shape, a + 1, r) * es;
    uint8_t* po = static_cast<uint8_t*>(out.mutable_raw());
    const int64_t out_row = shape[a] * inner;
    int64_t col = 0;
    for (const ir::Tensor* t : ins) {
      const int64_t row = t->shape()[a] * inner;
      if (row) {
        const uint8_t* pi = static_cast<const uint8_t*>(t->raw());
        for (int64_t o = 0; o < outer; ++o) std::memcpy(po + o * out_row + col, pi + o * row, row);
      }
      col += row;
    }
  });
}

std::unique_ptr<Kernel> CreateSplit(const KernelInit& init) {
  int64_t axis = init.node.attr_int("axis", 0);
  std::vector<int64_t> attr_split = init.node.attr_ints("split");
  int64_t num_outputs = init.node.attr_int("num_outputs", 0);
  return MakeKernel([axis, attr_split, num_outputs](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = In(ctx, 0);
    int64_t r = x.rank();
    int64_t a = NormAxis(node, axis, r);
    int64_t dim = x.shape()[a];
    int64_t n_out = static_cast<int64_t>(ctx.num_outputs());
    std::vector<int64_t> split = attr_split;
    if (const ir::Tensor* s = OptIn(ctx, 1)) split = IntValues(ctx, *s, "split");
    if (split.empty()) {
      if (n_out <= 0) Fail(node, "has no outputs");
      // Opset 18: ceil-sized chunks with a smaller last one; older: equal parts.
      int64_t chunk = (dim + n_out - 1) / n_out;
      if (num_outputs == 0 && dim % n_out != 0)
        Fail(node, "axis dim " + std::to_string(dim) + " does not split into " +
                       std::to_string(n_out) + " equal parts");
      for (int64_t i = 0; i < n_out; ++i)
        split.push_back(std::max<int64_t>(0, std::min(chunk, dim - i * chunk)));
    }
    if (static_cast<int64_t>(split.size()) != n_out)
      Fail(node, "split has " + std::to_string(split.size()) + " entries for " +
                     std::to_string(n_out) + " outputs");
    int64_t total = 0;
    for (int64_t s : split) {
      if (s < 0) Fail(node, "negative split size");
      total += s;
      if (total > dim) break;
    }
    if (total != dim) Fail(node, "split sizes do not add up to axis dim " + std::to_string(dim));
    const int64_t es = ir::DTypeBits(x.dtype()) / 8;
    if (es <= 0) FailUnsupported(node, "packed dtypes are not supported");
    const int64_t outer = Prod(x.shape(), 0, a), inner = Prod(x.shape(), a + 1, r) * es;
    const uint8_t* pi = static_cast<const uint8_t*>(x.raw());
    int64_t col = 0;
    for (int64_t i = 0; i < n_out; ++i) {
      std::vector<int64_t> shape = x.shape();
      shape[a] = split[i];
      const int64_t row = split[i] * inner;
      if (ctx.output_requested(i)) {
        ir::Tensor& out = ctx.AllocateOutput(i, x.dtype(), shape);
        uint8_t* po = static_cast<uint8_t*>(out.mutable_raw());
        if (row)
          for (int64_t o = 0; o < outer; ++o)
            std::memcpy(po + o * row, pi + o * dim * inner + col, row);
      }
      col += row;
    }
  });
}

std::unique_ptr<Kernel> CreateSlice(const KernelInit&) {
  return MakeKernel([](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = In(ctx, 0);
    int64_t r = x.rank();
    std::vector<int64_t> starts = IntValues(ctx, In(ctx, 1), "starts");
    std::vector<int64_t> ends = IntValues(ctx, In(ctx, 2), "ends");
    std::vector<int64_t> axes, steps;
    if (const ir::Tensor* t = OptIn(ctx, 3)) axes = IntValues(ctx, *t, "axes");
    if (const ir::Tensor* t = OptIn(ctx, 4)) steps = IntValues(ctx, *t, "steps");
    if (axes.empty())
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() ||
        steps.size() != starts.size())
      Fail(node, "starts, ends, axes and steps must have the same length");
    axes = NormAxes(node, axes, r);
    std::vector<int64_t> st = Strides(x.shape());
    std::vector<int64_t> begin(r, 0), step(r, 1), shape = x.shape();
    for (size_t i = 0; i < axes.size(); ++i) {
      int64_t a = axes[i], d = x.shape()[a], s = steps[i];
      if (s == 0) Fail(node, "slice step is 0 on axis " + std::to_string(a));
      // Steps beyond +-2^62 behave like +-2^62 for any real dim and keep -s finite.
      s = std::clamp<int64_t>(s, -(int64_t{1} << 62), int64_t{1} << 62);
      int64_t b = starts[i], e = ends[i];
      if (b < 0) b += d;
      if (e < 0) e += d;
      int64_t len;
      if (s > 0) {
        b = std::clamp<int64_t>(b, 0, d);
        e = std::clamp<int64_t>(e, 0, d);
        len = e > b ? (e - b - 1) / s + 1 : 0;
      } else {
        b = std::clamp<int64_t>(b, -1, d - 1);
        e = std::clamp<int64_t>(e, -1, d - 1);
        len = b > e ? (b - e - 1) / (-s) + 1 : 0;
      }
      begin[a] = len > 0 ? b : 0;
      // With at most one element taken the step never moves the pointer; keeping a huge
      // step would overflow the stride product below.
      step[a] = len > 1 ? s : 1;
      shape[a] = len;
    }
    ir::Tensor& out = ctx.AllocateOutput(0, x.dtype(), shape);
    if (out.numel() == 0) return;
    int64_t base = 0;
    std::vector<int64_t> strides(r);
    for (int64_t a = 0; a < r; ++a) {
      base += begin[a] * st[a];
      strides[a] = st[a] * step[a];
    }
    DispatchBySize(node, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      StridedGather(ctx.pool(), x.data<T>(), base, shape, strides, out.mutable_data<T>());
    });
  });
}

// Reads indices (int32/int64), normalising negatives against `dim`; throws when any is

// DepthToSpace / SpaceToDepth as a reshape + transpose + reshape, per the ONNX spec.
std::unique_ptr<Kernel> CreateDepthSpace(const KernelInit& init, bool to_space) {
  int64_t b = init.node.attr_int("blocksize", 0);
  std::string mode = init.node.attr_string("mode", "DCR");
  if (b <= 0 || b > 4096) Fail(init.node, "blocksize must be in [1, 4096]");
  if (mode != "DCR" && mode != "CRD") Fail(init.node, "mode must be DCR or CRD");
  return MakeKernel([b, mode, to_space](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = In(ctx, 0);
    if (x.rank() != 4) Fail(node, "input must be 4-D, got " + ShapeStr(x.shape()));
    int64_t n = x.shape()[0], c = x.shape()[1], h = x.shape()[2], w = x.shape()[3];
    std::vector<int64_t> mid, perm, out_shape;
    if (to_space) {
      if (c % (b * b)) Fail(node, "channels not divisible by blocksize^2");
      int64_t cc = c / (b * b);
      if (mode == "DCR") {
        mid = {n, b, b, cc, h, w};
        perm = {0, 3, 4, 1, 5, 2};
      } else {
        mid = {n, cc, b, b, h, w};
        perm = {0, 1, 4, 2, 5, 3};
      }
      out_shape = {n, cc, h * b, w * b};
    } else {
      if (h % b || w % b) Fail(node, "spatial dims not divisible by blocksize");
      mid = {n, c, h / b, b, w / b, b};
      perm = {0, 3, 5, 1, 2, 4};
      out_shape = {n, c * b * b, h / b, w / b};
    }
    ir::Tensor view = ViewAs(ctx, x, mid);
    ir::Tensor& out = ctx.AllocateOutput(0, x.dtype(), out_shape);
    TransposeInto(node, ctx.pool(), view, perm, out);
  });
}

}  // namespace

void RegisterTensorMoveKernels(KernelRegistry& r) {
  AddRef(r, "Transpose", CreateTranspose<false>);
#if defined(__x86_64__)
  r.Add({"Transpose", "", ir::DType::kUndefined, Isa::kAvx2, "any_transpose__avx2",
         CreateTranspose<true>});
#endif
  AddRef(r, "Concat", CreateConcat);
  AddRef(r, "Split", CreateSplit);
  AddRef(r, "Slice", CreateSlice);
  AddRef(r, "DepthToSpace", [](const KernelInit& i) { return CreateDepthSpace(i, true); });
  AddRef(r, "SpaceToDepth", [](const KernelInit& i) { return CreateDepthSpace(i, false); });
}

}  // namespace edgepress::runtime::kernels
