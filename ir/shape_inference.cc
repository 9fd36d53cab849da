// Shape inference: reading and writing values, dim arithmetic and the per-node driver
// (the op families are in shape_inference_*.cc; shape_inference_internal.h).
#include "ir/shape_inference.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "ir/error.h"
#include "ir/shape_inference_internal.h"

namespace edgepress::ir::shape_detail {

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


}  // namespace edgepress::ir::shape_detail

namespace edgepress::ir {

void InferShapes(Graph& graph, int64_t opset) {
  shape_detail::Inferencer inf(opset);
  inf.InferGraph(graph);
}

void InferShapes(Model& model) {
  if (!model.graph) return;
  InferShapes(*model.graph, model.OpsetVersion(""));
}

}  // namespace edgepress::ir
