// The normalisation behind onnx_compare.h. It is applied to both sides of a comparison,
// so it only has to erase differences that the IR legitimately does not keep (how a
// tensor's bytes are encoded, attribute order, untyped value_info, fields explicitly set
// to their default value); everything the IR carries must survive untouched.
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "formats/onnx/onnx_compare.h"
#include "formats/onnx/onnx_internal.h"
#include "ir/error.h"
#include "ir/file_util.h"

namespace edgepress::formats {

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using namespace onnx_internal;

class Canonicalizer {
 public:
  Canonicalizer(ExternalData* ext, std::string file, bool hash_bytes)
      : ext_(ext), file_(std::move(file)), hash_bytes_(hash_bytes) {}

  void Model(::onnx::ModelProto* mp) {
    auto* ops = mp->mutable_opset_import();
    std::stable_sort(ops->begin(), ops->end(), [](const auto& a, const auto& b) {
      return a.domain() < b.domain();
    });
    auto* md = mp->mutable_metadata_props();
    std::stable_sort(md->begin(), md->end(),
                     [](const auto& a, const auto& b) { return a.key() < b.key(); });
    if (mp->has_graph()) Graph(mp->mutable_graph());
  }

  void Tensor(::onnx::TensorProto* t, bool keep_name) {
    ir::Tensor x = TensorFromProto(*t, ext_, file_ + ": tensor '" + t->name() + "'");
    ::onnx::TensorProto n;
    if (keep_name && !t->name().empty()) n.set_name(t->name());
    TensorToProto(x, &n, file_);
    if (hash_bytes_ && n.raw_data().size() > 64) {
      uint64_t h = 1469598103934665603ull;  // FNV-1a
      for (unsigned char c : n.raw_data()) h = (h ^ c) * 1099511628211ull;
      n.set_raw_data("<" + std::to_string(n.raw_data().size()) + " bytes, fnv1a " +
                     std::to_string(h) + ">");
    }
    *t = std::move(n);
  }

 private:
  void Type(::onnx::TypeProto* tp) {
    auto shape = [](::onnx::TensorShapeProto* s) {
      for (auto& d : *s->mutable_dim()) {
        d.clear_denotation();
        if (d.has_dim_value() && d.dim_value() < 0) d.clear_dim_value();
      }
    };
    if (tp->has_tensor_type()) {
      if (tp->tensor_type().elem_type() == 0) tp->mutable_tensor_type()->clear_elem_type();
      if (tp->tensor_type().has_shape()) shape(tp->mutable_tensor_type()->mutable_shape());
    }
    if (tp->has_sparse_tensor_type() && tp->sparse_tensor_type().has_shape())
      shape(tp->mutable_sparse_tensor_type()->mutable_shape());
    if (tp->has_sequence_type() && tp->sequence_type().has_elem_type())
      Type(tp->mutable_sequence_type()->mutable_elem_type());
    if (tp->has_optional_type() && tp->optional_type().has_elem_type())
      Type(tp->mutable_optional_type()->mutable_elem_type());
    if (tp->has_map_type() && tp->map_type().has_value_type())
      Type(tp->mutable_map_type()->mutable_value_type());
  }

  void Graph(::onnx::GraphProto* g) {
    for (auto& t : *g->mutable_initializer()) Tensor(&t, true);
    for (auto& vi : *g->mutable_input()) Type(vi.mutable_type());
    for (auto& vi : *g->mutable_output()) Type(vi.mutable_type());
    std::set<std::string> produced, outputs;
    for (const auto& vi : g->output()) outputs.insert(vi.name());
    for (auto& n : *g->mutable_node()) {
      for (const auto& o : n.output()) produced.insert(o);
      auto* attrs = n.mutable_attribute();
      std::stable_sort(attrs->begin(), attrs->end(),
                       [](const auto& a, const auto& b) { return a.name() < b.name(); });
      for (auto& a : *attrs) {
        a.set_type(AttributeTypeOf(a));
        if (a.has_t()) Tensor(a.mutable_t(), false);
        for (auto& t : *a.mutable_tensors()) Tensor(&t, false);
        if (a.has_g()) Graph(a.mutable_g());
        for (auto& sg : *a.mutable_graphs()) Graph(&sg);
        if (a.has_tp()) Type(a.mutable_tp());
        for (auto& tp : *a.mutable_type_protos()) Type(&tp);
      }
    }
    google::protobuf::RepeatedPtrField<::onnx::ValueInfoProto> kept;
    for (auto& vi : *g->mutable_value_info()) {
      if (!vi.has_type() || vi.type().value_case() == ::onnx::TypeProto::VALUE_NOT_SET) continue;
      if (!produced.count(vi.name()) || outputs.count(vi.name())) continue;
      Type(vi.mutable_type());
      *kept.Add() = std::move(vi);
    }
    std::stable_sort(kept.begin(), kept.end(),
                     [](const auto& a, const auto& b) { return a.name() < b.name(); });
    g->mutable_value_info()->Swap(&kept);
  }

  ExternalData* ext_;
  std::string file_;
  bool hash_bytes_;
};

// A proto2 field explicitly set to its default means the same as an unset one.
void ClearDefaults(Message* m) {
  const Reflection* r = m->GetReflection();
  const auto* d = m->GetDescriptor();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_repeated()) {
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE)
        for (int k = 0; k < r->FieldSize(*m, f); ++k)
          ClearDefaults(r->MutableRepeatedMessage(m, f, k));
      continue;
    }
    if (!r->HasField(*m, f)) continue;
    bool is_default = false;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE: ClearDefaults(r->MutableMessage(m, f)); break;
      case FieldDescriptor::CPPTYPE_STRING: is_default = r->GetString(*m, f).empty(); break;
      case FieldDescriptor::CPPTYPE_INT32: is_default = r->GetInt32(*m, f) == f->default_value_int32(); break;
      case FieldDescriptor::CPPTYPE_INT64: is_default = r->GetInt64(*m, f) == f->default_value_int64(); break;
      case FieldDescriptor::CPPTYPE_UINT64: is_default = r->GetUInt64(*m, f) == f->default_value_uint64(); break;
      case FieldDescriptor::CPPTYPE_ENUM: is_default = r->GetEnumValue(*m, f) == f->default_value_enum()->number(); break;
      // Floats are compared bitwise elsewhere; an explicit 0.0 attribute value still means
      // "0.0", which an unset field also does.
      case FieldDescriptor::CPPTYPE_FLOAT: is_default = r->GetFloat(*m, f) == 0 && !std::signbit(r->GetFloat(*m, f)); break;
      default: break;
    }
    // Oneof members (TypeProto's value) carry meaning by being set.
    if (is_default && !f->containing_oneof()) r->ClearField(m, f);
  }
}

std::string Dir(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

void LoadCanonical(const std::string& path, bool hash, ::onnx::ModelProto* mp) {
  ParseProto(ReadFileToString(path), mp, path, "model");
  ExternalData ext(path, Dir(path));
  Canonicalizer(&ext, path, hash).Model(mp);
  ClearDefaults(mp);
}

bool Differ(const Message& a, const Message& b, std::string* difference) {
  google::protobuf::util::MessageDifferencer md;
  std::string report;
  md.ReportDifferencesToString(&report);
  bool same = md.Compare(a, b);
  if (!same && difference) {
    if (report.size() > 4000) report = report.substr(0, 4000) + "\n...";
    *difference = report;
  }
  return same;
}

}  // namespace

std::string CanonicalOnnxText(const std::string& path) {
  ::onnx::ModelProto mp;
  LoadCanonical(path, true, &mp);
  std::string out;
  google::protobuf::TextFormat::PrintToString(mp, &out);
  return out;
}

bool OnnxFilesEquivalent(const std::string& a, const std::string& b, std::string* difference) {
  ::onnx::ModelProto ma, mb;
  LoadCanonical(a, false, &ma);
  LoadCanonical(b, false, &mb);
  return Differ(ma, mb, difference);
}

bool TensorProtoFilesEquivalent(const std::string& a, const std::string& b,
                                std::string* difference) {
  ::onnx::TensorProto ta, tb;
  ParseProto(ReadFileToString(a), &ta, a, "TensorProto");
  ParseProto(ReadFileToString(b), &tb, b, "TensorProto");
  ExternalData ea(a, Dir(a)), eb(b, Dir(b));
  Canonicalizer(&ea, a, false).Tensor(&ta, true);
  Canonicalizer(&eb, b, false).Tensor(&tb, true);
  ClearDefaults(&ta);
  ClearDefaults(&tb);
  return Differ(ta, tb, difference);
}

}  // namespace edgepress::formats
