// Opset normalisation. Several ONNX ops moved parameters from attributes to inputs over
// the opset history (Squeeze/Unsqueeze/ReduceSum axes and Split's split at 13, Clip's
// min/max and Pad's pads/value at 11, Slice's starts/ends/axes and TopK's k at 10,
// Dropout's ratio at 12). Passes and kernels see only the input form: the importer turns
// the attributes into constant initializers marked `synthesized`, and the exporter turns
// constant inputs back into attributes when the model's opset predates the change.
// Upsample and other replaced ops are kept as they are.
#include <cmath>

#include "formats/onnx/onnx_internal.h"
#include "ir/error.h"

namespace edgepress::formats::onnx_internal {

namespace {

enum class SlotKind { kInts, kInt, kFloat };
struct Slot {
  int index;
  const char* attr;
  SlotKind kind;
};
struct Rule {
  const char* op;
  int64_t input_form_since;  // first opset that takes these as inputs
  std::vector<Slot> slots;
};

const std::vector<Rule>& Rules() {
  static const std::vector<Rule> rules = {
      {"Squeeze", 13, {{1, "axes", SlotKind::kInts}}},
      {"Unsqueeze", 13, {{1, "axes", SlotKind::kInts}}},
      {"ReduceSum", 13, {{1, "axes", SlotKind::kInts}}},
      {"Split", 13, {{1, "split", SlotKind::kInts}}},
      {"Clip", 11, {{1, "min", SlotKind::kFloat}, {2, "max", SlotKind::kFloat}}},
      {"Pad", 11, {{1, "pads", SlotKind::kInts}, {2, "value", SlotKind::kFloat}}},
      {"Slice", 10,
       {{1, "starts", SlotKind::kInts}, {2, "ends", SlotKind::kInts}, {3, "axes", SlotKind::kInts}}},
      {"TopK", 10, {{1, "k", SlotKind::kInt}}},
      {"Dropout", 12, {{1, "ratio", SlotKind::kFloat}}},
  };
  return rules;
}

const Rule* FindRule(const ir::Node& n, int64_t opset) {
  if (!n.domain().empty()) return nullptr;
  for (const Rule& r : Rules())
    if (n.op_type() == r.op && opset < r.input_form_since) return &r;
  return nullptr;
}

// Float scalars take the data input's element type when it is known (Clip/Pad require
// it); f32 otherwise.
ir::DType ScalarType(const ir::Node& n) {
  const ir::Value* x = n.input(0);
  if (x && x->type.is_tensor() && ir::IsFloat(x->type.dtype)) return x->type.dtype;
  if (x && x->type.is_tensor() && n.op_type() == "Pad" && x->type.dtype != ir::DType::kUndefined &&
      x->type.dtype != ir::DType::kString && x->type.dtype != ir::DType::kBool)
    return x->type.dtype;
  return ir::DType::kFloat32;
}

ir::Tensor FloatScalar(ir::DType dt, float v) {
  ir::Tensor t(dt, {});
  switch (dt) {
    case ir::DType::kFloat64: *t.mutable_data<double>() = v; break;
    case ir::DType::kFloat16: *t.mutable_data<uint16_t>() = ir::FloatToHalf(v); break;
    case ir::DType::kBFloat16: *t.mutable_data<uint16_t>() = ir::FloatToBFloat16(v); break;
    case ir::DType::kInt64: *t.mutable_data<int64_t>() = static_cast<int64_t>(v); break;
    case ir::DType::kInt32: *t.mutable_data<int32_t>() = static_cast<int32_t>(v); break;
    case ir::DType::kInt16: *t.mutable_data<int16_t>() = static_cast<int16_t>(v); break;
    case ir::DType::kInt8: *t.mutable_data<int8_t>() = static_cast<int8_t>(v); break;
    case ir::DType::kUInt8: *t.mutable_data<uint8_t>() = static_cast<uint8_t>(v); break;
    default: return ir::Tensor::FromVector<float>(ir::DType::kFloat32, {}, {v});
  }
  return t;
}

}  // namespace

void NormalizeOpsets(ir::Model& m, const std::string& file) {
  const int64_t opset = m.OpsetVersion("");
  m.graph->Walk([&](ir::Graph& g) {
    for (ir::Node* n : g.nodes()) {
      const Rule* rule = FindRule(*n, opset);
      if (!rule || n->num_inputs() != 1) continue;
      try {
        for (const Slot& s : rule->slots) {
          if (!n->has_attr(s.attr)) continue;
          ir::Tensor t;
          switch (s.kind) {
            case SlotKind::kInts: {
              std::vector<int64_t> v = n->attr_ints(s.attr);
              t = ir::Tensor::FromVector<int64_t>(ir::DType::kInt64,
                                                  {static_cast<int64_t>(v.size())}, v);
              break;
            }
            case SlotKind::kInt:
              t = ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {1},
                                                  {n->attr_int(s.attr, 0)});
              break;
            case SlotKind::kFloat:
              t = FloatScalar(ScalarType(*n), n->attr_float(s.attr, 0));
              break;
          }
          std::string base = (n->name.empty() ? std::string(rule->op) : n->name) + "_" + s.attr;
          ir::Value* v = g.AddInitializer(g.UniqueName(base), std::move(t));
          v->synthesized = true;
          n->set_input(static_cast<size_t>(s.index), v);
          n->remove_attr(s.attr);
        }
      } catch (const Error& e) {
        throw Error(e.code(), file + ": " + e.what());
      }
    }
  });
}

Denormalized DenormalizeNode(const ir::Node& n, int64_t opset, const std::string& file) {
  Denormalized d;
  const Rule* rule = FindRule(n, opset);
  if (!rule || n.num_inputs() <= 1) return d;
  int max_slot = 0;
  for (const Slot& s : rule->slots) max_slot = std::max(max_slot, s.index);
  const std::string where = file + ": " + n.describe();
  for (size_t i = static_cast<size_t>(max_slot) + 1; i < n.num_inputs(); ++i)
    if (n.input(i))
      ThrowUnsupported(where + ": input " + std::to_string(i) + " ('" + n.input(i)->name() +
                       "') has no attribute form in opset " + std::to_string(opset));
  d.changed = true;
  d.inputs.push_back(n.input(0));
  for (const Slot& s : rule->slots) {
    const ir::Value* v = n.input(static_cast<size_t>(s.index));
    if (!v) continue;
    const ir::Tensor* t = v->initializer();
    if (!t)
      ThrowUnsupported(where + ": input '" + v->name() + "' must be a constant to be written " +
                       "as attribute '" + s.attr + "' of opset " + std::to_string(opset));
    if (t->rank() > 1 || (s.kind != SlotKind::kInts && t->numel() != 1))
      ThrowUnsupported(where + ": input '" + v->name() + "' has the wrong shape for attribute '" +
                       s.attr + "'");
    switch (s.kind) {
      case SlotKind::kInts: d.add_attrs.push_back(ir::Attribute::Ints(s.attr, t->ToInt64())); break;
      case SlotKind::kInt: d.add_attrs.push_back(ir::Attribute::Int(s.attr, t->ToInt64()[0])); break;
      case SlotKind::kFloat:
        d.add_attrs.push_back(
            ir::Attribute::Float(s.attr, static_cast<float>(t->ToDouble()[0])));
        break;
    }
  }
  return d;
}

}  // namespace edgepress::formats::onnx_internal
