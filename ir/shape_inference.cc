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

#include "ir/constant_value.h"
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
  std::optional<Tensor> t = ConstantAttributeValue(*p);
  if (!t) return nullptr;
  return &constant_cache_.emplace(v, *std::move(t)).first->second;
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
  if (n.domain().empty() || n.domain() == "ai.onnx") {
    const auto& rules = Rules();
    auto it = rules.find(n.op_type());
    if (it != rules.end()) return it->second(*this, n);
  }
  // Unknown op or domain: its outputs stay unknown, but subgraph bodies may still be inferred.
  for (Graph* sg : n.subgraphs()) InferGraph(*sg);
}

// ----------------------------------------------------------------------------- rules

// The rule of each ONNX op type (ops of one family share one). Lambdas here, inside a member,
// may call the private helpers.
const std::unordered_map<std::string, Inferencer::Rule>& Inferencer::Rules() {
  static const std::unordered_map<std::string, Rule> rules = [] {
    std::unordered_map<std::string, Rule> m;
    auto add = [&m](std::initializer_list<const char*> ops, Rule r) {
      for (const char* op : ops) m.emplace(op, r);
    };
    for (const std::string& op : UnaryOps())
      m.emplace(op, [](Inferencer& s, Node& n) { s.Unary(n); });
    // PRelu's slope broadcasts to X one way (per channel in opsets before 7).
    add({"PRelu"}, [](Inferencer& s, Node& n) {
      if (const ValueType* t = TensorType(n.input(0))) s.SetOutputType(n, 0, *t);
    });
    add({"IsNaN", "IsInf"}, [](Inferencer& s, Node& n) {
      if (TensorType(n.input(0))) s.SetOutput(n, 0, DType::kBool, n.input(0)->type.shape);
    });
    add({"Add", "Sub", "Mul", "Div", "Pow", "Mod", "Min", "Max", "Sum", "Mean", "BitShift",
         "BitwiseAnd", "BitwiseOr", "BitwiseXor"},
        [](Inferencer& s, Node& n) {
          s.Elementwise(n, DTypeOf(n.input(0)));
          s.PartialArith(n);
        });
    add({"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"},
        [](Inferencer& s, Node& n) {
          s.Elementwise(n, DType::kBool);
          s.PartialArith(n);
        });
    add({"Where"}, [](Inferencer& s, Node& n) {
      DType dt = DTypeOf(n.input(1));
      s.Elementwise(n, dt != DType::kUndefined ? dt : DTypeOf(n.input(2)));
      s.PartialArith(n);
    });
    add({"Dropout"}, [](Inferencer& s, Node& n) { s.Dropout(n); });
    add({"BatchNormalization"}, [](Inferencer& s, Node& n) { s.BatchNorm(n); });
    add({"LayerNormalization"}, [](Inferencer& s, Node& n) { s.LayerNorm(n); });
    add({"Conv"}, [](Inferencer& s, Node& n) { s.ConvLike(n, 0, 1, DTypeOf(n.input(0))); });
    add({"ConvInteger"}, [](Inferencer& s, Node& n) { s.ConvLike(n, 0, 1, DType::kInt32); });
    add({"QLinearConv"}, [](Inferencer& s, Node& n) { s.ConvLike(n, 0, 3, QLinearOutType(n)); });
    add({"ConvTranspose"}, [](Inferencer& s, Node& n) { s.ConvTranspose(n); });
    add({"MaxPool", "AveragePool", "LpPool"}, [](Inferencer& s, Node& n) { s.Pool(n); });
    add({"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"},
        [](Inferencer& s, Node& n) { s.GlobalPool(n); });
    add({"MatMul"}, [](Inferencer& s, Node& n) { s.MatMulLike(n, 0, 1, DTypeOf(n.input(0))); });
    add({"MatMulInteger"}, [](Inferencer& s, Node& n) { s.MatMulLike(n, 0, 1, DType::kInt32); });
    add({"QLinearMatMul"},
        [](Inferencer& s, Node& n) { s.MatMulLike(n, 0, 3, QLinearOutType(n)); });
    add({"Gemm"}, [](Inferencer& s, Node& n) { s.Gemm(n); });
    add({"Reshape"}, [](Inferencer& s, Node& n) { s.Reshape(n); });
    add({"Transpose"}, [](Inferencer& s, Node& n) { s.Transpose(n); });
    add({"Flatten"}, [](Inferencer& s, Node& n) { s.Flatten(n); });
    add({"Squeeze"}, [](Inferencer& s, Node& n) { s.Squeeze(n); });
    add({"Unsqueeze"}, [](Inferencer& s, Node& n) { s.Unsqueeze(n); });
    add({"Concat"}, [](Inferencer& s, Node& n) { s.Concat(n); });
    add({"Split"}, [](Inferencer& s, Node& n) { s.Split(n); });
    add({"Slice"}, [](Inferencer& s, Node& n) { s.Slice(n); });
    add({"Gather"}, [](Inferencer& s, Node& n) { s.Gather(n); });
    add({"GatherElements"}, [](Inferencer& s, Node& n) {
      if (TensorType(n.input(0)))
        s.SetOutput(n, 0, DTypeOf(n.input(0)),
                    TensorType(n.input(1)) ? n.input(1)->type.shape : std::nullopt);
    });
    add({"Expand"}, [](Inferencer& s, Node& n) { s.Expand(n); });
    add({"Tile"}, [](Inferencer& s, Node& n) { s.Tile(n); });
    add({"Pad"}, [](Inferencer& s, Node& n) { s.Pad(n); });
    add({"Shape"}, [](Inferencer& s, Node& n) { s.ShapeOp(n); });
    add({"Size"}, [](Inferencer& s, Node& n) { s.Size(n); });
    add({"Cast"}, [](Inferencer& s, Node& n) { s.Cast(n); });
    add({"CastLike"}, [](Inferencer& s, Node& n) {
      if (TensorType(n.input(0))) s.SetOutput(n, 0, DTypeOf(n.input(1)), n.input(0)->type.shape);
    });
    add({"ConstantOfShape"}, [](Inferencer& s, Node& n) { s.ConstantOfShape(n); });
    add({"Range"}, [](Inferencer& s, Node& n) { s.Range(n); });
    add({"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
         "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"},
        [](Inferencer& s, Node& n) { s.Reduce(n); });
    add({"ArgMax", "ArgMin"}, [](Inferencer& s, Node& n) { s.ArgReduce(n); });
    add({"Resize", "Upsample"}, [](Inferencer& s, Node& n) { s.Resize(n); });
    add({"Constant"}, [](Inferencer& s, Node& n) { s.Constant(n); });
    add({"If"}, [](Inferencer& s, Node& n) { s.If(n); });
    add({"Loop"}, [](Inferencer& s, Node& n) { s.Loop(n); });
    add({"LSTM", "GRU", "RNN"}, [](Inferencer& s, Node& n) { s.Recurrent(n); });
    add({"TopK"}, [](Inferencer& s, Node& n) { s.TopK(n); });
    add({"NonZero"}, [](Inferencer& s, Node& n) {
      const int r = RankOf(n.input(0));
      if (r >= 0) s.SetOutput(n, 0, DType::kInt64, Shape{Dim::Known(r), Dim{}});
    });
    add({"QuantizeLinear"}, [](Inferencer& s, Node& n) {
      const DType dt = s.HasInput(n, 2) ? DTypeOf(n.input(2)) : DType::kUInt8;
      if (TensorType(n.input(0))) s.SetOutput(n, 0, dt, n.input(0)->type.shape);
    });
    add({"DequantizeLinear"}, [](Inferencer& s, Node& n) {
      const DType dt = DTypeOf(n.input(1));
      if (TensorType(n.input(0)))
        s.SetOutput(n, 0, dt == DType::kUndefined ? DType::kFloat32 : dt, n.input(0)->type.shape);
    });
    return m;
  }();
  return rules;
}

// QLinearConv / QLinearMatMul: the type of y_zero_point (input 7), else that of x.
DType Inferencer::QLinearOutType(const Node& n) {
  const DType dt = DTypeOf(n.input(7));
  return dt != DType::kUndefined ? dt : DTypeOf(n.input(0));
}

// ----------------------------------------------------------------------------- small families

void Inferencer::Unary(const Node& n) {
  const std::string& op = n.op_type();
  const Value* x = n.input(0);
  if (const ValueType* t = TensorType(x)) SetOutputType(n, 0, *t);
  if (op != "Identity" && op != "Neg" && op != "Abs") return;
  std::optional<Partial> p = PartialOf(x);
  if (!p) return;
  for (Elem& e : p->elems) {
    if (op == "Identity" || !e.v || *e.v == std::numeric_limits<int64_t>::min()) {
      if (op != "Identity") e = Elem{};
      continue;
    }
    e.v = op == "Neg" ? -*e.v : std::abs(*e.v);
  }
  SetPartial(n, 0, *p);
}

void Inferencer::Dropout(const Node& n) {
  if (const ValueType* t = TensorType(n.input(0))) {
    SetOutputType(n, 0, *t);
    SetOutput(n, 1, DType::kBool, t->shape);
  }
}

void Inferencer::BatchNorm(const Node& n) {
  const Value* x = n.input(0);
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
}

void Inferencer::LayerNorm(const Node& n) {
  const ValueType* t = TensorType(n.input(0));
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
