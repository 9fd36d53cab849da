// Search and scan kernels (see tensor_ops.h): TopK, ArgMax/ArgMin, CumSum and NonZero.
// f16/bf16 inputs are upcast to f32 for the comparisons.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <type_traits>

#include "runtime/kernels/elementwise/elementwise_common.h"
#include "runtime/kernels/elementwise/elementwise_impl.h"
#include "runtime/kernels/tensor/tensor_index_util.h"
#include "runtime/kernels/tensor/tensor_ops.h"

namespace edgepress::runtime::kernels {

namespace {

using tensor_detail::Prod;
using tensor_detail::Strides;

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
    if (std::isnan(a) || std::isnan(b))
      return largest ? (std::isnan(a) && !std::isnan(b)) : (!std::isnan(a) && std::isnan(b));
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
    if (keepdims)
      shape[a] = 1;
    else
      shape.erase(shape.begin() + a);
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

}  // namespace

void RegisterTensorSearchKernels(KernelRegistry& r) {
  AddRef(r, "TopK", CreateTopK);
  AddRef(r, "ArgMax", [](const KernelInit& i) { return CreateArgReduce(i, true); });
  AddRef(r, "ArgMin", [](const KernelInit& i) { return CreateArgReduce(i, false); });
  AddRef(r, "CumSum", CreateCumSum);
  AddRef(r, "NonZero", CreateNonZero);
}

}  // namespace edgepress::runtime::kernels
