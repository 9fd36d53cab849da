// drop-blocks: depth reduction for a distillation student (DistilBERT's initialisation:
// the student keeps one layer out of two of the teacher). It finds the longest run of
// structurally identical blocks in the main graph and keeps block i only when
// i % stride == 0, wiring each dropped block's input to its output's readers.
//
// A block boundary is a "cut": a point in node order that exactly one non-constant value
// crosses (the residual stream between transformer layers, or the activation between
// sequential stages). Segments between cuts get a signature (op types and initializer
// shapes); a block is a sequence of segments that repeats back to back, and its input and
// output must have the same declared shape, so skipping it leaves a valid graph. Does not
// apply when no block repeats (e.g. a CNN whose stages change width), when the repeats
// do not keep the shape, or to subgraphs. The kept blocks keep their weights.
//
// Side inputs: in a BERT-style encoder the attention-mask bias is computed once, before the
// first layer, and read by every layer (and the float mask by the pooling after the
// last), so three values cross each layer boundary and there is no cut. When no block
// repeats with plain cuts, values defined before the run (side inputs) are left out of the
// crossing count: the side inputs stay as they are and the kept blocks still read them.
#include <algorithm>
#include <map>
#include <set>

#include "ir/shape_inference.h"
#include "passes/all_passes.h"
#include "passes/rewrite_util.h"

namespace edgepress::passes {
namespace {

struct Cut {
  int position;      // after node `position` (-1: before the first node)
  ir::Value* value;  // the one value crossing it
};

class DropBlocks : public Pass {
 public:
  explicit DropBlocks(const PassOptions& o) : stride_(o.GetInt("stride")) {}
  const PassInfo& info() const override { return DropBlocksPass().info; }

  bool Run(ir::Model& model, PassContext&) override {
    ir::Graph& g = *model.graph;
    ir::InferShapes(model);  // block boundaries must keep their shape
    std::vector<ir::Node*> nodes = g.nodes();
    Found found = Find(g, nodes, {});
    if (found.count < 2) found = FindWithSideInputs(g, nodes);
    const std::vector<Cut>& cuts = found.cuts;
    const size_t best_start = found.start, best_len = found.len, best_count = found.count;
    Count("blocks-found", static_cast<int64_t>(best_count));
    if (best_count < 2) return false;
    int64_t dropped = 0;
    // Last block first: a later block's input is an earlier block's output, which a
    // rewire of the earlier block would rename.
    for (size_t b = best_count; b-- > 0;) {
      if (b % static_cast<size_t>(stride_) == 0) continue;
      ir::Value* in = cuts[best_start + b * best_len].value;
      ir::Value* out = cuts[best_start + (b + 1) * best_len].value;
      if (!ReplaceValue(out, in)) continue;
      ++dropped;
    }
    if (dropped == 0) return false;
    int64_t params_before = Params(g);
    g.RemoveDeadNodes();
    Count("blocks-dropped", dropped);
    Count("params-removed", params_before - Params(g));
    return true;
  }

 private:
  struct Found {
    std::vector<Cut> cuts;
    size_t start = 0, len = 0, count = 0;  // blocks of `len` segments from cuts[start]
    int nodes = 0;                          // nodes the run spans
  };

  // The longest back-to-back repetition of segments between cuts, the values in `side`
  // left out of the crossing count (they must be defined before the run starts).
  static Found Find(ir::Graph& g, const std::vector<ir::Node*>& nodes,
                    const std::set<const ir::Value*>& side) {
    Found f;
    std::map<ir::Value*, int> def;
    f.cuts = Cuts(g, nodes, side, &def);
    const std::vector<Cut>& cuts = f.cuts;
    if (cuts.size() < 3) return f;
    std::vector<std::string> sig;  // per segment between cuts[i] and cuts[i + 1]
    for (size_t i = 0; i + 1 < cuts.size(); ++i)
      sig.push_back(Signature(nodes, cuts[i].position + 1, cuts[i + 1].position));
    for (size_t len = 1; len <= sig.size() / 2; ++len)
      for (size_t start = 0; start + 2 * len <= sig.size(); ++start) {
        size_t count = 1;
        while (start + (count + 1) * len <= sig.size() &&
               std::equal(sig.begin() + start, sig.begin() + start + len,
                          sig.begin() + start + count * len))
          ++count;
        if (count < 2 || count * len <= f.count * f.len) continue;
        if (!KeepsShape(cuts[start].value, cuts[start + len].value)) continue;
        if (!HasWeights(nodes, cuts[start].position + 1, cuts[start + len].position)) continue;
        bool side_before = true;  // a side input made inside the run would be dropped with it
        for (const ir::Value* v : side) {
          auto it = def.find(const_cast<ir::Value*>(v));
          side_before = side_before && (it == def.end() || it->second <= cuts[start].position);
        }
        if (!side_before) continue;
        f.start = start, f.len = len, f.count = count;
        f.nodes = cuts[start + count * len].position - cuts[start].position;
      }
    return f;
  }

  // Side-input candidates: at each point in node order that at most kMaxSide + 1
  // non-constant values cross, each of them in turn is the stream and the others the side
  // inputs; the set whose run has the most blocks (then spans the most nodes) wins.
  static Found FindWithSideInputs(ir::Graph& g, const std::vector<ir::Node*>& nodes) {
    constexpr size_t kMaxSide = 3;
    std::map<const ir::Value*, bool> constant;
    std::map<const ir::Value*, int> def, last;
    for (ir::Value* v : g.inputs())
      if (!v->is_initializer()) def[v] = -1, last[v] = -1;
    const int n = static_cast<int>(nodes.size());
    for (int k = 0; k < n; ++k) {
      bool all_const = true;
      for (size_t i = 0; i < nodes[k]->num_inputs(); ++i)
        if (const ir::Value* in = nodes[k]->input(i); in && !IsConstant(in, constant)) {
          all_const = false;
          if (!def.count(in)) return {};  // not a plain DAG in order (as Cuts)
          last[in] = k;
        }
      for (size_t o = 0; o < nodes[k]->num_outputs(); ++o)
        if (const ir::Value* out = nodes[k]->output(o)) {
          constant[out] = all_const;
          if (!all_const) def[out] = k, last[out] = k;
        }
    }
    for (const ir::Value* v : g.outputs())
      if (def.count(v)) last[v] = n;
    std::vector<std::vector<const ir::Value*>> crossing(static_cast<size_t>(n));
    for (auto& [v, d] : def)
      for (int k = d; k < last[v] && k < n - 1; ++k)
        if (crossing[static_cast<size_t>(k + 1)].size() <= kMaxSide + 1)
          crossing[static_cast<size_t>(k + 1)].push_back(v);
    std::set<std::set<const ir::Value*>> tried;
    Found best;
    for (std::vector<const ir::Value*>& c : crossing) {
      if (c.size() < 2 || c.size() > kMaxSide + 1) continue;
      // In node order, not pointer order, so ties resolve the same way in every run.
      std::sort(c.begin(), c.end(), [&](const ir::Value* a, const ir::Value* b) {
        return def[a] != def[b] ? def[a] < def[b] : a->name() < b->name();
      });
      for (const ir::Value* stream : c) {
        std::set<const ir::Value*> side(c.begin(), c.end());
        side.erase(stream);
        if (!tried.insert(side).second) continue;
        Found f = Find(g, nodes, side);
        if (f.count > best.count || (f.count == best.count && f.nodes > best.nodes))
          best = std::move(f);
      }
    }
    return best;
  }

  // Values computed from constants only (initializers, Constant nodes, and ops on them).
  static bool IsConstant(const ir::Value* v, const std::map<const ir::Value*, bool>& known) {
    if (v->is_initializer()) return true;
    auto it = known.find(v);
    return it != known.end() && it->second;
  }

  static std::vector<Cut> Cuts(ir::Graph& g, const std::vector<ir::Node*>& nodes,
                               const std::set<const ir::Value*>& side,
                               std::map<ir::Value*, int>* def_out) {
    std::map<const ir::Value*, bool> constant;
    std::map<ir::Value*, int>& def = *def_out;  // non-constant values: defining position
    std::map<ir::Value*, int> last;             // and last use position
    for (ir::Value* v : g.inputs())
      if (!v->is_initializer()) def[v] = -1, last[v] = -1;
    const int n = static_cast<int>(nodes.size());
    for (int k = 0; k < n; ++k) {
      bool all_const = true;
      for (size_t i = 0; i < nodes[k]->num_inputs(); ++i) {
        ir::Value* in = nodes[k]->input(i);
        if (!in) continue;
        if (!IsConstant(in, constant)) {
          all_const = false;
          if (def.count(in))
            last[in] = k;
          else
            return {};  // an outer-scope or unordered value: not a plain DAG in order
        }
      }
      for (size_t o = 0; o < nodes[k]->num_outputs(); ++o)
        if (ir::Value* out = nodes[k]->output(o)) {
          constant[out] = all_const;
          if (!all_const) def[out] = k, last[out] = k;
        }
    }
    for (ir::Value* v : g.outputs())
      if (def.count(v)) last[v] = n;
    // crossing[k + 1]: values with def <= k < last (k = -1 .. n - 2).
    std::vector<std::vector<ir::Value*>> crossing(static_cast<size_t>(n));
    for (auto& [v, d] : def)
      for (int k = d; !side.count(v) && k < last[v] && k < n - 1; ++k)
        if (crossing[static_cast<size_t>(k + 1)].size() < 2)
          crossing[static_cast<size_t>(k + 1)].push_back(v);
    std::vector<Cut> cuts;
    for (int k = -1; k < n - 1; ++k)
      if (crossing[static_cast<size_t>(k + 1)].size() == 1)
        cuts.push_back({k, crossing[static_cast<size_t>(k + 1)][0]});
    return cuts;
  }

  // Nodes (first..last], as op types and initializer shapes.
  static std::string Signature(const std::vector<ir::Node*>& nodes, int first, int last) {
    std::string s;
    for (int k = first; k <= last; ++k) {
      const ir::Node* n = nodes[static_cast<size_t>(k)];
      s += n->domain() + "::" + n->op_type() + "(";
      for (size_t i = 0; i < n->num_inputs(); ++i)
        if (const ir::Value* in = n->input(i); in && in->is_initializer())
          s += ir::ShapeToString(ir::MakeShape(in->initializer()->shape()));
      s += ")";
    }
    return s;
  }

  static bool HasWeights(const std::vector<ir::Node*>& nodes, int first, int last) {
    for (int k = first; k <= last; ++k)
      for (size_t i = 0; i < nodes[static_cast<size_t>(k)]->num_inputs(); ++i)
        if (const ir::Value* in = nodes[static_cast<size_t>(k)]->input(i);
            in && in->is_initializer() && in->initializer()->numel() > 1)
          return true;
    return false;
  }

  static bool KeepsShape(const ir::Value* in, const ir::Value* out) {
    return in->type.is_tensor() && out->type.is_tensor() && in->type.shape && out->type.shape &&
           in->type.dtype == out->type.dtype && *in->type.shape == *out->type.shape;
  }

  static int64_t Params(const ir::Graph& g) {
    int64_t p = 0;
    for (const ir::Value* v : g.initializers())
      p += static_cast<int64_t>(v->initializer()->numel());
    return p;
  }

  int64_t stride_;
};

}  // namespace

const PassEntry& DropBlocksPass() {
  static const PassEntry entry = {
      {"drop-blocks",
       "Depth reduction: keep one of every `stride` repeated blocks (a half-depth student)",
       {Opt("stride", OptionInfo::Type::kInt, "2",
            "keep block i of the repeated run when i % stride == 0", {}, 2, 1000)},
       {"blocks-found", "blocks-dropped", "params-removed"}},
      [](const PassOptions& o) -> std::unique_ptr<Pass> {
        return std::make_unique<DropBlocks>(o);
      }};
  return entry;
}

}  // namespace edgepress::passes
