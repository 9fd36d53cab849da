// Scalar reference kernels for the elementwise ops (see elementwise.h). These define the
// semantics the SIMD kernels are tested against, so they favour clarity and exactness:
// double-precision std:: functions for f64, float for f32, integer ops that cannot trap
// (division by zero gives 0, INT_MIN / -1 wraps) because inputs are untrusted.
#include "runtime/kernels/elementwise/elementwise.h"

#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <string>
#include <type_traits>

#include "runtime/kernels/elementwise/elementwise_common.h"
#include "runtime/kernels/elementwise/elementwise_impl.h"

namespace edgepress::runtime {
namespace kernels {

// ---------------------------------------------------------------------------------------
// Unary ops. `kind` says which dtypes the op accepts.

namespace {

template <class T>
T WrapNeg(T x) {
  if constexpr (std::is_signed_v<T> && std::is_integral_v<T>)
    return static_cast<T>(0u - static_cast<std::make_unsigned_t<T>>(x));
  else
    return -x;
}

struct ReluOp {
  template <class T> T operator()(T x) const { return x > T(0) ? x : T(0); }
};
struct LeakyReluOp {
  float alpha;
  template <class T> T operator()(T x) const { return x < T(0) ? static_cast<T>(alpha * x) : x; }
};
struct SigmoidOp {
  template <class T> T operator()(T x) const {
    if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
    T e = std::exp(x);
    return e / (T(1) + e);
  }
};
struct HardSigmoidOp {
  float alpha, beta;
  template <class T> T operator()(T x) const {
    T v = static_cast<T>(alpha) * x + static_cast<T>(beta);
    return v < T(0) ? T(0) : (v > T(1) ? T(1) : v);
  }
};
struct HardSwishOp {
  template <class T> T operator()(T x) const {
    T v = x / T(6) + T(0.5);
    v = v < T(0) ? T(0) : (v > T(1) ? T(1) : v);
    return x * v;
  }
};
#define EP_STD_UNARY(NAME, EXPR)                                 \
  struct NAME {                                                  \
    template <class T> T operator()(T x) const { return EXPR; } \
  };
EP_STD_UNARY(TanhOp, std::tanh(x))
EP_STD_UNARY(ErfOp, std::erf(x))
EP_STD_UNARY(SqrtOp, std::sqrt(x))
EP_STD_UNARY(ExpOp, std::exp(x))
EP_STD_UNARY(LogOp, std::log(x))
EP_STD_UNARY(FloorOp, std::floor(x))
EP_STD_UNARY(CeilOp, std::ceil(x))
EP_STD_UNARY(RoundOp, std::nearbyint(x))  // default rounding mode: half to even
EP_STD_UNARY(SinOp, std::sin(x))
EP_STD_UNARY(CosOp, std::cos(x))
EP_STD_UNARY(TanOp, std::tan(x))
EP_STD_UNARY(AsinOp, std::asin(x))
EP_STD_UNARY(AcosOp, std::acos(x))
EP_STD_UNARY(AtanOp, std::atan(x))
EP_STD_UNARY(SinhOp, std::sinh(x))
EP_STD_UNARY(CoshOp, std::cosh(x))
EP_STD_UNARY(AsinhOp, std::asinh(x))
EP_STD_UNARY(AcoshOp, std::acosh(x))
EP_STD_UNARY(AtanhOp, std::atanh(x))
EP_STD_UNARY(ReciprocalOp, T(1) / x)
EP_STD_UNARY(SoftsignOp, x / (T(1) + std::fabs(x)))
EP_STD_UNARY(NegOp, WrapNeg(x))
EP_STD_UNARY(SignOp, static_cast<T>(x > T(0) ? 1 : (x < T(0) ? -1 : 0)))
#undef EP_STD_UNARY
struct AbsOp {
  template <class T> T operator()(T x) const {
    if constexpr (std::is_unsigned_v<T>) return x;
    else return x < T(0) ? WrapNeg(x) : x;
  }
};
struct SoftplusOp {
  template <class T> T operator()(T x) const {
    return x > T(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  }
};
struct EluOp {
  float alpha;
  template <class T> T operator()(T x) const {
    return x < T(0) ? static_cast<T>(alpha) * (std::exp(x) - T(1)) : x;
  }
};
struct SeluOp {
  float alpha, gamma;
  template <class T> T operator()(T x) const {
    return x > T(0) ? static_cast<T>(gamma) * x
                    : static_cast<T>(gamma) * (static_cast<T>(alpha) * std::exp(x) -
                                               static_cast<T>(alpha));
  }
};
struct CeluOp {
  float alpha;
  template <class T> T operator()(T x) const {
    T a = static_cast<T>(alpha);
    T neg = a * (std::exp(x / a) - T(1));
    return (x > T(0) ? x : T(0)) + (neg < T(0) ? neg : T(0));
  }
};
struct ThresholdedReluOp {
  float alpha;
  template <class T> T operator()(T x) const { return x > static_cast<T>(alpha) ? x : T(0); }
};
struct MishOp {
  template <class T> T operator()(T x) const { return x * std::tanh(SoftplusOp()(x)); }
};
struct GeluOp {
  bool tanh_approx;
  template <class T> T operator()(T x) const {
    if (tanh_approx) {
      const T k = static_cast<T>(0.7978845608028654);  // sqrt(2 / pi)
      return T(0.5) * x * (T(1) + std::tanh(k * (x + static_cast<T>(0.044715) * x * x * x)));
    }
    return T(0.5) * x * (T(1) + std::erf(x * static_cast<T>(0.7071067811865476)));
  }
};
struct ClipOp {
  double lo, hi;
  template <class T> T operator()(T x) const {
    // NaN passes through (comparisons are false), as in onnxruntime.
    if (static_cast<double>(x) < lo) return static_cast<T>(lo);
    if (static_cast<double>(x) > hi) return static_cast<T>(hi);
    return x;
  }
};

// Builds the typed loop for a functor over the dtypes `kind` allows.
template <class Op>
void UnaryLoop(const ir::Node& node, UnaryKind kind, const Op& op, ir::DType dt, const void* x,
               void* y, int64_t n) {
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* px = static_cast<const T*>(x);
    T* py = static_cast<T*>(y);
    for (int64_t i = 0; i < n; ++i) py[i] = op(px[i]);
  };
  if (dt == ir::DType::kFloat32) return run(float{});
  if (dt == ir::DType::kFloat64) return run(double{});
  if (kind == UnaryKind::kFloat) return;  // rejected before the loop
  DispatchNumeric(node, dt, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_integral_v<T>) run(T{});
  });
}

template <class Op>
std::unique_ptr<Kernel> UnaryKernel(UnaryKind kind, Op op) {
  return MakeKernel([kind, op](KernelContext& ctx) {
    const ir::Node& node = ctx.node();
    RunUnary(ctx, kind, [&](ir::DType dt, const void* x, void* y, int64_t n) {
      UnaryLoop(node, kind, op, dt, x, y, n);
    });
  });
}

float AttrF(const KernelInit& init, const char* name, float def) {
  return init.node.attr_float(name, def);
}

// --- predicates with a bool output ---------------------------------------------------

void RunPredicate(KernelContext& ctx, const std::function<bool(double)>& pred) {
  const ir::Tensor& x = In(ctx, 0);
  if (!IsFloat(x.dtype()) && !(IsInteger(x.dtype()) && !ir::IsPacked(x.dtype())))
    FailUnsupported(ctx.node(), std::string("dtype ") + ir::DTypeName(x.dtype()));
  ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kBool, x.shape());
  std::vector<double> v = x.ToDouble();
  uint8_t* py = y.mutable_data<uint8_t>();
  for (size_t i = 0; i < v.size(); ++i) py[i] = pred(v[i]) ? 1 : 0;
}

// --- Clip: bounds from inputs 1/2 (opset 11+) or attributes (opset 6). -----------------

std::unique_ptr<Kernel> CreateClip(const KernelInit& init) {
  float amin = AttrF(init, "min", -std::numeric_limits<float>::infinity());
  float amax = AttrF(init, "max", std::numeric_limits<float>::infinity());
  return MakeKernel([amin, amax](KernelContext& ctx) {
    double lo = amin, hi = amax;
    const ir::Tensor& x = In(ctx, 0);
    if (const ir::Tensor* t = OptIn(ctx, 1)) lo = ScalarValue(ctx, *t, "Clip min");
    if (const ir::Tensor* t = OptIn(ctx, 2)) hi = ScalarValue(ctx, *t, "Clip max");
    if (!std::isfinite(lo) && lo > 0) lo = -std::numeric_limits<double>::infinity();
    // Integer bounds default to the type's range.
    if (IsInteger(x.dtype())) {
      if (!OptIn(ctx, 1)) lo = -std::numeric_limits<double>::infinity();
      if (!OptIn(ctx, 2)) hi = std::numeric_limits<double>::infinity();
    }
    ClipOp op{lo, hi};
    const ir::Node& node = ctx.node();
    RunUnary(ctx, UnaryKind::kNumeric, [&](ir::DType dt, const void* a, void* b, int64_t n) {
      UnaryLoop(node, UnaryKind::kNumeric, op, dt, a, b, n);
    });
  });
}

std::unique_ptr<Kernel> CreateIdentity(const KernelInit&) {
  return MakeKernel([](KernelContext& ctx) {
    const ir::Tensor* x = ctx.input(0);
    if (!x) Fail(ctx.node(), "missing input 0");
    ctx.SetOutput(0, *x);
  });
}

std::unique_ptr<Kernel> CreateDropout(const KernelInit& init) {
  float attr_ratio = AttrF(init, "ratio", 0.5f);
  return MakeKernel([attr_ratio](KernelContext& ctx) {
    const ir::Tensor& x = In(ctx, 0);
    double ratio = attr_ratio;
    if (const ir::Tensor* r = OptIn(ctx, 1)) ratio = ScalarValue(ctx, *r, "Dropout ratio");
    bool training = false;
    if (const ir::Tensor* t = OptIn(ctx, 2)) training = ScalarValue(ctx, *t, "training_mode") != 0;
    if (training && ratio != 0)
      FailUnsupported(ctx.node(), "training-mode Dropout with a nonzero ratio is random");
    ctx.SetOutput(0, x);
    if (ctx.num_outputs() > 1 && ctx.output_requested(1)) {
      ir::Tensor& m = ctx.AllocateOutput(1, ir::DType::kBool, x.shape());
      if (m.numel()) std::memset(m.mutable_raw(), 1, m.nbytes());
    }
  });
}

std::unique_ptr<Kernel> CreateNot(const KernelInit&) {
  return MakeKernel([](KernelContext& ctx) {
    const ir::Tensor& x = In(ctx, 0);
    if (x.dtype() != ir::DType::kBool) Fail(ctx.node(), "Not needs a bool input");
    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kBool, x.shape());
    const uint8_t* px = x.data<uint8_t>();
    uint8_t* py = y.mutable_data<uint8_t>();
    for (uint64_t i = 0; i < x.numel(); ++i) py[i] = px[i] ? 0 : 1;
  });
}

}  // namespace

void RunUnary(KernelContext& ctx, UnaryKind kind,
              const std::function<void(ir::DType, const void*, void*, int64_t)>& typed) {
  const ir::Node& node = ctx.node();
  const ir::Tensor& x = In(ctx, 0);
  ir::DType dt = x.dtype();
  bool is_float = ir::IsFloat(dt);
  bool ok = is_float || (kind != UnaryKind::kFloat && IsSupportedNumeric(dt) &&
                         dt != ir::DType::kBool);
  if (!ok)
    FailUnsupported(node, std::string("dtype ") + ir::DTypeName(dt) + " is not supported");
  NumElements(node, x.shape());
  if (IsHalfLike(dt)) {
    ir::Tensor x32 = CastTensor(node, x, ir::DType::kFloat32);
    ir::Tensor y32(ir::DType::kFloat32, x.shape());
    if (x.numel()) typed(ir::DType::kFloat32, x32.raw(), y32.mutable_raw(), x.numel());
    ir::Tensor back = CastTensor(node, y32, dt);
    ir::Tensor& y = ctx.AllocateOutput(0, dt, x.shape());
    if (y.nbytes()) std::memcpy(y.mutable_raw(), back.raw(), y.nbytes());
    return;
  }
  ir::Tensor& y = ctx.AllocateOutput(0, dt, x.shape());
  const int64_t n = static_cast<int64_t>(x.numel());
  if (n == 0) return;
  const uint8_t* px = static_cast<const uint8_t*>(x.raw());
  uint8_t* py = static_cast<uint8_t*>(y.mutable_raw());
  const int64_t es = ir::DTypeBits(dt) / 8;
  ParallelRange(ctx.pool(), n, kParallelThreshold / 4, [&](int64_t b, int64_t e) {
    typed(dt, px + b * es, py + b * es, e - b);
  });
}

// ---------------------------------------------------------------------------------------

namespace {
std::deque<std::string>& NameStore() {
  static std::deque<std::string> names;
  return names;
}
}  // namespace

const char* KernelName(const std::string& dtype, const std::string& op, const char* isa) {
  std::string lower;
  for (char c : op) {
    if (c >= 'A' && c <= 'Z' && !lower.empty() && lower.back() != '_') lower += '_';
    lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  NameStore().push_back(dtype + "_" + lower + "__" + isa);
  return NameStore().back().c_str();
}

void AddRef(KernelRegistry& r, const char* op, std::unique_ptr<Kernel> (*create)(const KernelInit&),
            const char* domain) {
  r.Add({op, domain, ir::DType::kUndefined, Isa::kScalar, KernelName("any", op, "ref"), create});
}

void RegisterUnaryRef(KernelRegistry& r) {
  using K = UnaryKind;
#define EP_UNARY(OP, KIND, EXPR)                                               \
  AddRef(r, #OP, [](const KernelInit& init) -> std::unique_ptr<Kernel> {       \
    (void)init;                                                                \
    return UnaryKernel(KIND, EXPR);                                            \
  });
  EP_UNARY(Relu, K::kSigned, ReluOp{})
  EP_UNARY(LeakyRelu, K::kFloat, LeakyReluOp{AttrF(init, "alpha", 0.01f)})
  EP_UNARY(Sigmoid, K::kFloat, SigmoidOp{})
  EP_UNARY(HardSigmoid, K::kFloat, (HardSigmoidOp{AttrF(init, "alpha", 0.2f), AttrF(init, "beta", 0.5f)}))
  EP_UNARY(HardSwish, K::kFloat, HardSwishOp{})
  EP_UNARY(Tanh, K::kFloat, TanhOp{})
  EP_UNARY(Erf, K::kFloat, ErfOp{})
  EP_UNARY(Sqrt, K::kFloat, SqrtOp{})
  EP_UNARY(Exp, K::kFloat, ExpOp{})
  EP_UNARY(Log, K::kFloat, LogOp{})
  EP_UNARY(Floor, K::kFloat, FloorOp{})
  EP_UNARY(Ceil, K::kFloat, CeilOp{})
  EP_UNARY(Round, K::kFloat, RoundOp{})
  EP_UNARY(Sin, K::kFloat, SinOp{})
  EP_UNARY(Cos, K::kFloat, CosOp{})
  EP_UNARY(Tan, K::kFloat, TanOp{})
  EP_UNARY(Asin, K::kFloat, AsinOp{})
  EP_UNARY(Acos, K::kFloat, AcosOp{})
  EP_UNARY(Atan, K::kFloat, AtanOp{})
  EP_UNARY(Sinh, K::kFloat, SinhOp{})
  EP_UNARY(Cosh, K::kFloat, CoshOp{})
  EP_UNARY(Asinh, K::kFloat, AsinhOp{})
  EP_UNARY(Acosh, K::kFloat, AcoshOp{})
  EP_UNARY(Atanh, K::kFloat, AtanhOp{})
  EP_UNARY(Reciprocal, K::kFloat, ReciprocalOp{})
  EP_UNARY(Softplus, K::kFloat, SoftplusOp{})
  EP_UNARY(Softsign, K::kFloat, SoftsignOp{})
  EP_UNARY(Neg, K::kSigned, NegOp{})
  EP_UNARY(Abs, K::kNumeric, AbsOp{})
  EP_UNARY(Sign, K::kNumeric, SignOp{})
  EP_UNARY(Elu, K::kFloat, EluOp{AttrF(init, "alpha", 1.0f)})
  EP_UNARY(Selu, K::kFloat,
           (SeluOp{AttrF(init, "alpha", 1.67326319217681884765625f),
                   AttrF(init, "gamma", 1.05070102214813232421875f)}))
  EP_UNARY(Celu, K::kFloat, CeluOp{AttrF(init, "alpha", 1.0f)})
  EP_UNARY(ThresholdedRelu, K::kFloat, ThresholdedReluOp{AttrF(init, "alpha", 1.0f)})
  EP_UNARY(Mish, K::kFloat, MishOp{})
  EP_UNARY(Gelu, K::kFloat, GeluOp{init.node.attr_string("approximate", "none") == "tanh"})
#undef EP_UNARY
  // com.microsoft's Gelu is the exact (erf) form; FastGelu is the tanh form with an
  // optional bias added first.
  r.Add({"Gelu", "com.microsoft", ir::DType::kUndefined, Isa::kScalar, "any_ms_gelu__ref",
         [](const KernelInit&) { return UnaryKernel(UnaryKind::kFloat, GeluOp{false}); }});
  r.Add({"FastGelu", "com.microsoft", ir::DType::kUndefined, Isa::kScalar, "any_ms_fast_gelu__ref",
         [](const KernelInit& init) {
           RefuseFastGeluBias(init);
           return UnaryKernel(UnaryKind::kFloat, GeluOp{true});
         }});
  AddRef(r, "Clip", CreateClip);
  AddRef(r, "Identity", CreateIdentity);
  AddRef(r, "Dropout", CreateDropout);
  AddRef(r, "Not", CreateNot);
  AddRef(r, "IsNaN", [](const KernelInit&) {
    return MakeKernel([](KernelContext& ctx) {
      RunPredicate(ctx, [](double v) { return std::isnan(v); });
    });
  });
  AddRef(r, "IsInf", [](const KernelInit& init) {
    bool neg = init.node.attr_int("detect_negative", 1) != 0;
    bool pos = init.node.attr_int("detect_positive", 1) != 0;
    return MakeKernel([neg, pos](KernelContext& ctx) {
      RunPredicate(ctx, [neg, pos](double v) {
        return std::isinf(v) && ((v > 0 && pos) || (v < 0 && neg));
      });
    });
  });
}

}  // namespace kernels

void RegisterElementwiseKernels(KernelRegistry& r) {
  kernels::RegisterUnaryRef(r);
  kernels::RegisterBinaryRef(r);
#if defined(__x86_64__)
  kernels::RegisterElementwiseAvx2Kernels(r);
  kernels::RegisterElementwiseAvx512Kernels(r);
#endif
}

}  // namespace edgepress::runtime
