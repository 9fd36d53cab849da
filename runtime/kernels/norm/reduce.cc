// Reduction kernels: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd, ReduceL1,
// ReduceL2, ReduceLogSum, ReduceLogSumExp, ReduceSumSquare with keepdims,
// noop_with_empty_axes and negative axes; axes come from input 1 (ReduceSum 13+, all
// ops 18+) or the `axes` attribute (older opsets).
//
// Every reduction is brought to the form [outer, R, inner] (reduce the middle): the
// reduced axes are merged when they are contiguous after dropping size-1 dims, and
// otherwise transposed to the end first. The reference accumulates floats in double; the
// AVX2 entries (f32 Sum/Mean/Max/Min) accumulate in f32 lanes, which matches to ~1e-6
// relative for sums of well-conditioned data.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <utility>

#include "runtime/kernels/elementwise/elementwise_common.h"
#include "runtime/kernels/elementwise/elementwise_impl.h"
#include "runtime/kernels/elementwise/elementwise_simd.h"
#include "runtime/kernels/norm/reduce.h"
#include "runtime/kernels/tensor/tensor_ops.h"

namespace edgepress::runtime::kernels {
namespace {

enum class ROp { kMean, kSum, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

struct ReduceShape {
  std::vector<int64_t> out_shape;
  int64_t outer = 1, r = 1, inner = 1;
  bool identity = false;              // noop_with_empty_axes with no axes
  std::vector<int64_t> perm;          // non-empty: transpose input by perm first
  std::vector<int64_t> permuted_shape;
};

ReduceShape PlanReduce(KernelContext& ctx, const ir::Tensor& x, const std::vector<int64_t>& attr_axes,
                       bool has_attr, bool keepdims, bool noop) {
  const ir::Node& node = ctx.node();
  std::vector<int64_t> axes;
  if (const ir::Tensor* t = ctx.input(1); t && !t->empty()) {
    axes = IntValues(ctx, *t, "axes");
  } else if (has_attr) {
    axes = attr_axes;
  }
  int64_t rank = x.rank();
  ReduceShape p;
  if (axes.empty() && noop) {
    p.identity = true;
    p.out_shape = x.shape();
    return p;
  }
  std::vector<bool> red(rank, axes.empty());
  for (int64_t a : NormAxes(node, axes, rank)) red[a] = true;
  for (int64_t i = 0; i < rank; ++i) {
    if (red[i]) {
      if (keepdims) p.out_shape.push_back(1);
    } else {
      p.out_shape.push_back(x.shape()[i]);
    }
  }
  // Size-1 dims do not matter; the rest must be kept* reduced+ kept* to skip a transpose.
  int state = 0;  // 0: before the reduced run, 1: inside, 2: after
  bool contiguous = true;
  for (int64_t i = 0; i < rank; ++i) {
    int64_t d = x.shape()[i];
    if (d == 1) continue;
    if (red[i]) {
      if (state == 2) contiguous = false;
      state = 1;
      p.r *= d;
    } else {
      if (state == 1) state = 2;
      (state == 0 ? p.outer : p.inner) *= d;
    }
  }
  if (contiguous) return p;
  p.outer = p.r = p.inner = 1;
  for (int64_t i = 0; i < rank; ++i)
    if (!red[i]) p.perm.push_back(i);
  for (int64_t i = 0; i < rank; ++i)
    if (red[i]) p.perm.push_back(i);
  for (int64_t a : p.perm) {
    p.permuted_shape.push_back(x.shape()[a]);
    (red[a] ? p.r : p.outer) *= x.shape()[a];
  }
  return p;
}

template <class T>
using Acc = std::conditional_t<std::is_floating_point_v<T>, double,
                               std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;

// A double result stored in T: integer outputs saturate (log(0) = -inf, an empty
// LogSumExp) instead of the undefined float-to-int conversion; NaN becomes 0.
template <typename T>
T FromDouble(double d) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(d);
  } else {
    constexpr double lo = static_cast<double>(std::numeric_limits<T>::lowest());
    constexpr double hi = static_cast<double>(std::numeric_limits<T>::max());  // may round up
    if (std::isnan(d)) return T(0);
    if (d <= lo) return std::numeric_limits<T>::lowest();
    if (d >= hi) return std::numeric_limits<T>::max();
    return static_cast<T>(d);
  }
}

template <class T>
void ReduceRef(ROp op, const T* x, T* y, int64_t outer, int64_t r, int64_t inner) {
  using A = Acc<T>;
  std::vector<A> acc(inner);
  for (int64_t o = 0; o < outer; ++o) {
    const T* base = x + o * r * inner;
    T* out = y + o * inner;
    if (op == ROp::kMax || op == ROp::kMin) {
      const bool mx = op == ROp::kMax;
      for (int64_t i = 0; i < inner; ++i) {
        T v = r ? base[i] : (mx ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max());
        if constexpr (std::is_floating_point_v<T>)
          if (r == 0) v = mx ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::infinity();
        for (int64_t k = 1; k < r; ++k) {
          T c = base[k * inner + i];
          if constexpr (std::is_floating_point_v<T>)
            if (std::isnan(c)) { v = c; break; }
          if (mx ? c > v : c < v) v = c;
        }
        out[i] = v;
      }
      continue;
    }
    if (op == ROp::kLogSumExp) {
      for (int64_t i = 0; i < inner; ++i) {
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t k = 0; k < r; ++k) m = std::max(m, static_cast<double>(base[k * inner + i]));
        double s = 0;
        if (std::isfinite(m))
          for (int64_t k = 0; k < r; ++k) s += std::exp(static_cast<double>(base[k * inner + i]) - m);
        out[i] = FromDouble<T>(std::isfinite(m) ? m + std::log(s) : m);
      }
      continue;
    }
    std::fill(acc.begin(), acc.end(), op == ROp::kProd ? A(1) : A(0));
    for (int64_t k = 0; k < r; ++k) {
      const T* row = base + k * inner;
      for (int64_t i = 0; i < inner; ++i) {
        A v = static_cast<A>(row[i]);
        switch (op) {
          case ROp::kProd: acc[i] = static_cast<A>(acc[i] * v); break;
          case ROp::kL1: acc[i] += v < 0 ? static_cast<A>(0 - v) : v; break;
          case ROp::kL2: case ROp::kSumSquare: acc[i] = static_cast<A>(acc[i] + v * v); break;
          default: acc[i] = static_cast<A>(acc[i] + v); break;
        }
      }
    }
    for (int64_t i = 0; i < inner; ++i) {
      A a = acc[i];
      double d = static_cast<double>(a);
      switch (op) {
        case ROp::kMean:
          if constexpr (std::is_floating_point_v<T>) out[i] = static_cast<T>(d / static_cast<double>(r));
          else out[i] = r ? static_cast<T>(a / static_cast<A>(r)) : T(0);
          break;
        case ROp::kL2: out[i] = FromDouble<T>(std::sqrt(d)); break;
        case ROp::kLogSum: out[i] = FromDouble<T>(std::log(d)); break;
        default: out[i] = static_cast<T>(a); break;
      }
    }
  }
}

using FastReduce = void (*)(ROp op, const float* x, float* y, int64_t outer, int64_t r,
                            int64_t inner, ThreadPool& pool);

void RunReduce(KernelContext& ctx, ROp op, const std::vector<int64_t>& attr_axes, bool has_attr,
               bool keepdims, bool noop, FastReduce fast) {
  const ir::Node& node = ctx.node();
  const ir::Tensor& x0 = In(ctx, 0);
  if (!IsSupportedNumeric(x0.dtype()) || x0.dtype() == ir::DType::kBool)
    FailUnsupported(node, std::string("dtype ") + ir::DTypeName(x0.dtype()));
  ReduceShape p = PlanReduce(ctx, x0, attr_axes, has_attr, keepdims, noop);
  NumElements(node, x0.shape());
  if (p.identity) {
    ir::Tensor& out = ctx.AllocateOutput(0, x0.dtype(), x0.shape());
    if (out.nbytes()) std::memcpy(out.mutable_raw(), x0.raw(), out.nbytes());
    return;
  }
  bool half = IsHalfLike(x0.dtype());
  ir::Tensor x = half ? CastTensor(node, x0, ir::DType::kFloat32) : x0;
  if (!p.perm.empty() && x.numel()) {
    ir::Tensor t(x.dtype(), p.permuted_shape);
    TransposeInto(node, ctx.pool(), x, p.perm, t);
    x = std::move(t);
  }
  ir::Tensor res = half ? ir::Tensor(ir::DType::kFloat32, p.out_shape) : ir::Tensor();
  ir::Tensor& out = half ? res : ctx.AllocateOutput(0, x0.dtype(), p.out_shape);
  if (out.numel()) {
    if (fast && x.dtype() == ir::DType::kFloat32 && p.r > 0) {
      fast(op, x.data<float>(), out.mutable_data<float>(), p.outer, p.r, p.inner, ctx.pool());
    } else {
      DispatchNumeric(node, x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* px = x.data<T>();
        T* py = out.mutable_data<T>();
        const int64_t r = p.r, inner = p.inner;
        ParallelRange(ctx.pool(), p.outer,
                      std::max<int64_t>(1, kParallelThreshold / std::max<int64_t>(1, r * inner)),
                      [&](int64_t b, int64_t e) {
                        ReduceRef(op, px + b * r * inner, py + b * inner, e - b, r, inner);
                      });
      });
    }
  }
  if (half) {
    ir::Tensor back = CastTensor(node, res, x0.dtype());
    ir::Tensor& o = ctx.AllocateOutput(0, x0.dtype(), p.out_shape);
    if (o.nbytes()) std::memcpy(o.mutable_raw(), back.raw(), o.nbytes());
  }
}

std::unique_ptr<Kernel> MakeReduce(const KernelInit& init, ROp op, FastReduce fast) {
  const ir::Node& n = init.node;
  bool has_attr = n.has_attr("axes");
  std::vector<int64_t> axes = n.attr_ints("axes");
  bool keepdims = n.attr_int("keepdims", 1) != 0;
  bool noop = n.attr_int("noop_with_empty_axes", 0) != 0;
  return MakeKernel([=](KernelContext& ctx) { RunReduce(ctx, op, axes, has_attr, keepdims, noop, fast); });
}

#if defined(__x86_64__)
#define EP_AVX2 __attribute__((target("avx2,fma")))

// One row of R contiguous floats.
EP_AVX2 float RowReduce(ROp op, const float* x, int64_t r) {
  const bool is_max = op == ROp::kMax, is_min = op == ROp::kMin;
  if (is_max || is_min) {
    // NaN anywhere makes the result NaN, as in the reference.
    __m256 m = _mm256_set1_ps(x[0]);
    __m256 nan = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= r; k += 8) {
      __m256 v = _mm256_loadu_ps(x + k);
      nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      m = is_max ? _mm256_max_ps(m, v) : _mm256_min_ps(m, v);
    }
    float s = is_max ? avx2::HMax256(m) : -avx2::HMax256(_mm256_sub_ps(_mm256_setzero_ps(), m));
    bool has_nan = _mm256_movemask_ps(nan) != 0;
    for (; k < r; ++k) {
      if (std::isnan(x[k])) has_nan = true;
      s = is_max ? std::max(s, x[k]) : std::min(s, x[k]);
    }
    if (std::isnan(x[0])) has_nan = true;
    return has_nan ? std::numeric_limits<float>::quiet_NaN() : s;
  }
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
         a3 = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= r; k += 32) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + k));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + k + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + k + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + k + 24));
  }
  for (; k + 8 <= r; k += 8) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + k));
  if (k < r) a1 = _mm256_add_ps(a1, _mm256_maskload_ps(x + k, avx2::TailMask(r - k)));
  float s = avx2::HSum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  return op == ROp::kMean ? s / static_cast<float>(r) : s;
}

// [outer, R, inner] with inner > 1: accumulate rows of `inner` lanes.
EP_AVX2 void MiddleReduce(ROp op, const float* x, float* y, int64_t r, int64_t inner) {
  const bool is_max = op == ROp::kMax, is_min = op == ROp::kMin;
  std::memcpy(y, x, inner * sizeof(float));
  for (int64_t k = 1; k < r; ++k) {
    const float* row = x + k * inner;
    int64_t i = 0;
    for (; i + 8 <= inner; i += 8) {
      __m256 a = _mm256_loadu_ps(y + i), v = _mm256_loadu_ps(row + i);
      // Max/min written as compare+blend so NaN propagates from either side.
      __m256 res;
      if (is_max || is_min) {
        __m256 pick = is_max ? _mm256_cmp_ps(v, a, _CMP_GT_OQ) : _mm256_cmp_ps(v, a, _CMP_LT_OQ);
        pick = _mm256_or_ps(pick, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        pick = _mm256_andnot_ps(_mm256_cmp_ps(a, a, _CMP_UNORD_Q), pick);
        res = _mm256_blendv_ps(a, v, pick);
      } else {
        res = _mm256_add_ps(a, v);
      }
      _mm256_storeu_ps(y + i, res);
    }
    for (; i < inner; ++i) {
      float a = y[i], v = row[i];
      if (is_max || is_min) {
        if (!std::isnan(a) && (std::isnan(v) || (is_max ? v > a : v < a))) y[i] = v;
      } else {
        y[i] = a + v;
      }
    }
  }
  if (op == ROp::kMean) {
    float inv = 1.0f / static_cast<float>(r);
    for (int64_t i = 0; i < inner; ++i) y[i] *= inv;
  }
}

#undef EP_AVX2

void FastReduceAvx2(ROp op, const float* x, float* y, int64_t outer, int64_t r, int64_t inner,
                    ThreadPool& pool) {
  int64_t rows_threshold = std::max<int64_t>(1, kParallelThreshold / std::max<int64_t>(1, r * inner));
  ParallelRange(pool, outer, rows_threshold, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      if (inner == 1) y[o] = RowReduce(op, x + o * r, r);
      else MiddleReduce(op, x + o * r * inner, y + o * inner, r, inner);
    }
  });
}
#endif

struct OpName {
  const char* name;
  ROp op;
  bool avx2;
};
constexpr OpName kOps[] = {
    {"ReduceMean", ROp::kMean, true},       {"ReduceSum", ROp::kSum, true},
    {"ReduceMax", ROp::kMax, true},         {"ReduceMin", ROp::kMin, true},
    {"ReduceProd", ROp::kProd, false},      {"ReduceL1", ROp::kL1, false},
    {"ReduceL2", ROp::kL2, false},          {"ReduceLogSum", ROp::kLogSum, false},
    {"ReduceLogSumExp", ROp::kLogSumExp, false}, {"ReduceSumSquare", ROp::kSumSquare, false},
};

template <size_t I>
std::unique_ptr<Kernel> CreateRef(const KernelInit& init) {
  return MakeReduce(init, kOps[I].op, nullptr);
}
#if defined(__x86_64__)
template <size_t I>
std::unique_ptr<Kernel> CreateAvx2(const KernelInit& init) {
  return MakeReduce(init, kOps[I].op, FastReduceAvx2);
}
#endif

template <size_t... I>
void RegisterAll(KernelRegistry& r, std::index_sequence<I...>) {
  (AddRef(r, kOps[I].name, CreateRef<I>), ...);
#if defined(__x86_64__)
  ((kOps[I].avx2 ? r.Add({kOps[I].name, "", ir::DType::kFloat32, Isa::kAvx2,
                          KernelName("f32", kOps[I].name, "avx2"), CreateAvx2<I>})
                 : void()),
   ...);
#endif
}

}  // namespace
}  // namespace edgepress::runtime::kernels

namespace edgepress::runtime {
void RegisterReduceKernels(KernelRegistry& r) {
  kernels::RegisterAll(r, std::make_index_sequence<std::size(kernels::kOps)>());
}
}  // namespace edgepress::runtime
