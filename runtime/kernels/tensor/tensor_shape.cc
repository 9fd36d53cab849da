// Reference kernels of the ops that reshape, create or retype tensors: Reshape,
// Flatten, Squeeze, Unsqueeze (zero-copy views of the input buffer), Shape, Size, Cast,
// CastLike, ConstantOfShape, Range, Constant, EyeLike. Output shapes come from the
// actual input values at run time (dynamic shapes), validated before any allocation.
#include <cmath>
#include <cstring>
#include <limits>

#include "ir/constant_value.h"
#include "runtime/kernels/elementwise/elementwise_common.h"
#include "runtime/kernels/elementwise/elementwise_impl.h"
#include "runtime/kernels/elementwise/half_convert.h"
#include "runtime/kernels/tensor/tensor_ops.h"

namespace edgepress::runtime {
namespace kernels {

// ONNX TensorProto.DataType codes (Cast's `to`, EyeLike's `dtype`, ...).
ir::DType DTypeFromOnnxCode(const ir::Node& node, int64_t code) {
  switch (code) {
    case 1: return ir::DType::kFloat32;
    case 2: return ir::DType::kUInt8;
    case 3: return ir::DType::kInt8;
    case 4: return ir::DType::kUInt16;
    case 5: return ir::DType::kInt16;
    case 6: return ir::DType::kInt32;
    case 7: return ir::DType::kInt64;
    case 9: return ir::DType::kBool;
    case 10: return ir::DType::kFloat16;
    case 11: return ir::DType::kFloat64;
    case 12: return ir::DType::kUInt32;
    case 13: return ir::DType::kUInt64;
    case 16: return ir::DType::kBFloat16;
    default: FailUnsupported(node, "unsupported ONNX data type code " + std::to_string(code));
  }
}

// A view of `x` with a new shape (same element count); shares the buffer.
ir::Tensor ViewAs(KernelContext& ctx, const ir::Tensor& x, std::vector<int64_t> shape) {
  int64_t n = NumElements(ctx.node(), shape);
  if (static_cast<uint64_t>(n) != x.numel())
    Fail(ctx.node(), "cannot reshape " + ShapeStr(x.shape()) + " to " + ShapeStr(shape));
  if (n == 0 || !x.buffer()) return ir::Tensor(x.dtype(), std::move(shape));
  return ir::Tensor(x.dtype(), std::move(shape), x.buffer(), x.offset());
}

namespace {

std::unique_ptr<Kernel> CreateReshape(const KernelInit& init) {
  bool allowzero = init.node.attr_int("allowzero", 0) != 0;
  return MakeKernel([allowzero](KernelContext& ctx) {
    const ir::Tensor& x = In(ctx, 0);
    std::vector<int64_t> spec = IntValues(ctx, In(ctx, 1), "Reshape shape");
    std::vector<int64_t> shape(spec.size());
    int infer = -1;
    uint64_t known = 1;
    for (size_t i = 0; i < spec.size(); ++i) {
      int64_t d = spec[i];
      if (d == 0 && !allowzero) {
        if (i >= x.shape().size())
          Fail(ctx.node(), "shape entry " + std::to_string(i) + " copies a missing input dim");
        d = x.shape()[i];
      }
      if (d == -1) {
        if (infer >= 0) Fail(ctx.node(), "more than one -1 in shape " + ShapeStr(spec));
        infer = static_cast<int>(i);
        continue;
      }
      if (d < 0) Fail(ctx.node(), "invalid shape " + ShapeStr(spec));
      shape[i] = d;
      if (MulOverflows(known, static_cast<uint64_t>(d), &known))
        Fail(ctx.node(), "shape " + ShapeStr(spec) + " overflows");
    }
    if (infer >= 0) {
      if (known == 0 || x.numel() % known != 0)
        Fail(ctx.node(), "cannot infer -1 reshaping " + ShapeStr(x.shape()) + " to " +
                             ShapeStr(spec));
      shape[infer] = static_cast<int64_t>(x.numel() / known);
    }
    ctx.SetOutput(0, ViewAs(ctx, x, shape));
  });
}

std::unique_ptr<Kernel> CreateFlatten(const KernelInit& init) {
  int64_t axis = init.node.attr_int("axis", 1);
  return MakeKernel([axis](KernelContext& ctx) {
    const ir::Tensor& x = In(ctx, 0);
    int64_t r = x.rank();
    int64_t a = axis < 0 ? axis + r : axis;
    if (a < 0 || a > r) Fail(ctx.node(), "axis " + std::to_string(axis) + " out of range");
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < r; ++i) (i < a ? outer : inner) *= x.shape()[i];
    ctx.SetOutput(0, ViewAs(ctx, x, {outer, inner}));
  });
}

std::vector<int64_t> AxesFrom(KernelContext& ctx, const std::vector<int64_t>& attr_axes,
                              bool has_attr) {
  if (const ir::Tensor* t = OptIn(ctx, 1)) return IntValues(ctx, *t, "axes");
  return has_attr ? attr_axes : std::vector<int64_t>{};
}

std::unique_ptr<Kernel> CreateSqueeze(const KernelInit& init) {
  bool has = init.node.has_attr("axes");
  std::vector<int64_t> attr_axes = init.node.attr_ints("axes");
  return MakeKernel([has, attr_axes](KernelContext& ctx) {
    const ir::Tensor& x = In(ctx, 0);
    std::vector<int64_t> axes = AxesFrom(ctx, attr_axes, has);
    std::vector<bool> drop(x.rank(), false);
    if (axes.empty() && !OptIn(ctx, 1) && !has) {
      for (int i = 0; i < x.rank(); ++i) drop[i] = x.shape()[i] == 1;
    } else {
      for (int64_t a : NormAxes(ctx.node(), axes, x.rank())) {
        if (x.shape()[a] != 1)
          Fail(ctx.node(), "cannot squeeze axis " + std::to_string(a) + " of size " +
                               std::to_string(x.shape()[a]));
        drop[a] = true;
      }
    }
    std::vector<int64_t> shape;
    for (int i = 0; i < x.rank(); ++i)
      if (!drop[i]) shape.push_back(x.shape()[i]);
    ctx.SetOutput(0, ViewAs(ctx, x, shape));
  });
}

std::unique_ptr<Kernel> CreateUnsqueeze(const KernelInit& init) {
  bool has = init.node.has_attr("axes");
  std::vector<int64_t> attr_axes = init.node.attr_ints("axes");
  return MakeKernel([has, attr_axes](KernelContext& ctx) {
    const ir::Tensor& x = In(ctx, 0);
    std::vector<int64_t> axes = AxesFrom(ctx, attr_axes, has);
    int64_t out_rank = x.rank() + static_cast<int64_t>(axes.size());
    std::vector<int64_t> norm = NormAxes(ctx.node(), axes, out_rank);
    std::vector<bool> ins(out_rank, false);
    for (int64_t a : norm) ins[a] = true;
    std::vector<int64_t> shape;
    size_t j = 0;
    for (int64_t i = 0; i < out_rank; ++i) shape.push_back(ins[i] ? 1 : x.shape()[j++]);
    ctx.SetOutput(0, ViewAs(ctx, x, shape));
  });
}

std::unique_ptr<Kernel> CreateShape(const KernelInit& init) {
  int64_t start = init.node.attr_int("start", 0);
  bool has_end = init.node.has_attr("end");
  int64_t end = init.node.attr_int("end", 0);
  return MakeKernel([start, has_end, end](KernelContext& ctx) {
    const ir::Tensor* x = ctx.input(0);
    if (!x || x->empty()) Fail(ctx.node(), "missing input 0");
    int64_t r = x->rank();
    auto clamp = [r](int64_t v) {
      if (v < 0) v += r;
      return v < 0 ? 0 : (v > r ? r : v);
    };
    int64_t s = clamp(start), e = has_end ? clamp(end) : r;
    std::vector<int64_t> dims;
    for (int64_t i = s; i < e; ++i) dims.push_back(x->shape()[i]);
    ir::Tensor& out = ctx.AllocateOutput(0, ir::DType::kInt64, {static_cast<int64_t>(dims.size())});
    if (!dims.empty()) std::memcpy(out.mutable_raw(), dims.data(), dims.size() * 8);
  });
}

std::unique_ptr<Kernel> CreateSize(const KernelInit&) {
  return MakeKernel([](KernelContext& ctx) {
    const ir::Tensor* x = ctx.input(0);
    if (!x || x->empty()) Fail(ctx.node(), "missing input 0");
    ir::Tensor& out = ctx.AllocateOutput(0, ir::DType::kInt64, {});
    *out.mutable_data<int64_t>() = static_cast<int64_t>(x->numel());
  });
}

void CastInto(KernelContext& ctx, const ir::Tensor& x, ir::DType to) {
  if (to == ir::DType::kFloat32 && IsHalfLike(x.dtype())) {
    // Half-precision weights widened on every run: straight into the output, in parallel.
    ir::Tensor& out = ctx.AllocateOutput(0, to, x.shape());
    const uint16_t* src = static_cast<const uint16_t*>(x.raw());
    float* dst = out.mutable_data<float>();
    const bool fp16 = x.dtype() == ir::DType::kFloat16;
    const Isa isa = HalfConvertIsa();
    ParallelRange(ctx.pool(), static_cast<int64_t>(x.numel()), kParallelThreshold * 4,
                  [&](int64_t lo, int64_t hi) {
                    if (fp16)
                      HalfToFloatArray(isa, src + lo, dst + lo, hi - lo);
                    else
                      BFloat16ToFloatArray(isa, src + lo, dst + lo, hi - lo);
                  });
    return;
  }
  ir::Tensor y = CastTensor(ctx.node(), x, to);
  ir::Tensor& out = ctx.AllocateOutput(0, to, x.shape());
  if (out.nbytes()) std::memcpy(out.mutable_raw(), y.raw(), out.nbytes());
}

std::unique_ptr<Kernel> CreateCast(const KernelInit& init) {
  ir::DType to = DTypeFromOnnxCode(init.node, init.node.attr_int("to", 0));
  return MakeKernel([to](KernelContext& ctx) { CastInto(ctx, In(ctx, 0), to); });
}

std::unique_ptr<Kernel> CreateCastLike(const KernelInit&) {
  return MakeKernel([](KernelContext& ctx) { CastInto(ctx, In(ctx, 0), In(ctx, 1).dtype()); });
}

std::unique_ptr<Kernel> CreateConstantOfShape(const KernelInit& init) {
  const ir::Attribute* a = init.node.attr("value");
  ir::Tensor value = ir::Tensor::FromVector<float>(ir::DType::kFloat32, {1}, {0.0f});
  if (a) {
    if (a->kind != ir::Attribute::Kind::kTensor || a->t.numel() != 1 ||
        a->t.dtype() == ir::DType::kString)
      Fail(init.node, "attribute 'value' must be a one-element numeric tensor");
    value = a->t;
  }
  return MakeKernel([value](KernelContext& ctx) {
    std::vector<int64_t> shape = IntValues(ctx, In(ctx, 0), "ConstantOfShape input");
    NumElements(ctx.node(), shape);
    ir::Tensor& out = ctx.AllocateOutput(0, value.dtype(), shape);
    const int64_t es = ir::DTypeBits(value.dtype()) / 8;
    uint8_t* p = static_cast<uint8_t*>(out.mutable_raw());
    bool zero = true;
    for (int64_t i = 0; i < es; ++i) zero = zero && static_cast<const uint8_t*>(value.raw())[i] == 0;
    if (zero || out.numel() == 0) {
      if (out.nbytes()) std::memset(p, 0, out.nbytes());
      return;
    }
    for (uint64_t i = 0; i < out.numel(); ++i) std::memcpy(p + i * es, value.raw(), es);
  });
}

std::unique_ptr<Kernel> CreateRange(const KernelInit&) {
  return MakeKernel([](KernelContext& ctx) {
    const ir::Tensor& ts = In(ctx, 0);
    const ir::Tensor& tl = In(ctx, 1);
    const ir::Tensor& td = In(ctx, 2);
    if (ts.dtype() != tl.dtype() || ts.dtype() != td.dtype())
      Fail(ctx.node(), "start, limit and delta must share a dtype");
    ir::DType dt = ts.dtype();
    double start = ScalarValue(ctx, ts, "start"), limit = ScalarValue(ctx, tl, "limit"),
           delta = ScalarValue(ctx, td, "delta");
    if (delta == 0 || !std::isfinite(delta) || !std::isfinite(start) || !std::isfinite(limit))
      Fail(ctx.node(), "delta must be nonzero and all bounds finite");
    double count = std::ceil((limit - start) / delta);
    if (!(count > 0)) count = 0;
    if (count > 1e10) Fail(ctx.node(), "range of " + std::to_string(count) + " elements is too large");
    int64_t n = static_cast<int64_t>(count);
    ir::Tensor& out = ctx.AllocateOutput(0, dt, {n});
    if (n == 0) return;
    if (dt == ir::DType::kInt64 || dt == ir::DType::kInt32 || dt == ir::DType::kInt16) {
      std::vector<int64_t> s = ts.ToInt64(), d = td.ToInt64();
      DispatchNumeric(ctx.node(), dt, [&](auto tag) {
        using T = decltype(tag);
        T* p = out.mutable_data<T>();
        for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(static_cast<uint64_t>(s[0]) +
                                      static_cast<uint64_t>(i) * static_cast<uint64_t>(d[0]));
      });
      return;
    }
    if (dt == ir::DType::kFloat32) {
      float* p = out.mutable_data<float>();
      float d = static_cast<float>(delta);
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(start) + static_cast<float>(i) * d;
      return;
    }
    if (dt == ir::DType::kFloat64) {
      double* p = out.mutable_data<double>();
      for (int64_t i = 0; i < n; ++i) p[i] = start + static_cast<double>(i) * delta;
      return;
    }
    FailUnsupported(ctx.node(), std::string("dtype ") + ir::DTypeName(dt));
  });
}

std::unique_ptr<Kernel> CreateConstant(const KernelInit& init) {
  const ir::Node& n = init.node;
  const ir::Attribute* tensor_attr = n.attr("value");
  if (tensor_attr && tensor_attr->kind != ir::Attribute::Kind::kTensor)
    Fail(n, "attribute 'value' is not a tensor");
  std::optional<ir::Tensor> v = ir::ConstantAttributeValue(n);
  if (!v) Fail(n, "has no value attribute (sparse_value is not supported)");
  // A string tensor in 'value' passes (string-typed ops may use it); value_string(s) never did.
  if (!tensor_attr && v->dtype() == ir::DType::kString)
    FailUnsupported(n, "string constants are not supported by the runtime");
  ir::Tensor value = *std::move(v);
  return MakeKernel([value](KernelContext& ctx) { ctx.SetOutput(0, value); });
}

std::unique_ptr<Kernel> CreateEyeLike(const KernelInit& init) {
  int64_t k = init.node.attr_int("k", 0);
  bool has_dtype = init.node.has_attr("dtype");
  ir::DType dtype = has_dtype ? DTypeFromOnnxCode(init.node, init.node.attr_int("dtype", 1))
                              : ir::DType::kUndefined;
  return MakeKernel([k, dtype](KernelContext& ctx) {
    const ir::Tensor& x = In(ctx, 0);
    if (x.rank() != 2) Fail(ctx.node(), "input must be 2-D, got " + ShapeStr(x.shape()));
    ir::DType dt = dtype == ir::DType::kUndefined ? x.dtype() : dtype;
    int64_t rows = x.shape()[0], cols = x.shape()[1];
    ir::Tensor f(ir::DType::kFloat64, x.shape());
    double* p = f.mutable_data<double>();
    for (int64_t i = 0; i < rows; ++i) {
      int64_t j = i + k;
      if (j >= 0 && j < cols) p[i * cols + j] = 1;
    }
    CastInto(ctx, f, dt);
  });
}

}  // namespace

void RegisterTensorShapeKernels(KernelRegistry& r) {
  AddRef(r, "Reshape", CreateReshape);
  AddRef(r, "Flatten", CreateFlatten);
  AddRef(r, "Squeeze", CreateSqueeze);
  AddRef(r, "Unsqueeze", CreateUnsqueeze);
  AddRef(r, "Shape", CreateShape);
  AddRef(r, "Size", CreateSize);
  AddRef(r, "Cast", CreateCast);
  AddRef(r, "CastLike", CreateCastLike);
  AddRef(r, "ConstantOfShape", CreateConstantOfShape);
  AddRef(r, "Range", CreateRange);
  AddRef(r, "Constant", CreateConstant);
  AddRef(r, "EyeLike", CreateEyeLike);
}

}  // namespace kernels

void RegisterTensorKernels(KernelRegistry& r) {
  kernels::RegisterTensorShapeKernels(r);
  kernels::RegisterTensorMoveKernels(r);
  kernels::RegisterTensorExpandKernels(r);
  kernels::RegisterTensorIndexKernels(r);
  kernels::RegisterTensorSearchKernels(r);
}

}  // namespace edgepress::runtime
