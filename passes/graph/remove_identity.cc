// remove-identity: bypasses Identity nodes and inference-time Dropout (whose mask output
// is unused), wiring consumers to the input. A graph output keeps its name: the input
// value is renamed to it. Does not apply when that would rename a graph input or make
// one value two outputs.
#include "passes/all_passes.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

class RemoveIdentity : public Pass {
 public:
  explicit RemoveIdentity(const PassOptions&) {}
  const PassInfo& info() const override { return RemoveIdentityPass().info; }

  static bool Matches(const ir::Node& n) {
    if (!n.domain().empty() || !n.input(0) || !n.output(0)) return false;
    if (n.op_type() == "Identity") return true;
    if (n.op_type() != "Dropout") return false;
    // training_mode (input 2) must be absent or a constant false.
    if (const ir::Value* tm = n.input(2)) {
      const ir::Tensor* t = ConstantOf(tm);
      if (!t || t->numel() != 1 || t->ToInt64()[0] != 0) return false;
    }
    const ir::Value* mask = n.output(1);
    return !mask || (mask->uses().empty() && !mask->is_graph_output());
  }

  bool Run(ir::Model& model, PassContext&) override {
    int64_t removed = 0;
    model.graph->Walk([&](ir::Graph& g) {
      for (ir::Node* n : g.nodes()) {
        if (!Matches(*n)) continue;
        ir::Value* in = n->input(0);
        ir::Value* out = n->output(0);
        if (out->is_graph_output() && (in->is_graph_input() || in->is_graph_output() ||
                                       in->graph() != &g || in->is_initializer()))
          continue;
        if (!ReplaceValue(out, in)) continue;
        g.RemoveNode(n);
        ++removed;
      }
    });
    Count("removed", removed);
    return removed > 0;
  }
};

}  // namespace

const PassEntry& RemoveIdentityPass() {
  static const PassEntry entry = {{"remove-identity", "Bypass Identity and inference-time Dropout nodes", {}, {"removed"}},
          [](const PassOptions& o) -> std::unique_ptr<Pass> {
            return std::make_unique<RemoveIdentity>(o);
          }};
  return entry;
}

}  // namespace edgepress::passes
