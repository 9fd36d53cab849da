// Internal to formats/torchscript (the TorchScript exporter's pieces; no LibTorch here):
// the Emitter that accumulates the generated source, the literal formatting helpers, and
// the specialised writers for nodes whose shape-like inputs are constants
// (torchscript_export_const.cc): torch.reshape(x, [1, 64]) instead of the generic helper,
// which LibTorch runs without list round trips and the importer reads back directly.
#pragma once

#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ir/error.h"
#include "ir/graph.h"

namespace edgepress::formats::ts_export {

// A Python float literal (inf as float('inf')) and an int list literal.
std::string Float(double v);
std::string IntList(const std::vector<int64_t>& v);

struct Emitter;
using OpWriter = void (*)(Emitter&, const ir::Node&);

struct Emitter {
  const ir::Model& model;
  std::map<const ir::Value*, std::string> names;
  std::vector<std::pair<std::string, const ir::Tensor*>> weights;  // attribute, value
  std::vector<std::pair<std::string, ir::Tensor>> constants;       // Constant nodes
  std::ostringstream body;
  int counter = 0;

  explicit Emitter(const ir::Model& m) : model(m) {}

  // The expression for an input; "None" for an omitted optional one.
  std::string In(const ir::Node& n, size_t i) { return Expr(n.input(i)); }
  // The expression for a value (of this graph or, inside an If/Loop body, an enclosing one).
  std::string Expr(const ir::Value* v) {
    if (!v) return "None";
    auto it = names.find(v);
    if (it != names.end()) return it->second;
    if (v->initializer()) {
      std::string attr = "w" + std::to_string(weights.size());
      weights.emplace_back(attr, v->initializer());
      return names[v] = "self." + attr;
    }
    ThrowInvalid("TorchScript export: value '" + v->name() + "' has no value");
  }
  std::string Out(const ir::Node& n, size_t i = 0) {
    return names[n.output(i)] = "v" + std::to_string(counter++);
  }
  int indent = 1;  // If/Loop bodies nest
  void Line(const std::string& s) { body << std::string(4 * static_cast<size_t>(indent), ' ') << s << "\n"; }
  void Assign(const ir::Node& n, const std::string& expr) { Line(Out(n) + " = " + expr); }
};

// Constant integer contents of a value (an initializer or a Constant node's output).
std::optional<std::vector<int64_t>> ConstInts(const ir::Value* v);
// A value's rank when known (initializer or inferred type).
std::optional<size_t> RankOf(const ir::Value* v);

// Each writes the node in its specialised form and returns true, or returns false (and
// writes nothing) when its inputs are not constant enough; the caller then uses the helper.
bool ReshapeConst(Emitter& e, const ir::Node& n);
bool FlattenKnownRank(Emitter& e, const ir::Node& n);
bool SqueezeConst(Emitter& e, const ir::Node& n, bool unsqueeze);
bool GatherScalar(Emitter& e, const ir::Node& n);
bool ClipConst(Emitter& e, const ir::Node& n);
bool SliceConst(Emitter& e, const ir::Node& n);
bool LayerNormConst(Emitter& e, const ir::Node& n);
bool ReduceConst(Emitter& e, const ir::Node& n, const std::string& fn);
bool SplitConst(Emitter& e, const ir::Node& n);
bool GlobalAveragePoolKnownRank(Emitter& e, const ir::Node& n);

}  // namespace edgepress::formats::ts_export
