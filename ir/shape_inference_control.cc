// Shape inference for control flow (If, Loop: the subgraphs are inferred in place) and
// the recurrent ops.
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


}  // namespace edgepress::ir::shape_detail
