// `edgepress inspect MODEL`: what a model is before anyone compresses it — producer,
// opsets, inputs/outputs, op histogram, parameter count and bytes by dtype, and the
// largest tensors. Parameters are initializers (not the constants the importer
// synthesizes while normalising opsets) plus the floating tensors held by Constant nodes,
// which paddle2onnx and older exporters use for weights; all Constant nodes are also
// summarised on their own line.
//
// Sparsity: every initializer with at least kSparseReportZeros of its elements zero is
// listed with its N:M annotation and the layout and bytes the .epk writer would use for it
// (formats/epk's EpkStorageFor, so the numbers are what `convert` to .epk produces), and
// the total bytes sparse storage saves over dense.
//
// --epk-size: where the bytes of the model's .epk go (header, provenance, string table,
// node/value/tensor records, padding, weights), as the current writer lays it out and as
// the 2.0 writer did; for an .epk input its provenance metadata is included.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "formats/epk/epk.h"
#include "formats/onnx/onnx.h"
#include "ir/dump.h"
#include "tools/cli.h"
#include "tools/model_io.h"

namespace edgepress::tools {

namespace {

struct TensorEntry {
  std::string name;
  const ir::Tensor* tensor;
  bool constant_node;
};

// Weights with at least this fraction of zero elements are listed as sparse layers.
constexpr double kSparseReportZeros = 0.1;

struct SparseLayer {
  std::string name;
  std::string node;  // first consumer, "" when none
  const ir::Tensor* tensor;
  double zeros;
  formats::EpkTensorStorage storage;
};

// Fraction of elements whose bytes are all zero (the .epk writer's notion of zero).
double ZeroFraction(const ir::Tensor& t) {
  if (t.dtype() == ir::DType::kString || ir::IsPacked(t.dtype()) || t.numel() == 0) return 0;
  const uint64_t es = t.nbytes() / t.numel();
  const auto* p = static_cast<const uint8_t*>(t.raw());
  uint64_t zeros = 0;
  for (uint64_t e = 0; e < t.numel(); ++e) {
    bool z = true;
    for (uint64_t b = 0; b < es && z; ++b) z = p[e * es + b] == 0;
    zeros += z;
  }
  return static_cast<double>(zeros) / static_cast<double>(t.numel());
}

struct Summary {
  std::map<std::string, int64_t> ops;
  int64_t nodes = 0;
  int64_t subgraphs = 0;
  std::map<std::string, std::pair<uint64_t, uint64_t>> params_by_dtype;  // count, bytes
  uint64_t param_count = 0, param_bytes = 0;
  uint64_t constant_tensors = 0, constant_count = 0, constant_bytes = 0;
  uint64_t param_in_constants = 0;  // of param_count: float tensors in Constant nodes
  std::vector<TensorEntry> tensors;
  std::vector<ir::Tensor> constant_storage;
  std::vector<SparseLayer> sparse;
  uint64_t epk_dense_bytes = 0, epk_stored_bytes = 0;  // all initializers
};

void Summarize(ir::Graph& root, Summary* s) {
  // Constant values that are not stored as `value` tensors are materialised once.
  s->constant_storage.reserve(1024);
  std::vector<std::pair<std::string, size_t>> pending;
  root.Walk([&](ir::Graph& g) {
    if (&g != &root) ++s->subgraphs;
    for (ir::Value* v : g.initializers()) {
      if (v->synthesized) continue;
      const ir::Tensor* t = v->initializer();
      auto& d = s->params_by_dtype[ir::DTypeName(t->dtype())];
      d.first += t->numel();
      d.second += t->nbytes();
      s->param_count += t->numel();
      s->param_bytes += t->nbytes();
      s->tensors.push_back({v->name(), t, false});
      const formats::EpkTensorStorage st = formats::EpkStorageFor(*t);
      s->epk_dense_bytes += st.dense_bytes;
      s->epk_stored_bytes += st.stored_bytes;
      const double zeros = ZeroFraction(*t);
      if (zeros >= kSparseReportZeros && t->numel() > 1)
        s->sparse.push_back({v->name(), v->uses().empty() ? "" : v->uses()[0].user->name, t,
                             zeros, st});
    }
    for (ir::Node* n : g.nodes()) {
      ++s->nodes;
      ++s->ops[n->qualified_op()];
      if (auto c = formats::OnnxConstantValue(*n)) {
        ++s->constant_tensors;
        s->constant_count += c->numel();
        s->constant_bytes += c->nbytes();
        // paddle2onnx and older exporters hold weights in Constant nodes: floating
        // tensors of more than one element count as parameters; integer ones (shapes,
        // axes) and float scalars (hyper-parameters such as GELU's 0.5) do not.
        if (ir::IsFloat(c->dtype()) && c->numel() > 1) {
          auto& d = s->params_by_dtype[ir::DTypeName(c->dtype())];
          d.first += c->numel();
          d.second += c->nbytes();
          s->param_count += c->numel();
          s->param_bytes += c->nbytes();
          s->param_in_constants += c->numel();
        }
        s->constant_storage.push_back(std::move(*c));
        std::string name = n->output(0) ? n->output(0)->name() : n->name;
        pending.emplace_back(name, s->constant_storage.size() - 1);
      }
    }
  });
  for (const auto& [name, idx] : pending) s->tensors.push_back({name, &s->constant_storage[idx], true});
  std::stable_sort(s->tensors.begin(), s->tensors.end(), [](const auto& a, const auto& b) {
    return a.tensor->nbytes() > b.tensor->nbytes();
  });
  if (s->tensors.size() > 10) s->tensors.resize(10);
}

std::string ShapeOf(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string Json(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string JsonType(const ir::ValueType& t) {
  std::string out = fmt::format("{{\"type\":{}", Json(t.ToString()));
  if (t.is_tensor()) {
    out += fmt::format(",\"dtype\":{}", Json(ir::DTypeName(t.dtype)));
    if (t.shape) {
      out += ",\"shape\":[";
      for (size_t i = 0; i < t.shape->size(); ++i) {
        const ir::Dim& d = (*t.shape)[i];
        out += i ? "," : "";
        out += d.known() ? std::to_string(d.value) : d.symbol.empty() ? "null" : Json(d.symbol);
      }
      out += "]";
    } else {
      out += ",\"shape\":null";
    }
  }
  return out + "}";
}

std::string Bytes(uint64_t b) {
  if (b >= (uint64_t{1} << 30)) return fmt::format("{:.2f} GiB", b / double(uint64_t{1} << 30));
  if (b >= (uint64_t{1} << 20)) return fmt::format("{:.2f} MiB", b / double(uint64_t{1} << 20));
  if (b >= 1024) return fmt::format("{:.1f} KiB", b / 1024.0);
  return fmt::format("{} B", b);
}

void PrintJson(const std::string& path, const ir::Model& m, const Summary& s) {
  std::string out = "{";
  out += fmt::format("\"path\":{},\"format\":{},\"ir_version\":{},\"producer_name\":{},"
                     "\"producer_version\":{},\"opsets\":[",
                     Json(path), Json(ModelFormatName(path)), m.ir_version,
                     Json(m.producer_name), Json(m.producer_version));
  for (size_t i = 0; i < m.opsets.size(); ++i)
    out += fmt::format("{}{{\"domain\":{},\"version\":{}}}", i ? "," : "",
                       Json(m.opsets[i].domain), m.opsets[i].version);
  auto values = [&](const std::vector<ir::Value*>& vs) {
    std::string o = "[";
    for (size_t i = 0; i < vs.size(); ++i) {
      std::string t = JsonType(vs[i]->type);
      o += fmt::format("{}{{\"name\":{},{}", i ? "," : "", Json(vs[i]->name()), t.substr(1));
    }
    return o + "]";
  };
  // Graph inputs that only carry an initializer's default value are not model inputs.
  std::vector<ir::Value*> inputs;
  for (ir::Value* v : m.graph->inputs())
    if (!v->is_initializer()) inputs.push_back(v);
  out += "],\"inputs\":" + values(inputs) + ",\"outputs\":" + values(m.graph->outputs());
  out += fmt::format(",\"nodes\":{},\"subgraphs\":{},\"ops\":{{", s.nodes, s.subgraphs);
  bool first = true;
  for (const auto& [op, n] : s.ops) {
    out += fmt::format("{}{}:{}", first ? "" : ",", Json(op), n);
    first = false;
  }
  out += fmt::format("}},\"parameters\":{{\"count\":{},\"bytes\":{},\"in_constant_nodes\":{},"
                     "\"by_dtype\":{{",
                     s.param_count, s.param_bytes, s.param_in_constants);
  first = true;
  for (const auto& [dt, cb] : s.params_by_dtype) {
    out += fmt::format("{}{}:{{\"count\":{},\"bytes\":{}}}", first ? "" : ",", Json(dt),
                       cb.first, cb.second);
    first = false;
  }
  out += fmt::format("}}}},\"constants\":{{\"tensors\":{},\"count\":{},\"bytes\":{}}},"
                     "\"largest_tensors\":[",
                     s.constant_tensors, s.constant_count, s.constant_bytes);
  for (size_t i = 0; i < s.tensors.size(); ++i) {
    const auto& e = s.tensors[i];
    out += fmt::format("{}{{\"name\":{},\"dtype\":{},\"shape\":{},\"bytes\":{},\"kind\":{}}}",
                       i ? "," : "", Json(e.name), Json(ir::DTypeName(e.tensor->dtype())),
                       ShapeOf(e.tensor->shape()), e.tensor->nbytes(),
                       Json(e.constant_node ? "constant" : "initializer"));
  }
  out += fmt::format("],\"sparsity\":{{\"threshold\":{},\"epk_dense_bytes\":{},"
                     "\"epk_stored_bytes\":{},\"saved_bytes\":{},\"layers\":[",
                     kSparseReportZeros, s.epk_dense_bytes, s.epk_stored_bytes,
                     s.epk_dense_bytes - s.epk_stored_bytes);
  for (size_t i = 0; i < s.sparse.size(); ++i) {
    const SparseLayer& l = s.sparse[i];
    std::string nm = "null";
    if (l.tensor->sparse && l.tensor->sparse->kind == ir::SparseEncoding::Kind::kNM)
      nm = fmt::format("{{\"n\":{},\"m\":{},\"axis\":{}}}", l.tensor->sparse->n,
                       l.tensor->sparse->m, l.tensor->sparse->axis);
    out += fmt::format("{}{{\"name\":{},\"node\":{},\"dtype\":{},\"shape\":{},\"zeros\":{:.6f},"
                       "\"nm\":{},\"epk_layout\":{},\"dense_bytes\":{},\"stored_bytes\":{}}}",
                       i ? "," : "", Json(l.name), Json(l.node),
                       Json(ir::DTypeName(l.tensor->dtype())), ShapeOf(l.tensor->shape()), l.zeros,
                       nm, Json(l.storage.layout), l.storage.dense_bytes, l.storage.stored_bytes);
  }
  out += "]}}\n";
  std::fputs(out.c_str(), stdout);
}

void PrintText(const std::string& path, const ir::Model& m, const Summary& s) {
  std::string out = fmt::format("model:     {}\n", path);
  out += fmt::format("format:    {} (ir_version {})\n", ModelFormatName(path), m.ir_version);
  out += fmt::format("producer:  {} {}\n", m.producer_name.empty() ? "-" : m.producer_name,
                     m.producer_version);
  out += "opsets:   ";
  for (const auto& o : m.opsets)
    out += fmt::format(" {} {}", o.domain.empty() ? "ai.onnx" : o.domain, o.version);
  out += "\ninputs:\n";
  for (ir::Value* v : m.graph->inputs())
    if (!v->is_initializer()) out += fmt::format("  {}  {}\n", v->name(), v->type.ToString());
  out += "outputs:\n";
  for (ir::Value* v : m.graph->outputs())
    out += fmt::format("  {}  {}\n", v->name(), v->type.ToString());
  out += fmt::format("nodes:     {} ({} subgraphs)\n", s.nodes, s.subgraphs);
  std::vector<std::pair<std::string, int64_t>> ops(s.ops.begin(), s.ops.end());
  std::stable_sort(ops.begin(), ops.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  for (const auto& [op, n] : ops) out += fmt::format("  {:<24} {}\n", op, n);
  out += fmt::format("parameters: {} ({}, {} bytes){}\n", s.param_count, Bytes(s.param_bytes),
                     s.param_bytes,
                     s.param_in_constants
                         ? fmt::format("; {} of them in Constant nodes", s.param_in_constants)
                         : std::string());
  for (const auto& [dt, cb] : s.params_by_dtype)
    out += fmt::format("  {:<8} {} ({} bytes)\n", dt, cb.first, cb.second);
  out += fmt::format("constants: {} Constant nodes, {} elements ({} bytes)\n",
                     s.constant_tensors, s.constant_count, s.constant_bytes);
  out += "largest tensors:\n";
  for (const auto& e : s.tensors)
    out += fmt::format("  {:<40} {}{} {}{}\n", e.name, ir::DTypeName(e.tensor->dtype()),
                       ShapeOf(e.tensor->shape()), Bytes(e.tensor->nbytes()),
                       e.constant_node ? " (Constant)" : "");
  out += fmt::format("sparsity:  {} weights with >= {:.0f}% zeros; .epk stores {} instead of {} "
                     "({} saved)\n",
                     s.sparse.size(), 100 * kSparseReportZeros, Bytes(s.epk_stored_bytes),
                     Bytes(s.epk_dense_bytes), Bytes(s.epk_dense_bytes - s.epk_stored_bytes));
  for (const SparseLayer& l : s.sparse) {
    std::string nm;
    if (l.tensor->sparse && l.tensor->sparse->kind == ir::SparseEncoding::Kind::kNM)
      nm = fmt::format(" {}:{}", l.tensor->sparse->n, l.tensor->sparse->m);
    out += fmt::format("  {:<32} {:<16} {:5.1f}% zeros{}  {} {} -> {}\n", l.name,
                       l.node.empty() ? "-" : l.node, 100 * l.zeros, nm, l.storage.layout,
                       Bytes(l.storage.dense_bytes), Bytes(l.storage.stored_bytes));
  }
  std::fputs(out.c_str(), stdout);
}

void PrintEpkSize(const std::string& path, const ir::Model& m) {
  formats::EpkMetadata meta;
  if (ModelFormatName(path) == std::string("EPK")) formats::LoadEpk(path, &meta);
  formats::EpkWriteOptions v2;
  v2.version_major = 2;
  const formats::EpkSizeBreakdown now = formats::EpkSizeOf(m, meta), old = formats::EpkSizeOf(m, meta, v2);
  std::string out = fmt::format(".epk size breakdown (bytes)      {:>9} {:>9}\n",
                                fmt::format("v{}.0", now.version_major), "v2.0");
  auto row = [&](const char* what, uint64_t a, uint64_t b) {
    out += fmt::format("  {:<31} {:>9} {:>9}\n", what, a, b);
  };
  row("header + section table", now.header, old.header);
  row("metadata (provenance), raw", now.metadata_raw, old.metadata_raw);
  row("metadata, stored", now.metadata_stored, old.metadata_stored);
  row("graph section, raw", now.graph_raw, old.graph_raw);
  row("  string table", now.strings_raw, old.strings_raw);
  row("  model/graph fields", now.model_raw, old.model_raw);
  row("  value records", now.values_raw, old.values_raw);
  row("  node records", now.nodes_raw, old.nodes_raw);
  row("  tensor records", now.tensors_raw, old.tensors_raw);
  row("graph section, stored", now.graph_stored, old.graph_stored);
  row("section padding", now.section_padding, old.section_padding);
  row("tensor data (weights)", now.blob_bytes, old.blob_bytes);
  row("tensor data padding", now.blob_padding, old.blob_padding);
  row("total (file size)", now.total, old.total);
  std::fputs(out.c_str(), stdout);
}

}  // namespace

void AddInspectCommand(CLI::App& app, Action& action) {
  struct Options {
    std::string model;
    bool graph = false;
    bool json = false;
    bool epk_size = false;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Summarise a model: producer, opsets, inputs/outputs, ops, parameters");
  cmd->add_option("MODEL", o->model, "model file (.onnx, .epk, .pt)")->required();
  AddInputShapeOption(cmd);
  cmd->add_flag("--graph", o->graph, "also print the graph as text");
  cmd->add_flag("--json", o->json, "print the summary as JSON");
  cmd->add_flag("--epk-size", o->epk_size,
                "also print where the bytes of the model's .epk go (current writer and 2.0)");
  cmd->callback([o, &action] {
    action = [o] {
      std::unique_ptr<ir::Model> m = LoadModel(o->model);
      Summary s;
      Summarize(*m->graph, &s);
      if (o->json) PrintJson(o->model, *m, s);
      else PrintText(o->model, *m, s);
      if (o->graph) std::fputs(ir::DumpText(*m).c_str(), stdout);
      if (o->epk_size) PrintEpkSize(o->model, *m);
      return 0;
    };
  });
}

}  // namespace edgepress::tools
