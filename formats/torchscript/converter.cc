// Ctx: how converters read TorchScript values (constants, run-time scalars, lists) and
// build IR nodes; and the source locations every message carries.
#include <algorithm>
#include <cstring>

#include "formats/torchscript/converter.h"
#include "ir/error.h"
#include "ir/shape_inference.h"

namespace edgepress::formats {

namespace ts {

std::string SourceLocation(const torch::jit::Node& n) {
  std::string loc;
  try {
    // The range in the original Python source when the archive kept it (debug_pkl),
    // else the serialized TorchScript code.
    torch::jit::SourceRange range = n.sourceRange();
    if (auto original = range.findSourceRangeThatGenerated()) range = *original;
    if (auto flc = range.file_line_col()) {
      std::string file = std::get<0>(*flc);
      if (size_t slash = file.find_last_of('/'); slash != std::string::npos && file.size() > 60)
        file = file.substr(slash + 1);
      loc = file + ":" + std::to_string(std::get<1>(*flc));
    }
  } catch (const std::exception&) {
  }
  std::string scope = n.scopeName();
  if (!scope.empty()) loc += (loc.empty() ? "" : " ") + std::string("(") + scope + ")";
  return loc;
}

const Slot& Ctx::In(size_t i) const {
  if (i >= num_inputs()) Fail("expected at least " + std::to_string(i + 1) + " inputs");
  auto it = slots_.find(node_->inputs()[i]);
  if (it == slots_.end() || it->second.kind == Slot::Kind::kUnset)
    throw Error(ErrorCode::kInternal, file_ + ": input " + std::to_string(i) + " of " + kind() +
                                          " was never converted");
  return it->second;
}

void Ctx::Fail(const std::string& why) const {
  std::string loc = node_ ? SourceLocation(*node_) : "";
  ThrowUnsupported(file_ + ": " + (node_ ? kind() : std::string("graph")) +
                   (loc.empty() ? "" : " at " + loc) + ": " + why);
}

int64_t Ctx::Int(size_t i) const {
  const Slot& s = In(i);
  if (s.is_const() && s.iv.isInt()) return s.iv.toInt();
  if (s.is_const() && s.iv.isBool()) return s.iv.toBool();
  Fail("argument " + std::to_string(i) + " must be a constant int (it is computed at run time)");
}

double Ctx::Double(size_t i) const {
  const Slot& s = In(i);
  if (s.is_const() && (s.iv.isDouble() || s.iv.isInt() || s.iv.isBool())) return s.iv.toScalar().toDouble();
  Fail("argument " + std::to_string(i) + " must be a constant number");
}

bool Ctx::Bool(size_t i) const {
  const Slot& s = In(i);
  if (s.is_const() && (s.iv.isBool() || s.iv.isInt())) return s.iv.isBool() ? s.iv.toBool() : s.iv.toInt() != 0;
  Fail("argument " + std::to_string(i) + " must be a constant bool");
}

std::string Ctx::Str(size_t i) const {
  const Slot& s = In(i);
  if (s.is_const() && s.iv.isString()) return s.iv.toStringRef();
  Fail("argument " + std::to_string(i) + " must be a constant string");
}

std::vector<int64_t> Ctx::Ints(size_t i) const {
  const Slot& s = In(i);
  if (s.is_const() && s.iv.isInt()) return {s.iv.toInt()};
  if (s.is_const() && s.iv.isIntList()) return s.iv.toIntVector();
  if (s.is_const() && s.iv.isList()) {
    std::vector<int64_t> v;
    for (const c10::IValue& x : s.iv.toListRef()) {
      if (!x.isInt()) Fail("argument " + std::to_string(i) + " must be a constant int list");
      v.push_back(x.toInt());
    }
    return v;
  }
  if (s.kind == Slot::Kind::kList) {
    std::vector<int64_t> v;
    for (const Slot& x : s.items) {
      if (!x.is_const() || !x.iv.isInt())
        Fail("argument " + std::to_string(i) + " must be a constant int list (an element is computed at run time)");
      v.push_back(x.iv.toInt());
    }
    return v;
  }
  Fail("argument " + std::to_string(i) + " must be a constant int list");
}

ir::Tensor Ctx::Int64Vec(const std::vector<int64_t>& v) {
  return ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {static_cast<int64_t>(v.size())}, v);
}

ir::DType Ctx::FromScalarType(int64_t st) {
  switch (static_cast<c10::ScalarType>(st)) {
    case c10::ScalarType::Float: return ir::DType::kFloat32;
    case c10::ScalarType::Double: return ir::DType::kFloat64;
    case c10::ScalarType::Half: return ir::DType::kFloat16;
    case c10::ScalarType::BFloat16: return ir::DType::kBFloat16;
    case c10::ScalarType::Long: return ir::DType::kInt64;
    case c10::ScalarType::Int: return ir::DType::kInt32;
    case c10::ScalarType::Short: return ir::DType::kInt16;
    case c10::ScalarType::Char: return ir::DType::kInt8;
    case c10::ScalarType::Byte: return ir::DType::kUInt8;
    case c10::ScalarType::Bool: return ir::DType::kBool;
    default: return ir::DType::kUndefined;
  }
}

ir::Tensor Ctx::FromTorch(const at::Tensor& src) const {
  at::Tensor t = src.detach().to(at::kCPU).contiguous();
  ir::DType dt = FromScalarType(static_cast<int64_t>(t.scalar_type()));
  if (dt == ir::DType::kUndefined || t.is_quantized() || t.is_sparse())
    Fail(std::string("a constant tensor of dtype ") + c10::toString(t.scalar_type()) + " is not supported");
  std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
  ir::Tensor out(dt, shape);
  if (out.nbytes()) std::memcpy(out.mutable_raw(), t.data_ptr(), out.nbytes());
  return out;
}

ir::Value* Ctx::Const(ir::Tensor t, const std::string& hint) {
  ir::Graph& root = *model_.graph;
  return root.AddInitializer(root.UniqueName(hint), std::move(t));
}

ir::Value* Ctx::I64(int64_t v) {
  return Const(ir::Tensor::FromVector<int64_t>(ir::DType::kInt64, {}, {v}), "int");
}

ir::Value* Ctx::F32(float v) {
  return Const(ir::Tensor::FromVector<float>(ir::DType::kFloat32, {}, {v}), "float");
}

ir::Value* Ctx::T(size_t i, ir::DType want) {
  const Slot& s = In(i);
  ir::Value* v = nullptr;
  if (s.kind == Slot::Kind::kTensor) {
    v = s.value;
    if (s.scalar && want != ir::DType::kUndefined && DTypeOf(v) != want) v = Cast(v, want);
    return v;
  }
  if (s.kind == Slot::Kind::kList) return IntList(i);
  if (!s.is_const() || s.is_none()) Fail("argument " + std::to_string(i) + " must be a tensor");
  const c10::IValue& iv = s.iv;
  if (iv.isTensor()) {
    // One initializer per TorchScript constant, however many nodes read it.
    ir::Value*& cached = materialized_[node_->inputs()[i]];
    if (!cached) cached = Const(FromTorch(iv.toTensor()), node_->inputs()[i]->debugName());
    return cached;
  }
  if (iv.isIntList() || iv.isList()) return I64s(Ints(i));
  ir::DType dt = want;
  if (dt == ir::DType::kUndefined)
    dt = iv.isDouble() ? ir::DType::kFloat32 : iv.isBool() ? ir::DType::kBool : ir::DType::kInt64;
  if (!iv.isDouble() && !iv.isInt() && !iv.isBool())
    Fail("argument " + std::to_string(i) + " (" + iv.tagKind() + ") cannot become a tensor");
  double x = iv.toScalar().toDouble();
  ir::Tensor t(dt, {});
  switch (dt) {
    case ir::DType::kFloat32: *t.mutable_data<float>() = static_cast<float>(x); break;
    case ir::DType::kFloat64: *t.mutable_data<double>() = x; break;
    case ir::DType::kInt64: *t.mutable_data<int64_t>() = iv.isInt() ? iv.toInt() : static_cast<int64_t>(x); break;
    case ir::DType::kInt32: *t.mutable_data<int32_t>() = static_cast<int32_t>(x); break;
    case ir::DType::kBool: *t.mutable_data<uint8_t>() = x != 0; break;
    default: {
      ir::Tensor f = ir::Tensor::FromVector<float>(ir::DType::kFloat32, {}, {static_cast<float>(x)});
      return Cast(Const(f, "scalar"), dt);
    }
  }
  return Const(t, "scalar");
}

ir::Value* Ctx::IntList(size_t i) {
  const Slot& s = In(i);
  if (s.kind == Slot::Kind::kTensor) {
    if (s.scalar) return Op("Unsqueeze", {Cast(s.value, ir::DType::kInt64), I64s({0})});
    return s.value;
  }
  if (s.is_const()) return I64s(Ints(i));
  if (s.kind != Slot::Kind::kList) Fail("argument " + std::to_string(i) + " must be an int list");
  // Dynamic sizes: constant runs as one initializer, run-time ints unsqueezed, concatenated.
  std::vector<ir::Value*> parts;
  std::vector<int64_t> run;
  auto flush = [&] {
    if (!run.empty()) parts.push_back(I64s(run));
    run.clear();
  };
  for (const Slot& x : s.items) {
    if (x.is_const() && x.iv.isInt()) {
      run.push_back(x.iv.toInt());
    } else if (x.kind == Slot::Kind::kTensor) {
      flush();
      ir::Value* v = x.value;
      if (DTypeOf(v) != ir::DType::kInt64) v = Cast(v, ir::DType::kInt64);
      parts.push_back(x.scalar ? Op("Unsqueeze", {v, I64s({0})}) : v);
    } else {
      Fail("argument " + std::to_string(i) + ": a list element is neither an int nor a size");
    }
  }
  flush();
  if (parts.size() == 1) return parts[0];
  return Op("Concat", parts, {ir::Attribute::Int("axis", 0)}, ir::DType::kInt64);
}

void Ctx::Out(size_t i, Slot s) {
  if (i >= node_->outputs().size()) Fail("converter wrote output " + std::to_string(i));
  slots_[node_->outputs()[i]] = std::move(s);
}

std::vector<ir::Value*> Ctx::OpN(const std::string& op, const std::vector<ir::Value*>& inputs,
                                 int n, std::vector<ir::Attribute> attrs, ir::DType dtype) {
  std::string base = node_ ? std::string(node_->kind().toUnqualString()) : op;
  std::vector<std::string> names;
  for (int k = 0; k < n; ++k) {
    std::string hint = node_ && static_cast<size_t>(k) < node_->outputs().size() && n == static_cast<int>(node_->outputs().size())
                           ? node_->outputs()[k]->debugName()
                           : base + "_" + op;
    std::string name = g_->UniqueName(hint);
    // UniqueName knows only the graph, not the names picked in this loop.
    for (int j = 1; std::find(names.begin(), names.end(), name) != names.end(); ++j)
      name = g_->UniqueName(hint + "_" + std::to_string(k) + "_" + std::to_string(j));
    names.push_back(name);
  }
  ir::Node* nd = g_->AddNode(op, inputs, names, g_->UniqueName(base + "_" + std::to_string(counter_++)));
  for (ir::Attribute& a : attrs) nd->set_attr(std::move(a));
  if (node_) nd->doc = SourceLocation(*node_);
  ir::DType dt = dtype;
  if (dt == ir::DType::kUndefined && !inputs.empty() && inputs[0]) dt = DTypeOf(inputs[0]);
  std::vector<ir::Value*> outs;
  for (int k = 0; k < n; ++k) {
    nd->output(k)->type = ir::ValueType::Tensor(dt);
    outs.push_back(nd->output(k));
  }
  return outs;
}

ir::Value* Ctx::Op(const std::string& op, const std::vector<ir::Value*>& inputs,
                   std::vector<ir::Attribute> attrs, ir::DType dtype) {
  return OpN(op, inputs, 1, std::move(attrs), dtype)[0];
}

ir::Value* Ctx::Cast(ir::Value* v, ir::DType to) {
  if (DTypeOf(v) == to) return v;
  return Op("Cast", {v}, {ir::Attribute::Int("to", ir::DTypeToOnnx(to))}, to);
}

std::optional<int> Ctx::TryRank(ir::Value* v) {
  if (!v->type.shape && g_->num_nodes() != inferred_nodes_) {
    // Shapes flow from the inputs the user described; inference is re-run only when
    // the graph grew since the last run.
    inferred_nodes_ = g_->num_nodes();
    try {
      ir::InferShapes(*g_, 17);
      inference_error_.clear();
    } catch (const Error& e) {
      inference_error_ = e.what();
    }
  }
  if (!v->type.shape) return std::nullopt;
  return static_cast<int>(v->type.shape->size());
}

int Ctx::Rank(ir::Value* v) {
  std::optional<int> r = TryRank(v);
  if (!r)
    Fail("needs the rank of '" + v->name() +
         "', which is unknown: give the model's input shapes (TorchScript records none)" +
         (inference_error_.empty() ? "" : "; shape inference stopped at: " + inference_error_));
  return *r;
}

std::optional<int64_t> Ctx::Dim(ir::Value* v, int axis) {
  int r = Rank(v);
  axis = static_cast<int>(Axis(axis, r));
  const ir::Dim& d = (*v->type.shape)[axis];
  if (d.known()) return d.value;
  return std::nullopt;
}

int64_t Ctx::Axis(int64_t axis, int rank) const {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    Fail("axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank));
  return a;
}

}  // namespace ts

}  // namespace edgepress::formats
