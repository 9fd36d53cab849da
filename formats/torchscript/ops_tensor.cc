// Converters for arithmetic, comparisons, shapes and sizes, indexing, reductions, tensor
// creation and the prim list/tuple plumbing. Python scalars computed at run time (sizes)
// are rank-0 tensors, so `x.view(x.size(0), -1)` becomes Shape -> Gather -> Unsqueeze ->
// Concat -> Reshape, as the ONNX exporter writes it.
#include <limits>

#include "formats/torchscript/converter.h"

namespace edgepress::formats::ts {

namespace {

using ir::Attribute;
using ir::DType;
using ir::Value;

bool IsNumber(const Slot& s) {
  return (s.kind == Slot::Kind::kTensor && s.scalar) ||
         (s.is_const() && (s.iv.isDouble() || s.iv.isInt() || s.iv.isBool()));
}

DType SlotDType(const Slot& s) {
  if (s.kind == Slot::Kind::kTensor) return Ctx::DTypeOf(s.value);
  if (s.is_const() && s.iv.isDouble()) return DType::kFloat32;
  if (s.is_const() && s.iv.isInt()) return DType::kInt64;
  if (s.is_const() && s.iv.isBool()) return DType::kBool;
  if (s.is_const() && s.iv.isTensor()) return Ctx::FromScalarType(static_cast<int64_t>(s.iv.toTensor().scalar_type()));
  return DType::kUndefined;
}

// Torch's promotion for what models do: a Python number takes the tensor's dtype unless
// it is a float meeting an integer tensor; two tensors meet at the floating one.
DType Promote(const Slot& a, const Slot& b) {
  DType da = SlotDType(a), db = SlotDType(b);
  bool na = IsNumber(a), nb = IsNumber(b);
  if (na == nb) {
    if (ir::IsFloat(da) != ir::IsFloat(db)) return ir::IsFloat(da) ? da : db;
    if (na && (da == DType::kBool) != (db == DType::kBool)) return DType::kInt64;
    return da;
  }
  DType tensor = na ? db : da, number = na ? da : db;
  if (!ir::IsFloat(tensor) && ir::IsFloat(number)) return DType::kFloat32;
  return tensor;
}

Value* As(Ctx& c, size_t i, DType dt) {
  Value* v = c.T(i, dt);
  return Ctx::DTypeOf(v) == dt ? v : c.Cast(v, dt);
}

void OutMaybeScalar(Ctx& c, Value* v, bool scalar) { c.Out(0, Slot::Tensor(v, scalar)); }

bool BothNumbers(Ctx& c) { return IsNumber(c.In(0)) && IsNumber(c.In(1)); }

void Binary(Ctx& c, const char* op, bool true_div = false) {
  DType dt = Promote(c.In(0), c.In(1));
  if (true_div && !ir::IsFloat(dt)) dt = DType::kFloat32;
  Value* a = As(c, 0, dt);
  Value* b = As(c, 1, dt);
  // add/sub(a, b, alpha)
  if (c.num_inputs() > 2 && c.kind() != "aten::div" && c.IsConst(2) && c.In(2).iv.isScalar() &&
      c.Double(2) != 1) {
    Value* alpha = c.T(2, dt);
    b = c.Op("Mul", {b, alpha});
  }
  OutMaybeScalar(c, c.Op(op, {a, b}), BothNumbers(c));
}

void Div(Ctx& c) {
  std::string mode;
  if (c.num_inputs() > 2 && !c.IsNone(2)) mode = c.Str(2);
  if (mode.empty()) return Binary(c, "Div", true);
  DType dt = Promote(c.In(0), c.In(1));
  Value* q = c.Op("Div", {As(c, 0, dt), As(c, 1, dt)});
  // Integer Div truncates; sizes are non-negative, where floor and trunc agree.
  if (ir::IsFloat(dt)) {
    if (mode == "floor") q = c.Op("Floor", {q});
    else q = c.Op("Mul", {c.Op("Sign", {q}), c.Op("Floor", {c.Op("Abs", {q})})});
  }
  OutMaybeScalar(c, q, BothNumbers(c));
}

void FloorDiv(Ctx& c) {
  DType dt = Promote(c.In(0), c.In(1));
  Value* q = c.Op("Div", {As(c, 0, dt), As(c, 1, dt)});
  if (ir::IsFloat(dt)) q = c.Op("Floor", {q});
  OutMaybeScalar(c, q, BothNumbers(c));
}

void Remainder(Ctx& c) {
  DType dt = Promote(c.In(0), c.In(1));
  Value* a = As(c, 0, dt);
  Value* b = As(c, 1, dt);
  Value* r;
  if (ir::IsFloat(dt))  // Python's sign-of-divisor remainder: a - floor(a / b) * b
    r = c.Op("Sub", {a, c.Op("Mul", {c.Op("Floor", {c.Op("Div", {a, b})}), b})});
  else
    r = c.Op("Mod", {a, b}, {Attribute::Int("fmod", 0)});
  OutMaybeScalar(c, r, BothNumbers(c));
}

void Rsub(Ctx& c) {  // other - alpha * self
  DType dt = Promote(c.In(0), c.In(1));
  Value* a = As(c, 0, dt);
  if (c.num_inputs() > 2 && c.Double(2) != 1) a = c.Op("Mul", {a, c.T(2, dt)});
  OutMaybeScalar(c, c.Op("Sub", {As(c, 1, dt), a}), BothNumbers(c));
}

void Pow(Ctx& c) {
  DType dt = Promote(c.In(0), c.In(1));
  OutMaybeScalar(c, c.Op("Pow", {As(c, 0, dt), As(c, 1, dt)}), BothNumbers(c));
}

void Compare(Ctx& c, const char* op, bool negate = false) {
  DType dt = Promote(c.In(0), c.In(1));
  Value* r = c.Op(op, {As(c, 0, dt), As(c, 1, dt)}, {}, DType::kBool);
  if (negate) r = c.Op("Not", {r}, {}, DType::kBool);
  OutMaybeScalar(c, r, BothNumbers(c));
}

void Logical(Ctx& c, const char* op) {
  OutMaybeScalar(c, c.Op(op, {As(c, 0, DType::kBool), As(c, 1, DType::kBool)}, {}, DType::kBool),
                 BothNumbers(c));
}

void ToScalar(Ctx& c, DType dt) { c.Out(0, Slot::Tensor(As(c, 0, dt), true)); }

// --- sizes ----------------------------------------------------------------------------

Value* ShapeOf(Ctx& c, Value* x) { return c.Op("Shape", {x}, {}, DType::kInt64); }

void Size(Ctx& c) {
  Value* x = c.T(0);
  std::optional<int> rank = c.TryRank(x);
  if (c.num_inputs() == 1) {
    // All dims known: a constant list, so view/reshape sizes fold at import.
    if (rank)
      if (auto dims = ir::ConcreteDims(*x->type.shape)) return c.Out(0, Slot::Const(c10::IValue(*dims)));
    Slot s = Slot::Tensor(ShapeOf(c, x));
    s.int_list = true;
    return c.Out(0, s);
  }
  int64_t dim = c.Int(1);
  if (rank)
    if (auto d = c.Dim(x, static_cast<int>(c.Axis(dim, *rank)))) return c.Out(0, Slot::Const(c10::IValue(*d)));
  c.OutScalar(c.Op("Gather", {ShapeOf(c, x), c.I64(dim)}, {Attribute::Int("axis", 0)}, DType::kInt64));
}

void Numel(Ctx& c) {
  Value* x = c.T(0);
  if (c.TryRank(x))
    if (auto dims = ir::ConcreteDims(*x->type.shape)) {
      int64_t n = 1;
      for (int64_t d : *dims) n *= d;
      return c.Out(0, Slot::Const(c10::IValue(n)));
    }
  c.OutScalar(c.Op("Size", {x}, {}, DType::kInt64));
}

void Len(Ctx& c) {
  const Slot& s = c.In(0);
  if (s.kind == Slot::Kind::kList) return c.Out(0, Slot::Const(c10::IValue(static_cast<int64_t>(s.items.size()))));
  Value* v = c.T(0);
  // A size list whose length is known (sizes of a tensor of known rank).
  if (c.TryRank(v) == 1)
    if (std::optional<int64_t> n = c.Dim(v, 0)) return c.Out(0, Slot::Const(c10::IValue(*n)));
  if (s.int_list) return c.OutScalar(c.Op("Size", {v}, {}, DType::kInt64));
  c.OutScalar(c.Op("Gather", {ShapeOf(c, v), c.I64(0)}, {Attribute::Int("axis", 0)}, DType::kInt64));
}

void GetItem(Ctx& c) {  // list[i]
  const Slot& s = c.In(0);
  if (s.kind == Slot::Kind::kList && c.IsConst(1)) {
    int64_t i = c.Int(1), n = static_cast<int64_t>(s.items.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) c.Fail("list index out of range");
    return c.Out(0, s.items[static_cast<size_t>(i)]);
  }
  if (s.kind == Slot::Kind::kTensor && s.int_list)
    return c.OutScalar(c.Op("Gather", {s.value, c.T(1)}, {Attribute::Int("axis", 0)}, DType::kInt64));
  c.Fail("indexing this list at run time is not supported");
}

void ListUnpack(Ctx& c) {
  const Slot& s = c.In(0);
  size_t n = c.node().outputs().size();
  if (s.kind == Slot::Kind::kList || s.kind == Slot::Kind::kTuple) {
    if (s.items.size() != n) c.Fail("unpacking " + std::to_string(s.items.size()) + " items into " + std::to_string(n));
    for (size_t i = 0; i < n; ++i) c.Out(i, s.items[i]);
    return;
  }
  if (s.kind == Slot::Kind::kTensor && s.int_list) {
    for (size_t i = 0; i < n; ++i)
      c.Out(i, Slot::Tensor(c.Op("Gather", {s.value, c.I64(static_cast<int64_t>(i))},
                                 {Attribute::Int("axis", 0)}, DType::kInt64), true));
    return;
  }
  if (s.is_const() && (s.iv.isList() || s.iv.isTuple())) {
    auto items = s.iv.isTuple() ? s.iv.toTupleRef().elements().vec() : s.iv.toListRef().vec();
    if (items.size() != n) c.Fail("unpacking a constant of the wrong length");
    for (size_t i = 0; i < n; ++i) c.Out(i, Slot::Const(items[i]));
    return;
  }
  c.Fail("cannot unpack this value");
}

void ListConstruct(Ctx& c, Slot::Kind kind) {
  std::vector<Slot> items;
  for (size_t i = 0; i < c.num_inputs(); ++i) items.push_back(c.In(i));
  c.Out(0, Slot::List(std::move(items), kind));
}

void TupleIndex(Ctx& c) {
  const Slot& s = c.In(0);
  int64_t i = c.Int(1);
  if ((s.kind == Slot::Kind::kTuple || s.kind == Slot::Kind::kList) && i >= 0 &&
      i < static_cast<int64_t>(s.items.size()))
    return c.Out(0, s.items[static_cast<size_t>(i)]);
  c.Fail("tuple index out of range");
}

void MinMaxScalar(Ctx& c, const char* op) {
  if (c.num_inputs() == 2) {
    DType dt = Promote(c.In(0), c.In(1));
    return OutMaybeScalar(c, c.Op(op, {As(c, 0, dt), As(c, 1, dt)}), BothNumbers(c));
  }
  c.Fail("min/max of a list computed at run time");
}

// --- shape ops --------------------------------------------------------------------------

void Reshape(Ctx& c) { c.Out(c.Op("Reshape", {c.T(0), c.IntList(1)})); }

void Flatten(Ctx& c) {
  Value* x = c.T(0);
  int64_t start = c.Int(1), end = c.Int(2);
  if (start == 1 && end == -1) return c.Out(c.Op("Flatten", {x}, {Attribute::Int("axis", 1)}));
  int r = c.Rank(x);
  if (r == 0) return c.Out(c.Op("Reshape", {x, c.I64s({1})}));
  start = c.Axis(start, r);
  end = c.Axis(end, r);
  std::vector<Value*> parts;
  Value* shape = ShapeOf(c, x);
  if (start > 0) parts.push_back(c.Op("Slice", {shape, c.I64s({0}), c.I64s({start})}));
  parts.push_back(c.I64s({-1}));
  if (end + 1 < r) parts.push_back(c.Op("Slice", {shape, c.I64s({end + 1}), c.I64s({r})}));
  Value* target = parts.size() == 1 ? parts[0] : c.Op("Concat", parts, {Attribute::Int("axis", 0)});
  c.Out(c.Op("Reshape", {x, target}));
}

void Transpose(Ctx& c) {
  Value* x = c.T(0);
  int r = c.Rank(x);
  std::vector<int64_t> perm(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i) perm[i] = i;
  if (c.kind() == "aten::t" || c.kind() == "aten::numpy_T") {
    std::reverse(perm.begin(), perm.end());
  } else {
    std::swap(perm[c.Axis(c.Int(1), r)], perm[c.Axis(c.Int(2), r)]);
  }
  c.Out(c.Op("Transpose", {x}, {Attribute::Ints("perm", perm)}));
}

void Permute(Ctx& c) {
  std::vector<int64_t> dims = c.Ints(1);
  for (int64_t& d : dims) d = c.Axis(d, static_cast<int>(dims.size()));
  c.Out(c.Op("Transpose", {c.T(0)}, {Attribute::Ints("perm", dims)}));
}

void Unsqueeze(Ctx& c) { c.Out(c.Op("Unsqueeze", {c.T(0), c.I64s({c.Int(1)})})); }

void Squeeze(Ctx& c) {
  Value* x = c.T(0);
  if (c.num_inputs() == 1) return c.Out(c.Op("Squeeze", {x}));
  std::vector<int64_t> dims = c.Ints(1);
  std::vector<int64_t> keep;
  // Torch leaves a dim that is not 1 alone; ONNX would reject it.
  for (int64_t d : dims) {
    std::optional<int64_t> size;
    if (x->type.shape) size = c.Dim(x, static_cast<int>(d));
    if (!size || *size == 1) keep.push_back(d);
  }
  if (keep.empty()) return c.Out(0, c.In(0));
  c.Out(c.Op("Squeeze", {x, c.I64s(keep)}));
}

void Expand(Ctx& c) {
  const Slot& s = c.In(1);
  Value* shape;
  if (s.kind == Slot::Kind::kList) {
    // Torch's -1 keeps a dim; ONNX Expand broadcasts, so 1 does the same.
    Slot fixed = s;
    for (Slot& item : fixed.items)
      if (item.is_const() && item.iv.isInt() && item.iv.toInt() == -1) item.iv = c10::IValue(int64_t{1});
    c.slots_[c.node().inputs()[1]] = fixed;
    shape = c.IntList(1);
    c.slots_[c.node().inputs()[1]] = s;
  } else if (s.is_const()) {
    std::vector<int64_t> v = c.Ints(1);
    for (int64_t& d : v) if (d == -1) d = 1;
    shape = c.I64s(v);
  } else {
    shape = c.IntList(1);
  }
  c.Out(c.Op("Expand", {c.T(0), shape}));
}

std::vector<Value*> TensorList(Ctx& c, size_t i) {
  const Slot& s = c.In(i);
  std::vector<Value*> out;
  if (s.kind == Slot::Kind::kList) {
    for (size_t k = 0; k < s.items.size(); ++k) {
      const Slot& item = s.items[k];
      if (item.kind == Slot::Kind::kTensor) out.push_back(item.value);
      else if (item.is_const() && item.iv.isTensor()) out.push_back(c.Const(c.FromTorch(item.iv.toTensor()), "tensor"));
      else c.Fail("list element " + std::to_string(k) + " is not a tensor");
    }
  } else if (s.is_const() && s.iv.isTensorList()) {
    for (const at::Tensor& t : s.iv.toTensorVector()) out.push_back(c.Const(c.FromTorch(t), "tensor"));
  } else {
    c.Fail("expected a list of tensors");
  }
  return out;
}

void Cat(Ctx& c) {
  std::vector<Value*> parts = TensorList(c, 0);
  c.Out(parts.size() == 1 ? parts[0] : c.Op("Concat", parts, {Attribute::Int("axis", c.Int(1))}));
}

void Stack(Ctx& c) {
  std::vector<Value*> parts = TensorList(c, 0);
  int64_t dim = c.Int(1);
  for (Value*& p : parts) p = c.Op("Unsqueeze", {p, c.I64s({dim})});
  c.Out(parts.size() == 1 ? parts[0] : c.Op("Concat", parts, {Attribute::Int("axis", dim)}));
}

// Splits into known sizes along a dim whose size must be known.
void SplitSizes(Ctx& c, Value* x, int64_t dim, const std::vector<int64_t>& sizes, bool squeeze = false) {
  std::vector<Value*> outs = c.OpN("Split", {x, c.I64s(sizes)}, static_cast<int>(sizes.size()),
                                   {Attribute::Int("axis", dim)});
  std::vector<Slot> items;
  for (Value* v : outs) items.push_back(Slot::Tensor(squeeze ? c.Op("Squeeze", {v, c.I64s({dim})}) : v));
  c.Out(0, Slot::List(std::move(items)));
}

int64_t KnownDim(Ctx& c, Value* x, int64_t dim) {
  std::optional<int64_t> d = c.Dim(x, static_cast<int>(dim));
  if (!d)
    c.Fail("needs the size of dim " + std::to_string(dim) +
           ", which is not known at import (give the model's input shapes)");
  return *d;
}

void Chunk(Ctx& c) {  // (x, chunks, dim)
  Value* x = c.T(0);
  int64_t chunks = c.Int(1), dim = c.Int(2);
  int64_t n = KnownDim(c, x, dim);
  int64_t each = (n + chunks - 1) / chunks;
  std::vector<int64_t> sizes;
  for (int64_t done = 0; done < n; done += each) sizes.push_back(std::min(each, n - done));
  SplitSizes(c, x, dim, sizes);
}

void Split(Ctx& c) {  // split(x, int | int[], dim), split_with_sizes(x, int[], dim)
  Value* x = c.T(0);
  int64_t dim = c.Int(2);
  const Slot& s = c.In(1);
  if (s.is_const() && s.iv.isInt() && c.kind() != "aten::split_with_sizes") {
    int64_t each = s.iv.toInt(), n = KnownDim(c, x, dim);
    std::vector<int64_t> sizes;
    for (int64_t done = 0; done < n; done += each) sizes.push_back(std::min(each, n - done));
    return SplitSizes(c, x, dim, sizes);
  }
  SplitSizes(c, x, dim, c.Ints(1));
}

void Unbind(Ctx& c) {
  Value* x = c.T(0);
  int64_t dim = c.Int(1);
  SplitSizes(c, x, dim, std::vector<int64_t>(static_cast<size_t>(KnownDim(c, x, dim)), 1), true);
}

Value* IndexInput(Ctx& c, size_t i, int64_t def) {
  if (c.IsNone(i)) return c.I64s({def});
  if (c.IsConst(i)) return c.I64s({c.Int(i)});
  return c.Op("Unsqueeze", {As(c, i, DType::kInt64), c.I64s({0})});
}

void Slice(Ctx& c) {  // (x, dim, start, end, step)
  const Slot& s = c.In(0);
  if (s.kind == Slot::Kind::kList) {  // list slicing: x[a:b]
    int64_t n = static_cast<int64_t>(s.items.size());
    int64_t a = c.IsNone(1) ? 0 : c.Int(1), b = c.IsNone(2) ? n : c.Int(2), step = c.Int(3);
    if (a < 0) a += n;
    if (b < 0) b += n;
    std::vector<Slot> items;
    for (int64_t i = std::max<int64_t>(a, 0); i < std::min(b, n); i += step) items.push_back(s.items[i]);
    return c.Out(0, Slot::List(items));
  }
  Value* x = c.T(0);
  int64_t dim = c.Int(1);
  int64_t step = c.num_inputs() > 4 ? c.Int(4) : 1;
  if (c.IsConst(2) && !c.IsNone(2) && c.Int(2) == 0 && (c.IsNone(3) || (c.IsConst(3) && c.Int(3) == std::numeric_limits<int64_t>::max())) && step == 1)
    return c.Out(0, c.In(0));  // x[:] is x
  c.Out(c.Op("Slice", {x, IndexInput(c, 2, 0), IndexInput(c, 3, std::numeric_limits<int64_t>::max()),
                       c.I64s({dim}), c.I64s({step})}));
}

void Narrow(Ctx& c) {  // (x, dim, start, length)
  Value* start = IndexInput(c, 2, 0);
  Value* end = c.Op("Add", {start, IndexInput(c, 3, 0)});
  c.Out(c.Op("Slice", {c.T(0), start, end, c.I64s({c.Int(1)})}));
}

void Select(Ctx& c) {  // (x, dim, index)
  c.Out(c.Op("Gather", {c.T(0), As(c, 2, DType::kInt64)}, {Attribute::Int("axis", c.Int(1))}));
}

void Index(Ctx& c) {  // x[idx] with one tensor index: Gather along that dim
  Slot s = c.In(1);
  if (s.is_const() && s.iv.isList())  // all-constant indices were folded into one list
    s = Slot::List([&] {
      std::vector<Slot> items;
      for (const c10::IValue& v : s.iv.toListRef()) items.push_back(Slot::Const(v));
      return items;
    }());
  if (s.kind != Slot::Kind::kList) c.Fail("expected a list of indices");
  int axis = -1;
  for (size_t i = 0; i < s.items.size(); ++i) {
    if (s.items[i].is_none()) continue;
    if (axis >= 0) c.Fail("indexing with several index tensors is not supported");
    axis = static_cast<int>(i);
  }
  if (axis < 0) return c.Out(0, c.In(0));
  const Slot& idx = s.items[axis];
  if (idx.kind != Slot::Kind::kTensor && !(idx.is_const() && idx.iv.isTensor()))
    c.Fail("an index that is not a tensor");
  Value* iv = idx.kind == Slot::Kind::kTensor ? idx.value : c.Const(c.FromTorch(idx.iv.toTensor()), "index");
  if (Ctx::DTypeOf(iv) == DType::kBool) c.Fail("boolean-mask indexing (data-dependent shape) is not supported");
  c.Out(c.Op("Gather", {c.T(0), c.Cast(iv, DType::kInt64)}, {Attribute::Int("axis", axis)}));
}

void MaskedFill(Ctx& c) {
  Value* x = c.T(0);
  c.Out(c.Op("Where", {As(c, 1, DType::kBool), As(c, 2, Ctx::DTypeOf(x)), x}, {}, Ctx::DTypeOf(x)));
}

void Where(Ctx& c) {
  DType dt = Promote(c.In(1), c.In(2));
  c.Out(c.Op("Where", {As(c, 0, DType::kBool), As(c, 1, dt), As(c, 2, dt)}, {}, dt));
}

void To(Ctx& c) {
  // to(x, dtype, ...), to(x, device, dtype, ...), to(x, other, ...)
  if (c.num_inputs() > 1 && c.In(1).kind == Slot::Kind::kTensor && !c.In(1).scalar)
    return c.Out(c.Op("CastLike", {c.T(0), c.T(1)}));
  for (size_t i = 1; i < std::min<size_t>(c.num_inputs(), 3); ++i) {
    const Slot& s = c.In(i);
    if (s.is_const() && s.iv.isInt()) {
      DType dt = Ctx::FromScalarType(s.iv.toInt());
      if (dt == DType::kUndefined) c.Fail("unsupported dtype " + std::to_string(s.iv.toInt()));
      return c.Out(c.Cast(c.T(0), dt));
    }
  }
  c.Out(0, c.In(0));  // a device move
}

// --- reductions -------------------------------------------------------------------------

// mean/sum/amax(x, dims | None, keepdim, [dtype]) and the all-dims forms (x[, dtype]).
void Reduce(Ctx& c, const char* op, bool axes_input) {
  Value* x = c.T(0);
  std::vector<int64_t> axes;
  bool keep = false;
  bool has_dims = c.num_inputs() >= 3;  // mean(x, dtype) and sum(x, dtype) reduce everything
  if (has_dims && !c.IsNone(1)) axes = c.Ints(1);
  if (has_dims) keep = c.Bool(2);
  size_t dtype_at = has_dims ? 3 : 1;
  if (c.num_inputs() > dtype_at && !c.IsNone(dtype_at)) x = c.Cast(x, Ctx::FromScalarType(c.Int(dtype_at)));
  std::vector<Value*> in = {x};
  std::vector<Attribute> attrs = {Attribute::Int("keepdims", keep)};
  if (!axes.empty()) {
    if (axes_input) in.push_back(c.I64s(axes));
    else attrs.push_back(Attribute::Ints("axes", axes));
  }
  c.Out(c.Op(op, in, attrs));
}

void MaxMin(Ctx& c, bool max) {
  const char* reduce = max ? "ReduceMax" : "ReduceMin";
  if (c.num_inputs() == 1) return c.Out(c.Op(reduce, {c.T(0)}, {Attribute::Int("keepdims", 0)}));
  if (c.In(1).kind == Slot::Kind::kTensor && !c.In(1).scalar)  // elementwise max(a, b)
    return c.Out(c.Op(max ? "Max" : "Min", {c.T(0), c.T(1)}));
  int64_t dim = c.Int(1);
  bool keep = c.num_inputs() > 2 && c.Bool(2);
  Value* x = c.T(0);
  c.Out(c.Op(reduce, {x}, {Attribute::Ints("axes", {dim}), Attribute::Int("keepdims", keep)}), 0);
  c.Out(c.Op(max ? "ArgMax" : "ArgMin", {x}, {Attribute::Int("axis", dim), Attribute::Int("keepdims", keep)},
             DType::kInt64), 1);
}

void ArgMax(Ctx& c, const char* op) {  // (x, dim | None, keepdim)
  Value* x = c.T(0);
  if (c.IsNone(1)) x = c.Op("Reshape", {x, c.I64s({-1})});
  c.Out(c.Op(op, {x}, {Attribute::Int("axis", c.IsNone(1) ? 0 : c.Int(1)), Attribute::Int("keepdims", c.Bool(2))},
             DType::kInt64));
}

// --- creation ---------------------------------------------------------------------------

Value* Fill(Ctx& c, Value* shape, double value, DType dt) {
  ir::Tensor v(dt, {1});
  switch (dt) {
    case DType::kFloat32: v.mutable_data<float>()[0] = static_cast<float>(value); break;
    case DType::kFloat64: v.mutable_data<double>()[0] = value; break;
    case DType::kInt64: v.mutable_data<int64_t>()[0] = static_cast<int64_t>(value); break;
    case DType::kInt32: v.mutable_data<int32_t>()[0] = static_cast<int32_t>(value); break;
    case DType::kBool: v.mutable_data<uint8_t>()[0] = value != 0; break;
    default: c.Fail(std::string("filling dtype ") + ir::DTypeName(dt));
  }
  return c.Op("ConstantOfShape", {shape}, {Attribute::TensorValue("value", v)}, dt);
}

DType DTypeArg(Ctx& c, size_t i, DType def) {
  if (i >= c.num_inputs() || c.IsNone(i)) return def;
  DType dt = Ctx::FromScalarType(c.Int(i));
  if (dt == DType::kUndefined) c.Fail("unsupported dtype");
  return dt;
}

void FullLike(Ctx& c, double value, size_t dtype_at) {
  Value* x = c.T(0);
  c.Out(Fill(c, ShapeOf(c, x), value, DTypeArg(c, dtype_at, Ctx::DTypeOf(x))));
}

void Full(Ctx& c, double value, size_t dtype_at) {
  c.Out(Fill(c, c.IntList(0), value, DTypeArg(c, dtype_at, DType::kFloat32)));
}

void Arange(Ctx& c) {
  // arange(end, dtype, ...) | arange(start, end, dtype, ...) | arange(start, end, step, dtype, ...)
  if (c.num_inputs() < 5 || c.num_inputs() > 7) c.Fail("unexpected arange overload");
  size_t numbers = c.num_inputs() - 4;
  DType def = DType::kInt64;
  for (size_t i = 0; i < numbers; ++i)
    if (SlotDType(c.In(i)) == DType::kFloat32) def = DType::kFloat32;
  DType dt = DTypeArg(c, numbers, def);
  Value* start = numbers >= 2 ? As(c, 0, dt) : c.Cast(c.I64(0), dt);
  Value* end = As(c, numbers >= 2 ? 1 : 0, dt);
  Value* step = numbers == 3 ? As(c, 2, dt) : c.Cast(c.I64(1), dt);
  c.Out(c.Op("Range", {start, end, step}, {}, dt));
}

// --- introspection that settles at import -------------------------------------------

void Is(Ctx& c, bool negate) {
  const Slot& a = c.In(0);
  const Slot& b = c.In(1);
  bool same;
  if (a.is_none() || b.is_none()) same = a.is_none() && b.is_none();
  else if (a.kind == Slot::Kind::kTensor && b.kind == Slot::Kind::kTensor) same = a.value == b.value;
  else c.Fail("identity comparison of these values cannot be decided at import");
  c.Out(0, Slot::Const(c10::IValue(same != negate)));
}

int64_t ToScalarType(DType dt) {
  switch (dt) {
    case DType::kFloat32: return static_cast<int64_t>(c10::ScalarType::Float);
    case DType::kFloat64: return static_cast<int64_t>(c10::ScalarType::Double);
    case DType::kFloat16: return static_cast<int64_t>(c10::ScalarType::Half);
    case DType::kInt64: return static_cast<int64_t>(c10::ScalarType::Long);
    case DType::kInt32: return static_cast<int64_t>(c10::ScalarType::Int);
    case DType::kBool: return static_cast<int64_t>(c10::ScalarType::Bool);
    case DType::kInt8: return static_cast<int64_t>(c10::ScalarType::Char);
    case DType::kUInt8: return static_cast<int64_t>(c10::ScalarType::Byte);
    default: return -1;
  }
}

void Pad(Ctx& c) {  // aten::pad(x, pad, mode, value) / constant_pad_nd(x, pad, value) / *_padNd(x, pad)
  Value* x = c.T(0);
  std::vector<int64_t> pad = c.Ints(1);
  std::string k = c.kind(), mode = "constant";
  double value = 0;
  if (k == "aten::pad") {
    mode = c.Str(2);
    if (c.num_inputs() > 3 && !c.IsNone(3)) value = c.Double(3);
  } else if (k == "aten::constant_pad_nd") {
    if (c.num_inputs() > 2) value = c.Double(2);
  } else if (k.find("reflection") != std::string::npos) {
    mode = "reflect";
  } else if (k.find("replication") != std::string::npos) {
    mode = "replicate";
  }
  if (mode == "replicate") mode = "edge";
  if (mode == "circular") mode = "wrap";
  int r = c.Rank(x);
  // Torch lists (begin, end) pairs from the last dim backwards.
  std::vector<int64_t> pads(2 * static_cast<size_t>(r), 0);
  for (size_t i = 0; i + 1 < pad.size() + 1 && i / 2 < static_cast<size_t>(r); i += 2) {
    int64_t dim = r - 1 - static_cast<int64_t>(i / 2);
    pads[dim] = pad[i];
    pads[dim + r] = pad[i + 1];
  }
  std::vector<Value*> in = {x, c.I64s(pads)};
  if (mode == "constant") in.push_back(c.Cast(c.F32(static_cast<float>(value)), Ctx::DTypeOf(x)));
  c.Out(c.Op("Pad", in, {Attribute::String("mode", mode)}));
}

// q, k, v, attn_mask, dropout_p, is_causal[, scale]: softmax(q k^T * scale + mask) v.
void Sdpa(Ctx& c) {
  Value* q = c.T(0);
  Value* k = c.T(1);
  Value* v = c.T(2);
  if (c.num_inputs() > 5 && c.Bool(5)) c.Fail("is_causal=True is not supported");
  Value* scale;
  if (c.num_inputs() > 6 && !c.IsNone(6)) {
    scale = c.F32(static_cast<float>(c.Double(6)));
  } else if (std::optional<int64_t> e = c.Dim(q, -1)) {
    scale = c.F32(1.0f / std::sqrt(static_cast<float>(*e)));
  } else {
    Value* width = c.Cast(c.Op("Gather", {ShapeOf(c, q), c.I64(-1)}, {Attribute::Int("axis", 0)}, DType::kInt64), DType::kFloat32);
    scale = c.Op("Reciprocal", {c.Op("Sqrt", {width})});
  }
  int r = c.Rank(k);
  std::vector<int64_t> perm(static_cast<size_t>(r));
  for (int i = 0; i < r; ++i) perm[i] = i;
  std::swap(perm[r - 1], perm[r - 2]);
  Value* s = c.Op("Mul", {c.Op("MatMul", {q, c.Op("Transpose", {k}, {Attribute::Ints("perm", perm)})}), scale});
  if (!c.IsNone(3)) {
    Value* mask = c.T(3);
    if (Ctx::DTypeOf(mask) == DType::kBool)
      s = c.Op("Where", {mask, s, c.F32(-std::numeric_limits<float>::infinity())}, {}, DType::kFloat32);
    else
      s = c.Op("Add", {s, mask});
  }
  c.Out(c.Op("MatMul", {c.Op("Softmax", {s}, {Attribute::Int("axis", -1)}), v}));
}

}  // namespace

void RegisterTensorOps(Registry& r) {
  r["aten::add"] = r["aten::add_"] = [](Ctx& c) {
    if (c.In(0).kind == Slot::Kind::kList && c.In(1).kind == Slot::Kind::kList) {  // list + list
      Slot s = c.In(0);
      for (const Slot& x : c.In(1).items) s.items.push_back(x);
      return c.Out(0, s);
    }
    Binary(c, "Add");
  };
  r["aten::sub"] = r["aten::sub_"] = [](Ctx& c) { Binary(c, "Sub"); };
  r["aten::mul"] = r["aten::mul_"] = [](Ctx& c) { Binary(c, "Mul"); };
  r["aten::div"] = r["aten::div_"] = Div;
  r["aten::floordiv"] = r["aten::floor_divide"] = FloorDiv;
  r["aten::remainder"] = Remainder;
  r["aten::rsub"] = Rsub;
  r["aten::pow"] = Pow;
  r["aten::eq"] = [](Ctx& c) { Compare(c, "Equal"); };
  r["aten::ne"] = [](Ctx& c) { Compare(c, "Equal", true); };
  r["aten::lt"] = [](Ctx& c) { Compare(c, "Less"); };
  r["aten::le"] = [](Ctx& c) { Compare(c, "LessOrEqual"); };
  r["aten::gt"] = [](Ctx& c) { Compare(c, "Greater"); };
  r["aten::ge"] = [](Ctx& c) { Compare(c, "GreaterOrEqual"); };
  r["aten::__and__"] = r["aten::logical_and"] = [](Ctx& c) { Logical(c, "And"); };
  r["aten::__or__"] = r["aten::logical_or"] = [](Ctx& c) { Logical(c, "Or"); };
  r["aten::__not__"] = r["aten::logical_not"] = [](Ctx& c) {
    OutMaybeScalar(c, c.Op("Not", {As(c, 0, DType::kBool)}, {}, DType::kBool), IsNumber(c.In(0)));
  };
  r["aten::Int"] = [](Ctx& c) { ToScalar(c, DType::kInt64); };
  r["aten::Float"] = [](Ctx& c) { ToScalar(c, DType::kFloat32); };
  r["aten::Bool"] = [](Ctx& c) { ToScalar(c, DType::kBool); };
  r["aten::ScalarImplicit"] = r["aten::item"] = [](Ctx& c) { c.Out(0, Slot::Tensor(c.T(0), true)); };
  r["prim::NumToTensor"] = [](Ctx& c) { c.Out(c.T(0)); };
  r["aten::size"] = Size;
  r["aten::numel"] = Numel;
  r["aten::dim"] = [](Ctx& c) { c.Out(0, Slot::Const(c10::IValue(static_cast<int64_t>(c.Rank(c.T(0)))))); };
  r["aten::len"] = Len;
  // t.tolist() of a 1-D integer tensor computed at run time (the exporter's _ints helper
  // on a shape tensor): the int[] stays a tensor. Constant tensors fold before this.
  r["prim::tolist"] = [](Ctx& c) {
    Value* v = c.T(0);
    // A 1-D view of a constant integer tensor (`t.to(4).reshape([-1])` on a weight-sized
    // constant the importer keeps as an initializer): the values are known here.
    const Value* src = v;
    while (src->producer() && src->producer()->num_inputs() >= 1 &&
           (src->producer()->op_type() == "Reshape" || src->producer()->op_type() == "Flatten" ||
            src->producer()->op_type() == "Identity" ||
            (src->producer()->op_type() == "Cast" && ir::IsInteger(Ctx::DTypeOf(src->producer()->input(0))))))
      src = src->producer()->input(0);
    if (const ir::Tensor* t = src->initializer(); t && c.TryRank(v) == 1 &&
        (t->dtype() == DType::kInt64 || t->dtype() == DType::kInt32) && t->numel() <= 4096) {
      std::vector<int64_t> ints(static_cast<size_t>(t->numel()));
      for (size_t i = 0; i < ints.size(); ++i)
        ints[i] = t->dtype() == DType::kInt64 ? t->data<int64_t>()[i] : t->data<int32_t>()[i];
      return c.Out(0, Slot::Const(c10::IValue(ints)));
    }
    if (!ir::IsInteger(Ctx::DTypeOf(v)) || c.TryRank(v) != 1)
      c.Fail("tolist() of a tensor computed at run time that is not a 1-D integer tensor");
    Slot s = Slot::Tensor(c.Cast(v, DType::kInt64));
    s.int_list = true;
    c.Out(0, s);
  };
  // torch.tensor(int list) of sizes computed at run time.
  r["aten::tensor"] = [](Ctx& c) {
    const Slot& s = c.In(0);
    // An int[] held as a tensor (sizes, a slice of them) or a list of int slots.
    const bool ints = (s.kind == Slot::Kind::kTensor && !s.scalar && ir::IsInteger(Ctx::DTypeOf(s.value)) &&
                       c.TryRank(s.value) == 1) ||
                      s.kind == Slot::Kind::kList;
    if (!ints) c.Fail("torch.tensor() of a value computed at run time other than an int list");
    Value* v = c.IntList(0);
    if (!c.IsNone(1)) {
      DType dt = Ctx::FromScalarType(c.Int(1));
      if (dt == DType::kUndefined) c.Fail("torch.tensor() dtype without an IR counterpart");
      v = c.Cast(v, dt);
    }
    c.Out(v);
  };
  // `for i in range(a, b, s)`: TorchScript counts 0..n-1 and derives i = a + k * s.
  r["aten::__derive_index"] = [](Ctx& c) {
    if (c.IsConst(0) && c.IsConst(1) && c.IsConst(2))
      return c.Out(0, Slot::Const(c10::IValue(c.Int(1) + c.Int(0) * c.Int(2))));
    Value* step = c.Op("Mul", {As(c, 0, DType::kInt64), As(c, 2, DType::kInt64)}, {}, DType::kInt64);
    c.OutScalar(c.Op("Add", {As(c, 1, DType::kInt64), step}, {}, DType::kInt64));
  };
  r["aten::__getitem__"] = GetItem;
  r["prim::ListUnpack"] = r["prim::TupleUnpack"] = ListUnpack;
  r["prim::ListConstruct"] = [](Ctx& c) { ListConstruct(c, Slot::Kind::kList); };
  r["prim::TupleConstruct"] = [](Ctx& c) { ListConstruct(c, Slot::Kind::kTuple); };
  r["prim::TupleIndex"] = TupleIndex;
  r["aten::list"] = [](Ctx& c) { c.Out(0, c.In(0)); };
  r["prim::min"] = [](Ctx& c) { MinMaxScalar(c, "Min"); };
  r["prim::max"] = [](Ctx& c) { MinMaxScalar(c, "Max"); };
  r["aten::view"] = r["aten::reshape"] = Reshape;
  r["aten::view_as"] = r["aten::reshape_as"] = [](Ctx& c) { c.Out(c.Op("Reshape", {c.T(0), ShapeOf(c, c.T(1))})); };
  r["aten::flatten"] = Flatten;
  r["aten::transpose"] = r["aten::t"] = r["aten::numpy_T"] = Transpose;
  r["aten::permute"] = Permute;
  r["aten::unsqueeze"] = Unsqueeze;
  r["aten::squeeze"] = Squeeze;
  r["aten::expand"] = Expand;
  r["aten::expand_as"] = [](Ctx& c) { c.Out(c.Op("Expand", {c.T(0), ShapeOf(c, c.T(1))})); };
  r["aten::repeat"] = [](Ctx& c) { c.Out(c.Op("Tile", {c.T(0), c.IntList(1)})); };
  r["aten::cat"] = r["aten::concat"] = Cat;
  r["aten::stack"] = Stack;
  r["aten::chunk"] = Chunk;
  r["aten::split"] = r["aten::split_with_sizes"] = Split;
  r["aten::unbind"] = Unbind;
  r["aten::slice"] = Slice;
  r["aten::narrow"] = Narrow;
  r["aten::select"] = Select;
  r["aten::index_select"] = [](Ctx& c) {  // (x, dim, 1-D index)
    c.Out(c.Op("Gather", {c.T(0), As(c, 2, DType::kInt64)}, {Attribute::Int("axis", c.Int(1))}));
  };
  // log(exp(a) + exp(b)) = max(a, b) + log(1 + exp(-|a - b|)), without overflow.
  r["aten::logaddexp"] = [](Ctx& c) {
    Value *a = c.T(0), *b = c.T(1);
    Value* m = c.Op("Max", {a, b});
    Value* e = c.Op("Exp", {c.Op("Neg", {c.Op("Abs", {c.Op("Sub", {a, b})})})});
    Value* one = c.Cast(c.I64(1), Ctx::DTypeOf(e));
    c.Out(c.Op("Add", {m, c.Op("Log", {c.Op("Add", {e, one})})}));
  };
  r["aten::index"] = Index;
  r["aten::masked_fill"] = r["aten::masked_fill_"] = MaskedFill;
  r["aten::where"] = Where;
  r["aten::to"] = To;
  r["aten::type_as"] = [](Ctx& c) { c.Out(c.Op("CastLike", {c.T(0), c.T(1)})); };
  r["aten::mean"] = [](Ctx& c) { Reduce(c, "ReduceMean", false); };
  r["aten::sum"] = [](Ctx& c) { Reduce(c, "ReduceSum", true); };
  r["aten::amax"] = [](Ctx& c) { Reduce(c, "ReduceMax", false); };
  r["aten::amin"] = [](Ctx& c) { Reduce(c, "ReduceMin", false); };
  r["aten::prod"] = [](Ctx& c) { Reduce(c, "ReduceProd", false); };
  r["aten::max"] = [](Ctx& c) { MaxMin(c, true); };
  r["aten::min"] = [](Ctx& c) { MaxMin(c, false); };
  r["aten::maximum"] = [](Ctx& c) { c.Out(c.Op("Max", {c.T(0), c.T(1)})); };
  r["aten::minimum"] = [](Ctx& c) { c.Out(c.Op("Min", {c.T(0), c.T(1)})); };
  r["aten::argmax"] = [](Ctx& c) { ArgMax(c, "ArgMax"); };
  r["aten::argmin"] = [](Ctx& c) { ArgMax(c, "ArgMin"); };
  r["aten::zeros_like"] = [](Ctx& c) { FullLike(c, 0, 1); };
  r["aten::ones_like"] = [](Ctx& c) { FullLike(c, 1, 1); };
  r["aten::full_like"] = [](Ctx& c) { FullLike(c, c.Double(1), 2); };
  r["aten::zeros"] = [](Ctx& c) { Full(c, 0, 1); };
  r["aten::ones"] = [](Ctx& c) { Full(c, 1, 1); };
  r["aten::full"] = [](Ctx& c) { Full(c, c.Double(1), 2); };
  r["aten::arange"] = Arange;
  r["aten::__is__"] = [](Ctx& c) { Is(c, false); };
  r["aten::__isnot__"] = [](Ctx& c) { Is(c, true); };
  r["prim::dtype"] = [](Ctx& c) {
    int64_t st = ToScalarType(Ctx::DTypeOf(c.T(0)));
    if (st < 0) c.Fail("dtype without a TorchScript counterpart");
    c.Out(0, Slot::Const(c10::IValue(st)));
  };
  r["prim::device"] = [](Ctx& c) { c.Out(0, Slot::Const(c10::IValue(c10::Device(c10::kCPU)))); };
  r["aten::is_floating_point"] = [](Ctx& c) { c.Out(0, Slot::Const(c10::IValue(ir::IsFloat(Ctx::DTypeOf(c.T(0)))))); };
  for (const char* k : {"aten::pad", "aten::constant_pad_nd", "aten::reflection_pad1d", "aten::reflection_pad2d",
                        "aten::replication_pad1d", "aten::replication_pad2d"})
    r[k] = Pad;
  r["aten::scaled_dot_product_attention"] = Sdpa;
}

}  // namespace edgepress::formats::ts
