#include "passes/rewrite_util.h"

#include <cmath>

namespace edgepress::passes {

const ir::Tensor* ConstantOf(const ir::Value* v) {
  if (!v || v->is_graph_input()) return nullptr;
  if (v->initializer()) return v->initializer();
  const ir::Node* p = v->producer();
  if (p && p->op_type() == "Constant" && p->domain().empty()) {
    const ir::Attribute* a = p->attr("value");
    if (a && a->kind == ir::Attribute::Kind::kTensor) return &a->t;
  }
  return nullptr;
}

std::optional<float> ScalarConstant(const ir::Value* v) {
  const ir::Tensor* t = ConstantOf(v);
  if (!t || t->numel() != 1) return std::nullopt;
  if (t->dtype() != ir::DType::kFloat32 && t->dtype() != ir::DType::kFloat64 &&
      t->dtype() != ir::DType::kFloat16)
    return std::nullopt;
  return static_cast<float>(t->ToDouble()[0]);
}

bool HasSingleUse(const ir::Value* v) {
  return v && v->uses().size() == 1 && !v->is_graph_output();
}

ir::Node* SingleUser(const ir::Value* v) {
  return HasSingleUse(v) ? v->uses()[0].user : nullptr;
}

ir::Node* ProducerOf(const ir::Value* v, const std::string& op_type) {
  if (!v || !v->producer()) return nullptr;
  ir::Node* n = v->producer();
  return n->op_type() == op_type && n->domain().empty() ? n : nullptr;
}

bool ReplaceValue(ir::Value* old_value, ir::Value* new_value) {
  if (!old_value->is_graph_output()) {
    old_value->graph()->ReplaceAllUsesWith(old_value, new_value);
    return true;
  }
  if (new_value->is_graph_input() || new_value->is_graph_output() ||
      new_value->graph() != old_value->graph() || !new_value->producer())
    return false;
  ir::Graph* g = old_value->graph();
  std::string name = old_value->name();
  g->ReplaceAllUsesWith(old_value, new_value);
  g->RenameValue(old_value, g->UniqueName(name + "_replaced"));
  g->RenameValue(new_value, name);
  new_value->type = old_value->type;
  return true;
}

ir::Value* AddConstant(ir::Graph& g, const std::string& base, ir::Tensor t) {
  return g.AddInitializer(g.UniqueName(base), std::move(t));
}

int64_t RewriteAll(ir::Graph& root,
                   const std::function<bool(ir::Graph&, ir::Node*)>& rewrite) {
  int64_t count = 0;
  std::vector<ir::Graph*> graphs;
  root.Walk([&](ir::Graph& g) { graphs.push_back(&g); });
  for (ir::Graph* g : graphs) {
    bool again = true;
    while (again) {
      again = false;
      std::vector<ir::Node*> nodes = g->nodes();
      for (ir::Node* n : nodes) {
        if (rewrite(*g, n)) {
          ++count;
          again = true;
          break;
        }
      }
    }
  }
  // Replacement nodes are inserted where the match started; a constant they read may be
  // produced later in node order, so restore a topological order.
  if (count > 0)
    for (ir::Graph* g : graphs) g->TopologicalSort();
  return count;
}

std::vector<ir::Node*> AllNodes(ir::Graph& g) {
  std::vector<ir::Node*> out;
  g.Walk([&](ir::Graph& sg) {
    for (ir::Node* n : sg.nodes()) out.push_back(n);
  });
  return out;
}

uint64_t ConstantBytes(ir::Model& model) {
  uint64_t total = 0;
  model.graph->Walk([&](ir::Graph& g) {
    for (ir::Value* v : g.initializers()) total += v->initializer()->nbytes();
    for (ir::Node* n : g.nodes())
      if (IsOnnxOp(n, "Constant"))
        if (const ir::Tensor* t = ConstantOf(n->output(0))) total += t->nbytes();
  });
  return total;
}

bool IsOnnxOp(const ir::Node* n, const char* op) {
  return n && n->op_type() == op && n->domain().empty();
}

bool ScalarNear(const ir::Value* v, double want, double rtol, double atol) {
  std::optional<float> c = ScalarConstant(v);
  return c && std::fabs(*c - want) <= rtol * std::fabs(want) + atol;
}

ir::Value* OtherThanScalar(ir::Node* n, double want, double rtol, double atol) {
  if (n->num_inputs() != 2) return nullptr;
  if (ScalarNear(n->input(1), want, rtol, atol)) return n->input(0);
  if (ScalarNear(n->input(0), want, rtol, atol)) return n->input(1);
  return nullptr;
}

}  // namespace edgepress::passes
