// Scalar reference kernels of the broadcasting binary ops: arithmetic (Add, Sub, Mul,
// Div, Pow, Mod), variadic Min/Max/Sum/Mean, comparisons, logical ops, BitShift, PRelu
// and the three-way Where. Integer arithmetic never traps: x / 0 and x % 0 give 0 and
// INT_MIN / -1 wraps, since inputs are untrusted.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "runtime/kernels/elementwise/elementwise.h"
#include "runtime/kernels/elementwise/elementwise_common.h"
#include "runtime/kernels/elementwise/elementwise_impl.h"

namespace edgepress::runtime::kernels {

void BinaryCore(const ir::Node& node, ThreadPool& pool, const ir::Tensor& a,
                const ir::Tensor& b, ir::DType out_dtype, const BinaryInner& inner,
                const std::function<ir::Tensor&(ir::DType, const std::vector<int64_t>&)>& alloc) {
  if (a.dtype() != b.dtype())
    Fail(node, std::string("input dtypes differ: ") + ir::DTypeName(a.dtype()) + " vs " +
                   ir::DTypeName(b.dtype()));
  ir::DType dt = a.dtype();
  if (!IsSupportedNumeric(dt))
    FailUnsupported(node, std::string("dtype ") + ir::DTypeName(dt) + " is not supported");
  BroadcastPlan plan = MakeBroadcastPlan(node, {a.shape(), b.shape()});
  ir::DType od = out_dtype == ir::DType::kUndefined ? dt : out_dtype;
  if (IsHalfLike(dt)) {
    ir::Tensor a32 = CastTensor(node, a, ir::DType::kFloat32);
    ir::Tensor b32 = CastTensor(node, b, ir::DType::kFloat32);
    ir::DType tmp_dt = od == dt ? ir::DType::kFloat32 : od;
    ir::Tensor tmp(tmp_dt, plan.out_shape);
    if (plan.out_numel) {
      const float* pa = a32.data<float>();
      const float* pb = b32.data<float>();
      uint8_t* po = static_cast<uint8_t*>(tmp.mutable_raw());
      const int64_t es = ir::DTypeBits(tmp_dt) / 8;
      ForEachRun(plan, pool, kParallelThreshold, [&](int64_t o, const int64_t* offs, int64_t n) {
        inner(ir::DType::kFloat32, po + o * es, pa + offs[0], plan.inner_stride[0], pb + offs[1],
              plan.inner_stride[1], n);
      });
    }
    ir::Tensor back = CastTensor(node, tmp, od);
    ir::Tensor& out = alloc(od, plan.out_shape);
    if (out.nbytes()) std::memcpy(out.mutable_raw(), back.raw(), out.nbytes());
    return;
  }
  ir::Tensor& out = alloc(od, plan.out_shape);
  if (plan.out_numel == 0) return;
  const uint8_t* pa = static_cast<const uint8_t*>(a.raw());
  const uint8_t* pb = static_cast<const uint8_t*>(b.raw());
  uint8_t* po = static_cast<uint8_t*>(out.mutable_raw());
  const int64_t ies = ir::DTypeBits(dt) / 8, oes = ir::DTypeBits(od) / 8;
  ForEachRun(plan, pool, kParallelThreshold, [&](int64_t o, const int64_t* offs, int64_t n) {
    inner(dt, po + o * oes, pa + offs[0] * ies, plan.inner_stride[0], pb + offs[1] * ies,
          plan.inner_stride[1], n);
  });
}

void RunBinary(KernelContext& ctx, const ir::Tensor& a, const ir::Tensor& b,
               ir::DType out_dtype, const BinaryInner& inner) {
  BinaryCore(ctx.node(), ctx.pool(), a, b, out_dtype, inner,
             [&](ir::DType dt, const std::vector<int64_t>& shape) -> ir::Tensor& {
               return ctx.AllocateOutput(0, dt, shape);
             });
}

namespace {

template <class T, class O, class Op>
void TypedLoop(void* out, const void* a, int64_t sa, const void* b, int64_t sb, int64_t n,
               const Op& op) {
  O* po = static_cast<O*>(out);
  const T* pa = static_cast<const T*>(a);
  const T* pb = static_cast<const T*>(b);
  for (int64_t i = 0; i < n; ++i) po[i] = static_cast<O>(op(pa[i * sa], pb[i * sb]));
}

enum class BinKind { kFloat, kNumeric, kBool, kUnsigned, kAll };

// Dispatches a typed binary functor. `cmp` makes the output bool.
template <class Op>
BinaryInner MakeInner(const ir::Node* node, BinKind kind, bool cmp, Op op) {
  return [node, cmp, op](ir::DType dt, void* out, const void* a, int64_t sa, const void* b,
                               int64_t sb, int64_t n) {
    DispatchNumeric(*node, dt, [&](auto tag) {
      using T = decltype(tag);
      if (cmp)
        TypedLoop<T, uint8_t>(out, a, sa, b, sb, n, op);
      else
        TypedLoop<T, T>(out, a, sa, b, sb, n, op);
    });
  };
}

bool KindAccepts(BinKind kind, ir::DType dt) {
  switch (kind) {
    case BinKind::kFloat: return ir::IsFloat(dt);
    case BinKind::kNumeric: return IsSupportedNumeric(dt) && dt != ir::DType::kBool;
    case BinKind::kBool: return dt == ir::DType::kBool;
    case BinKind::kUnsigned:
      return dt == ir::DType::kUInt8 || dt == ir::DType::kUInt16 || dt == ir::DType::kUInt32 ||
             dt == ir::DType::kUInt64;
    case BinKind::kAll: return IsSupportedNumeric(dt);
  }
  return false;
}

void CheckKind(const ir::Node& node, BinKind kind, const ir::Tensor& a) {
  if (!KindAccepts(kind, a.dtype()))
    FailUnsupported(node, std::string("dtype ") + ir::DTypeName(a.dtype()) + " is not supported");
}

template <class T> T SafeDiv(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>)
      if (b == T(-1)) return static_cast<T>(0u - static_cast<std::make_unsigned_t<T>>(a));
    return a / b;
  } else {
    return a / b;
  }
}

struct AddF { template <class T> T operator()(T a, T b) const {
  if constexpr (std::is_integral_v<T>)  // wrap, not UB, on overflow
    return static_cast<T>(static_cast<std::make_unsigned_t<T>>(a) +
                          static_cast<std::make_unsigned_t<T>>(b));
  else return a + b; } };
struct SubF { template <class T> T operator()(T a, T b) const {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<std::make_unsigned_t<T>>(a) -
                          static_cast<std::make_unsigned_t<T>>(b));
  else return a - b; } };
struct MulF { template <class T> T operator()(T a, T b) const {
  if constexpr (std::is_integral_v<T>) {
    using U = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned,
                                 std::make_unsigned_t<T>>;
    return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
  } else return a * b; } };
struct DivF { template <class T> T operator()(T a, T b) const { return SafeDiv(a, b); } };
struct MaxF { template <class T> T operator()(T a, T b) const {
  if constexpr (std::is_floating_point_v<T>) if (std::isnan(a) || std::isnan(b)) return a + b;
  return a > b ? a : b; } };
struct MinF { template <class T> T operator()(T a, T b) const {
  if constexpr (std::is_floating_point_v<T>) if (std::isnan(a) || std::isnan(b)) return a + b;
  return a < b ? a : b; } };
struct EqF { template <class T> bool operator()(T a, T b) const { return a == b; } };
struct LtF { template <class T> bool operator()(T a, T b) const { return a < b; } };
struct GtF { template <class T> bool operator()(T a, T b) const { return a > b; } };
struct LeF { template <class T> bool operator()(T a, T b) const { return a <= b; } };
struct GeF { template <class T> bool operator()(T a, T b) const { return a >= b; } };
struct AndF { template <class T> T operator()(T a, T b) const { return (a != 0) && (b != 0); } };
struct OrF { template <class T> T operator()(T a, T b) const { return (a != 0) || (b != 0); } };
struct XorF { template <class T> T operator()(T a, T b) const { return (a != 0) != (b != 0); } };
struct PowF { template <class T> T operator()(T a, T b) const {
  if constexpr (std::is_integral_v<T>) {
    if constexpr (std::is_signed_v<T>) {
      if (b < 0) return a == 1 ? T(1) : (a == -1 ? ((b % 2) ? T(-1) : T(1)) : T(0));
    }
    std::make_unsigned_t<T> r = 1, base = static_cast<std::make_unsigned_t<T>>(a);
    for (uint64_t e = static_cast<uint64_t>(b); e; e >>= 1) {
      if (e & 1) r = static_cast<decltype(r)>(r * base);
      base = static_cast<decltype(base)>(base * base);
    }
    return static_cast<T>(r);
  } else {
    return std::pow(a, b);
  }
} };
struct ModF {
  bool fmod;
  template <class T> T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (fmod) return std::fmod(a, b);
      T r = std::fmod(a, b);
      if (r != 0 && ((r < 0) != (b < 0))) r += b;
      return r;
    } else {
      if (b == 0) return 0;
      if constexpr (std::is_signed_v<T>) {
        if (b == T(-1)) return 0;
        T r = static_cast<T>(a % b);
        if (!fmod && r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
        return r;
      } else {
        return static_cast<T>(a % b);
      }
    }
  }
};
struct ShiftF {
  bool left;
  template <class T> T operator()(T a, T b) const {
    if constexpr (std::is_unsigned_v<T>) {
      if (b >= sizeof(T) * 8) return 0;
      return left ? static_cast<T>(a << b) : static_cast<T>(a >> b);
    } else {
      return a;  // rejected before the loop
    }
  }
};
struct PReluF { template <class T> T operator()(T x, T slope) const {
  return x < T(0) ? static_cast<T>(x * slope) : x; } };

template <class Op>
std::unique_ptr<Kernel> BinaryKernel(BinKind kind, bool cmp, Op op) {
  return MakeKernel([kind, cmp, op](KernelContext& ctx) {
    const ir::Tensor& a = In(ctx, 0);
    const ir::Tensor& b = In(ctx, 1);
    CheckKind(ctx.node(), kind, a);
    RunBinary(ctx, a, b, cmp ? ir::DType::kBool : ir::DType::kUndefined,
              MakeInner(&ctx.node(), kind, cmp, op));
  });
}

// Min, Max, Sum, Mean: left fold with broadcasting; Mean divides the sum at the end.
template <class Op>
std::unique_ptr<Kernel> VariadicKernel(Op op, bool mean) {
  return MakeKernel([op, mean](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    size_t n_in = ctx.num_inputs();
    if (n_in == 0) Fail(node, "needs at least one input");
    const ir::Tensor& first = In(ctx, 0);
    CheckKind(node, mean ? BinKind::kFloat : BinKind::kNumeric, first);
    BinaryInner inner = MakeInner(&node, BinKind::kNumeric, false, op);
    ir::Tensor acc = first;
    for (size_t i = 1; i < n_in; ++i) {
      ir::Tensor next;
      BinaryCore(node, ctx.pool(), acc, In(ctx, i), ir::DType::kUndefined, inner,
                 [&](ir::DType dt, const std::vector<int64_t>& shape) -> ir::Tensor& {
                   next = ir::Tensor(dt, shape);
                   return next;
                 });
      acc = std::move(next);
    }
    if (mean && n_in > 1) {
      ir::Tensor scale = CastTensor(node, ir::Tensor::FromVector<double>(ir::DType::kFloat64, {},
                                    {1.0 / static_cast<double>(n_in)}), acc.dtype());
      BinaryCore(node, ctx.pool(), acc, scale, ir::DType::kUndefined,
                 MakeInner(&node, BinKind::kNumeric, false, MulF{}),
                 [&](ir::DType dt, const std::vector<int64_t>& shape) -> ir::Tensor& {
                   return ctx.AllocateOutput(0, dt, shape);
                 });
      return;
    }
    ir::Tensor& out = ctx.AllocateOutput(0, acc.dtype(), acc.shape());
    if (out.nbytes()) std::memcpy(out.mutable_raw(), acc.raw(), out.nbytes());
  });
}

std::unique_ptr<Kernel> CreatePow(const KernelInit&) {
  return MakeKernel([](KernelContext& ctx) {
    const ir::Tensor& a = In(ctx, 0);
    const ir::Tensor& b0 = In(ctx, 1);
    CheckKind(ctx.node(), BinKind::kNumeric, a);
    CheckKind(ctx.node(), BinKind::kNumeric, b0);
    // ONNX lets the exponent's dtype differ; compute in the base's dtype.
    ir::Tensor b = CastTensor(ctx.node(), b0, a.dtype());
    RunBinary(ctx, a, b, ir::DType::kUndefined,
              MakeInner(&ctx.node(), BinKind::kNumeric, false, PowF{}));
  });
}

// PRelu broadcasts the slope numpy-style (opset 7+). Models of opset 6 and PyTorch's
// exporter also give a per-channel slope [C] for an input [N, C, ...]; that shape cannot
// broadcast numpy-style (unless C equals the last dim), so it is read as [C, 1, ..., 1].
std::unique_ptr<Kernel> CreatePRelu(const KernelInit&) {
  return MakeKernel([](KernelContext& ctx) {
    const ir::Tensor& x = In(ctx, 0);
    const ir::Tensor& slope = In(ctx, 1);
    CheckKind(ctx.node(), BinKind::kNumeric, x);
    ir::Tensor s = slope;
    if (slope.rank() == 1 && x.rank() > 2 && slope.shape()[0] == x.shape()[1] &&
        slope.shape()[0] != x.shape().back() && slope.shape()[0] != 1 && slope.buffer()) {
      std::vector<int64_t> shape(x.rank() - 1, 1);
      shape[0] = slope.shape()[0];
      s = ir::Tensor(slope.dtype(), shape, slope.buffer(), slope.offset());
    }
    RunBinary(ctx, x, s, ir::DType::kUndefined,
              MakeInner(&ctx.node(), BinKind::kNumeric, false, PReluF{}));
  });
}

std::unique_ptr<Kernel> CreateWhere(const KernelInit&) {
  return MakeKernel([](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    const ir::Tensor& c = In(ctx, 0);
    const ir::Tensor& x = In(ctx, 1);
    const ir::Tensor& y = In(ctx, 2);
    if (c.dtype() != ir::DType::kBool) Fail(node, "condition must be bool");
    if (x.dtype() != y.dtype()) Fail(node, "X and Y dtypes differ");
    BroadcastPlan plan = MakeBroadcastPlan(node, {c.shape(), x.shape(), y.shape()});
    ir::Tensor& out = ctx.AllocateOutput(0, x.dtype(), plan.out_shape);
    if (plan.out_numel == 0) return;
    DispatchBySize(node, x.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const uint8_t* pc = c.data<uint8_t>();
      const T* px = x.data<T>();
      const T* py = y.data<T>();
      T* po = out.mutable_data<T>();
      const int64_t sc = plan.inner_stride[0], sx = plan.inner_stride[1],
                    sy = plan.inner_stride[2];
      ForEachRun(plan, ctx.pool(), kParallelThreshold,
                 [&](int64_t o, const int64_t* offs, int64_t n) {
                   const uint8_t* cc = pc + offs[0];
                   const T* xx = px + offs[1];
                   const T* yy = py + offs[2];
                   T* oo = po + o;
                   for (int64_t i = 0; i < n; ++i) oo[i] = cc[i * sc] ? xx[i * sx] : yy[i * sy];
                 });
    });
  });
}

}  // namespace

void RegisterBinaryRef(KernelRegistry& r) {
#define EP_BIN(OP, KIND, CMP, EXPR)                                      \
  AddRef(r, #OP, [](const KernelInit& init) -> std::unique_ptr<Kernel> { \
    (void)init;                                                          \
    return BinaryKernel(KIND, CMP, EXPR);                                \
  });
  EP_BIN(Add, BinKind::kNumeric, false, AddF{})
  EP_BIN(Sub, BinKind::kNumeric, false, SubF{})
  EP_BIN(Mul, BinKind::kNumeric, false, MulF{})
  EP_BIN(Div, BinKind::kNumeric, false, DivF{})
  EP_BIN(Mod, BinKind::kNumeric, false, ModF{init.node.attr_int("fmod", 0) != 0})
  EP_BIN(Equal, BinKind::kAll, true, EqF{})
  EP_BIN(Less, BinKind::kNumeric, true, LtF{})
  EP_BIN(Greater, BinKind::kNumeric, true, GtF{})
  EP_BIN(LessOrEqual, BinKind::kNumeric, true, LeF{})
  EP_BIN(GreaterOrEqual, BinKind::kNumeric, true, GeF{})
  EP_BIN(And, BinKind::kBool, false, AndF{})
  EP_BIN(Or, BinKind::kBool, false, OrF{})
  EP_BIN(Xor, BinKind::kBool, false, XorF{})
  EP_BIN(BitShift, BinKind::kUnsigned, false,
         ShiftF{init.node.attr_string("direction", "") == "LEFT"})
#undef EP_BIN
  AddRef(r, "PRelu", CreatePRelu);
  AddRef(r, "Pow", CreatePow);
  AddRef(r, "Where", CreateWhere);
  AddRef(r, "Max", [](const KernelInit&) { return VariadicKernel(MaxF{}, false); });
  AddRef(r, "Min", [](const KernelInit&) { return VariadicKernel(MinF{}, false); });
  AddRef(r, "Sum", [](const KernelInit&) { return VariadicKernel(AddF{}, false); });
  AddRef(r, "Mean", [](const KernelInit&) { return VariadicKernel(AddF{}, true); });
}

}  // namespace edgepress::runtime::kernels
