// ir::Model -> ONNX ModelProto and .onnx files. Writes raw_data for every numeric tensor,
// folds synthesized opset-normalisation inputs back into attributes for older opsets
// (opset.cc) and moves large initializers into one external data file when asked or when
// the model would not fit protobuf's 2 GiB limit.
#include <onnx/checker.h>

#include <climits>
#include <fstream>
#include <unordered_map>

#include "formats/onnx/onnx.h"
#include "formats/onnx/onnx_internal.h"
#include "ir/error.h"
#include "ir/file_util.h"

namespace edgepress::formats {
namespace onnx_internal {

using ::onnx::AttributeProto;
using ::onnx::GraphProto;
using ::onnx::TypeProto;

namespace {

void TypeToProto(const ir::ValueType& t, TypeProto* tp) {
  if (!t.denotation.empty()) tp->set_denotation(t.denotation);
  auto shape = [](const ir::Shape& s, ::onnx::TensorShapeProto* sp) {
    for (const ir::Dim& d : s) {
      auto* dp = sp->add_dim();
      if (d.known()) dp->set_dim_value(d.value);
      else if (!d.symbol.empty()) dp->set_dim_param(d.symbol);
    }
  };
  switch (t.kind) {
    case ir::ValueType::Kind::kUnknown: break;
    case ir::ValueType::Kind::kTensor: {
      auto* tt = tp->mutable_tensor_type();
      if (t.dtype != ir::DType::kUndefined) tt->set_elem_type(DTypeToProto(t.dtype));
      if (t.shape) shape(*t.shape, tt->mutable_shape());
      break;
    }
    case ir::ValueType::Kind::kSparseTensor: {
      auto* tt = tp->mutable_sparse_tensor_type();
      if (t.dtype != ir::DType::kUndefined) tt->set_elem_type(DTypeToProto(t.dtype));
      if (t.shape) shape(*t.shape, tt->mutable_shape());
      break;
    }
    case ir::ValueType::Kind::kSequence: {
      auto* st = tp->mutable_sequence_type();
      if (t.elem) TypeToProto(*t.elem, st->mutable_elem_type());
      break;
    }
    case ir::ValueType::Kind::kOptional: {
      auto* ot = tp->mutable_optional_type();
      if (t.elem) TypeToProto(*t.elem, ot->mutable_elem_type());
      break;
    }
    case ir::ValueType::Kind::kMap: {
      auto* mt = tp->mutable_map_type();
      if (t.dtype != ir::DType::kUndefined) mt->set_key_type(DTypeToProto(t.dtype));
      if (t.elem) TypeToProto(*t.elem, mt->mutable_value_type());
      break;
    }
  }
}

void ValueInfoToProto(const ir::Value& v, ::onnx::ValueInfoProto* vi) {
  vi->set_name(v.name());
  if (v.type.kind != ir::ValueType::Kind::kUnknown || !v.type.denotation.empty())
    TypeToProto(v.type, vi->mutable_type());
  if (!v.doc.empty()) vi->set_doc_string(v.doc);
}

class Exporter {
 public:
  Exporter(int64_t opset, std::string file) : opset_(opset), file_(std::move(file)) {}
  void GraphToProto(const ir::Graph& g, GraphProto* gp);

 private:
  void AttrToProto(const ir::Attribute& a, const ir::Node& n, AttributeProto* ap);
  int64_t opset_;
  std::string file_;
};

void Exporter::AttrToProto(const ir::Attribute& a, const ir::Node& n, AttributeProto* ap) {
  using K = ir::Attribute::Kind;
  const std::string what = file_ + ": " + n.describe() + " attribute '" + a.name + "'";
  ap->set_name(a.name);
  if (!a.doc.empty()) ap->set_doc_string(a.doc);
  if (!a.ref_attr_name.empty()) ap->set_ref_attr_name(a.ref_attr_name);
  switch (a.kind) {
    case K::kFloat: ap->set_type(AttributeProto::FLOAT); ap->set_f(a.f); break;
    case K::kInt: ap->set_type(AttributeProto::INT); ap->set_i(a.i); break;
    case K::kString: ap->set_type(AttributeProto::STRING); ap->set_s(a.s); break;
    case K::kTensor:
      ap->set_type(AttributeProto::TENSOR);
      TensorToProto(a.t, ap->mutable_t(), what);
      break;
    case K::kGraph:
      ap->set_type(AttributeProto::GRAPH);
      if (!a.g) ThrowInvalid(what + ": graph attribute without a graph");
      GraphToProto(*a.g, ap->mutable_g());
      break;
    case K::kFloats:
      ap->set_type(AttributeProto::FLOATS);
      for (float f : a.floats) ap->add_floats(f);
      break;
    case K::kInts:
      ap->set_type(AttributeProto::INTS);
      for (int64_t i : a.ints) ap->add_ints(i);
      break;
    case K::kStrings:
      ap->set_type(AttributeProto::STRINGS);
      for (const auto& s : a.strings) ap->add_strings(s);
      break;
    case K::kTensors:
      ap->set_type(AttributeProto::TENSORS);
      for (const auto& t : a.tensors) TensorToProto(t, ap->add_tensors(), what);
      break;
    case K::kGraphs:
      ap->set_type(AttributeProto::GRAPHS);
      for (const auto& g : a.graphs) GraphToProto(*g, ap->add_graphs());
      break;
    case K::kTypeProto:
      ap->set_type(AttributeProto::TYPE_PROTO);
      if (!a.types.empty()) TypeToProto(a.types[0], ap->mutable_tp());
      break;
    case K::kTypeProtos:
      ap->set_type(AttributeProto::TYPE_PROTOS);
      for (const auto& t : a.types) TypeToProto(t, ap->add_type_protos());
      break;
    case K::kUndefined: ThrowInvalid(what + ": attribute has no value");
  }
}

void Exporter::GraphToProto(const ir::Graph& g, GraphProto* gp) {
  gp->set_name(g.name);
  if (!g.doc.empty()) gp->set_doc_string(g.doc);
  for (const ir::Value* v : g.inputs()) ValueInfoToProto(*v, gp->add_input());
  std::unordered_map<const ir::Value*, size_t> folded_uses;
  for (const ir::Node* n : g.nodes()) {
    auto* np = gp->add_node();
    Denormalized d = DenormalizeNode(*n, opset_, file_);
    const std::vector<ir::Value*>& inputs = d.changed ? d.inputs : n->inputs();
    if (d.changed)
      for (size_t i = 1; i < n->num_inputs(); ++i)
        if (n->input(i)) ++folded_uses[n->input(i)];
    for (const ir::Value* v : inputs) np->add_input(v ? v->name() : "");
    for (const ir::Value* v : n->outputs()) np->add_output(v ? v->name() : "");
    if (!n->name.empty()) np->set_name(n->name);
    np->set_op_type(n->op_type());
    if (!n->domain().empty()) np->set_domain(n->domain());
    if (!n->doc.empty()) np->set_doc_string(n->doc);
    for (const auto& a : n->attributes()) AttrToProto(a, *n, np->add_attribute());
    for (const auto& a : d.add_attrs) AttrToProto(a, *n, np->add_attribute());
    for (const ir::Value* v : n->outputs())
      if (v && !v->is_graph_output() &&
          (v->type.kind != ir::ValueType::Kind::kUnknown || !v->doc.empty()))
        ValueInfoToProto(*v, gp->add_value_info());
  }
  for (const ir::Value* v : g.initializers()) {
    // A synthesized constant that every user folded back into an attribute disappears.
    auto it = folded_uses.find(v);
    if (v->synthesized && it != folded_uses.end() && it->second == v->uses().size() &&
        !v->is_graph_output() && !v->is_graph_input())
      continue;
    auto* tp = gp->add_initializer();
    tp->set_name(v->name());
    TensorToProto(*v->initializer(), tp, file_ + ": initializer '" + v->name() + "'");
  }
  for (const ir::Value* v : g.outputs()) ValueInfoToProto(*v, gp->add_output());
}

}  // namespace

void ModelToProto(const ir::Model& m, ::onnx::ModelProto* mp, const std::string& file) {
  mp->set_ir_version(m.ir_version);
  if (!m.producer_name.empty()) mp->set_producer_name(m.producer_name);
  if (!m.producer_version.empty()) mp->set_producer_version(m.producer_version);
  if (!m.domain.empty()) mp->set_domain(m.domain);
  if (m.model_version) mp->set_model_version(m.model_version);
  if (!m.doc.empty()) mp->set_doc_string(m.doc);
  for (const auto& op : m.opsets) {
    auto* o = mp->add_opset_import();
    o->set_domain(op.domain);
    o->set_version(op.version);
  }
  for (const auto& kv : m.metadata) {
    auto* p = mp->add_metadata_props();
    p->set_key(kv.first);
    p->set_value(kv.second);
  }
  Exporter(m.OpsetVersion(""), file).GraphToProto(*m.graph, mp->mutable_graph());
}

namespace {

// Every initializer of the graph and its subgraphs (the tensors external data may hold).
void CollectInitializers(GraphProto* g, std::vector<::onnx::TensorProto*>* out) {
  for (auto& t : *g->mutable_initializer()) out->push_back(&t);
  for (auto& n : *g->mutable_node())
    for (auto& a : *n.mutable_attribute()) {
      if (a.has_g()) CollectInitializers(a.mutable_g(), out);
      for (auto& sg : *a.mutable_graphs()) CollectInitializers(&sg, out);
    }
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

void RunChecker(const ::onnx::ModelProto& mp, const std::string& file) {
  try {
    ::onnx::checker::check_model(mp);
  } catch (const std::exception& e) {
    ThrowInvalid(file + ": the ONNX checker rejects the model: " + e.what());
  }
}

}  // namespace
}  // namespace onnx_internal

std::string SerializeOnnx(const ir::Model& m) {
  ::onnx::ModelProto mp;
  onnx_internal::ModelToProto(m, &mp, "<model>");
  if (mp.ByteSizeLong() > static_cast<size_t>(INT_MAX))
    ThrowInvalid("model is over protobuf's 2 GiB limit; save it with external data");
  std::string bytes;
  mp.SerializeToString(&bytes);
  return bytes;
}

void SaveOnnx(const ir::Model& m, const std::string& path, const OnnxSaveOptions& o) {
  using namespace onnx_internal;
  ::onnx::ModelProto mp;
  ModelToProto(m, &mp, path);
  if (o.check) RunChecker(mp, path);
  // Leave headroom under INT_MAX for the parts that are not tensors.
  const bool external = o.external_data || mp.ByteSizeLong() > (size_t{1} << 31) - (size_t{1} << 26);
  if (external) {
    std::vector<::onnx::TensorProto*> tensors;
    CollectInitializers(mp.mutable_graph(), &tensors);
    const std::string location = BaseName(path) + ".data";
    const std::string data_path = DirOf(path) + "/" + location;
    WriteFileAtomicWith(data_path, [&](const std::string& tmp) {
      std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
      if (!f) throw Error(ErrorCode::kIo, "cannot write '" + data_path + "'");
      uint64_t offset = 0;
      static const char kZeros[64] = {};
      for (::onnx::TensorProto* t : tensors) {
        if (!t->has_raw_data() || t->raw_data().size() < o.external_threshold) continue;
        // 64-byte alignment lets the importer map tensors in place.
        uint64_t pad = (64 - offset % 64) % 64;
        f.write(kZeros, static_cast<std::streamsize>(pad));
        offset += pad;
        const std::string& raw = t->raw_data();
        f.write(raw.data(), static_cast<std::streamsize>(raw.size()));
        t->set_data_location(::onnx::TensorProto::EXTERNAL);
        auto add = [&](const char* k, const std::string& v) {
          auto* kv = t->add_external_data();
          kv->set_key(k);
          kv->set_value(v);
        };
        add("location", location);
        add("offset", std::to_string(offset));
        add("length", std::to_string(raw.size()));
        offset += raw.size();
        t->clear_raw_data();
      }
      f.close();
      if (!f) throw Error(ErrorCode::kIo, "cannot write '" + data_path + "'");
    });
  }
  if (mp.ByteSizeLong() > static_cast<size_t>(INT_MAX))
    ThrowInvalid(path + ": the model's graph is over protobuf's 2 GiB limit even with external data");
  std::string bytes;
  if (!mp.SerializeToString(&bytes)) ThrowInvalid(path + ": cannot serialise the model");
  WriteFileAtomic(path, bytes);
}

void CheckOnnxFile(const std::string& path) {
  FileSize(path);  // a missing file is an I/O error, not a checker failure
  try {
    ::onnx::checker::check_model(path);
  } catch (const std::exception& e) {
    ThrowInvalid(path + ": the ONNX checker rejects the model: " + e.what());
  }
}

}  // namespace edgepress::formats
