#include "ir/shape_inference.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "ir/error.h"

namespace edgepress::ir {
namespace {

// Integer tensors up to this many elements are read as constants (shapes, axes, pads).
constexpr uint64_t kMaxConstElements = 4096;
// Derived small int values (shape arithmetic) are tracked up to this length.
constexpr size_t kMaxPartialElements = 64;
// A rank known only from a shape input's length is believed up to this size, so a
// malformed model cannot make inference allocate a billion-entry Shape.
constexpr int64_t kMaxRank = 64;

// Shape of `rank` unknown dims, or unknown rank when `rank` is implausible.
std::optional<Shape> UnknownDims(int64_t rank) {
  if (rank < 0 || rank > kMaxRank) return std::nullopt;
  return Shape(static_cast<size_t>(rank));
}

// One element of a small int64 tensor whose value is partly known: a number, a symbolic
// dim (from Shape of a symbolic input) or unknown.
struct Elem {
  std::optional<int64_t> v;
  std::string sym;
  static Elem Of(int64_t x) { return Elem{x, {}}; }
  static Elem FromDim(const Dim& d) {
    if (d.known()) return Of(d.value);
    return Elem{std::nullopt, d.symbol};
  }
  Dim ToDim() const {
    if (v && *v >= 0) return Dim::Known(*v);
    if (!v && !sym.empty()) return Dim::Symbol(sym);
    return Dim{};
  }
  bool operator==(const Elem& o) const { return v == o.v && sym == o.sym; }
};

struct Partial {
  std::vector<Elem> elems;
  bool scalar = false;
  bool AllKnown() const {
    return std::all_of(elems.begin(), elems.end(), [](const Elem& e) { return e.v.has_value(); });
  }
  std::vector<int64_t> Ints() const {
    std::vector<int64_t> out;
    for (const Elem& e : elems) out.push_back(e.v.value_or(0));
    return out;
  }
};

bool IsIntLike(DType t) { return IsInteger(t) && !IsPacked(t); }

std::string JoinInts(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

int64_t CeilDiv(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

class Inferencer {
 public:
  explicit Inferencer(int64_t opset) : opset_(opset > 0 ? opset : 17) {}
  void InferGraph(Graph& g);

 private:
  [[noreturn]] void Fail(const Node& n, const std::string& msg) const {
    ThrowInvalid("shape inference: " + n.describe() + ": " + msg);
  }

  // --- reading inputs --------------------------------------------------------
  static const ValueType* TensorType(const Value* v) {
    if (!v || !v->type.is_tensor()) return nullptr;
    return &v->type;
  }
  static DType DTypeOf(const Value* v) {
    const ValueType* t = TensorType(v);
    return t ? t->dtype : DType::kUndefined;
  }
  static const Shape* ShapeOf(const Value* v) {
    const ValueType* t = TensorType(v);
    return t && t->shape ? &*t->shape : nullptr;
  }
  static int RankOf(const Value* v) {
    const Shape* s = ShapeOf(v);
    return s ? static_cast<int>(s->size()) : -1;
  }
  const Tensor* ConstTensor(const Value* v);
  std::optional<Partial> PartialOf(const Value* v);
  std::optional<std::vector<int64_t>> ConstInts(const Value* v);
  std::optional<std::vector<double>> ConstDoubles(const Value* v);
  // Axes/sizes that may be an input (opset 13+) or an attribute (older opsets).
  std::optional<std::vector<int64_t>> IntsFromInputOrAttr(const Node& n, size_t input,
                                                          const std::string& attr);
  bool HasInput(const Node& n, size_t i) const { return n.input(i) != nullptr; }

  // --- writing outputs -------------------------------------------------------
  void SetOutput(const Node& n, size_t i, DType dtype, std::optional<Shape> shape);
  void SetOutputType(const Node& n, size_t i, const ValueType& t);
  void SetPartial(const Node& n, size_t i, Partial p) {
    Value* o = n.output(i);
    if (o && p.elems.size() <= kMaxPartialElements) partials_[o] = std::move(p);
  }

  // --- dim arithmetic --------------------------------------------------------
  Dim BroadcastDim(const Node& n, const Dim& a, const Dim& b) const;
  std::optional<Shape> Broadcast(const Node& n, const std::vector<const Value*>& ins) const;
  Dim MergeDim(const Node& n, const Dim& a, const Dim& b, const std::string& what) const;
  static Dim Product(const Shape& s, size_t begin, size_t end);
  int64_t NormAxis(const Node& n, int64_t axis, int64_t rank, const std::string& what) const;
  Dim WindowDim(const Node& n, const Dim& in, int64_t k, int64_t s, int64_t d, int64_t pb,
                int64_t pe, const std::string& auto_pad, bool ceil_mode) const;

  // --- op families -----------------------------------------------------------
  void InferNode(Node& n);
  void Elementwise(const Node& n, DType out_dtype);
  void ConvLike(const Node& n, size_t x_in, size_t w_in, DType out_dtype);
  void ConvTranspose(const Node& n);
  void Pool(const Node& n);
  void GlobalPool(const Node& n);
  void MatMulLike(const Node& n, size_t a_in, size_t b_in, DType out_dtype);
  void Gemm(const Node& n);
  void Reshape(const Node& n);
  void Transpose(const Node& n);
  void Flatten(const Node& n);
  void Squeeze(const Node& n);
  void Unsqueeze(const Node& n);
  void Concat(const Node& n);
  void Split(const Node& n);
  void Slice(const Node& n);
  void Gather(const Node& n);
  void Expand(const Node& n);
  void Tile(const Node& n);
  void Pad(const Node& n);
  void ShapeOp(const Node& n);
  void Size(const Node& n);
  void Cast(const Node& n);
  void ConstantOfShape(const Node& n);
  void Range(const Node& n);
  void Reduce(const Node& n);
  void ArgReduce(const Node& n);
  void Resize(const Node& n);
  void Constant(const Node& n);
  void If(Node& n);
  void Loop(Node& n);
  void Recurrent(const Node& n);
  void TopK(const Node& n);
  void PartialArith(const Node& n);

  int64_t opset_;
  std::unordered_map<const Value*, Partial> partials_;
  std::unordered_map<const Value*, Tensor> constant_cache_;
};

// ----------------------------------------------------------------------------- reading

const Tensor* Inferencer::ConstTensor(const Value* v) {
  if (!v) return nullptr;
  // An initializer that is also a graph input is only a default: callers may override it.
  if (v->initializer() && !v->is_graph_input()) return v->initializer();
  const Node* p = v->producer();
  if (!p || p->op_type() != "Constant" || !p->domain().empty() || v->producer_index() != 0)
    return nullptr;
  auto it = constant_cache_.find(v);
  if (it != constant_cache_.end()) return &it->second;
  const Attribute* a = nullptr;
  for (const auto& x : p->attributes())
    if (x.name.rfind("value", 0) == 0) a = &x;
  if (!a) return nullptr;
  Tensor t;
  if (a->kind == Attribute::Kind::kTensor && a->name == "value") {
    t = a->t;
  } else if (a->name == "value_float" && a->kind == Attribute::Kind::kFloat) {
    t = Tensor::FromVector<float>(DType::kFloat32, {}, {a->f});
  } else if (a->name == "value_floats" && a->kind == Attribute::Kind::kFloats) {
    t = Tensor::FromVector<float>(DType::kFloat32, {static_cast<int64_t>(a->floats.size())},
                                  a->floats);
  } else if (a->name == "value_int" && a->kind == Attribute::Kind::kInt) {
    t = Tensor::FromVector<int64_t>(DType::kInt64, {}, {a->i});
  } else if (a->name == "value_ints" && a->kind == Attribute::Kind::kInts) {
    t = Tensor::FromVector<int64_t>(DType::kInt64, {static_cast<int64_t>(a->ints.size())}, a->ints);
  } else if (a->name == "value_string" && a->kind == Attribute::Kind::kString) {
    t = Tensor::Strings({}, {a->s});
  } else if (a->name == "value_strings" && a->kind == Attribute::Kind::kStrings) {
    t = Tensor::Strings({static_cast<int64_t>(a->strings.size())}, a->strings);
  } else {
    return nullptr;
  }
  return &constant_cache_.emplace(v, std::move(t)).first->second;
}

std::optional<Partial> Inferencer::PartialOf(const Value* v) {
  if (!v) return std::nullopt;
  auto it = partials_.find(v);
  if (it != partials_.end()) return it->second;
  const Tensor* t = ConstTensor(v);
  if (!t || t->rank() > 1 || t->numel() > kMaxConstElements) return std::nullopt;
  if (!IsIntLike(t->dtype()) && t->dtype() != DType::kBool) return std::nullopt;
  Partial p;
  p.scalar = t->rank() == 0;
  for (int64_t x : t->ToInt64()) p.elems.push_back(Elem::Of(x));
  return p;
}

std::optional<std::vector<int64_t>> Inferencer::ConstInts(const Value* v) {
  if (!v) return std::nullopt;
  auto p = PartialOf(v);
  if (p && p->AllKnown()) return p->Ints();
  const Tensor* t = ConstTensor(v);
  if (!t || t->numel() > kMaxConstElements || !IsIntLike(t->dtype())) return std::nullopt;
  return t->ToInt64();
}

std::optional<std::vector<double>> Inferencer::ConstDoubles(const Value* v) {
  const Tensor* t = ConstTensor(v);
  if (t && t->numel() <= kMaxConstElements && (IsFloat(t->dtype()) || IsIntLike(t->dtype())))
    return t->ToDouble();
  auto p = PartialOf(v);
  if (p && p->AllKnown()) {
    std::vector<double> out;
    for (int64_t x : p->Ints()) out.push_back(static_cast<double>(x));
    return out;
  }
  return std::nullopt;
}

std::optional<std::vector<int64_t>> Inferencer::IntsFromInputOrAttr(const Node& n, size_t input,
                                                                    const std::string& attr) {
  if (HasInput(n, input)) return ConstInts(n.input(input));
  if (n.has_attr(attr)) return n.attr_ints(attr);
  return std::nullopt;
}

// ----------------------------------------------------------------------------- writing

void Inferencer::SetOutputType(const Node& n, size_t i, const ValueType& t) {
  Value* o = n.output(i);
  if (!o || t.kind == ValueType::Kind::kUnknown) return;
  ValueType& e = o->type;
  if (e.kind == ValueType::Kind::kUnknown) {
    e = t;
    return;
  }
  if (e.kind != t.kind) return;  // e.g. declared sequence vs inferred tensor: keep declared
  if (!t.is_tensor()) return;
  if (e.dtype == DType::kUndefined) {
    e.dtype = t.dtype;
  } else if (t.dtype != DType::kUndefined && t.dtype != e.dtype) {
    Fail(n, "output '" + o->name() + "' is declared " + DTypeName(e.dtype) + " but infers as " +
                DTypeName(t.dtype));
  }
  if (!t.shape) return;
  if (!e.shape) {
    e.shape = t.shape;
    return;
  }
  if (e.shape->size() != t.shape->size())
    Fail(n, "output '" + o->name() + "' is declared with shape " + ShapeToString(*e.shape) +
                " but infers as " + ShapeToString(*t.shape));
  for (size_t k = 0; k < t.shape->size(); ++k) {
    Dim& ed = (*e.shape)[k];
    const Dim& td = (*t.shape)[k];
    if (td.known()) {
      if (ed.known() && ed.value != td.value)
        Fail(n, "output '" + o->name() + "' is declared with shape " + ShapeToString(*e.shape) +
                    " but infers as " + ShapeToString(*t.shape));
      ed = td;
    } else if (!td.symbol.empty() && !ed.known() && ed.symbol.empty()) {
      ed = td;
    }
  }
}

void Inferencer::SetOutput(const Node& n, size_t i, DType dtype, std::optional<Shape> shape) {
  SetOutputType(n, i, ValueType::Tensor(dtype, std::move(shape)));
}

// ----------------------------------------------------------------------------- dims

Dim Inferencer::BroadcastDim(const Node& n, const Dim& a, const Dim& b) const {
  if (a.known() && b.known()) {
    if (a.value == b.value || b.value == 1) return a;
    if (a.value == 1) return b;
    Fail(n, "cannot broadcast dims " + std::to_string(a.value) + " and " + std::to_string(b.value));
  }
  if (a.known() && a.value == 1) return b;
  if (b.known() && b.value == 1) return a;
  // A known dim other than 1 wins: the other side must equal it or be 1.
  if (a.known()) return a;
  if (b.known()) return b;
  if (!a.symbol.empty() && a.symbol == b.symbol) return a;
  return Dim{};
}

std::optional<Shape> Inferencer::Broadcast(const Node& n,
                                           const std::vector<const Value*>& ins) const {
  Shape out;
  for (const Value* v : ins) {
    if (!v) continue;
    const Shape* s = ShapeOf(v);
    if (!s) return std::nullopt;
    if (s->size() > out.size()) out.insert(out.begin(), s->size() - out.size(), Dim::Known(1));
    size_t off = out.size() - s->size();
    for (size_t k = 0; k < s->size(); ++k) out[off + k] = BroadcastDim(n, out[off + k], (*s)[k]);
  }
  return out;
}

Dim Inferencer::MergeDim(const Node& n, const Dim& a, const Dim& b, const std::string& what) const {
  if (a.known() && b.known()) {
    if (a.value != b.value)
      Fail(n, what + ": " + std::to_string(a.value) + " vs " + std::to_string(b.value));
    return a;
  }
  if (a.known()) return a;
  if (b.known()) return b;
  if (!a.symbol.empty()) return a;
  return b;
}

Dim Inferencer::Product(const Shape& s, size_t begin, size_t end) {
  int64_t p = 1;
  const Dim* sym = nullptr;
  for (size_t i = begin; i < end && i < s.size(); ++i) {
    if (s[i].known()) {
      if (__builtin_mul_overflow(p, s[i].value, &p)) return Dim{};
    } else if (!s[i].symbol.empty() && !sym) {
      sym = &s[i];
    } else {
      return Dim{};
    }
  }
  if (sym) return p == 1 ? *sym : Dim{};
  return Dim::Known(p);
}

int64_t Inferencer::NormAxis(const Node& n, int64_t axis, int64_t rank,
                             const std::string& what) const {
  if (axis < -rank || axis >= rank)
    Fail(n,
         what + " " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

Dim Inferencer::WindowDim(const Node& n, const Dim& in, int64_t k, int64_t s, int64_t d, int64_t pb,
                          int64_t pe, const std::string& auto_pad, bool ceil_mode) const {
  int64_t dk = 0, total = 0;
  if (__builtin_mul_overflow(d, k - 1, &dk) || __builtin_add_overflow(dk, 1, &dk))
    Fail(n, "kernel size and dilation overflow");
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    if (in.known()) return Dim::Known(CeilDiv(in.value, s));
    return s == 1 ? in : Dim{};
  }
  if (auto_pad == "VALID") pb = pe = 0;
  if (!in.known()) return (s == 1 && pb + pe == dk - 1) ? in : Dim{};
  if (__builtin_add_overflow(in.value, pb, &total) || __builtin_add_overflow(total, pe, &total))
    Fail(n, "pads overflow");
  total -= dk;
  if (total < 0)
    Fail(n, "window of " + std::to_string(dk) + " (kernel " + std::to_string(k) + ", dilation " +
                std::to_string(d) + ") is larger than the padded input " +
                std::to_string(in.value + pb + pe));
  int64_t out = (ceil_mode ? CeilDiv(total, s) : total / s) + 1;
  // As PyTorch and ONNX's reference: the last window must start inside the input or the
  // left padding, otherwise ceil_mode does not add it.
  if (ceil_mode && (out - 1) * s >= in.value + pb) --out;
  return Dim::Known(out);
}

// ----------------------------------------------------------------------------- driver

void Inferencer::InferGraph(Graph& g) {
  for (Value* v : g.initializers()) {
    if (!v || !v->initializer()) continue;
    if (v->type.kind == ValueType::Kind::kUnknown)
      v->type = ValueType::Tensor(v->initializer()->dtype(), MakeShape(v->initializer()->shape()));
  }
  for (Node* n : g.nodes()) InferNode(*n);
}

const std::unordered_set<std::string>& UnaryOps() {
  static const std::unordered_set<std::string> ops = {"Relu",
                                                      "LeakyRelu",
                                                      "Sigmoid",
                                                      "HardSigmoid",
                                                      "HardSwish",
                                                      "Tanh",
                                                      "Erf",
                                                      "Gelu",
                                                      "Softmax",
                                                      "LogSoftmax",
                                                      "Sqrt",
                                                      "Exp",
                                                      "Log",
                                                      "Neg",
                                                      "Abs",
                                                      "Reciprocal",
                                                      "Identity",
                                                      "Clip",
                                                      "Not",
                                                      "Ceil",
                                                      "Floor",
                                                      "Round",
                                                      "Sign",
                                                      "Sin",
                                                      "Cos",
                                                      "Tan",
                                                      "Asin",
                                                      "Acos",
                                                      "Atan",
                                                      "Sinh",
                                                      "Cosh",
                                                      "Asinh",
                                                      "Acosh",
                                                      "Atanh",
                                                      "Hardmax",
                                                      "Elu",
                                                      "Selu",
                                                      "Softplus",
                                                      "Softsign",
                                                      "Mish",
                                                      "ThresholdedRelu",
                                                      "Celu",
                                                      "CumSum",
                                                      "LRN",
                                                      "InstanceNormalization",
                                                      "Trilu",
                                                      "ScatterND",
                                                      "ScatterElements",
                                                      "BitwiseNot",
                                                      "Shrink",
                                                      "MeanVarianceNormalization",
                                                      "LpNormalization"};
  return ops;
}

void Inferencer::InferNode(Node& n) {
  if (!n.domain().empty() && n.domain() != "ai.onnx") {
    for (Graph* sg : n.subgraphs()) InferGraph(*sg);
    return;
  }
  const std::string& op = n.op_type();
  const Value* x = n.input(0);
  if (UnaryOps().count(op)) {
    if (const ValueType* t = TensorType(x)) SetOutputType(n, 0, *t);
    if (op == "Identity" || op == "Neg" || op == "Abs") {
      if (auto p = PartialOf(x)) {
        for (Elem& e : p->elems) {
          if (op == "Identity" || !e.v || *e.v == std::numeric_limits<int64_t>::min()) {
            if (op != "Identity") e = Elem{};
            continue;
          }
          e.v = op == "Neg" ? -*e.v : std::abs(*e.v);
        }
        SetPartial(n, 0, *p);
      }
    }
    return;
  }
  // PRelu's slope broadcasts to X one way (per channel in opsets before 7).
  if (op == "PRelu") {
    if (const ValueType* t = TensorType(x)) SetOutputType(n, 0, *t);
    return;
  }
  if (op == "IsNaN" || op == "IsInf") {
    if (TensorType(x)) SetOutput(n, 0, DType::kBool, x->type.shape);
    return;
  }
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Pow" || op == "Mod" ||
      op == "Min" || op == "Max" || op == "Sum" || op == "Mean" || op == "BitShift" ||
      op == "BitwiseAnd" || op == "BitwiseOr" || op == "BitwiseXor") {
    Elementwise(n, DTypeOf(x));
    PartialArith(n);
    return;
  }
  if (op == "Equal" || op == "Less" || op == "Greater" || op == "LessOrEqual" ||
      op == "GreaterOrEqual" || op == "And" || op == "Or" || op == "Xor") {
    Elementwise(n, DType::kBool);
    PartialArith(n);
    return;
  }
  if (op == "Where") {
    DType dt = DTypeOf(n.input(1));
    if (dt == DType::kUndefined) dt = DTypeOf(n.input(2));
    Elementwise(n, dt);
    PartialArith(n);
    return;
  }
  if (op == "Dropout") {
    if (const ValueType* t = TensorType(x)) {
      SetOutputType(n, 0, *t);
      SetOutput(n, 1, DType::kBool, t->shape);
    }
    return;
  }
  if (op == "BatchNormalization") {
    if (const ValueType* t = TensorType(x)) SetOutputType(n, 0, *t);
    const Shape* s = ShapeOf(x);
    Dim c = s && s->size() >= 2 ? (*s)[1] : Dim{};
    const Shape* scale = ShapeOf(n.input(1));
    if (scale && scale->size() == 1) c = MergeDim(n, c, (*scale)[0], "channels vs scale size");
    for (size_t i = 1; i < n.num_outputs(); ++i) {
      DType dt = DTypeOf(n.input(std::min<size_t>(i + 2, 4)));
      if (dt == DType::kUndefined) dt = DTypeOf(x);
      SetOutput(n, i, dt, Shape{c});
    }
    return;
  }
  if (op == "LayerNormalization") {
    const ValueType* t = TensorType(x);
    if (!t) return;
    SetOutputType(n, 0, *t);
    DType stash = DTypeFromOnnx(n.attr_int("stash_type", 1));
    if (!t->shape) {
      SetOutput(n, 1, stash, std::nullopt);
      SetOutput(n, 2, stash, std::nullopt);
      return;
    }
    int64_t r = static_cast<int64_t>(t->shape->size());
    int64_t axis = NormAxis(n, n.attr_int("axis", -1), r, "axis");
    Shape s = *t->shape;
    for (int64_t k = axis; k < r; ++k) s[static_cast<size_t>(k)] = Dim::Known(1);
    SetOutput(n, 1, stash, s);
    SetOutput(n, 2, stash, s);
    return;
  }
  if (op == "Conv") return ConvLike(n, 0, 1, DTypeOf(x));
  if (op == "ConvInteger") return ConvLike(n, 0, 1, DType::kInt32);
  if (op == "QLinearConv") {
    DType dt = DTypeOf(n.input(7));
    return ConvLike(n, 0, 3, dt != DType::kUndefined ? dt : DTypeOf(x));
  }
  if (op == "ConvTranspose") return ConvTranspose(n);
  if (op == "MaxPool" || op == "AveragePool" || op == "LpPool") return Pool(n);
  if (op == "GlobalAveragePool" || op == "GlobalMaxPool" || op == "GlobalLpPool")
    return GlobalPool(n);
  if (op == "MatMul") return MatMulLike(n, 0, 1, DTypeOf(x));
  if (op == "MatMulInteger") return MatMulLike(n, 0, 1, DType::kInt32);
  if (op == "QLinearMatMul") {
    DType dt = DTypeOf(n.input(7));
    return MatMulLike(n, 0, 3, dt != DType::kUndefined ? dt : DTypeOf(x));
  }
  if (op == "Gemm") return Gemm(n);
  if (op == "Reshape") return Reshape(n);
  if (op == "Transpose") return Transpose(n);
  if (op == "Flatten") return Flatten(n);
  if (op == "Squeeze") return Squeeze(n);
  if (op == "Unsqueeze") return Unsqueeze(n);
  if (op == "Concat") return Concat(n);
  if (op == "Split") return Split(n);
  if (op == "Slice") return Slice(n);
  if (op == "Gather") return Gather(n);
  if (op == "GatherElements") {
    if (TensorType(x))
      SetOutput(n, 0, DTypeOf(x), TensorType(n.input(1)) ? n.input(1)->type.shape : std::nullopt);
    return;
  }
  if (op == "Expand") return Expand(n);
  if (op == "Tile") return Tile(n);
  if (op == "Pad") return Pad(n);
  if (op == "Shape") return ShapeOp(n);
  if (op == "Size") return Size(n);
  if (op == "Cast") return Cast(n);
  if (op == "CastLike") {
    if (TensorType(x)) SetOutput(n, 0, DTypeOf(n.input(1)), x->type.shape);
    return;
  }
  if (op == "ConstantOfShape") return ConstantOfShape(n);
  if (op == "Range") return Range(n);
  if (op == "ReduceMean" || op == "ReduceSum" || op == "ReduceMax" || op == "ReduceMin" ||
      op == "ReduceProd" || op == "ReduceL1" || op == "ReduceL2" || op == "ReduceSumSquare" ||
      op == "ReduceLogSum" || op == "ReduceLogSumExp")
    return Reduce(n);
  if (op == "ArgMax" || op == "ArgMin") return ArgReduce(n);
  if (op == "Resize" || op == "Upsample") return Resize(n);
  if (op == "Constant") return Constant(n);
  if (op == "If") return If(n);
  if (op == "Loop") return Loop(n);
  if (op == "LSTM" || op == "GRU" || op == "RNN") return Recurrent(n);
  if (op == "TopK") return TopK(n);
  if (op == "NonZero") {
    if (RankOf(x) >= 0) SetOutput(n, 0, DType::kInt64, Shape{Dim::Known(RankOf(x)), Dim{}});
    return;
  }
  if (op == "QuantizeLinear") {
    DType dt = HasInput(n, 2) ? DTypeOf(n.input(2)) : DType::kUInt8;
    if (TensorType(x)) SetOutput(n, 0, dt, x->type.shape);
    return;
  }
  if (op == "DequantizeLinear") {
    DType dt = DTypeOf(n.input(1));
    if (TensorType(x))
      SetOutput(n, 0, dt == DType::kUndefined ? DType::kFloat32 : dt, x->type.shape);
    return;
  }
  // Unknown op: its outputs stay unknown, but subgraph bodies may still be inferred.
  for (Graph* sg : n.subgraphs()) InferGraph(*sg);
}

// ----------------------------------------------------------------------------- elementwise

void Inferencer::Elementwise(const Node& n, DType out_dtype) {
  std::vector<const Value*> ins(n.inputs().begin(), n.inputs().end());
  DType common = DType::kUndefined;
  if (n.op_type() != "Where" && n.op_type() != "Pow" && n.op_type() != "BitShift") {
    for (const Value* v : ins) {
      DType dt = DTypeOf(v);
      if (dt == DType::kUndefined) continue;
      if (common != DType::kUndefined && dt != common)
        Fail(n, std::string("inputs have different dtypes ") + DTypeName(common) + " and " +
                    DTypeName(dt));
      common = dt;
    }
    if (out_dtype == DType::kUndefined) out_dtype = common;
  }
  if (out_dtype == DType::kUndefined) return;
  SetOutput(n, 0, out_dtype, Broadcast(n, ins));
}

// Integer arithmetic on shape values (Shape -> Mul -> Reshape and friends).
void Inferencer::PartialArith(const Node& n) {
  const std::string& op = n.op_type();
  std::vector<Partial> ins;
  for (size_t i = 0; i < n.num_inputs(); ++i) {
    auto p = PartialOf(n.input(i));
    if (!p) return;
    ins.push_back(std::move(*p));
  }
  if (ins.empty()) return;
  size_t len = 1;
  bool scalar = true;
  for (const Partial& p : ins) {
    if (p.elems.size() != 1 && len != 1 && p.elems.size() != len) return;
    if (p.elems.size() != 1) len = p.elems.size();
    scalar = scalar && p.scalar;
  }
  auto at = [&](const Partial& p, size_t i) -> const Elem& {
    return p.elems.size() == 1 ? p.elems[0] : p.elems[i];
  };
  Partial out;
  out.scalar = scalar;
  for (size_t i = 0; i < len; ++i) {
    Elem r;
    if (op == "Where") {
      const Elem& c = at(ins[0], i);
      if (ins.size() == 3 && c.v) r = *c.v ? at(ins[1], i) : at(ins[2], i);
    } else if (ins.size() == 2) {
      const Elem& a = at(ins[0], i);
      const Elem& b = at(ins[1], i);
      if (a.v && b.v) {
        int64_t x = *a.v, y = *b.v, z = 0;
        bool ok = true;
        if (op == "Add")
          ok = !__builtin_add_overflow(x, y, &z);
        else if (op == "Sub")
          ok = !__builtin_sub_overflow(x, y, &z);
        else if (op == "Mul")
          ok = !__builtin_mul_overflow(x, y, &z);
        else if (op == "Div") {
          ok = y != 0 && !(x == std::numeric_limits<int64_t>::min() && y == -1);
          if (ok) z = x / y;  // truncation, as ONNX integer Div
        } else if (op == "Min")
          z = std::min(x, y);
        else if (op == "Max")
          z = std::max(x, y);
        else if (op == "Equal")
          z = x == y;
        else if (op == "Less")
          z = x < y;
        else if (op == "Greater")
          z = x > y;
        else
          ok = false;
        if (ok) r = Elem::Of(z);
      } else if ((op == "Mul" || op == "Div") && !a.sym.empty() && b.v && *b.v == 1) {
        r = a;
      } else if (op == "Mul" && !b.sym.empty() && a.v && *a.v == 1) {
        r = b;
      } else if ((op == "Add" || op == "Sub") && !a.sym.empty() && b.v && *b.v == 0) {
        r = a;
      } else if (op == "Add" && !b.sym.empty() && a.v && *a.v == 0) {
        r = b;
      } else if (op == "Equal" && !a.sym.empty() && a.sym == b.sym) {
        r = Elem::Of(1);
      }
    } else {
      return;
    }
    out.elems.push_back(std::move(r));
  }
  SetPartial(n, 0, std::move(out));
}

// ----------------------------------------------------------------------------- conv & pool

namespace {
struct WindowAttrs {
  std::vector<int64_t> kernel, strides, dilations, pads;
  std::string auto_pad;
};
}  // namespace

static WindowAttrs ReadWindow(const Node& n, size_t spatial, const std::vector<int64_t>& kernel,
                              const std::function<void(const std::string&)>& fail) {
  WindowAttrs w;
  w.kernel = kernel;
  w.strides = n.attr_ints("strides", std::vector<int64_t>(spatial, 1));
  w.dilations = n.attr_ints("dilations", std::vector<int64_t>(spatial, 1));
  w.pads = n.attr_ints("pads", std::vector<int64_t>(2 * spatial, 0));
  w.auto_pad = n.attr_string("auto_pad", "NOTSET");
  if (w.kernel.size() != spatial)
    fail("kernel_shape has " + std::to_string(w.kernel.size()) + " entries for " +
         std::to_string(spatial) + " spatial dims");
  if (w.strides.size() != spatial)
    fail("strides has " + std::to_string(w.strides.size()) + " entries for " +
         std::to_string(spatial) + " spatial dims");
  if (w.dilations.size() != spatial)
    fail("dilations has " + std::to_string(w.dilations.size()) + " entries for " +
         std::to_string(spatial) + " spatial dims");
  if (w.pads.size() != 2 * spatial)
    fail("pads has " + std::to_string(w.pads.size()) + " entries for " + std::to_string(spatial) +
         " spatial dims");
  for (size_t i = 0; i < spatial; ++i) {
    if (w.kernel[i] < 1) fail("kernel size " + std::to_string(w.kernel[i]) + " is not positive");
    if (w.strides[i] < 1) fail("stride " + std::to_string(w.strides[i]) + " is not positive");
    if (w.dilations[i] < 1) fail("dilation " + std::to_string(w.dilations[i]) + " is not positive");
    if (w.pads[i] < 0 || w.pads[i + spatial] < 0) fail("negative pads");
  }
  if (w.auto_pad != "NOTSET" && w.auto_pad != "SAME_UPPER" && w.auto_pad != "SAME_LOWER" &&
      w.auto_pad != "VALID")
    fail("unknown auto_pad '" + w.auto_pad + "'");
  return w;
}

void Inferencer::ConvLike(const Node& n, size_t x_in, size_t w_in, DType out_dtype) {
  const Shape* xs = ShapeOf(n.input(x_in));
  const Shape* ws = ShapeOf(n.input(w_in));
  if (out_dtype == DType::kUndefined) return;
  int rank = xs ? static_cast<int>(xs->size()) : ws ? static_cast<int>(ws->size()) : -1;
  if (rank < 0) return SetOutput(n, 0, out_dtype, std::nullopt);
  if (rank < 3) Fail(n, "input rank " + std::to_string(rank) + " is below 3");
  if (xs && ws && xs->size() != ws->size())
    Fail(n, "input rank " + std::to_string(xs->size()) + " differs from weight rank " +
                std::to_string(ws->size()));
  size_t spatial = static_cast<size_t>(rank - 2);
  int64_t group = n.attr_int("group", 1);
  if (group < 1) Fail(n, "group " + std::to_string(group) + " is not positive");
  if (xs && ws && (*xs)[1].known() && (*ws)[1].known() && (*xs)[1].value != (*ws)[1].value * group)
    Fail(n, "input has " + std::to_string((*xs)[1].value) + " channels but weight expects " +
                std::to_string((*ws)[1].value) + " x group " + std::to_string(group));
  if (ws && (*ws)[0].known() && (*ws)[0].value % group != 0)
    Fail(n, "output channels " + std::to_string((*ws)[0].value) + " are not divisible by group " +
                std::to_string(group));
  Shape out(static_cast<size_t>(rank));
  out[0] = xs ? (*xs)[0] : Dim{};
  out[1] = ws ? (*ws)[0] : Dim{};
  std::vector<int64_t> kernel = n.attr_ints("kernel_shape");
  if (kernel.empty()) {
    if (!ws) return SetOutput(n, 0, out_dtype, out);
    for (size_t i = 0; i < spatial; ++i) {
      if (!(*ws)[2 + i].known()) return SetOutput(n, 0, out_dtype, out);
      kernel.push_back((*ws)[2 + i].value);
    }
  }
  WindowAttrs w = ReadWindow(n, spatial, kernel, [&](const std::string& m) { Fail(n, m); });
  if (ws)
    for (size_t i = 0; i < spatial; ++i)
      MergeDim(n, (*ws)[2 + i], Dim::Known(w.kernel[i]), "kernel_shape vs weight dims");
  for (size_t i = 0; i < spatial; ++i) {
    Dim in = xs ? (*xs)[2 + i] : Dim{};
    out[2 + i] = WindowDim(n, in, w.kernel[i], w.strides[i], w.dilations[i], w.pads[i],
                           w.pads[i + spatial], w.auto_pad, false);
  }
  SetOutput(n, 0, out_dtype, out);
}

void Inferencer::ConvTranspose(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  const Shape* xs = ShapeOf(n.input(0));
  const Shape* ws = ShapeOf(n.input(1));
  if (dt == DType::kUndefined) return;
  int rank = xs ? static_cast<int>(xs->size()) : ws ? static_cast<int>(ws->size()) : -1;
  if (rank < 0) return SetOutput(n, 0, dt, std::nullopt);
  if (rank < 3) Fail(n, "input rank " + std::to_string(rank) + " is below 3");
  size_t spatial = static_cast<size_t>(rank - 2);
  int64_t group = n.attr_int("group", 1);
  if (group < 1) Fail(n, "group " + std::to_string(group) + " is not positive");
  if (xs && ws) {
    MergeDim(n, (*xs)[1], (*ws)[0], "input channels vs weight dim 0");
  }
  Shape out(static_cast<size_t>(rank));
  out[0] = xs ? (*xs)[0] : Dim{};
  out[1] = ws && (*ws)[1].known() ? Dim::Known((*ws)[1].value * group) : Dim{};
  std::vector<int64_t> kernel = n.attr_ints("kernel_shape");
  if (kernel.empty() && ws) {
    for (size_t i = 0; i < spatial; ++i) {
      if (!(*ws)[2 + i].known()) return SetOutput(n, 0, dt, out);
      kernel.push_back((*ws)[2 + i].value);
    }
  }
  if (kernel.empty()) return SetOutput(n, 0, dt, out);
  WindowAttrs w = ReadWindow(n, spatial, kernel, [&](const std::string& m) { Fail(n, m); });
  std::vector<int64_t> out_pad = n.attr_ints("output_padding", std::vector<int64_t>(spatial, 0));
  std::vector<int64_t> out_shape = n.attr_ints("output_shape");
  if (out_pad.size() != spatial) Fail(n, "output_padding has the wrong length");
  if (!out_shape.empty()) {
    if (out_shape.size() < spatial)
      Fail(n, "output_shape " + JoinInts(out_shape) + " is too short");
    for (size_t i = 0; i < spatial; ++i)
      out[2 + i] = Dim::Known(out_shape[out_shape.size() - spatial + i]);
    return SetOutput(n, 0, dt, out);
  }
  for (size_t i = 0; i < spatial; ++i) {
    Dim in = xs ? (*xs)[2 + i] : Dim{};
    if (!in.known()) {
      out[2 + i] = Dim{};
      continue;
    }
    // Sizes come from the model file: compute in double and refuse what int64 cannot hold.
    double dk = static_cast<double>(w.dilations[i]) * static_cast<double>(w.kernel[i] - 1) + 1;
    double vd;
    if (w.auto_pad == "SAME_UPPER" || w.auto_pad == "SAME_LOWER") {
      vd = static_cast<double>(in.value) * static_cast<double>(w.strides[i]);
    } else {
      double pads = w.auto_pad == "VALID"
                        ? 0
                        : static_cast<double>(w.pads[i]) + static_cast<double>(w.pads[i + spatial]);
      vd = static_cast<double>(w.strides[i]) * static_cast<double>(in.value - 1) +
           static_cast<double>(out_pad[i]) + dk - pads;
    }
    if (!(vd < 9.0e15)) Fail(n, "output size overflows");
    int64_t v = static_cast<int64_t>(vd);
    if (v < 0) Fail(n, "output size " + std::to_string(v) + " is negative");
    out[2 + i] = Dim::Known(v);
  }
  SetOutput(n, 0, dt, out);
}

void Inferencer::Pool(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  const Shape* xs = ShapeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  if (!xs) {
    SetOutput(n, 0, dt, std::nullopt);
    SetOutput(n, 1, DType::kInt64, std::nullopt);
    return;
  }
  if (xs->size() < 3) Fail(n, "input rank " + std::to_string(xs->size()) + " is below 3");
  size_t spatial = xs->size() - 2;
  std::vector<int64_t> kernel = n.attr_ints("kernel_shape");
  if (kernel.empty()) Fail(n, "kernel_shape is required");
  WindowAttrs w = ReadWindow(n, spatial, kernel, [&](const std::string& m) { Fail(n, m); });
  bool ceil_mode = n.attr_int("ceil_mode", 0) != 0;
  Shape out = *xs;
  for (size_t i = 0; i < spatial; ++i)
    out[2 + i] = WindowDim(n, (*xs)[2 + i], w.kernel[i], w.strides[i], w.dilations[i], w.pads[i],
                           w.pads[i + spatial], w.auto_pad, ceil_mode);
  SetOutput(n, 0, dt, out);
  SetOutput(n, 1, DType::kInt64, out);
}

void Inferencer::GlobalPool(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) return SetOutput(n, 0, dt, std::nullopt);
  if (xs->size() < 2) Fail(n, "input rank " + std::to_string(xs->size()) + " is below 2");
  Shape out = *xs;
  for (size_t i = 2; i < out.size(); ++i) out[i] = Dim::Known(1);
  SetOutput(n, 0, dt, out);
}

// ----------------------------------------------------------------------------- matmul

void Inferencer::MatMulLike(const Node& n, size_t a_in, size_t b_in, DType out_dtype) {
  if (out_dtype == DType::kUndefined) return;
  const Shape* as = ShapeOf(n.input(a_in));
  const Shape* bs = ShapeOf(n.input(b_in));
  if (!as || !bs) return SetOutput(n, 0, out_dtype, std::nullopt);
  if (as->empty() || bs->empty()) Fail(n, "MatMul inputs must have rank >= 1");
  Shape a = *as, b = *bs;
  bool a1 = a.size() == 1, b1 = b.size() == 1;
  if (a1) a.insert(a.begin(), Dim::Known(1));
  if (b1) b.push_back(Dim::Known(1));
  const Dim& ka = a.back();
  const Dim& kb = b[b.size() - 2];
  if (ka.known() && kb.known() && ka.value != kb.value)
    Fail(n, "inner dimensions differ: " + ShapeToString(*as) + " x " + ShapeToString(*bs) + " (" +
                std::to_string(ka.value) + " vs " + std::to_string(kb.value) + ")");
  Shape ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
  Shape batch;
  size_t nb = std::max(ba.size(), bb.size());
  for (size_t i = 0; i < nb; ++i) {
    Dim da = i + ba.size() >= nb ? ba[i + ba.size() - nb] : Dim::Known(1);
    Dim db = i + bb.size() >= nb ? bb[i + bb.size() - nb] : Dim::Known(1);
    batch.push_back(BroadcastDim(n, da, db));
  }
  Shape out = batch;
  if (!a1) out.push_back(a[a.size() - 2]);
  if (!b1) out.push_back(b.back());
  SetOutput(n, 0, out_dtype, out);
}

void Inferencer::Gemm(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) dt = DTypeOf(n.input(1));
  if (dt == DType::kUndefined) return;
  const Shape* as = ShapeOf(n.input(0));
  const Shape* bs = ShapeOf(n.input(1));
  if (as && as->size() != 2) Fail(n, "A has rank " + std::to_string(as->size()) + ", expected 2");
  if (bs && bs->size() != 2) Fail(n, "B has rank " + std::to_string(bs->size()) + ", expected 2");
  bool ta = n.attr_int("transA", 0) != 0, tb = n.attr_int("transB", 0) != 0;
  Dim m = as ? (*as)[ta ? 1 : 0] : Dim{};
  Dim ka = as ? (*as)[ta ? 0 : 1] : Dim{};
  Dim kb = bs ? (*bs)[tb ? 1 : 0] : Dim{};
  Dim nn = bs ? (*bs)[tb ? 0 : 1] : Dim{};
  if (ka.known() && kb.known() && ka.value != kb.value)
    Fail(n, "inner dimensions differ: " + std::to_string(ka.value) + " vs " +
                std::to_string(kb.value));
  SetOutput(n, 0, dt, Shape{m, nn});
}

// ----------------------------------------------------------------------------- shape ops

void Inferencer::Reshape(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  std::optional<Partial> target;
  if (HasInput(n, 1))
    target = PartialOf(n.input(1));
  else if (n.has_attr("shape")) {
    Partial p;
    for (int64_t v : n.attr_ints("shape")) p.elems.push_back(Elem::Of(v));
    target = p;
  }
  if (!target) {
    const Shape* ss = ShapeOf(n.input(1));
    if (ss && ss->size() == 1 && (*ss)[0].known())
      return SetOutput(n, 0, dt, UnknownDims((*ss)[0].value));
    return SetOutput(n, 0, dt, std::nullopt);
  }
  bool allowzero = n.attr_int("allowzero", 0) != 0;
  Shape out;
  int infer = -1;
  for (size_t i = 0; i < target->elems.size(); ++i) {
    const Elem& e = target->elems[i];
    if (e.v && *e.v == -1) {
      if (infer >= 0) Fail(n, "shape has more than one -1");
      infer = static_cast<int>(i);
      out.push_back(Dim{});
    } else if (e.v && *e.v == 0 && !allowzero) {
      if (xs && i >= xs->size())
        Fail(n, "shape entry " + std::to_string(i) + " is 0 (copy) but the input has rank " +
                    std::to_string(xs->size()));
      out.push_back(xs ? (*xs)[i] : Dim{});
    } else if (e.v && *e.v < -1) {
      Fail(n, "shape entry " + std::to_string(*e.v) + " is invalid");
    } else {
      out.push_back(e.ToDim());
    }
  }
  if (xs) {
    // Cancel known products and matching symbols between input dims and output dims.
    int64_t pin = 1, pout = 1;
    bool unknown_in = false, unknown_out = false, overflow = false;
    std::vector<std::string> sin, sout;
    for (const Dim& d : *xs) {
      if (d.known())
        overflow |= __builtin_mul_overflow(pin, d.value, &pin);
      else if (!d.symbol.empty())
        sin.push_back(d.symbol);
      else
        unknown_in = true;
    }
    for (size_t i = 0; i < out.size(); ++i) {
      if (static_cast<int>(i) == infer) continue;
      const Dim& d = out[i];
      if (d.known())
        overflow |= __builtin_mul_overflow(pout, d.value, &pout);
      else if (!d.symbol.empty())
        sout.push_back(d.symbol);
      else
        unknown_out = true;
    }
    for (auto it = sout.begin(); it != sout.end();) {
      auto m = std::find(sin.begin(), sin.end(), *it);
      if (m != sin.end()) {
        sin.erase(m);
        it = sout.erase(it);
      } else {
        ++it;
      }
    }
    if (!overflow && !unknown_in && !unknown_out && sout.empty()) {
      if (infer >= 0) {
        if (sin.empty()) {
          if (pout == 0) {
            if (pin != 0) Fail(n, "cannot infer -1 with a zero-sized shape");
          } else if (pin % pout != 0) {
            Fail(n, "cannot reshape " + ShapeToString(*xs) + " (" + std::to_string(pin) +
                        " elements) into " + ShapeToString(out) + ": not divisible");
          } else {
            out[static_cast<size_t>(infer)] = Dim::Known(pin / pout);
          }
        } else if (sin.size() == 1 && pin == pout) {
          out[static_cast<size_t>(infer)] = Dim::Symbol(sin[0]);
        }
      } else if (sin.empty() && pin != pout) {
        Fail(n, "cannot reshape " + ShapeToString(*xs) + " (" + std::to_string(pin) +
                    " elements) into " + ShapeToString(out) + " (" + std::to_string(pout) +
                    " elements)");
      }
    }
  }
  SetOutput(n, 0, dt, out);
  // Reshaping a small shape value to [n] or [] keeps its elements.
  if (auto p = PartialOf(n.input(0))) {
    if (out.size() <= 1 &&
        (out.empty() ? p->elems.size() == 1
                     : out[0].known() && out[0].value == static_cast<int64_t>(p->elems.size()))) {
      p->scalar = out.empty();
      SetPartial(n, 0, *p);
    }
  }
}

void Inferencer::Transpose(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  std::vector<int64_t> perm = n.attr_ints("perm");
  if (!xs)
    return SetOutput(n, 0, dt,
                     perm.empty() ? std::nullopt : std::optional<Shape>(Shape(perm.size())));
  int64_t r = static_cast<int64_t>(xs->size());
  if (perm.empty())
    for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int64_t>(perm.size()) != r)
    Fail(n, "perm " + JoinInts(perm) + " does not match rank " + std::to_string(r));
  std::vector<bool> seen(static_cast<size_t>(r), false);
  Shape out;
  for (int64_t p : perm) {
    int64_t a = NormAxis(n, p, r, "perm entry");
    if (seen[static_cast<size_t>(a)]) Fail(n, "perm " + JoinInts(perm) + " repeats an axis");
    seen[static_cast<size_t>(a)] = true;
    out.push_back((*xs)[static_cast<size_t>(a)]);
  }
  SetOutput(n, 0, dt, out);
}

void Inferencer::Flatten(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) return SetOutput(n, 0, dt, Shape(2));
  int64_t r = static_cast<int64_t>(xs->size());
  int64_t axis = n.attr_int("axis", 1);
  if (axis < -r || axis > r)
    Fail(n, "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(r));
  if (axis < 0) axis += r;
  size_t a = static_cast<size_t>(axis);
  SetOutput(n, 0, dt, Shape{Product(*xs, 0, a), Product(*xs, a, xs->size())});
}

void Inferencer::Squeeze(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  auto axes = IntsFromInputOrAttr(n, 1, "axes");
  bool given = HasInput(n, 1) || n.has_attr("axes");
  if (!xs || (given && !axes)) return SetOutput(n, 0, dt, std::nullopt);
  int64_t r = static_cast<int64_t>(xs->size());
  std::vector<bool> drop(xs->size(), false);
  if (!given) {
    for (size_t i = 0; i < xs->size(); ++i) {
      if (!(*xs)[i].known()) return SetOutput(n, 0, dt, std::nullopt);
      drop[i] = (*xs)[i].value == 1;
    }
  } else {
    for (int64_t a : *axes) {
      size_t k = static_cast<size_t>(NormAxis(n, a, r, "axis"));
      if ((*xs)[k].known() && (*xs)[k].value != 1)
        Fail(n, "cannot squeeze axis " + std::to_string(a) + " of size " +
                    std::to_string((*xs)[k].value));
      drop[k] = true;
    }
  }
  Shape out;
  for (size_t i = 0; i < xs->size(); ++i)
    if (!drop[i]) out.push_back((*xs)[i]);
  SetOutput(n, 0, dt, out);
  if (auto p = PartialOf(n.input(0)))
    if (out.empty() && p->elems.size() == 1) SetPartial(n, 0, Partial{p->elems, true});
}

void Inferencer::Unsqueeze(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  auto axes = IntsFromInputOrAttr(n, 1, "axes");
  if (!xs || !axes) return SetOutput(n, 0, dt, std::nullopt);
  int64_t r = static_cast<int64_t>(xs->size() + axes->size());
  std::vector<bool> ins(static_cast<size_t>(r), false);
  for (int64_t a : *axes) {
    size_t k = static_cast<size_t>(NormAxis(n, a, r, "axis"));
    if (ins[k]) Fail(n, "axes " + JoinInts(*axes) + " repeat an axis");
    ins[k] = true;
  }
  Shape out;
  size_t j = 0;
  for (size_t i = 0; i < ins.size(); ++i) out.push_back(ins[i] ? Dim::Known(1) : (*xs)[j++]);
  SetOutput(n, 0, dt, out);
  if (auto p = PartialOf(n.input(0)))
    if (p->scalar && out.size() == 1) SetPartial(n, 0, Partial{p->elems, false});
}

void Inferencer::Concat(const Node& n) {
  DType dt = DType::kUndefined;
  for (Value* v : n.inputs())
    if (DTypeOf(v) != DType::kUndefined) dt = DTypeOf(v);
  if (dt == DType::kUndefined) return;
  int rank = -1;
  for (Value* v : n.inputs()) {
    int r = RankOf(v);
    if (r < 0) continue;
    if (rank >= 0 && r != rank)
      Fail(n, "inputs have ranks " + std::to_string(rank) + " and " + std::to_string(r));
    rank = r;
  }
  if (rank < 0) return SetOutput(n, 0, dt, std::nullopt);
  if (rank == 0) Fail(n, "cannot concatenate scalars");
  int64_t axis = NormAxis(n, n.attr_int("axis", 0), rank, "axis");
  Shape out(static_cast<size_t>(rank));
  bool first = true;
  int64_t sum = 0;
  bool sum_known = true;
  for (Value* v : n.inputs()) {
    const Shape* s = ShapeOf(v);
    if (!s) {
      sum_known = false;
      continue;
    }
    for (size_t k = 0; k < s->size(); ++k) {
      if (static_cast<int64_t>(k) == axis) {
        if (!(*s)[k].known() || __builtin_add_overflow(sum, (*s)[k].value, &sum)) sum_known = false;
      } else {
        out[k] =
            first ? (*s)[k]
                  : MergeDim(n, out[k], (*s)[k], "non-axis dim " + std::to_string(k) + " differs");
      }
    }
    first = false;
  }
  out[static_cast<size_t>(axis)] = sum_known ? Dim::Known(sum) : Dim{};
  SetOutput(n, 0, dt, out);
  // Concatenating small shape values (the usual Reshape target construction).
  if (rank == 1) {
    Partial p;
    for (Value* v : n.inputs()) {
      auto pi = PartialOf(v);
      if (!pi) return;
      p.elems.insert(p.elems.end(), pi->elems.begin(), pi->elems.end());
    }
    SetPartial(n, 0, std::move(p));
  }
}

void Inferencer::Split(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  size_t outs = n.num_outputs();
  if (!xs) {
    for (size_t i = 0; i < outs; ++i) SetOutput(n, i, dt, std::nullopt);
    return;
  }
  int64_t axis = NormAxis(n, n.attr_int("axis", 0), static_cast<int64_t>(xs->size()), "axis");
  const Dim& d = (*xs)[static_cast<size_t>(axis)];
  std::optional<std::vector<int64_t>> split = IntsFromInputOrAttr(n, 1, "split");
  bool given = HasInput(n, 1) || n.has_attr("split");
  std::vector<Dim> sizes(outs);
  if (given && split) {
    if (split->size() != outs)
      Fail(n, "split " + JoinInts(*split) + " has " + std::to_string(split->size()) +
                  " entries for " + std::to_string(outs) + " outputs");
    int64_t sum = 0;
    for (size_t i = 0; i < outs; ++i) {
      if ((*split)[i] < 0) Fail(n, "split " + JoinInts(*split) + " has a negative entry");
      if (__builtin_add_overflow(sum, (*split)[i], &sum)) Fail(n, "split sizes overflow");
      sizes[i] = Dim::Known((*split)[i]);
    }
    if (d.known() && sum != d.value)
      Fail(n, "split " + JoinInts(*split) + " sums to " + std::to_string(sum) + " but axis " +
                  std::to_string(axis) + " has size " + std::to_string(d.value));
  } else if (!given && d.known() && outs > 0) {
    int64_t chunk = CeilDiv(d.value, static_cast<int64_t>(outs));
    if (d.value % static_cast<int64_t>(outs) != 0 && opset_ < 18)
      Fail(n, "axis size " + std::to_string(d.value) + " does not split evenly into " +
                  std::to_string(outs) + " outputs");
    for (size_t i = 0; i < outs; ++i) {
      int64_t rem = d.value - chunk * static_cast<int64_t>(i);
      sizes[i] = Dim::Known(std::max<int64_t>(0, std::min(chunk, rem)));
    }
  }
  for (size_t i = 0; i < outs; ++i) {
    Shape s = *xs;
    s[static_cast<size_t>(axis)] = sizes[i];
    SetOutput(n, i, dt, s);
  }
}

namespace {
// Output length of slicing a dim of size `d` (ONNX Slice clamping rules).
int64_t SliceLength(int64_t d, int64_t start, int64_t end, int64_t step) {
  if (d == 0) return 0;
  if (start < 0) start += d;
  if (end < 0) end += d;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, d);
    end = std::clamp<int64_t>(end, 0, d);
    return end > start ? (end - start + step - 1) / step : 0;
  }
  start = std::clamp<int64_t>(start, 0, d - 1);
  end = std::clamp<int64_t>(end, -1, d - 1);
  return start > end ? (start - end + (-step) - 1) / (-step) : 0;
}
}  // namespace

void Inferencer::Slice(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) return SetOutput(n, 0, dt, std::nullopt);
  int64_t r = static_cast<int64_t>(xs->size());
  bool attr_form = !HasInput(n, 1) && n.has_attr("starts");
  auto starts = attr_form ? std::optional(n.attr_ints("starts")) : ConstInts(n.input(1));
  auto ends = attr_form ? std::optional(n.attr_ints("ends")) : ConstInts(n.input(2));
  std::optional<std::vector<int64_t>> axes =
      attr_form ? (n.has_attr("axes") ? std::optional(n.attr_ints("axes")) : std::nullopt)
                : (HasInput(n, 3) ? ConstInts(n.input(3)) : std::nullopt);
  bool axes_given = attr_form ? n.has_attr("axes") : HasInput(n, 3);
  std::optional<std::vector<int64_t>> steps = HasInput(n, 4) ? ConstInts(n.input(4)) : std::nullopt;
  bool steps_given = HasInput(n, 4);
  Shape out = *xs;
  if (axes_given && !axes) {
    for (Dim& d : out) d = Dim{};
    return SetOutput(n, 0, dt, out);
  }
  if (!starts || !ends || (steps_given && !steps)) {
    if (axes)
      for (int64_t a : *axes) out[static_cast<size_t>(NormAxis(n, a, r, "axis"))] = Dim{};
    else
      for (Dim& d : out) d = Dim{};
    return SetOutput(n, 0, dt, out);
  }
  size_t k = starts->size();
  if (ends->size() != k) Fail(n, "starts and ends have different lengths");
  std::vector<int64_t> ax = axes ? *axes : std::vector<int64_t>();
  if (!axes)
    for (size_t i = 0; i < k; ++i) ax.push_back(static_cast<int64_t>(i));
  std::vector<int64_t> st = steps ? *steps : std::vector<int64_t>(k, 1);
  if (ax.size() != k || st.size() != k) Fail(n, "starts, ends, axes and steps differ in length");
  auto partial = PartialOf(n.input(0));
  for (size_t i = 0; i < k; ++i) {
    size_t a = static_cast<size_t>(NormAxis(n, ax[i], r, "axis"));
    if (st[i] == 0) Fail(n, "step is 0");
    const Dim& d = (*xs)[a];
    if (d.known()) {
      out[a] = Dim::Known(SliceLength(d.value, (*starts)[i], (*ends)[i], st[i]));
    } else if ((*starts)[i] == 0 && st[i] == 1 &&
               (*ends)[i] >= std::numeric_limits<int32_t>::max()) {
      out[a] = d;  // the whole axis
    } else {
      out[a] = Dim{};
    }
  }
  SetOutput(n, 0, dt, out);
  if (partial && !partial->scalar && r == 1 && k == 1 && out[0].known()) {
    int64_t len = static_cast<int64_t>(partial->elems.size());
    int64_t s = (*starts)[0], e = (*ends)[0], step = st[0];
    if (s < 0) s += len;
    if (e < 0) e += len;
    Partial p;
    if (len == 0) {
      // nothing to take
    } else if (step > 0) {
      s = std::clamp<int64_t>(s, 0, len);
      e = std::clamp<int64_t>(e, 0, len);
      for (int64_t i = s; i < e; i += step)
        p.elems.push_back(partial->elems[static_cast<size_t>(i)]);
    } else {
      s = std::clamp<int64_t>(s, 0, len - 1);
      e = std::clamp<int64_t>(e, -1, len - 1);
      for (int64_t i = s; i > e; i += step)
        p.elems.push_back(partial->elems[static_cast<size_t>(i)]);
    }
    SetPartial(n, 0, std::move(p));
  }
}

void Inferencer::Gather(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  const Shape* is = ShapeOf(n.input(1));
  if (!xs || !is) return SetOutput(n, 0, dt, std::nullopt);
  int64_t r = static_cast<int64_t>(xs->size());
  if (r == 0) Fail(n, "cannot gather from a scalar");
  size_t axis = static_cast<size_t>(NormAxis(n, n.attr_int("axis", 0), r, "axis"));
  Shape out(xs->begin(), xs->begin() + static_cast<long>(axis));
  out.insert(out.end(), is->begin(), is->end());
  out.insert(out.end(), xs->begin() + static_cast<long>(axis) + 1, xs->end());
  SetOutput(n, 0, dt, out);
  auto data = PartialOf(n.input(0));
  auto idx = ConstInts(n.input(1));
  if (data && !data->scalar && idx && is->size() <= 1) {
    Partial p;
    p.scalar = is->empty();
    int64_t len = static_cast<int64_t>(data->elems.size());
    for (int64_t i : *idx) {
      if (i < -len || i >= len)
        Fail(n, "index " + std::to_string(i) + " is out of range for size " + std::to_string(len));
      p.elems.push_back(data->elems[static_cast<size_t>(i < 0 ? i + len : i)]);
    }
    SetPartial(n, 0, std::move(p));
  }
}

void Inferencer::Expand(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  auto target = PartialOf(n.input(1));
  if (!target) {
    const Shape* ss = ShapeOf(n.input(1));
    if (xs && ss && ss->size() == 1 && (*ss)[0].known())
      return SetOutput(
          n, 0, dt,
          UnknownDims(std::max<int64_t>(static_cast<int64_t>(xs->size()), (*ss)[0].value)));
    return SetOutput(n, 0, dt, std::nullopt);
  }
  Shape t;
  for (const Elem& e : target->elems) {
    if (e.v && *e.v < 0) Fail(n, "shape entry " + std::to_string(*e.v) + " is negative");
    t.push_back(e.ToDim());
  }
  if (!xs) return SetOutput(n, 0, dt, Shape(t.size()));
  Shape out = t.size() >= xs->size() ? t : *xs;
  size_t rank = std::max(t.size(), xs->size());
  out.assign(rank, Dim::Known(1));
  for (size_t i = 0; i < rank; ++i) {
    Dim a = i + xs->size() >= rank ? (*xs)[i + xs->size() - rank] : Dim::Known(1);
    Dim b = i + t.size() >= rank ? t[i + t.size() - rank] : Dim::Known(1);
    out[i] = BroadcastDim(n, a, b);
  }
  SetOutput(n, 0, dt, out);
}

void Inferencer::Tile(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  auto reps = ConstInts(n.input(1));
  if (!xs) return SetOutput(n, 0, dt, std::nullopt);
  Shape out = *xs;
  if (!reps) {
    for (Dim& d : out) d = Dim{};
    return SetOutput(n, 0, dt, out);
  }
  if (reps->size() != xs->size())
    Fail(n, "repeats " + JoinInts(*reps) + " do not match rank " + std::to_string(xs->size()));
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t k = (*reps)[i];
    if (k < 0) Fail(n, "repeats " + JoinInts(*reps) + " has a negative entry");
    if (out[i].known()) {
      int64_t v;
      out[i] = __builtin_mul_overflow(out[i].value, k, &v) ? Dim{} : Dim::Known(v);
    } else if (k != 1) {
      out[i] = k == 0 ? Dim::Known(0) : Dim{};
    }
  }
  SetOutput(n, 0, dt, out);
}

void Inferencer::Pad(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) return SetOutput(n, 0, dt, std::nullopt);
  auto pads = IntsFromInputOrAttr(n, 1, "pads");
  Shape out = *xs;
  size_t r = xs->size();
  if (!pads) {
    for (Dim& d : out) d = Dim{};
    return SetOutput(n, 0, dt, out);
  }
  std::vector<int64_t> axes;
  if (HasInput(n, 3)) {
    auto a = ConstInts(n.input(3));
    if (!a) {
      for (Dim& d : out) d = Dim{};
      return SetOutput(n, 0, dt, out);
    }
    for (int64_t x : *a) axes.push_back(NormAxis(n, x, static_cast<int64_t>(r), "axis"));
  } else {
    for (size_t i = 0; i < r; ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (pads->size() != 2 * axes.size())
    Fail(n, "pads " + JoinInts(*pads) + " has " + std::to_string(pads->size()) +
                " entries, expected " + std::to_string(2 * axes.size()));
  for (size_t i = 0; i < axes.size(); ++i) {
    Dim& d = out[static_cast<size_t>(axes[i])];
    int64_t add = 0, v = 0;
    if (__builtin_add_overflow((*pads)[i], (*pads)[i + axes.size()], &add) ||
        (d.known() && __builtin_add_overflow(d.value, add, &v)))
      Fail(n, "pads " + JoinInts(*pads) + " overflow");
    if (d.known()) {
      if (v < 0) Fail(n, "pads " + JoinInts(*pads) + " make a dim negative");
      d = Dim::Known(v);
    } else if (add != 0) {
      d = Dim{};
    }
  }
  SetOutput(n, 0, dt, out);
}

void Inferencer::ShapeOp(const Node& n) {
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) {
    if (!n.has_attr("start") && !n.has_attr("end")) SetOutput(n, 0, DType::kInt64, Shape(1));
    return;
  }
  int64_t r = static_cast<int64_t>(xs->size());
  int64_t start = n.attr_int("start", 0), end = n.attr_int("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  Partial p;
  for (int64_t i = start; i < end; ++i)
    p.elems.push_back(Elem::FromDim((*xs)[static_cast<size_t>(i)]));
  SetOutput(n, 0, DType::kInt64, MakeShape({static_cast<int64_t>(p.elems.size())}));
  SetPartial(n, 0, std::move(p));
}

void Inferencer::Size(const Node& n) {
  SetOutput(n, 0, DType::kInt64, Shape{});
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) return;
  Dim d = Product(*xs, 0, xs->size());
  SetPartial(n, 0, Partial{{Elem::FromDim(d)}, true});
}

void Inferencer::Cast(const Node& n) {
  if (!n.has_attr("to")) Fail(n, "attribute 'to' is missing");
  DType to = DTypeFromOnnx(n.attr_int("to", 0));
  if (to == DType::kUndefined)
    Fail(n, "attribute 'to' names unknown type " + std::to_string(n.attr_int("to", 0)));
  const ValueType* t = TensorType(n.input(0));
  SetOutput(n, 0, to, t ? t->shape : std::nullopt);
  if (IsIntLike(to))
    if (auto p = PartialOf(n.input(0))) SetPartial(n, 0, *p);
}

void Inferencer::ConstantOfShape(const Node& n) {
  DType dt = DType::kFloat32;
  const Attribute* a = n.attr("value");
  if (a && a->kind == Attribute::Kind::kTensor) dt = a->t.dtype();
  auto target = PartialOf(n.input(0));
  if (!target) {
    const Shape* ss = ShapeOf(n.input(0));
    if (ss && ss->size() == 1 && (*ss)[0].known())
      return SetOutput(n, 0, dt, UnknownDims((*ss)[0].value));
    return SetOutput(n, 0, dt, std::nullopt);
  }
  Shape s;
  for (const Elem& e : target->elems) {
    if (e.v && *e.v < 0) Fail(n, "shape entry " + std::to_string(*e.v) + " is negative");
    s.push_back(e.ToDim());
  }
  SetOutput(n, 0, dt, s);
  // ConstantOfShape(Shape(x)[k]) of ints feeds Expand/Where shape arithmetic in exports.
  if (s.size() == 1 && s[0].known() && s[0].value <= static_cast<int64_t>(kMaxPartialElements) &&
      IsIntLike(dt)) {
    int64_t fill =
        a && a->kind == Attribute::Kind::kTensor && a->t.numel() == 1 ? a->t.ToInt64()[0] : 0;
    SetPartial(n, 0,
               Partial{std::vector<Elem>(static_cast<size_t>(s[0].value), Elem::Of(fill)), false});
  }
}

void Inferencer::Range(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) dt = DTypeOf(n.input(1));
  if (dt == DType::kUndefined) return;
  auto start = ConstDoubles(n.input(0));
  auto limit = ConstDoubles(n.input(1));
  auto delta = ConstDoubles(n.input(2));
  if (!start || !limit || !delta || start->size() != 1 || limit->size() != 1 ||
      delta->size() != 1) {
    // arange(0, seq): positions for a symbolic sequence length, as exporters write them.
    auto lim = PartialOf(n.input(1));
    if (start && delta && start->size() == 1 && delta->size() == 1 && (*start)[0] == 0 &&
        (*delta)[0] == 1 && lim && lim->elems.size() == 1 && !lim->elems[0].sym.empty())
      return SetOutput(n, 0, dt, Shape{Dim::Symbol(lim->elems[0].sym)});
    return SetOutput(n, 0, dt, Shape(1));
  }
  if ((*delta)[0] == 0) Fail(n, "delta is 0");
  double count = std::ceil(((*limit)[0] - (*start)[0]) / (*delta)[0]);
  if (!(count < 9.0e18)) Fail(n, "range is too long");
  int64_t len = std::max<int64_t>(0, static_cast<int64_t>(count));
  SetOutput(n, 0, dt, MakeShape({len}));
  if (IsIntLike(dt) && len <= static_cast<int64_t>(kMaxPartialElements)) {
    Partial p;
    for (int64_t i = 0; i < len; ++i)
      p.elems.push_back(
          Elem::Of(static_cast<int64_t>((*start)[0] + static_cast<double>(i) * (*delta)[0])));
    SetPartial(n, 0, std::move(p));
  }
}

// ----------------------------------------------------------------------------- reductions

void Inferencer::Reduce(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  bool keepdims = n.attr_int("keepdims", 1) != 0;
  bool noop = n.attr_int("noop_with_empty_axes", 0) != 0;
  bool given = HasInput(n, 1) || n.has_attr("axes");
  auto axes = IntsFromInputOrAttr(n, 1, "axes");
  if (!xs) return SetOutput(n, 0, dt, std::nullopt);
  int64_t r = static_cast<int64_t>(xs->size());
  if (given && !axes) {
    if (!keepdims) return SetOutput(n, 0, dt, std::nullopt);
    return SetOutput(n, 0, dt, Shape(xs->size()));
  }
  std::vector<bool> reduce(xs->size(), false);
  if (!axes || axes->empty()) {
    if (noop) return SetOutput(n, 0, dt, *xs);
    reduce.assign(xs->size(), true);
  } else {
    for (int64_t a : *axes) reduce[static_cast<size_t>(NormAxis(n, a, r, "axis"))] = true;
  }
  Shape out;
  for (size_t i = 0; i < xs->size(); ++i) {
    if (!reduce[i])
      out.push_back((*xs)[i]);
    else if (keepdims)
      out.push_back(Dim::Known(1));
  }
  SetOutput(n, 0, dt, out);
}

void Inferencer::ArgReduce(const Node& n) {
  const Shape* xs = ShapeOf(n.input(0));
  if (!xs) return SetOutput(n, 0, DType::kInt64, std::nullopt);
  int64_t r = static_cast<int64_t>(xs->size());
  size_t axis = static_cast<size_t>(NormAxis(n, n.attr_int("axis", 0), r, "axis"));
  Shape out = *xs;
  if (n.attr_int("keepdims", 1) != 0)
    out[axis] = Dim::Known(1);
  else
    out.erase(out.begin() + static_cast<long>(axis));
  SetOutput(n, 0, DType::kInt64, out);
}

void Inferencer::TopK(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  const Shape* xs = ShapeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  if (!xs) {
    SetOutput(n, 0, dt, std::nullopt);
    SetOutput(n, 1, DType::kInt64, std::nullopt);
    return;
  }
  Shape out = *xs;
  size_t axis = static_cast<size_t>(
      NormAxis(n, n.attr_int("axis", -1), static_cast<int64_t>(out.size()), "axis"));
  auto k = HasInput(n, 1)
               ? ConstInts(n.input(1))
               : std::optional<std::vector<int64_t>>(std::vector<int64_t>{n.attr_int("k", -1)});
  if (k && k->size() == 1 && (*k)[0] >= 0) {
    if (out[axis].known() && (*k)[0] > out[axis].value)
      Fail(n, "k " + std::to_string((*k)[0]) + " exceeds axis size " +
                  std::to_string(out[axis].value));
    out[axis] = Dim::Known((*k)[0]);
  } else {
    out[axis] = Dim{};
  }
  SetOutput(n, 0, dt, out);
  SetOutput(n, 1, DType::kInt64, out);
}

// ----------------------------------------------------------------------------- resize

void Inferencer::Resize(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  // Resize-10 and Upsample-9 take (X, scales); Resize-11+ takes (X, roi, scales, sizes);
  // Upsample-7 has a `scales` attribute.
  bool two_input = n.op_type() == "Upsample" || opset_ < 11;
  const Value* scales_in = two_input ? n.input(1) : n.input(2);
  const Value* sizes_in = two_input ? nullptr : n.input(3);
  if (!xs) return SetOutput(n, 0, dt, std::nullopt);
  Shape out = *xs;
  if (sizes_in) {
    auto sizes = PartialOf(sizes_in);
    if (!sizes) {
      for (Dim& d : out) d = Dim{};
      return SetOutput(n, 0, dt, out);
    }
    if (sizes->elems.size() != out.size())
      Fail(n, "sizes has " + std::to_string(sizes->elems.size()) + " entries for rank " +
                  std::to_string(out.size()));
    for (size_t i = 0; i < out.size(); ++i) out[i] = sizes->elems[i].ToDim();
    return SetOutput(n, 0, dt, out);
  }
  std::optional<std::vector<double>> scales;
  if (scales_in)
    scales = ConstDoubles(scales_in);
  else if (n.has_attr("scales")) {
    std::vector<double> s;
    for (float f : n.attr_floats("scales")) s.push_back(f);
    scales = s;
  }
  if (!scales || (scales->empty() && scales_in)) {
    for (Dim& d : out) d = Dim{};
    return SetOutput(n, 0, dt, out);
  }
  if (scales->size() != out.size())
    Fail(n, "scales has " + std::to_string(scales->size()) + " entries for rank " +
                std::to_string(out.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    double s = (*scales)[i];
    if (!(s > 0)) Fail(n, "scale " + std::to_string(s) + " is not positive");
    if (out[i].known()) {
      double v = std::floor(static_cast<double>(out[i].value) * s);
      if (!(v < 9.0e18)) Fail(n, "scale " + std::to_string(s) + " makes a dim overflow");
      out[i] = Dim::Known(static_cast<int64_t>(v));
    } else if (s != 1.0)
      out[i] = Dim{};
  }
  SetOutput(n, 0, dt, out);
}

// ----------------------------------------------------------------------------- constants

void Inferencer::Constant(const Node& n) {
  const Tensor* t = ConstTensor(n.output(0));
  if (!t) return;
  SetOutput(n, 0, t->dtype(), MakeShape(t->shape()));
}

// ----------------------------------------------------------------------------- control flow

namespace {
// Types that agree between branches/iterations; differing dims become unknown.
ValueType Generalize(const ValueType& a, const ValueType& b) {
  if (a.kind != b.kind || !a.is_tensor()) return a == b ? a : ValueType{};
  ValueType t = ValueType::Tensor(a.dtype == b.dtype ? a.dtype : DType::kUndefined);
  if (a.shape && b.shape && a.shape->size() == b.shape->size()) {
    Shape s = *a.shape;
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] != (*b.shape)[i]) s[i] = Dim{};
    t.shape = s;
  }
  return t;
}

void SnapshotTypes(Graph& g, std::vector<std::pair<Value*, ValueType>>& out) {
  for (Node* n : g.nodes()) {
    for (Value* v : n->outputs())
      if (v) out.emplace_back(v, v->type);
    for (Graph* sg : n->subgraphs()) SnapshotTypes(*sg, out);
  }
}
}  // namespace

void Inferencer::If(Node& n) {
  const Attribute* then_a = n.attr("then_branch");
  const Attribute* else_a = n.attr("else_branch");
  if (!then_a || !else_a || !then_a->g || !else_a->g)
    Fail(n, "then_branch and else_branch are required");
  Graph& tg = *then_a->g;
  Graph& eg = *else_a->g;
  InferGraph(tg);
  InferGraph(eg);
  if (tg.outputs().size() != eg.outputs().size())
    Fail(n, "branches have " + std::to_string(tg.outputs().size()) + " and " +
                std::to_string(eg.outputs().size()) + " outputs");
  if (n.num_outputs() != tg.outputs().size())
    Fail(n, "has " + std::to_string(n.num_outputs()) + " outputs but its branches have " +
                std::to_string(tg.outputs().size()));
  auto cond = ConstInts(n.input(0));
  for (size_t i = 0; i < n.num_outputs(); ++i) {
    const Value* a = tg.outputs()[i];
    const Value* b = eg.outputs()[i];
    if (!a || !b) continue;
    if (cond && cond->size() == 1)
      SetOutputType(n, i, (*cond)[0] ? a->type : b->type);
    else
      SetOutputType(n, i, Generalize(a->type, b->type));
  }
}

void Inferencer::Loop(Node& n) {
  const Attribute* body_a = n.attr("body");
  if (!body_a || !body_a->g) Fail(n, "attribute 'body' is required");
  Graph& body = *body_a->g;
  size_t carried = n.num_inputs() >= 2 ? n.num_inputs() - 2 : 0;
  if (body.inputs().size() != carried + 2)
    Fail(n, "body has " + std::to_string(body.inputs().size()) + " inputs, expected " +
                std::to_string(carried + 2));
  if (body.outputs().size() < carried + 1)
    Fail(n, "body has " + std::to_string(body.outputs().size()) + " outputs, expected at least " +
                std::to_string(carried + 1));
  std::vector<bool> fill(body.inputs().size(), false);
  for (size_t i = 0; i < body.inputs().size(); ++i)
    fill[i] = body.inputs()[i]->type.kind == ValueType::Kind::kUnknown;
  auto set_inputs = [&](const std::vector<ValueType>& carried_types) {
    if (fill[0]) body.inputs()[0]->type = ValueType::Tensor(DType::kInt64, Shape{});
    if (fill[1]) body.inputs()[1]->type = ValueType::Tensor(DType::kBool, Shape{});
    for (size_t i = 0; i < carried; ++i)
      if (fill[i + 2]) body.inputs()[i + 2]->type = carried_types[i];
  };
  std::vector<ValueType> initial;
  for (size_t i = 0; i < carried; ++i) {
    const Value* v = n.input(i + 2);
    initial.push_back(v ? v->type : ValueType{});
  }
  // First try with the initial types; when an iteration changes a carried type (a
  // growing sequence, say), generalise the differing dims and infer the body again.
  std::vector<std::pair<Value*, ValueType>> snapshot;
  SnapshotTypes(body, snapshot);
  set_inputs(initial);
  bool stable = true;
  try {
    InferGraph(body);
    for (size_t i = 0; i < carried; ++i) {
      const Value* o = body.outputs()[i + 1];
      if (o && o->type != initial[i]) stable = false;
    }
  } catch (const Error&) {
    stable = false;
  }
  std::vector<ValueType> final_types = initial;
  if (!stable) {
    for (size_t i = 0; i < carried; ++i) {
      const Value* o = body.outputs()[i + 1];
      ValueType after = o ? o->type : ValueType{};
      // An output whose type is unknown says nothing: keep only the dtype.
      if (after.kind == ValueType::Kind::kUnknown) after = ValueType::Tensor(initial[i].dtype);
      final_types[i] = Generalize(initial[i], after);
    }
    for (auto& [v, t] : snapshot) v->type = t;
    set_inputs(final_types);
    InferGraph(body);
  }
  for (size_t i = 0; i < carried && i < n.num_outputs(); ++i) SetOutputType(n, i, final_types[i]);
  for (size_t i = carried; i < n.num_outputs(); ++i) {
    const Value* o = i + 1 < body.outputs().size() ? body.outputs()[i + 1] : nullptr;
    if (!o || !o->type.is_tensor()) continue;
    std::optional<Shape> s;
    if (o->type.shape) {
      s = Shape{Dim{}};
      s->insert(s->end(), o->type.shape->begin(), o->type.shape->end());
    }
    SetOutput(n, i, o->type.dtype, s);
  }
}

void Inferencer::Recurrent(const Node& n) {
  DType dt = DTypeOf(n.input(0));
  if (dt == DType::kUndefined) return;
  const Shape* xs = ShapeOf(n.input(0));
  const Shape* ws = ShapeOf(n.input(1));
  const Shape* rs = ShapeOf(n.input(2));
  int64_t layout = n.attr_int("layout", 0);
  std::string direction = n.attr_string("direction", "forward");
  Dim dirs = Dim::Known(direction == "bidirectional" ? 2 : 1);
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
    Fail(n, "unknown direction '" + direction + "'");
  if (ws && !ws->empty()) dirs = MergeDim(n, dirs, (*ws)[0], "num_directions vs W dim 0");
  Dim hidden = n.has_attr("hidden_size") ? Dim::Known(n.attr_int("hidden_size", 0)) : Dim{};
  if (rs && rs->size() == 3) hidden = MergeDim(n, hidden, (*rs)[2], "hidden_size vs R dim 2");
  if (xs && xs->size() != 3) Fail(n, "X has rank " + std::to_string(xs->size()) + ", expected 3");
  Dim seq = xs ? (*xs)[layout == 0 ? 0 : 1] : Dim{};
  Dim batch = xs ? (*xs)[layout == 0 ? 1 : 0] : Dim{};
  Shape y = layout == 0 ? Shape{seq, dirs, batch, hidden} : Shape{batch, seq, dirs, hidden};
  Shape yh = layout == 0 ? Shape{dirs, batch, hidden} : Shape{batch, dirs, hidden};
  SetOutput(n, 0, dt, y);
  SetOutput(n, 1, dt, yh);
  if (n.op_type() == "LSTM") SetOutput(n, 2, dt, yh);
}

}  // namespace

void InferShapes(Graph& graph, int64_t opset) {
  Inferencer inf(opset);
  inf.InferGraph(graph);
}

void InferShapes(Model& model) {
  if (!model.graph) return;
  InferShapes(*model.graph, model.OpsetVersion(""));
}

}  // namespace edgepress::ir
