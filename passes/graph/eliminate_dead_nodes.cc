// eliminate-dead-nodes: removes nodes none of whose outputs reach a graph output, and
// initializers nothing uses, in the main graph and every subgraph. Graph inputs are kept
// (they are the model's interface), as are nodes inside subgraphs that feed the
// subgraph's outputs. Never fails; returns unchanged when nothing is dead.
#include "passes/all_passes.h"

namespace edgepress::passes {
namespace {

class EliminateDeadNodes : public Pass {
 public:
  explicit EliminateDeadNodes(const PassOptions&) {}
  const PassInfo& info() const override { return EliminateDeadNodesPass().info; }
  bool Run(ir::Model& model, PassContext&) override {
    int64_t nodes = 0, inits = 0;
    // Innermost graphs first, so a subgraph's dead uses of outer values disappear before
    // the outer graph decides what is dead.
    std::vector<ir::Graph*> graphs;
    model.graph->Walk([&](ir::Graph& g) { graphs.push_back(&g); });
    for (auto it = graphs.rbegin(); it != graphs.rend(); ++it) {
      size_t before = (*it)->initializers().size();
      nodes += (*it)->RemoveDeadNodes();
      inits += static_cast<int64_t>(before - (*it)->initializers().size());
    }
    Count("nodes-removed", nodes);
    Count("initializers-removed", inits);
    return nodes + inits > 0;
  }
};

}  // namespace

const PassEntry& EliminateDeadNodesPass() {
  static const PassEntry entry = {{"eliminate-dead-nodes",
           "Remove nodes and initializers that no graph output depends on",
           {},
           {"nodes-removed", "initializers-removed"}},
          [](const PassOptions& o) -> std::unique_ptr<Pass> {
            return std::make_unique<EliminateDeadNodes>(o);
          }};
  return entry;
}

}  // namespace edgepress::passes
