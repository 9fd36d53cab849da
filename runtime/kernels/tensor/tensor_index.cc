// Reference kernels of the data-movement and indexing ops (see tensor_ops.h). They move
// elements by byte size, so one template per element width serves every dtype. Every
// index read from a tensor (Gather, GatherElements, ScatterElements, OneHot) is checked
// before the copy loops start: ParallelFor tasks must not throw.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>

#include "runtime/kernels/elementwise/elementwise_common.h"
#include "runtime/kernels/elementwise/elementwise_impl.h"
#include "runtime/kernels/tensor/tensor_ops.h"

namespace edgepress::runtime::kernels {

ir::Tensor ViewAs(KernelContext& ctx, const ir::Tensor& x, std::vector<int64_t> shape);

namespace {

std::vector<int64_t> Strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  return s;
}

int64_t Prod(const std::vector<int64_t>& v, size_t b, size_t e) {
  int64_t p = 1;
  for (size_t i = b; i < e; ++i) p *= v[i];
  return p;
}

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
      Fail(ctx.node(), "perm has " + std::to_string(perm.size()) + " entries for rank " +
                           std::to_string(r));
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
    if (total != dim)
      Fail(node, "split sizes do not add up to axis dim " + std::to_string(dim));
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
// out of range.
std::vector<int64_t> CheckedIndices(KernelContext& ctx, const ir::Tensor& t, int64_t dim) {
  std::vector<int64_t> idx = IntValues(ctx, t, "indices");
  for (int64_t& i : idx) {
    if (i < -dim || i >= dim)
      Fail(ctx.node(), "index " + std::to_string(i) + " out of range for axis of size " +
                           std::to_string(dim));
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
    ParallelRange(ctx.pool(), outer * n, std::max<int64_t>(1, kParallelThreshold * 4 / std::max<int64_t>(1, inner)),
                  [&](int64_t b, int64_t e) {
                    for (int64_t k = b; k < e; ++k) {
                      int64_t o = k / n, j = k % n;
                      std::memcpy(po + k * inner, pi + (o * dim + idx[j]) * inner, inner);
                    }
                  });
  });
}

// Visits every index of `shape` in row-major order as (flat, coords).
template <class F>
void ForEachIndex(const std::vector<int64_t>& shape, F&& f) {
  int64_t n = Prod(shape, 0, shape.size());
  std::vector<int64_t> c(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    f(i, c);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++c[d] < shape[d]) break;
      c[d] = 0;
    }
  }
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
          if (reduction == "add") v = static_cast<T>(po[off] + v);
          else if (reduction == "mul") v = static_cast<T>(po[off] * v);
          else if (reduction == "max") v = std::max(po[off], v);
          else if (reduction == "min") v = std::min(po[off], v);
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
      Fail(node, "repeats has " + std::to_string(reps.size()) + " entries for rank " +
                     std::to_string(r));
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
        for (int64_t j = 0; j < inner; j += d_last) std::memcpy(o + j, pi + off, d_last * sizeof(T));
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
    if (const ir::Tensor* t = OptIn(ctx, 3)) axes = NormAxes(node, IntValues(ctx, *t, "axes"), r);
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
          if (mode == "constant") i = -1;
          else if (mode == "edge") i = i < 0 ? 0 : d - 1;
          else if (mode == "wrap") i = ((i % d) + d) % d;
          else if (d == 1) i = 0;
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

// Runs f(T{}, const T* data) on the tensor with f16/bf16 upcast to f32.
template <class F>
void WithNumericView(const ir::Node& node, const ir::Tensor& x, F&& f) {
  if (IsHalfLike(x.dtype())) {
    ir::Tensor t = CastTensor(node, x, ir::DType::kFloat32);
    f(float{}, t.data<float>());
    return;
  }
  DispatchNumeric(node, x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    f(T{}, x.data<T>());
  });
}

template <class T>
bool Before(T a, T b, bool largest) {
  // NaN sorts as the largest value, as in numpy/onnxruntime.
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return largest ? (std::isnan(a) && !std::isnan(b))
                                                       : (!std::isnan(a) && std::isnan(b));
  }
  return largest ? a > b : a < b;
}

std::unique_ptr<Kernel> CreateTopK(const KernelInit& init) {
  int64_t axis = init.node.attr_int("axis", -1);
  bool largest = init.node.attr_int("largest", 1) != 0;
  return MakeKernel([axis, largest](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = In(ctx, 0);
    std::vector<int64_t> kv = IntValues(ctx, In(ctx, 1), "K");
    if (kv.size() != 1) Fail(node, "K must have one element");
    int64_t r = x.rank();
    int64_t a = NormAxis(node, axis, r);
    int64_t dim = x.shape()[a], k = kv[0];
    if (k < 0 || k > dim)
      Fail(node, "K=" + std::to_string(k) + " out of range for axis size " + std::to_string(dim));
    std::vector<int64_t> shape = x.shape();
    shape[a] = k;
    ir::Tensor& vals = ctx.AllocateOutput(0, x.dtype(), shape);
    ir::Tensor& inds = ctx.AllocateOutput(1, ir::DType::kInt64, shape);
    if (vals.numel() == 0) return;
    const int64_t outer = Prod(x.shape(), 0, a), inner = Prod(x.shape(), a + 1, r);
    const int64_t es = ir::DTypeBits(x.dtype()) / 8;
    const uint8_t* raw = static_cast<const uint8_t*>(x.raw());
    uint8_t* vo = static_cast<uint8_t*>(vals.mutable_raw());
    int64_t* io = inds.mutable_data<int64_t>();
    WithNumericView(node, x, [&](auto tag, const auto* data) {
      using T = decltype(tag);
      std::vector<int64_t> order(dim);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          const T* line = data + o * dim * inner + i;
          std::iota(order.begin(), order.end(), 0);
          std::partial_sort(order.begin(), order.begin() + k, order.end(),
                            [&](int64_t p, int64_t q) {
                              T vp = line[p * inner], vq = line[q * inner];
                              if (Before(vp, vq, largest)) return true;
                              if (Before(vq, vp, largest)) return false;
                              return p < q;
                            });
          for (int64_t j = 0; j < k; ++j) {
            int64_t dst = (o * k + j) * inner + i;
            io[dst] = order[j];
            std::memcpy(vo + dst * es, raw + ((o * dim + order[j]) * inner + i) * es, es);
          }
        }
    });
  });
}

std::unique_ptr<Kernel> CreateArgReduce(const KernelInit& init, bool is_max) {
  int64_t axis = init.node.attr_int("axis", 0);
  bool keepdims = init.node.attr_int("keepdims", 1) != 0;
  bool last = init.node.attr_int("select_last_index", 0) != 0;
  return MakeKernel([axis, keepdims, last, is_max](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = In(ctx, 0);
    int64_t r = x.rank();
    int64_t a = NormAxis(node, axis, r);
    int64_t dim = x.shape()[a];
    std::vector<int64_t> shape = x.shape();
    if (keepdims) shape[a] = 1;
    else shape.erase(shape.begin() + a);
    if (dim == 0 && NumElements(node, shape) > 0)
      Fail(node, "cannot take the arg of an empty axis");
    ir::Tensor& out = ctx.AllocateOutput(0, ir::DType::kInt64, shape);
    if (out.numel() == 0) return;
    const int64_t outer = Prod(x.shape(), 0, a), inner = Prod(x.shape(), a + 1, r);
    int64_t* po = out.mutable_data<int64_t>();
    WithNumericView(node, x, [&](auto tag, const auto* data) {
      using T = decltype(tag);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          const T* line = data + o * dim * inner + i;
          int64_t best = 0;
          for (int64_t j = 1; j < dim; ++j) {
            T v = line[j * inner], b = line[best * inner];
            bool better = is_max ? (last ? v >= b : v > b) : (last ? v <= b : v < b);
            if (better) best = j;
          }
          po[o * inner + i] = best;
        }
    });
  });
}

std::unique_ptr<Kernel> CreateCumSum(const KernelInit& init) {
  bool exclusive = init.node.attr_int("exclusive", 0) != 0;
  bool reverse = init.node.attr_int("reverse", 0) != 0;
  return MakeKernel([exclusive, reverse](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x0 = In(ctx, 0);
    std::vector<int64_t> av = IntValues(ctx, In(ctx, 1), "axis");
    if (av.size() != 1) Fail(node, "axis must have one element");
    int64_t r = x0.rank();
    int64_t a = NormAxis(node, av[0], r);
    bool half = IsHalfLike(x0.dtype());
    ir::Tensor x = half ? CastTensor(node, x0, ir::DType::kFloat32) : x0;
    ir::Tensor res(x.dtype(), x.shape());
    const int64_t dim = x.shape()[a];
    const int64_t outer = Prod(x.shape(), 0, a), inner = Prod(x.shape(), a + 1, r);
    if (x.numel())
      DispatchNumeric(node, x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* pi = x.data<T>();
        T* po = res.mutable_data<T>();
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t i = 0; i < inner; ++i) {
            T acc{};
            for (int64_t s = 0; s < dim; ++s) {
              int64_t j = reverse ? dim - 1 - s : s;
              int64_t off = (o * dim + j) * inner + i;
              if (exclusive) {
                po[off] = acc;
                acc = static_cast<T>(acc + pi[off]);
              } else {
                acc = static_cast<T>(acc + pi[off]);
                po[off] = acc;
              }
            }
          }
      });
    ir::Tensor back = CastTensor(node, res, x0.dtype());
    ir::Tensor& out = ctx.AllocateOutput(0, x0.dtype(), x0.shape());
    if (out.nbytes()) std::memcpy(out.mutable_raw(), back.raw(), out.nbytes());
  });
}

std::unique_ptr<Kernel> CreateNonZero(const KernelInit&) {
  return MakeKernel([](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = In(ctx, 0);
    std::vector<int64_t> hits;
    const int64_t n = static_cast<int64_t>(x.numel());
    if (n)
      WithNumericView(node, x, [&](auto, const auto* data) {
        for (int64_t i = 0; i < n; ++i)
          if (data[i] != 0) hits.push_back(i);
      });
    int64_t r = x.rank();
    int64_t nnz = static_cast<int64_t>(hits.size());
    ir::Tensor& out = ctx.AllocateOutput(0, ir::DType::kInt64, {r, nnz});
    if (out.numel() == 0) return;
    int64_t* po = out.mutable_data<int64_t>();
    std::vector<int64_t> st = Strides(x.shape());
    for (int64_t j = 0; j < nnz; ++j) {
      int64_t rem = hits[j];
      for (int64_t d = 0; d < r; ++d) {
        po[d * nnz + j] = rem / st[d];
        rem %= st[d];
      }
    }
  });
}

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

void RegisterTensorIndexKernels(KernelRegistry& r) {
  AddRef(r, "Transpose", CreateTranspose<false>);
#if defined(__x86_64__)
  r.Add({"Transpose", "", ir::DType::kUndefined, Isa::kAvx2, "any_transpose__avx2",
         CreateTranspose<true>});
#endif
  AddRef(r, "Concat", CreateConcat);
  AddRef(r, "Split", CreateSplit);
  AddRef(r, "Slice", CreateSlice);
  AddRef(r, "Gather", CreateGather);
  AddRef(r, "GatherElements", CreateGatherElements);
  AddRef(r, "ScatterElements", CreateScatterElements);
  AddRef(r, "Expand", CreateExpand);
  AddRef(r, "Tile", CreateTile);
  AddRef(r, "Pad", CreatePad);
  AddRef(r, "OneHot", CreateOneHot);
  AddRef(r, "Trilu", CreateTrilu);
  AddRef(r, "TopK", CreateTopK);
  AddRef(r, "ArgMax", [](const KernelInit& i) { return CreateArgReduce(i, true); });
  AddRef(r, "ArgMin", [](const KernelInit& i) { return CreateArgReduce(i, false); });
  AddRef(r, "CumSum", CreateCumSum);
  AddRef(r, "NonZero", CreateNonZero);
  AddRef(r, "DepthToSpace", [](const KernelInit& i) { return CreateDepthSpace(i, true); });
  AddRef(r, "SpaceToDepth", [](const KernelInit& i) { return CreateDepthSpace(i, false); });
}

}  // namespace edgepress::runtime::kernels
