#include "ir/dump.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace edgepress::ir {
namespace {

constexpr uint64_t kTinyElements = 8;

// Shortest decimal form that reads back as the same float, so dumps are both exact and
// readable (0.1f prints as 0.1, not 0.100000001).
std::string FloatString(double v, bool is_float32) {
  char buf[64];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof(buf), "%.*g", prec, v);
    double back = std::strtod(buf, nullptr);
    if (is_float32 ? static_cast<float>(back) == static_cast<float>(v) : back == v) break;
  }
  return buf;
}

std::string Escaped(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string ValueName(const Value* v) {
  if (!v) return "_";
  const std::string& n = v->name();
  bool plain = !n.empty() && std::all_of(n.begin(), n.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '.' || c == '/' || c == ':' || c == '-';
  });
  return "%" + (plain ? n : Escaped(n));
}

std::string TypeSuffix(const Value* v) {
  if (!v || v->type.kind == ValueType::Kind::kUnknown) return "";
  return ": " + v->type.ToString();
}

std::string TensorValues(const Tensor& t) {
  std::string out = "[";
  if (t.dtype() == DType::kString) {
    for (size_t i = 0; i < t.strings().size(); ++i)
      out += (i ? ", " : "") + Escaped(t.strings()[i]);
    return out + "]";
  }
  if (IsFloat(t.dtype())) {
    std::vector<double> v = t.ToDouble();
    for (size_t i = 0; i < v.size(); ++i)
      out += (i ? ", " : "") + FloatString(v[i], t.dtype() != DType::kFloat64);
  } else {
    std::vector<int64_t> v = t.ToInt64();
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
  }
  return out + "]";
}

bool Readable(const Tensor& t) {
  if (t.numel() > kTinyElements || t.empty()) return false;
  if (t.dtype() == DType::kString) return true;
  return IsFloat(t.dtype()) || (IsInteger(t.dtype()) && !IsPacked(t.dtype())) ||
         t.dtype() == DType::kBool;
}

std::string TensorSummary(const Tensor& t) {
  std::string s = std::string(DTypeName(t.dtype())) + ShapeToString(MakeShape(t.shape()));
  if (Readable(t)) s += " = " + TensorValues(t);
  if (t.quant) {
    const QuantParams& q = *t.quant;
    const char* g = q.granularity == QuantParams::Granularity::kPerTensor    ? "per-tensor"
                    : q.granularity == QuantParams::Granularity::kPerChannel ? "per-channel"
                                                                             : "per-group";
    s += std::string(" quant=") + g + "(axis=" + std::to_string(q.axis);
    if (q.granularity == QuantParams::Granularity::kPerGroup)
      s += ", group=" + std::to_string(q.group_size);
    s += ", " + std::to_string(q.scales.size()) + " scales)";
  }
  if (t.sparse && t.sparse->kind == SparseEncoding::Kind::kNM)
    s += " sparse=" + std::to_string(t.sparse->n) + ":" + std::to_string(t.sparse->m);
  else if (t.sparse && t.sparse->kind == SparseEncoding::Kind::kBlock)
    s += " sparse=block";
  return s;
}

std::string AttrValue(const Attribute& a) {
  std::string out;
  auto list = [&](size_t n, auto&& item) {
    out += "[";
    for (size_t i = 0; i < n; ++i) out += (i ? "," : "") + item(i);
    out += "]";
  };
  switch (a.kind) {
    case Attribute::Kind::kUndefined:
      return "?";
    case Attribute::Kind::kFloat:
      return FloatString(a.f, true);
    case Attribute::Kind::kInt:
      return std::to_string(a.i);
    case Attribute::Kind::kString:
      return Escaped(a.s);
    case Attribute::Kind::kTensor:
      return "tensor<" + TensorSummary(a.t) + ">";
    case Attribute::Kind::kGraph:
      return "graph";
    case Attribute::Kind::kFloats:
      list(a.floats.size(), [&](size_t i) { return FloatString(a.floats[i], true); });
      return out;
    case Attribute::Kind::kInts:
      list(a.ints.size(), [&](size_t i) { return std::to_string(a.ints[i]); });
      return out;
    case Attribute::Kind::kStrings:
      list(a.strings.size(), [&](size_t i) { return Escaped(a.strings[i]); });
      return out;
    case Attribute::Kind::kTensors:
      list(a.tensors.size(),
           [&](size_t i) { return "tensor<" + TensorSummary(a.tensors[i]) + ">"; });
      return out;
    case Attribute::Kind::kGraphs:
      return "graphs(" + std::to_string(a.graphs.size()) + ")";
    case Attribute::Kind::kTypeProto:
      return a.types.empty() ? "type<?>" : "type<" + a.types[0].ToString() + ">";
    case Attribute::Kind::kTypeProtos:
      list(a.types.size(), [&](size_t i) { return "type<" + a.types[i].ToString() + ">"; });
      return out;
  }
  return "?";
}

std::vector<const Attribute*> SortedAttrs(const Node& n) {
  std::vector<const Attribute*> attrs;
  for (const auto& a : n.attributes()) attrs.push_back(&a);
  std::stable_sort(attrs.begin(), attrs.end(),
                   [](const Attribute* x, const Attribute* y) { return x->name < y->name; });
  return attrs;
}

std::string NodeLine(const Node& n) {
  std::string s;
  for (size_t i = 0; i < n.num_outputs(); ++i) {
    if (i) s += ", ";
    s += ValueName(n.output(i)) + TypeSuffix(n.output(i));
  }
  if (n.num_outputs()) s += " = ";
  s += n.qualified_op() + "(";
  for (size_t i = 0; i < n.num_inputs(); ++i) s += (i ? ", " : "") + ValueName(n.input(i));
  s += ")";
  std::string attrs;
  for (const Attribute* a : SortedAttrs(n)) {
    if (a->kind == Attribute::Kind::kGraph) continue;  // printed as a block below
    if (!attrs.empty()) attrs += ", ";
    attrs += a->name + "=" + AttrValue(*a);
  }
  if (!attrs.empty()) s += " {" + attrs + "}";
  if (!n.name.empty()) s += "  # " + n.name;
  return s;
}

void DumpGraph(const Graph& g, const std::string& indent, std::ostringstream& os) {
  os << "graph " << Escaped(g.name) << " {\n";
  std::string in = indent + "  ";
  for (const Value* v : g.inputs()) {
    os << in << "input " << ValueName(v) << TypeSuffix(v);
    if (v && v->initializer()) os << " default " << TensorSummary(*v->initializer());
    os << "\n";
  }
  for (const Value* v : g.initializers()) {
    if (!v || v->is_graph_input()) continue;
    os << in << "init " << ValueName(v) << ": " << TensorSummary(*v->initializer()) << "\n";
  }
  for (const Node* n : g.nodes()) {
    os << in << NodeLine(*n) << "\n";
    for (const Attribute* a : SortedAttrs(*n)) {
      if (a->kind == Attribute::Kind::kGraph && a->g) {
        os << in << "  " << a->name << ": ";
        DumpGraph(*a->g, in + "  ", os);
      } else if (a->kind == Attribute::Kind::kGraphs) {
        for (size_t i = 0; i < a->graphs.size(); ++i) {
          os << in << "  " << a->name << "[" << i << "]: ";
          DumpGraph(*a->graphs[i], in + "  ", os);
        }
      }
    }
  }
  for (const Value* v : g.outputs()) os << in << "output " << ValueName(v) << TypeSuffix(v) << "\n";
  os << indent << "}\n";
}

}  // namespace

std::string DumpNode(const Node& node) { return NodeLine(node); }

std::string DumpText(const Graph& graph) {
  std::ostringstream os;
  DumpGraph(graph, "", os);
  return os.str();
}

std::string DumpText(const Model& model) {
  std::ostringstream os;
  os << "model ir_version=" << model.ir_version;
  if (!model.producer_name.empty()) {
    os << " producer=" << Escaped(model.producer_name);
    if (!model.producer_version.empty()) os << " " << Escaped(model.producer_version);
  }
  os << " opsets={";
  std::vector<OpsetImport> opsets = model.opsets;
  std::sort(opsets.begin(), opsets.end(),
            [](const OpsetImport& a, const OpsetImport& b) { return a.domain < b.domain; });
  for (size_t i = 0; i < opsets.size(); ++i)
    os << (i ? ", " : "") << (opsets[i].domain.empty() ? "ai.onnx" : opsets[i].domain) << ":"
       << opsets[i].version;
  os << "}\n";
  for (const auto& kv : model.metadata)
    os << "meta " << Escaped(kv.first) << " = " << Escaped(kv.second) << "\n";
  if (model.graph) DumpGraph(*model.graph, "", os);
  return os.str();
}

}  // namespace edgepress::ir
