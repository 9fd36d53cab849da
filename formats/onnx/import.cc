// ONNX ModelProto -> ir::Model. The importer is strict about what the IR relies on
// (every name defined before use, sizes consistent with data, known dtypes) and carries
// everything else through (doc strings, metadata, sequence/optional/map types, symbolic
// dims, subgraphs), so that export(import(x)) reproduces x.
#include <cstring>
#include <new>

#include "formats/onnx/onnx.h"
#include "formats/onnx/onnx_internal.h"
#include "ir/constant_value.h"
#include "ir/error.h"
#include "ir/file_util.h"

namespace edgepress::formats {
namespace onnx_internal {

using ::onnx::AttributeProto;
using ::onnx::GraphProto;
using ::onnx::NodeProto;
using ::onnx::TypeProto;

AttributeProto::AttributeType AttributeTypeOf(const AttributeProto& a) {
  if (a.type() != AttributeProto::UNDEFINED) return a.type();
  // Models from before IR v3 may leave `type` out; the set field tells it.
  if (a.has_f()) return AttributeProto::FLOAT;
  if (a.has_i()) return AttributeProto::INT;
  if (a.has_s()) return AttributeProto::STRING;
  if (a.has_t()) return AttributeProto::TENSOR;
  if (a.has_g()) return AttributeProto::GRAPH;
  if (a.has_sparse_tensor()) return AttributeProto::SPARSE_TENSOR;
  if (a.has_tp()) return AttributeProto::TYPE_PROTO;
  if (a.floats_size()) return AttributeProto::FLOATS;
  if (a.ints_size()) return AttributeProto::INTS;
  if (a.strings_size()) return AttributeProto::STRINGS;
  if (a.tensors_size()) return AttributeProto::TENSORS;
  if (a.graphs_size()) return AttributeProto::GRAPHS;
  if (a.sparse_tensors_size()) return AttributeProto::SPARSE_TENSORS;
  if (a.type_protos_size()) return AttributeProto::TYPE_PROTOS;
  return AttributeProto::UNDEFINED;
}

namespace {

class Importer {
 public:
  Importer(ExternalData* ext, std::string file) : ext_(ext), file_(std::move(file)) {}

  void ImportGraph(const GraphProto& gp, ir::Graph* g);

 private:
  ir::ValueType TypeFromProto(const TypeProto& tp, const std::string& what);
  ir::Attribute AttrFromProto(const AttributeProto& a, ir::Node* n, ir::Graph* g);
  std::string In(const ir::Graph& g) const {
    return file_ + ": " + (g.parent() ? "subgraph '" + g.name + "'" : "graph '" + g.name + "'");
  }

  ExternalData* ext_;
  std::string file_;
};

ir::ValueType Importer::TypeFromProto(const TypeProto& tp, const std::string& what) {
  ir::ValueType t;
  t.denotation = tp.denotation();
  auto dtype = [&](int32_t code) {
    if (code == 0) return ir::DType::kUndefined;
    ir::DType d = DTypeFromProto(code);
    if (d == ir::DType::kUndefined)
      ThrowInvalid(what + ": unknown element type " + std::to_string(code));
    return d;
  };
  auto shape = [&](const ::onnx::TensorShapeProto& sp) {
    ir::Shape s;
    s.reserve(static_cast<size_t>(sp.dim_size()));
    for (const auto& d : sp.dim()) {
      if (d.has_dim_value() && d.dim_value() >= 0) s.push_back(ir::Dim::Known(d.dim_value()));
      else if (d.has_dim_param()) s.push_back(ir::Dim::Symbol(d.dim_param()));
      else s.push_back(ir::Dim{});  // unknown (negative sizes from old exporters too)
    }
    return s;
  };
  switch (tp.value_case()) {
    case TypeProto::kTensorType:
      t.kind = ir::ValueType::Kind::kTensor;
      t.dtype = dtype(tp.tensor_type().elem_type());
      if (tp.tensor_type().has_shape()) t.shape = shape(tp.tensor_type().shape());
      break;
    case TypeProto::kSparseTensorType:
      t.kind = ir::ValueType::Kind::kSparseTensor;
      t.dtype = dtype(tp.sparse_tensor_type().elem_type());
      if (tp.sparse_tensor_type().has_shape()) t.shape = shape(tp.sparse_tensor_type().shape());
      break;
    case TypeProto::kSequenceType:
      t.kind = ir::ValueType::Kind::kSequence;
      if (tp.sequence_type().has_elem_type())
        t.elem = std::make_shared<ir::ValueType>(
            TypeFromProto(tp.sequence_type().elem_type(), what));
      break;
    case TypeProto::kOptionalType:
      t.kind = ir::ValueType::Kind::kOptional;
      if (tp.optional_type().has_elem_type())
        t.elem = std::make_shared<ir::ValueType>(
            TypeFromProto(tp.optional_type().elem_type(), what));
      break;
    case TypeProto::kMapType:
      t.kind = ir::ValueType::Kind::kMap;
      t.dtype = dtype(tp.map_type().key_type());
      if (tp.map_type().has_value_type())
        t.elem = std::make_shared<ir::ValueType>(TypeFromProto(tp.map_type().value_type(), what));
      break;
    case TypeProto::VALUE_NOT_SET: break;
    default: ThrowUnsupported(what + ": opaque types are not supported");
  }
  return t;
}

ir::Attribute Importer::AttrFromProto(const AttributeProto& a, ir::Node* n, ir::Graph* g) {
  using K = ir::Attribute::Kind;
  ir::Attribute out;
  out.name = a.name();
  out.doc = a.doc_string();
  out.ref_attr_name = a.ref_attr_name();
  const std::string what = file_ + ": " + n->describe() + " attribute '" + a.name() + "'";
  if (a.name().empty()) ThrowInvalid(file_ + ": " + n->describe() + " has an unnamed attribute");
  auto subgraph = [&](const GraphProto& gp) {
    auto sg = std::make_shared<ir::Graph>();
    sg->SetParent(g, n);  // before import, so outer-scope names resolve
    ImportGraph(gp, sg.get());
    return sg;
  };
  switch (AttributeTypeOf(a)) {
    case AttributeProto::FLOAT: out.kind = K::kFloat; out.f = a.f(); break;
    case AttributeProto::INT: out.kind = K::kInt; out.i = a.i(); break;
    case AttributeProto::STRING: out.kind = K::kString; out.s = a.s(); break;
    case AttributeProto::TENSOR:
      out.kind = K::kTensor;
      out.t = TensorFromProto(a.t(), ext_, what);
      break;
    case AttributeProto::GRAPH: out.kind = K::kGraph; out.g = subgraph(a.g()); break;
    case AttributeProto::FLOATS:
      out.kind = K::kFloats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case AttributeProto::INTS:
      out.kind = K::kInts;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case AttributeProto::STRINGS:
      out.kind = K::kStrings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    case AttributeProto::TENSORS:
      out.kind = K::kTensors;
      for (int i = 0; i < a.tensors_size(); ++i)
        out.tensors.push_back(
            TensorFromProto(a.tensors(i), ext_, what + " tensor " + std::to_string(i)));
      break;
    case AttributeProto::GRAPHS:
      out.kind = K::kGraphs;
      for (const auto& gp : a.graphs()) out.graphs.push_back(subgraph(gp));
      break;
    case AttributeProto::TYPE_PROTO:
      out.kind = K::kTypeProto;
      out.types.push_back(TypeFromProto(a.tp(), what));
      break;
    case AttributeProto::TYPE_PROTOS:
      out.kind = K::kTypeProtos;
      for (const auto& tp : a.type_protos()) out.types.push_back(TypeFromProto(tp, what));
      break;
    case AttributeProto::SPARSE_TENSOR:
    case AttributeProto::SPARSE_TENSORS:
      ThrowUnsupported(what + ": sparse tensor attributes are not supported");
    default:
      ThrowInvalid(what + ": attribute has no value or an unknown type " +
                   std::to_string(static_cast<int>(a.type())));
  }
  return out;
}

void Importer::ImportGraph(const GraphProto& gp, ir::Graph* g) {
  g->name = gp.name();
  g->doc = gp.doc_string();
  if (gp.sparse_initializer_size())
    ThrowUnsupported(In(*g) + ": sparse initializers are not supported");
  // Graph-level errors (duplicate names) come from ir::Graph without the file name.
  auto guard = [&](const auto& fn) {
    try {
      return fn();
    } catch (const Error& e) {
      throw Error(e.code(), file_ + ": " + e.what());
    }
  };
  for (const auto& vi : gp.input()) {
    if (vi.name().empty()) ThrowInvalid(In(*g) + ": a graph input has no name");
    ir::ValueType t = TypeFromProto(vi.type(), In(*g) + " input '" + vi.name() + "'");
    ir::Value* v = guard([&] { return g->AddInput(vi.name(), t); });
    v->doc = vi.doc_string();
  }
  for (const auto& tp : gp.initializer()) {
    if (tp.name().empty()) ThrowInvalid(In(*g) + ": an initializer has no name");
    ir::Tensor t = TensorFromProto(tp, ext_, file_ + ": initializer '" + tp.name() + "'");
    ir::Value* existing = g->FindValue(tp.name());
    bool is_input = existing && existing->graph() == g && existing->is_graph_input();
    ir::ValueType input_type = is_input ? existing->type : ir::ValueType{};
    ir::Value* v = guard([&] { return g->AddInitializer(tp.name(), std::move(t)); });
    if (is_input && input_type.kind != ir::ValueType::Kind::kUnknown) v->type = input_type;
  }
  std::unordered_map<std::string, const ::onnx::ValueInfoProto*> info;
  for (const auto& vi : gp.value_info()) info[vi.name()] = &vi;

  for (const NodeProto& np : gp.node()) {
    std::string desc = "node '" + np.name() + "' (" + np.op_type() + ")";
    if (np.op_type().empty()) ThrowInvalid(In(*g) + ": " + desc + " has no op_type");
    std::vector<ir::Value*> inputs;
    inputs.reserve(static_cast<size_t>(np.input_size()));
    for (const auto& name : np.input()) {
      if (name.empty()) {
        inputs.push_back(nullptr);
        continue;
      }
      ir::Value* v = g->FindValue(name);
      if (!v)
        ThrowInvalid(In(*g) + ": " + desc + " uses '" + name +
                     "', which is not defined before it (dangling name or nodes out of "
                     "topological order)");
      inputs.push_back(v);
    }
    std::vector<std::string> outputs(np.output().begin(), np.output().end());
    ir::Node* n = guard([&] {
      return g->AddNode(np.op_type(), inputs, outputs, np.name(), np.domain());
    });
    n->doc = np.doc_string();
    for (const auto& ap : np.attribute()) {
      if (n->has_attr(ap.name()))
        ThrowInvalid(file_ + ": " + n->describe() + " has attribute '" + ap.name() + "' twice");
      n->attributes().push_back(AttrFromProto(ap, n, g));
    }
    for (ir::Value* o : n->outputs()) {
      if (!o) continue;
      auto it = info.find(o->name());
      if (it == info.end()) continue;
      o->type = TypeFromProto(it->second->type(), In(*g) + " value '" + o->name() + "'");
      o->doc = it->second->doc_string();
    }
  }
  for (const auto& vi : gp.output()) {
    ir::Value* v = g->FindValue(vi.name());
    if (!v) ThrowInvalid(In(*g) + ": graph output '" + vi.name() + "' is not defined");
    ir::ValueType t = TypeFromProto(vi.type(), In(*g) + " output '" + vi.name() + "'");
    // An output that passes through an outer value keeps the outer value's type.
    if (v->graph() == g || v->type.kind == ir::ValueType::Kind::kUnknown) v->type = t;
    if (!vi.doc_string().empty()) v->doc = vi.doc_string();
    g->AddOutput(v);
  }
}

}  // namespace

std::unique_ptr<ir::Model> ModelFromProto(const ::onnx::ModelProto& mp, ExternalData* ext,
                                          const std::string& file) {
  if (!mp.has_graph()) ThrowInvalid(file + ": the model has no graph");
  if (mp.functions_size())
    ThrowUnsupported(file + ": model-local functions are not supported (" +
                     mp.functions(0).name() + ")");
  if (mp.training_info_size())
    ThrowUnsupported(file + ": training_info is not supported");
  auto m = std::make_unique<ir::Model>();
  m->ir_version = mp.ir_version();
  m->producer_name = mp.producer_name();
  m->producer_version = mp.producer_version();
  m->domain = mp.domain();
  m->model_version = mp.model_version();
  m->doc = mp.doc_string();
  for (const auto& op : mp.opset_import())
    m->opsets.push_back(ir::OpsetImport{op.domain(), op.version()});
  for (const auto& kv : mp.metadata_props()) m->metadata.emplace_back(kv.key(), kv.value());
  Importer(ext, file).ImportGraph(mp.graph(), m->graph.get());
  NormalizeOpsets(*m, file);
  return m;
}

}  // namespace onnx_internal

namespace {
std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}
}  // namespace

std::unique_ptr<ir::Model> LoadOnnxFromBytes(const std::string& bytes,
                                             const std::string& name_for_errors,
                                             const std::string& base_dir) {
  ::onnx::ModelProto mp;
  onnx_internal::ParseProto(bytes, &mp, name_for_errors, "model");
  onnx_internal::ExternalData ext(name_for_errors, base_dir);
  // Every failure leaves as an Error that names the file, whichever layer found it.
  try {
    return onnx_internal::ModelFromProto(mp, &ext, name_for_errors);
  } catch (const Error& e) {
    if (std::string(e.what()).find(name_for_errors) != std::string::npos) throw;
    throw Error(e.code(), name_for_errors + ": " + e.what());
  } catch (const std::bad_alloc&) {
    ThrowInvalid(name_for_errors + ": out of memory while importing the model");
  } catch (const std::exception& e) {
    ThrowInvalid(name_for_errors + ": " + e.what());
  }
}

std::unique_ptr<ir::Model> LoadOnnx(const std::string& path) {
  // protobuf cannot parse one message over 2 GiB; refuse before reading it all.
  uint64_t size = FileSize(path);
  if (size > static_cast<uint64_t>(INT32_MAX))
    ThrowInvalid(path + ": " + std::to_string(size) +
                 " bytes is over protobuf's 2 GiB limit (large models must use external data)");
  return LoadOnnxFromBytes(ReadFileToString(path), path, DirName(path));
}

std::optional<ir::Tensor> OnnxConstantValue(const ir::Node& n) {
  if (n.op_type() != "Constant" || !n.domain().empty()) return std::nullopt;
  return ir::ConstantAttributeValue(n);
}

}  // namespace edgepress::formats
