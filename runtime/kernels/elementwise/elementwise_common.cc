// Implementation of the shared kernel helpers (see elementwise_common.h).
#include "runtime/kernels/elementwise/elementwise_common.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ir/error.h"
#include "runtime/kernels/elementwise/half_convert.h"

namespace edgepress::runtime::kernels {

void RefuseFastGeluBias(const KernelInit& init) {
  if (init.node.num_inputs() > 1 && init.node.input(1))
    throw Error(ErrorCode::kUnsupported,
                init.node.describe() + ": FastGelu with a bias input is not supported; add the "
                                       "bias with an Add before it");
}

void Fail(const ir::Node& node, const std::string& what) {
  ThrowInvalid(node.describe() + ": " + what);
}
void FailUnsupported(const ir::Node& node, const std::string& what) {
  ThrowUnsupported(node.describe() + ": " + what);
}

const ir::Tensor& In(KernelContext& ctx, size_t i) {
  const ir::Tensor* t = ctx.input(i);
  if (!t || t->empty()) Fail(ctx.node(), "missing required input " + std::to_string(i));
  if (t->dtype() == ir::DType::kString)
    FailUnsupported(ctx.node(), "string tensors are not supported (input " +
                                    std::to_string(i) + ")");
  return *t;
}

const ir::Tensor* OptIn(KernelContext& ctx, size_t i) {
  const ir::Tensor* t = ctx.input(i);
  if (!t || t->empty()) return nullptr;
  return t;
}

std::vector<int64_t> IntValues(KernelContext& ctx, const ir::Tensor& t, const char* what) {
  if (t.dtype() != ir::DType::kInt64 && t.dtype() != ir::DType::kInt32)
    Fail(ctx.node(), std::string(what) + " must be int64 or int32, got " +
                         ir::DTypeName(t.dtype()));
  return t.ToInt64();
}

double ScalarValue(KernelContext& ctx, const ir::Tensor& t, const char* what) {
  if (t.numel() != 1)
    Fail(ctx.node(), std::string(what) + " must have one element, got shape " +
                         ShapeStr(t.shape()));
  if (t.dtype() == ir::DType::kString) Fail(ctx.node(), std::string(what) + " is a string");
  return t.ToDouble().at(0);
}

int64_t NormAxis(const ir::Node& node, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank || (rank == 0))
    Fail(node, "axis " + std::to_string(axis) + " out of range for rank " +
                   std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> NormAxes(const ir::Node& node, const std::vector<int64_t>& axes,
                              int64_t rank) {
  std::vector<int64_t> out;
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(rank, 0)), false);
  for (int64_t a : axes) {
    int64_t n = NormAxis(node, a, rank);
    if (seen[n]) Fail(node, "axis " + std::to_string(a) + " repeated");
    seen[n] = true;
    out.push_back(n);
  }
  return out;
}

int64_t NumElements(const ir::Node& node, const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) Fail(node, "negative dimension in shape " + ShapeStr(shape));
    if (MulOverflows(n, static_cast<uint64_t>(d), &n) ||
        n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / 16))
      Fail(node, "shape " + ShapeStr(shape) + " has too many elements");
  }
  return static_cast<int64_t>(n);
}

std::string ShapeStr(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<int64_t> BroadcastShapes(const ir::Node& node,
                                     const std::vector<std::vector<int64_t>>& shapes) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  std::vector<int64_t> out(rank, 1);
  for (const auto& s : shapes) {
    size_t off = rank - s.size();
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t d = s[i];
      int64_t& o = out[off + i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string all;
      for (const auto& x : shapes) all += (all.empty() ? "" : " vs ") + ShapeStr(x);
      Fail(node, "shapes cannot be broadcast: " + all);
    }
  }
  for (const auto& s : shapes)
    for (int64_t d : s)
      if (d < 0) Fail(node, "negative dimension in input shape " + ShapeStr(s));
  return out;
}

int64_t BroadcastPlan::RowOffset(size_t k, int64_t row) const {
  int64_t off = 0;
  const auto& st = strides[k];
  for (size_t d = dims.size() - 1; d-- > 0;) {
    int64_t idx = row % dims[d];
    row /= dims[d];
    off += idx * st[d];
  }
  return off;
}

BroadcastPlan MakeBroadcastPlan(const ir::Node& node,
                                const std::vector<std::vector<int64_t>>& shapes) {
  BroadcastPlan p;
  p.out_shape = BroadcastShapes(node, shapes);
  p.out_numel = NumElements(node, p.out_shape);
  for (const auto& s : shapes) NumElements(node, s);
  size_t rank = p.out_shape.size();
  size_t k_in = shapes.size();
  // Full-rank strides with 0 on broadcast dims; drop output dims of size 1.
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> st(k_in);
  std::vector<std::vector<int64_t>> full(k_in, std::vector<int64_t>(rank, 0));
  for (size_t k = 0; k < k_in; ++k) {
    const auto& s = shapes[k];
    size_t off = rank - s.size();
    int64_t stride = 1;
    for (size_t i = s.size(); i-- > 0;) {
      full[k][off + i] = s[i] == 1 ? 0 : stride;
      stride *= s[i];
    }
  }
  for (size_t i = 0; i < rank; ++i) {
    if (p.out_shape[i] == 1) continue;
    dims.push_back(p.out_shape[i]);
    for (size_t k = 0; k < k_in; ++k) st[k].push_back(full[k][i]);
  }
  if (dims.empty()) {
    dims.push_back(1);
    for (size_t k = 0; k < k_in; ++k) st[k].push_back(0);
  }
  // Coalesce neighbours whose strides chain for every input (contiguous or both broadcast).
  std::vector<int64_t> cd{dims[0]};
  std::vector<std::vector<int64_t>> cs(k_in);
  for (size_t k = 0; k < k_in; ++k) cs[k].push_back(st[k][0]);
  for (size_t i = 1; i < dims.size(); ++i) {
    bool ok = true;
    for (size_t k = 0; k < k_in && ok; ++k) ok = cs[k].back() == st[k][i] * dims[i];
    if (ok) {
      cd.back() *= dims[i];
      for (size_t k = 0; k < k_in; ++k) cs[k].back() = st[k][i];
    } else {
      cd.push_back(dims[i]);
      for (size_t k = 0; k < k_in; ++k) cs[k].push_back(st[k][i]);
    }
  }
  p.dims = cd;
  p.strides = cs;
  p.inner = cd.back();
  p.outer = p.inner == 0 ? 0 : p.out_numel / p.inner;
  for (size_t k = 0; k < k_in; ++k) p.inner_stride.push_back(cs[k].back());
  return p;
}

void ForEachRun(const BroadcastPlan& plan, ThreadPool& pool, int64_t threshold,
                const std::function<void(int64_t, const int64_t*, int64_t)>& fn) {
  if (plan.out_numel == 0) return;
  const size_t k_in = plan.strides.size();
  if (plan.outer == 1) {
    // One contiguous run: split it.
    ParallelRange(pool, plan.inner, threshold, [&](int64_t b, int64_t e) {
      int64_t offs[8];
      for (size_t k = 0; k < k_in; ++k) offs[k] = b * plan.inner_stride[k];
      fn(b, offs, e - b);
    });
    return;
  }
  int64_t rows_threshold = std::max<int64_t>(1, threshold / std::max<int64_t>(1, plan.inner));
  ParallelRange(pool, plan.outer, rows_threshold, [&](int64_t b, int64_t e) {
    int64_t offs[8];
    for (int64_t r = b; r < e; ++r) {
      for (size_t k = 0; k < k_in; ++k) offs[k] = plan.RowOffset(k, r);
      fn(r * plan.inner, offs, plan.inner);
    }
  });
}

void ParallelRange(ThreadPool& pool, int64_t n, int64_t threshold,
                   const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (n < threshold || pool.num_threads() <= 1) {
    fn(0, n);
    return;
  }
  int64_t grain = std::max<int64_t>(1, threshold / 4);
  pool.ParallelFor(n, grain, fn);
}

bool IsHalfLike(ir::DType t) { return t == ir::DType::kFloat16 || t == ir::DType::kBFloat16; }

bool IsSupportedNumeric(ir::DType t) {
  switch (t) {
    case ir::DType::kFloat32: case ir::DType::kFloat64: case ir::DType::kFloat16:
    case ir::DType::kBFloat16: case ir::DType::kInt64: case ir::DType::kInt32:
    case ir::DType::kInt16: case ir::DType::kInt8: case ir::DType::kUInt64:
    case ir::DType::kUInt32: case ir::DType::kUInt16: case ir::DType::kUInt8:
    case ir::DType::kBool:
      return true;
    default:
      return false;
  }
}

namespace {
// Reads element i as double (exact for every integer up to 2^53; int64 goes through
// ReadI64 when the target is an integer).
double ReadD(const ir::Tensor& t, ir::DType dt, const void* p, int64_t i) {
  switch (dt) {
    case ir::DType::kFloat32: return static_cast<const float*>(p)[i];
    case ir::DType::kFloat64: return static_cast<const double*>(p)[i];
    case ir::DType::kFloat16: return ir::HalfToFloat(static_cast<const uint16_t*>(p)[i]);
    case ir::DType::kBFloat16: return ir::BFloat16ToFloat(static_cast<const uint16_t*>(p)[i]);
    case ir::DType::kInt64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case ir::DType::kInt32: return static_cast<const int32_t*>(p)[i];
    case ir::DType::kInt16: return static_cast<const int16_t*>(p)[i];
    case ir::DType::kInt8: return static_cast<const int8_t*>(p)[i];
    case ir::DType::kUInt64: return static_cast<double>(static_cast<const uint64_t*>(p)[i]);
    case ir::DType::kUInt32: return static_cast<const uint32_t*>(p)[i];
    case ir::DType::kUInt16: return static_cast<const uint16_t*>(p)[i];
    case ir::DType::kUInt8: return static_cast<const uint8_t*>(p)[i];
    case ir::DType::kBool: return static_cast<const uint8_t*>(p)[i] != 0;
    default: return 0;
  }
}

template <class T>
T SaturateFromDouble(double v) {
  if (std::isnan(v)) return T(0);
  double lo = static_cast<double>(std::numeric_limits<T>::lowest());
  double hi = static_cast<double>(std::numeric_limits<T>::max());
  if (v <= lo) return std::numeric_limits<T>::lowest();
  if (v >= hi) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

template <class Src, class Dst>
void CastLoop(const Src* s, Dst* d, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_floating_point_v<Src> && std::is_integral_v<Dst>)
      d[i] = SaturateFromDouble<Dst>(static_cast<double>(s[i]));
    else
      d[i] = static_cast<Dst>(s[i]);
  }
}

bool IsIntLike(ir::DType t) {
  return t != ir::DType::kFloat32 && t != ir::DType::kFloat64 && !IsHalfLike(t);
}
}  // namespace

ir::Tensor CastTensor(const ir::Node& node, const ir::Tensor& t, ir::DType to) {
  ir::DType from = t.dtype();
  if (!IsSupportedNumeric(from) || !IsSupportedNumeric(to))
    FailUnsupported(node, std::string("cast from ") + ir::DTypeName(from) + " to " +
                              ir::DTypeName(to) + " is not supported");
  if (from == to) return t;
  ir::Tensor out(to, t.shape());
  const int64_t n = static_cast<int64_t>(t.numel());
  if (n == 0) return out;
  const void* src = t.raw();
  void* dst = out.mutable_raw();
  if (to == ir::DType::kBool) {
    uint8_t* d = static_cast<uint8_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = ReadD(t, from, src, i) != 0;
    return out;
  }
  if (IsHalfLike(to)) {
    uint16_t* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) {
      float f = static_cast<float>(ReadD(t, from, src, i));
      d[i] = to == ir::DType::kFloat16 ? ir::FloatToHalf(f) : ir::FloatToBFloat16(f);
    }
    return out;
  }
  // Integer-to-integer goes through int64/uint64 exactly (ONNX: wrap-around like C).
  if (IsIntLike(from) && IsIntLike(to) && from != ir::DType::kBool) {
    DispatchNumeric(node, from, [&](auto s) {
      using S = decltype(s);
      DispatchNumeric(node, to, [&](auto dd) {
        using D = decltype(dd);
        CastLoop(static_cast<const S*>(src), static_cast<D*>(dst), n);
      });
    });
    return out;
  }
  if (!IsHalfLike(from)) {
    DispatchNumeric(node, from, [&](auto s) {
      using S = decltype(s);
      DispatchNumeric(node, to, [&](auto dd) {
        using D = decltype(dd);
        if (from == ir::DType::kBool) {
          const uint8_t* b = static_cast<const uint8_t*>(src);
          D* d = static_cast<D*>(dst);
          for (int64_t i = 0; i < n; ++i) d[i] = static_cast<D>(b[i] != 0);
        } else {
          CastLoop(static_cast<const S*>(src), static_cast<D*>(dst), n);
        }
      });
    });
    return out;
  }
  if (to == ir::DType::kFloat32) {  // half-precision weights before Cast(to=float)
    const uint16_t* s16 = static_cast<const uint16_t*>(src);
    if (from == ir::DType::kFloat16)
      HalfToFloatArray(HalfConvertIsa(), s16, static_cast<float*>(dst), n);
    else
      BFloat16ToFloatArray(HalfConvertIsa(), s16, static_cast<float*>(dst), n);
    return out;
  }
  // f16/bf16 to a non-half type.
  DispatchNumeric(node, to, [&](auto dd) {
    using D = decltype(dd);
    D* d = static_cast<D*>(dst);
    for (int64_t i = 0; i < n; ++i) {
      double v = ReadD(t, from, src, i);
      if constexpr (std::is_integral_v<D>)
        d[i] = SaturateFromDouble<D>(v);
      else
        d[i] = static_cast<D>(v);
    }
  });
  return out;
}

}  // namespace edgepress::runtime::kernels
