#include "passes/prune/prune_deps.h"

#include <algorithm>
#include <numeric>
#include <set>

#include "ir/error.h"
#include "ir/shape_inference.h"
#include "passes/prune/prune_deps_builder.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes::prune {

int64_t LayoutSize(const Layout& l) {
  int64_t n = 0;
  for (const Segment& s : l) n += s.units * s.block;
  return n;
}

int DependencyGraph::Root(int g) const {
  while (parent_[g] != g) g = parent_[g];
  return g;
}

std::vector<int> DependencyGraph::Roots() const {
  std::vector<int> r;
  for (size_t g = 0; g < groups_.size(); ++g)
    if (parent_[g] == static_cast<int>(g) && groups_[g].units > 0) r.push_back(static_cast<int>(g));
  return r;
}

std::vector<const Member*> DependencyGraph::MembersOf(int root) const {
  std::vector<const Member*> out;
  for (const Member& m : members_)
    for (const Segment& s : m.layout)
      if (Root(s.group) == root) {
        out.push_back(&m);
        break;
      }
  return out;
}

std::vector<int64_t> DependencyGraph::KeptIndices(
    const DependencyGraph& dg, const Layout& l,
    const std::map<int, std::vector<int64_t>>& removed) {
  std::vector<int64_t> kept;
  int64_t offset = 0;
  for (const Segment& s : l) {
    auto it = removed.find(dg.Root(s.group));
    std::vector<char> gone(s.units, 0);
    if (it != removed.end())
      for (int64_t u : it->second) gone[u] = 1;
    for (int64_t u = 0; u < s.units; ++u)
      if (!gone[u])
        for (int64_t j = 0; j < s.block; ++j) kept.push_back(offset + u * s.block + j);
    offset += s.units * s.block;
  }
  return kept;
}

int64_t DependencyGraph::KeptSize(const Layout& l,
                                  const std::map<int, std::vector<int64_t>>& removed) const {
  int64_t n = 0;
  for (const Segment& s : l) {
    auto it = removed.find(Root(s.group));
    int64_t gone = it == removed.end() ? 0 : static_cast<int64_t>(it->second.size());
    n += (s.units - gone) * s.block;
  }
  return n;
}

int DependencyGraph::NewGroup(const std::string& kind, int64_t units, ir::Node* anchor) {
  Group g;
  g.kind = kind;
  g.units = units;
  if (anchor) g.anchors.push_back(anchor);
  groups_.push_back(std::move(g));
  parent_.push_back(static_cast<int>(parent_.size()));
  return static_cast<int>(groups_.size() - 1);
}

void DependencyGraph::Freeze(int g, const std::string& reason) {
  Group& gr = groups_[Root(g)];
  gr.prunable = false;
  if (std::find(gr.reasons.begin(), gr.reasons.end(), reason) == gr.reasons.end())
    gr.reasons.push_back(reason);
}

void DependencyGraph::Freeze(const Layout& l, const std::string& reason) {
  for (const Segment& s : l) Freeze(s.group, reason);
}

template <typename F>
void DependencyGraph::ForEachLayout(F&& f) {
  for (auto& [v, vl] : values_) f(vl.layout);
  for (Member& m : members_) f(m.layout);
}

bool DependencyGraph::Coarsen(int g, int64_t factor, const std::string& why) {
  int r = Root(g);
  if (factor == 1) return true;
  if (factor <= 0 || groups_[r].units % factor != 0) {
    Freeze(r, "cannot make units of " + std::to_string(factor) + " channels (" + why + ")");
    return false;
  }
  ForEachLayout([&](Layout& l) {
    for (Segment& s : l)
      if (Root(s.group) == r) {
        s.units /= factor;
        s.block *= factor;
      }
  });
  groups_[r].units /= factor;
  groups_[r].coupled_by.push_back("units of " + std::to_string(factor) + ": " + why);
  return true;
}

bool DependencyGraph::UniteGroups(int a, int b, int64_t elems, const std::string& why) {
  int ra = Root(a), rb = Root(b);
  // Blocks follow from the groups' current unit counts (a segment always holds a whole
  // group), so they are never stale after an earlier coarsening.
  int64_t block_a = elems / groups_[ra].units, block_b = elems / groups_[rb].units;
  if (ra == rb) {
    if (block_a == block_b) return true;
    Freeze(ra, "its channels meet themselves permuted (" + why + ")");
    return false;
  }
  // Both sides cover the same elements here; the finer side is coarsened first so one
  // unit means the same channels on both.
  bool ok = true;
  if (block_a < block_b)
    ok = block_b % block_a == 0 && Coarsen(ra, block_b / block_a, why);
  else if (block_b < block_a)
    ok = block_a % block_b == 0 && Coarsen(rb, block_a / block_b, why);
  if (!ok) {
    Freeze(ra, why);
    Freeze(rb, why);
    return false;
  }
  Group& ga = groups_[ra];
  Group& gb = groups_[rb];
  parent_[rb] = ra;
  ga.prunable = ga.prunable && gb.prunable;
  ga.heads = ga.heads || gb.heads;
  for (auto& r : gb.reasons)
    if (std::find(ga.reasons.begin(), ga.reasons.end(), r) == ga.reasons.end())
      ga.reasons.push_back(r);
  for (auto& c : gb.coupled_by) ga.coupled_by.push_back(c);
  ga.coupled_by.push_back(why);
  for (ir::Node* n : gb.anchors) ga.anchors.push_back(n);
  if (ga.kind.empty() || ga.kind == "fixed") ga.kind = gb.kind;
  gb.units = 0;  // merged away
  return true;
}

bool DependencyGraph::Unite(const Layout& a, const Layout& b, const std::string& why) {
  bool same = a.size() == b.size();
  for (size_t i = 0; same && i < a.size(); ++i)
    same = a[i].units * a[i].block == b[i].units * b[i].block;
  if (!same) {
    Freeze(a, why + " joins differently structured channel sets");
    Freeze(b, why + " joins differently structured channel sets");
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i)
    if (!UniteGroups(a[i].group, b[i].group, a[i].units * a[i].block, why)) return false;
  return true;
}

std::pair<int, int> DependencyGraph::SplitGroup(int g, int64_t units_first) {
  int r = Root(g);
  Group base = groups_[r];
  int a = NewGroup(base.kind, units_first, nullptr);
  int b = NewGroup(base.kind, base.units - units_first, nullptr);
  for (int x : {a, b}) {
    Group& gx = groups_[x];
    gx.prunable = base.prunable;
    gx.heads = base.heads;
    gx.reasons = base.reasons;
    gx.anchors = base.anchors;
    gx.coupled_by = base.coupled_by;
  }
  groups_[r].units = 0;
  parent_[r] = r;
  ForEachLayout([&](Layout& l) {
    Layout out;
    for (const Segment& s : l) {
      if (Root(s.group) != r) {
        out.push_back(s);
        continue;
      }
      out.push_back({a, units_first, s.block});
      out.push_back({b, s.units - units_first, s.block});
    }
    l = std::move(out);
  });
  return {a, b};
}

bool InferShapesWithFusedOps(ir::Model& model) {
  bool ok = true;
  try {
    ir::InferShapes(model);
  } catch (const Error&) {
    ok = false;  // best effort: rules that need a shape freeze their groups without one
  }
  // Shape inference knows ai.onnx only. The com.microsoft fusions of the optimize pipeline
  // keep the shapes of their standard forms, so a clone with stand-ins (FusedConv -> Conv,
  // FusedGemm -> Gemm, Gelu -> Relu) is inferred and the missing types copied back.
  auto clone = model.Clone();
  ir::Graph& g = *clone->graph;
  std::map<std::string, std::string> original;  // stand-in output -> original name
  for (ir::Node* n : g.nodes()) {
    if (n->domain() != "com.microsoft" || n->num_outputs() != 1 || !n->output(0)) continue;
    const std::string& op = n->op_type();
    std::string standin = op == "FusedConv"                                         ? "Conv"
                          : op == "FusedGemm"                                       ? "Gemm"
                          : (op == "Gelu" || op == "FastGelu" || op == "QuickGelu") ? "Relu"
                                                                                    : "";
    if (standin.empty() || !n->input(0)) continue;
    std::vector<ir::Value*> ins = n->inputs();
    ins.resize(standin == "Relu" ? 1 : std::min<size_t>(ins.size(), 3));
    ir::Value* out = n->output(0);
    ir::Node* s = g.InsertNode(n, standin, ins, {g.UniqueName(out->name() + "_standin")}, n->name);
    if (standin != "Relu")
      for (const ir::Attribute& a : n->attributes())
        if (a.name.rfind("activation", 0) != 0) s->set_attr(a);
    original[s->output(0)->name()] = out->name();
    g.ReplaceAllUsesWith(out, s->output(0));
    g.RemoveNode(n);
  }
  if (original.empty()) return ok;
  try {
    ir::InferShapes(*clone);
  } catch (const Error&) {
    return ok;
  }
  for (ir::Node* n : g.nodes())
    for (ir::Value* o : n->outputs()) {
      if (!o || !o->type.shape) continue;
      auto it = original.find(o->name());
      ir::Value* v = model.graph->FindValue(it == original.end() ? o->name() : it->second);
      if (v && v->graph() == model.graph.get() && !v->type.shape) v->type = o->type;
    }
  return ok;
}

DependencyGraph DependencyGraph::Build(ir::Model& model) {
  InferShapesWithFusedOps(model);
  DependencyGraph dg;
  int64_t opset = model.OpsetVersion("");
  Builder(dg, *model.graph, opset).Run();
  for (int r : dg.Roots()) {
    Group& g = dg.groups_[r];
    if (g.units <= 1) {
      g.prunable = false;
      g.reasons.push_back("a single unit");
    }
    if (g.anchors.empty() && g.prunable) {
      g.prunable = false;
      g.reasons.push_back("no Conv, Gemm or MatMul produces it");
    }
    if (g.heads) {
      g.kind = "heads";
    } else if (g.kind == "linear") {
      // A token-wise Linear (rank >= 3 input, as in a transformer) is an FFN layer.
      bool tokens = false;
      for (ir::Node* a : g.anchors) {
        const ir::Value* x = a->input(0);
        tokens = tokens || (x && x->type.shape && x->type.shape->size() >= 3);
      }
      if (tokens) g.kind = "ffn";
    }
  }
  return dg;
}

}  // namespace edgepress::passes::prune

namespace edgepress::passes::prune {

namespace {

// Nodes downstream of `v` (through node outputs), as a set.
std::set<const ir::Node*> Descendants(const ir::Value* v) {
  std::set<const ir::Node*> seen;
  std::vector<const ir::Value*> stack{v};
  while (!stack.empty()) {
    const ir::Value* x = stack.back();
    stack.pop_back();
    for (const ir::Use& u : x->uses())
      if (seen.insert(u.user).second)
        for (const ir::Value* o : u.user->outputs())
          if (o) stack.push_back(o);
  }
  return seen;
}

bool SameShape(const ir::Value* a, const ir::Value* b) {
  return a->type.is_tensor() && b->type.is_tensor() && a->type.shape && b->type.shape &&
         *a->type.shape == *b->type.shape && a->type.dtype == b->type.dtype;
}

}  // namespace

std::vector<ResidualBlock> FindResidualBlocks(ir::Graph& g) {
  std::vector<ResidualBlock> blocks;
  for (ir::Node* add : g.nodes()) {
    if (add->op_type() != "Add" || !add->domain().empty() || add->num_inputs() != 2) continue;
    for (int s = 0; s < 2; ++s) {
      ir::Value* skip = add->input(s);
      ir::Value* branch = add->input(1 - s);
      if (!skip || !branch || !branch->producer() || ConstantOf(skip) || ConstantOf(branch))
        continue;
      if (!SameShape(skip, add->output(0)) || add->output(0)->is_graph_output()) continue;
      // The branch: descendants of `skip` that are ancestors of `branch`.
      std::set<const ir::Node*> down = Descendants(skip);
      if (!down.count(branch->producer())) continue;
      std::set<const ir::Node*> nodes;
      std::vector<const ir::Node*> stack{branch->producer()};
      while (!stack.empty()) {
        const ir::Node* n = stack.back();
        stack.pop_back();
        if (!down.count(n) || !nodes.insert(n).second) continue;
        for (const ir::Value* in : n->inputs())
          if (in && in->producer()) stack.push_back(in->producer());
      }
      bool closed = true;
      for (const ir::Node* n : nodes) {
        closed = closed && n->subgraphs().empty();
        for (const ir::Value* o : n->outputs()) {
          if (!o) continue;
          closed = closed && !o->is_graph_output();
          for (const ir::Use& u : o->uses())
            closed = closed && (nodes.count(u.user) || (u.user == add && o == branch));
        }
      }
      if (!closed) continue;
      ResidualBlock b{add, skip, branch, {}, 0};
      std::set<const ir::Value*> counted;
      for (ir::Node* n : g.nodes()) {
        if (!nodes.count(n)) continue;
        b.nodes.push_back(n);
        for (const ir::Value* in : n->inputs()) {
          const ir::Tensor* t = ConstantOf(in);
          if (!t || !IsFloat(t->dtype()) || !counted.insert(in).second) continue;
          bool only = true;
          for (const ir::Use& u : in->uses()) only = only && nodes.count(u.user);
          if (only) b.params += static_cast<int64_t>(t->numel());
        }
      }
      blocks.push_back(std::move(b));
      break;
    }
  }
  return blocks;
}

}  // namespace edgepress::passes::prune
