// The exporter's specialised writers for constant shapes, axes and bounds
// (torchscript_emitter.h), and its literal formatting helpers.
#include <algorithm>
#include <cmath>

#include "formats/torchscript/torchscript_emitter.h"

namespace edgepress::formats::ts_export {

std::string Float(double v) {
  if (std::isinf(v)) return v > 0 ? "float('inf')" : "float('-inf')";
  std::ostringstream s;
  s.precision(17);
  s << v;
  std::string r = s.str();
  if (r.find_first_of(".en") == std::string::npos) r += ".0";
  return r;
}

std::string IntList(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// An initializer, or the tensor a Constant node holds.
const ir::Tensor* ConstTensor(const ir::Value* v) {
  if (!v) return nullptr;
  if (v->initializer()) return v->initializer();
  const ir::Node* p = v->producer();
  if (p && p->op_type() == "Constant" && p->domain().empty())
    if (const ir::Attribute* a = p->attr("value"); a && a->kind == ir::Attribute::Kind::kTensor) return &a->t;
  return nullptr;
}

std::optional<std::vector<int64_t>> ConstInts(const ir::Value* v) {
  const ir::Tensor* t = ConstTensor(v);
  if (!t || (t->dtype() != ir::DType::kInt64 && t->dtype() != ir::DType::kInt32) || t->rank() > 1)
    return std::nullopt;
  std::vector<int64_t> r(static_cast<size_t>(t->numel()));
  for (size_t i = 0; i < r.size(); ++i)
    r[i] = t->dtype() == ir::DType::kInt64 ? t->data<int64_t>()[i] : t->data<int32_t>()[i];
  return r;
}

// A constant scalar (rank 0 or one element) of any numeric dtype.
std::optional<double> ConstScalar(const ir::Value* v) {
  const ir::Tensor* t = ConstTensor(v);
  if (!t || t->numel() != 1) return std::nullopt;
  switch (t->dtype()) {
    case ir::DType::kFloat32: return t->data<float>()[0];
    case ir::DType::kFloat64: return t->data<double>()[0];
    case ir::DType::kInt64: return static_cast<double>(t->data<int64_t>()[0]);
    case ir::DType::kInt32: return t->data<int32_t>()[0];
    default: return std::nullopt;
  }
}

std::optional<size_t> RankOf(const ir::Value* v) {
  if (!v) return std::nullopt;
  if (v->initializer()) return static_cast<size_t>(v->initializer()->rank());
  if (v->type.shape) return v->type.shape->size();
  return std::nullopt;
}

// Reshape to a constant shape: ONNX's 0 ("copy the input's dim") becomes x.size(i).
bool ReshapeConst(Emitter& e, const ir::Node& n) {
  std::optional<std::vector<int64_t>> s = ConstInts(n.input(1));
  if (!s) return false;
  const bool allowzero = n.attr_int("allowzero", 0) != 0;
  const std::string x = e.In(n, 0);
  std::string list = "[";
  for (size_t i = 0; i < s->size(); ++i) {
    list += i ? ", " : "";
    list += (*s)[i] == 0 && !allowzero ? x + ".size(" + std::to_string(i) + ")" : std::to_string((*s)[i]);
  }
  e.Assign(n, "torch.reshape(" + x + ", " + list + "])");
  return true;
}

// Flatten to 2-D at a known rank: torch.flatten keeps the leading dims, so axis > 1
// flattens them in a second call.
bool FlattenKnownRank(Emitter& e, const ir::Node& n) {
  std::optional<size_t> r = RankOf(n.input(0));
  if (!r || *r == 0) return false;
  int64_t a = n.attr_int("axis", 1);
  if (a < 0) a += static_cast<int64_t>(*r);
  if (a < 0 || a > static_cast<int64_t>(*r)) return false;
  const std::string x = e.In(n, 0);
  if (a == 0) e.Assign(n, "torch.reshape(" + x + ", [1, -1])");
  else if (a == static_cast<int64_t>(*r)) e.Assign(n, "torch.unsqueeze(torch.flatten(" + x + "), 1)");
  else if (a == 1) e.Assign(n, "torch.flatten(" + x + ", 1)");
  else e.Assign(n, "torch.flatten(torch.flatten(" + x + ", " + std::to_string(a) + "), 0, " + std::to_string(a - 1) + ")");
  return true;
}

// Constant axes of Squeeze/Unsqueeze (input or attribute), if any.
std::optional<std::vector<int64_t>> ConstAxes(const ir::Node& n) {
  if (n.num_inputs() > 1 && n.input(1)) return ConstInts(n.input(1));
  if (n.has_attr("axes")) return n.attr_ints("axes");
  return std::nullopt;
}

// Unsqueeze/Squeeze with constant axes at a known rank: one torch call per axis, in the
// order that keeps the later axes' positions (ascending for unsqueeze, descending for
// squeeze).
bool SqueezeConst(Emitter& e, const ir::Node& n, bool unsqueeze) {
  std::optional<std::vector<int64_t>> axes = ConstAxes(n);
  std::optional<size_t> r = RankOf(n.input(0));
  if (!unsqueeze && !axes && n.num_inputs() < 2) {
    e.Assign(n, "torch.squeeze(" + e.In(n, 0) + ")");
    return true;
  }
  if (!axes || !r) return false;
  const int64_t rank = static_cast<int64_t>(*r) + (unsqueeze ? static_cast<int64_t>(axes->size()) : 0);
  for (int64_t& a : *axes) {
    if (a < 0) a += rank;
    if (a < 0 || a >= rank) return false;
  }
  std::sort(axes->begin(), axes->end());
  if (!unsqueeze) std::reverse(axes->begin(), axes->end());
  std::string y = e.In(n, 0);
  for (int64_t a : *axes) y = std::string(unsqueeze ? "torch.unsqueeze(" : "torch.squeeze(") + y + ", " + std::to_string(a) + ")";
  e.Assign(n, y);
  return true;
}

// Gather of one constant index (rank 0) is a select, negative indices included.
bool GatherScalar(Emitter& e, const ir::Node& n) {
  const ir::Value* idx = n.input(1);
  std::optional<std::vector<int64_t>> v = ConstInts(idx);
  std::optional<size_t> r = RankOf(idx);
  if (!v || v->size() != 1 || !r || *r != 0) return false;
  e.Assign(n, "torch.select(" + e.In(n, 0) + ", " + std::to_string(n.attr_int("axis", 0)) + ", " + std::to_string((*v)[0]) + ")");
  return true;
}

// Clip with constant (or omitted) bounds takes numbers, as torch.clamp's scalar form.
bool ClipConst(Emitter& e, const ir::Node& n) {
  std::string b[2];
  for (size_t i = 1; i <= 2; ++i) {
    const ir::Value* v = i < n.num_inputs() ? n.input(i) : nullptr;
    if (!v) { b[i - 1] = "None"; continue; }
    std::optional<double> c = ConstScalar(v);
    if (!c) return false;
    b[i - 1] = Float(*c);
  }
  e.Assign(n, "torch.clamp(" + e.In(n, 0) + ", " + b[0] + ", " + b[1] + ")");
  return true;
}

// Slice with constant starts/ends/axes and positive steps: ONNX clamps like Python
// slicing, so each axis is one torch.slice.
bool SliceConst(Emitter& e, const ir::Node& n) {
  auto in = [&](size_t i) { return i < n.num_inputs() ? n.input(i) : nullptr; };
  std::optional<std::vector<int64_t>> starts = ConstInts(in(1)), ends = ConstInts(in(2));
  if (!starts || !ends || starts->size() != ends->size()) return false;
  std::vector<int64_t> axes(starts->size()), steps(starts->size(), 1);
  for (size_t i = 0; i < axes.size(); ++i) axes[i] = static_cast<int64_t>(i);
  if (in(3)) {
    std::optional<std::vector<int64_t>> a = ConstInts(in(3));
    if (!a || a->size() != axes.size()) return false;
    axes = *a;
  }
  if (in(4)) {
    std::optional<std::vector<int64_t>> st = ConstInts(in(4));
    if (!st || st->size() != steps.size()) return false;
    steps = *st;
  }
  std::string y = e.In(n, 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    if (steps[i] < 1) return false;
    y = "torch.slice(" + y + ", " + std::to_string(axes[i]) + ", " + std::to_string((*starts)[i]) + ", " +
        std::to_string((*ends)[i]) + ", " + std::to_string(steps[i]) + ")";
  }
  e.Assign(n, y);
  return true;
}

// LayerNormalization whose scale is a constant of the normalized shape (what exporters
// write): torch.layer_norm with that shape as a literal list.
bool LayerNormConst(Emitter& e, const ir::Node& n) {
  const ir::Tensor* w = n.input(1) ? n.input(1)->initializer() : nullptr;
  if (!w) return false;
  const int64_t axis = n.attr_int("axis", -1), k = w->rank();
  std::optional<size_t> r = RankOf(n.input(0));
  const bool fits = axis < 0 ? -axis == k : (r && static_cast<int64_t>(*r) - axis == k);
  if (!fits) return false;
  e.Assign(n, "torch.layer_norm(" + e.In(n, 0) + ", " + IntList(w->shape()) + ", " + e.In(n, 1) + ", " +
                  e.In(n, 2) + ", " + Float(n.attr_float("epsilon", 1e-5f)) + ")");
  return true;
}

// Reduce* over constant, non-empty axes (input or attribute).
bool ReduceConst(Emitter& e, const ir::Node& n, const std::string& fn) {
  std::optional<std::vector<int64_t>> axes;
  if (n.num_inputs() > 1 && n.input(1)) axes = ConstInts(n.input(1));
  else if (n.has_attr("axes")) axes = n.attr_ints("axes");
  if (!axes || axes->empty()) return false;
  e.Assign(n, fn + "(" + e.In(n, 0) + ", " + IntList(*axes) + ", " + (n.attr_int("keepdims", 1) ? "True" : "False") + ")");
  return true;
}

bool SplitConst(Emitter& e, const ir::Node& n) {
  std::optional<std::vector<int64_t>> known =
      n.num_inputs() > 1 && n.input(1) ? ConstInts(n.input(1))
      : n.has_attr("split")            ? std::optional<std::vector<int64_t>>(n.attr_ints("split"))
                                       : std::nullopt;
  if (!known) return false;
  std::string parts = "p" + std::to_string(e.counter++);
  e.Line(parts + " = torch.split(" + e.In(n, 0) + ", " + IntList(*known) + ", " +
         std::to_string(n.attr_int("axis", 0)) + ")");
  for (size_t i = 0; i < n.num_outputs(); ++i)
    if (n.output(i) && !n.output(i)->name().empty()) e.Line(e.Out(n, i) + " = " + parts + "[" + std::to_string(i) + "]");
  return true;
}

bool GlobalAveragePoolKnownRank(Emitter& e, const ir::Node& n) {
  std::optional<size_t> r = RankOf(n.input(0));
  if (!r || *r <= 2) return false;
  std::vector<int64_t> axes;
  for (size_t a = 2; a < *r; ++a) axes.push_back(static_cast<int64_t>(a));
  e.Assign(n, "torch.mean(" + e.In(n, 0) + ", " + IntList(axes) + ", True)");
  return true;
}

}  // namespace edgepress::formats::ts_export
