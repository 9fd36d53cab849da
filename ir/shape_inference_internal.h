// The shape inferencer's internals, shared by the files that implement it (not part of the
// public API, which is ir/shape_inference.h): the partial-value model of small int tensors
// and the Inferencer class. Its members live by op family in
//   shape_inference.cc            reading/writing values, dim arithmetic, the per-node driver
//   shape_inference_ops.cc        elementwise, conv & pool, matmul, reductions, resize
//   shape_inference_shape_ops.cc  shape and index ops (Reshape ... Range)
//   shape_inference_control.cc    If, Loop, RNNs
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/error.h"
#include "ir/graph.h"

namespace edgepress::ir::shape_detail {

// Integer tensors up to this many elements are read as constants (shapes, axes, pads).
constexpr uint64_t kMaxConstElements = 4096;
// Derived small int values (shape arithmetic) are tracked up to this length.
constexpr size_t kMaxPartialElements = 64;
// A rank known only from a shape input's length is believed up to this size, so a
// malformed model cannot make inference allocate a billion-entry Shape.
constexpr int64_t kMaxRank = 64;

// Shape of `rank` unknown dims, or unknown rank when `rank` is implausible.
inline std::optional<Shape> UnknownDims(int64_t rank) {
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

inline bool IsIntLike(DType t) { return IsInteger(t) && !IsPacked(t); }

inline std::string JoinInts(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

inline int64_t CeilDiv(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

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
  using Rule = void (*)(Inferencer&, Node&);
  static const std::unordered_map<std::string, Rule>& Rules();
  void InferNode(Node& n);
  static DType QLinearOutType(const Node& n);
  void Unary(const Node& n);
  void Dropout(const Node& n);
  void BatchNorm(const Node& n);
  void LayerNorm(const Node& n);
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

}  // namespace edgepress::ir::shape_detail
