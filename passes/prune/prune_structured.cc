// prune-structured: removes whole output channels of Conv, neurons of Gemm/MatMul (FFN
// layers) and attention heads, so the model becomes a smaller *dense* model that every
// runtime (the native one, onnxruntime) runs faster without sparse kernels.
//
// The coupling is found once by the dependency analysis (passes/prune/prune_deps.h): a group is
// every (tensor, axis) tied to one channel choice. Each prunable group is scored over all
// its members (L1 or L2 norm of the weights, |BatchNorm gamma|, or the mean |activation|
// on calibration data), the lowest-scoring units are removed from every member at once,
// and Conv `group` attributes, Reshape/Split sizes follow. Kept channel counts are rounded
// up to a multiple of `round-to`, and a group always keeps at least one unit.
//
// Does not apply to (reported in Details() with the reason, left untouched): groups that
// reach a graph output, meet an op no rule knows, a LayerNorm over the channels, a
// constant shared between layers, or a shape computed at run time from the channel count.
// Depth pruning removes residual branches (y = x + f(x) becomes y = x) named by index or
// measured as least contributing; it runs before the channel analysis. First-order
// Taylor importance needs gradients and is not offered. Only the main graph is pruned.
// Preserves: graph inputs/outputs and their shapes; the function changes (an NMSE the
// caller measures), as with any pruning without fine-tuning.
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "calibrate/dataset.h"
#include "ir/error.h"
#include "ir/shape_inference.h"
#include "passes/all_passes.h"
#include "passes/prune/prune_deps.h"
#include "passes/quant/quant_util.h"
#include "passes/rewrite_util.h"
#include "runtime/session.h"

namespace edgepress::passes {
namespace {

using json = nlohmann::json;
using prune::DependencyGraph;
using prune::Layout;
using prune::Member;
using Removed = std::map<int, std::vector<int64_t>>;

int64_t CountParams(const ir::Graph& g) {
  int64_t n = 0;
  for (const ir::Value* v : g.initializers())
    if (IsFloat(v->initializer()->dtype())) n += static_cast<int64_t>(v->initializer()->numel());
  for (const ir::Node* node : g.nodes())
    if (node->op_type() == "Constant")
      if (const ir::Tensor* t = ConstantOf(node->output(0)))
        if (IsFloat(t->dtype())) n += static_cast<int64_t>(t->numel());
  return n;
}

// `t` with only the indices `kept[axis]` along each listed axis.
ir::Tensor SliceTensor(const ir::Tensor& t, const std::map<int, std::vector<int64_t>>& kept) {
  std::vector<int64_t> shape = t.shape();
  std::vector<std::vector<int64_t>> index(t.rank());
  for (int a = 0; a < t.rank(); ++a) {
    auto it = kept.find(a);
    if (it != kept.end()) {
      index[a] = it->second;
    } else {
      index[a].resize(shape[a]);
      std::iota(index[a].begin(), index[a].end(), 0);
    }
    shape[a] = static_cast<int64_t>(index[a].size());
  }
  ir::Tensor out(t.dtype(), shape);
  const size_t esize = DTypeBytes(t.dtype(), 1);
  std::vector<int64_t> stride(t.rank(), 1);
  for (int a = t.rank() - 2; a >= 0; --a) stride[a] = stride[a + 1] * t.shape()[a + 1];
  const auto* src = static_cast<const uint8_t*>(t.raw());
  auto* dst = static_cast<uint8_t*>(out.mutable_raw());
  std::vector<int64_t> pos(t.rank(), 0);
  for (uint64_t o = 0; o < out.numel(); ++o) {
    int64_t off = 0;
    for (int a = 0; a < t.rank(); ++a) off += index[a][pos[a]] * stride[a];
    std::memcpy(dst + o * esize, src + off * esize, esize);
    for (int a = t.rank() - 1; a >= 0; --a) {
      if (++pos[a] < shape[a]) break;
      pos[a] = 0;
    }
  }
  return out;
}

// Per-unit |w| (or w^2) sums of group `root` along the member's axis.
std::vector<double> MemberNorms(const DependencyGraph& dg, const Member& m, int root, bool l2) {
  const ir::Tensor& t = *ConstantOf(m.node->input(m.slot));
  int64_t dim = t.shape()[m.axis];
  int64_t inner = 1;
  for (int a = m.axis + 1; a < t.rank(); ++a) inner *= t.shape()[a];
  std::vector<int64_t> unit_of(dim, -1);
  int64_t units = 0, off = 0;
  for (const prune::Segment& s : m.layout) {
    if (dg.Root(s.group) == root) {
      units = s.units;
      for (int64_t i = 0; i < s.units * s.block; ++i) unit_of[off + i] = i / s.block;
    }
    off += s.units * s.block;
  }
  std::vector<double> sum(units, 0.0);
  std::vector<double> vals = t.ToDouble();
  for (size_t i = 0; i < vals.size(); ++i) {
    int64_t u = unit_of[(static_cast<int64_t>(i) / inner) % dim];
    if (u >= 0) sum[u] += l2 ? vals[i] * vals[i] : std::fabs(vals[i]);
  }
  if (l2)
    for (double& s : sum) s = std::sqrt(s);
  return sum;
}

struct Config {
  double sparsity;
  std::string criterion, scope;
  int64_t round_to, samples;
  std::vector<std::string> targets, include, exclude, remove_blocks;
  int64_t drop_blocks;
};

class PruneStructured : public Pass {
 public:
  explicit PruneStructured(const PassOptions& o)
      : cfg_{o.GetFloat("sparsity"),
             o.GetString("criterion"),
             o.GetString("scope"),
             o.GetInt("round-to"),
             o.GetInt("samples"),
             o.GetStringList("targets"),
             o.GetStringList("include"),
             o.GetStringList("exclude"),
             o.GetStringList("remove-blocks"),
             o.GetInt("drop-blocks")} {
    for (const std::string& t : cfg_.targets)
      if (t != "conv" && t != "linear" && t != "heads" && t != "ffn")
        ThrowInvalid("pass 'prune-structured': unknown target '" + t +
                     "' (targets are conv, linear, heads, ffn)");
  }
  const PassInfo& info() const override { return PruneStructuredPass().info; }
  std::string Details() const override { return details_.empty() ? "" : details_.dump(); }

  bool Run(ir::Model& model, PassContext& ctx) override {
    if ((cfg_.criterion == "activation" || cfg_.drop_blocks > 0) && ctx.data_files.empty())
      throw Error(ErrorCode::kUsage,
                  "pass 'prune-structured' with criterion=activation or drop-blocks needs "
                  "calibration data: give --data FILE.npz");
    ir::Graph& g = *model.graph;
    int64_t params_before = CountParams(g);
    // The analysis infers shapes; an unchanged model gets its declared types back, so
    // "unchanged" means unchanged.
    std::vector<std::pair<ir::Value*, ir::ValueType>> declared;
    for (ir::Value* v : g.inputs()) declared.emplace_back(v, v->type);
    for (ir::Node* n : g.nodes())
      for (ir::Value* o : n->outputs())
        if (o) declared.emplace_back(o, o->type);
    bool inferred = prune::InferShapesWithFusedOps(model);
    int64_t blocks_removed = inferred ? RemoveBlocks(model, ctx) : 0;
    DependencyGraph dg = DependencyGraph::Build(model);

    // Candidate groups and their scores.
    std::vector<int> roots = dg.Roots();
    std::map<int, std::string> skipped;  // root -> why not pruned although prunable
    std::vector<int> candidates;
    for (int r : roots) {
      const prune::Group& gr = dg.group(r);
      if (gr.kind == "fixed" || gr.anchors.empty()) continue;
      Count("groups-found");
      if (!gr.prunable) {
        Count("groups-not-prunable");
        continue;
      }
      if (std::find(cfg_.targets.begin(), cfg_.targets.end(), gr.kind) == cfg_.targets.end()) {
        skipped[r] = "kind '" + gr.kind + "' is not in targets";
        continue;
      }
      bool excluded = false, included = cfg_.include.empty();
      for (ir::Node* a : gr.anchors) {
        excluded = excluded || quant::MatchAnyGlob(cfg_.exclude, a->name);
        included = included || quant::MatchAnyGlob(cfg_.include, a->name);
      }
      if (excluded || !included) {
        skipped[r] = excluded ? "excluded by name" : "not included by name";
        continue;
      }
      candidates.push_back(r);
    }
    std::map<int, std::vector<double>> scores;
    std::map<int, std::string> used_criterion;
    if (cfg_.criterion == "activation" && !candidates.empty())
      scores = ActivationScores(model, dg, candidates, ctx);
    for (int r : candidates) {
      if (cfg_.criterion == "activation") {
        used_criterion[r] = "activation";
        continue;
      }
      used_criterion[r] = cfg_.criterion;
      scores[r] = WeightScores(dg, r, cfg_.criterion, &used_criterion[r]);
    }

    Removed removed = Choose(dg, candidates, scores);
    int64_t channels_removed = 0;
    for (auto& [r, units] : removed) {
      if (units.empty()) continue;
      Count("groups-pruned");
      channels_removed += static_cast<int64_t>(units.size()) * UnitChannels(dg, r);
    }
    Count("channels-removed", channels_removed);
    bool changed = channels_removed > 0 || blocks_removed > 0;

    // The table of decisions, written before the rewrite so member sizes are the originals.
    json groups = json::array();
    for (int r : roots) {
      const prune::Group& gr = dg.group(r);
      if (gr.kind == "fixed" || gr.anchors.empty()) continue;
      groups.push_back(GroupJson(dg, r, removed, skipped, used_criterion));
    }
    if (ctx.log)
      for (const json& gj : groups) ctx.log("prune-structured: " + GroupLine(gj));
    if (changed) {
      Rewrite(model, dg, removed, inferred);
    } else if (blocks_removed == 0) {
      for (auto& [v, t] : declared) v->type = t;
    }

    int64_t params_after = CountParams(g);
    Count("params-before", params_before);
    Count("params-after", params_after);
    details_ = {{"criterion", cfg_.criterion},
                {"sparsity", cfg_.sparsity},
                {"scope", cfg_.scope},
                {"round_to", cfg_.round_to},
                {"params_before", params_before},
                {"params_after", params_after},
                {"groups", groups},
                {"blocks", blocks_json_}};
    if (ctx.log)
      ctx.log("prune-structured: " +
              std::to_string(stats().count("groups-pruned") ? stats().at("groups-pruned") : 0) +
              " groups pruned, params " + std::to_string(params_before) + " -> " +
              std::to_string(params_after));
    return changed;
  }

 private:
  // Depth pruning: residual branches named by index (remove-blocks) and the `drop-blocks`
  // branches contributing least, measured as ||branch(x)|| / ||x|| on calibration data.
  int64_t RemoveBlocks(ir::Model& model, PassContext& ctx) {
    ir::Graph& g = *model.graph;
    std::vector<prune::ResidualBlock> blocks = prune::FindResidualBlocks(g);
    std::set<size_t> chosen;
    for (const std::string& s : cfg_.remove_blocks) {
      char* end = nullptr;
      long long i = std::strtoll(s.c_str(), &end, 10);
      if (s.empty() || *end || i < 0 || i >= static_cast<long long>(blocks.size()))
        ThrowInvalid("pass 'prune-structured': remove-blocks entry '" + s +
                     "' is not a block index (the model has " + std::to_string(blocks.size()) +
                     " residual blocks, 0-based)");
      chosen.insert(static_cast<size_t>(i));
    }
    std::vector<double> ratio(blocks.size(), -1.0);
    if (cfg_.drop_blocks > 0 && !blocks.empty()) {
      std::map<std::string, double> sq;
      for (const auto& b : blocks) sq[b.skip->name()] = sq[b.branch->name()] = 0;
      runtime::SessionOptions so;
      so.threads = ctx.threads;
      so.observer = [&](const ir::Node& n, const std::vector<const ir::Tensor*>& outs) {
        for (size_t i = 0; i < outs.size(); ++i) {
          if (!outs[i] || !n.output(i) || outs[i]->dtype() != ir::DType::kFloat32) continue;
          auto it = sq.find(n.output(i)->name());
          if (it == sq.end()) continue;
          const float* d = outs[i]->data<float>();
          for (uint64_t k = 0; k < outs[i]->numel(); ++k) it->second += double(d[k]) * d[k];
        }
      };
      calibrate::DataSet data = calibrate::DataSet::Open(ctx.data_files, g);
      int64_t samples = std::min<int64_t>(cfg_.samples, data.size());
      auto session = runtime::Session::Create(std::shared_ptr<const ir::Model>(model.Clone()), so);
      for (int64_t i = 0; i < samples; ++i) session->Run(data.Batch(i, 1));
      std::vector<size_t> order;
      for (size_t i = 0; i < blocks.size(); ++i) {
        ratio[i] = std::sqrt(sq[blocks[i].branch->name()] / (sq[blocks[i].skip->name()] + 1e-30));
        order.push_back(i);
      }
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t a, size_t b) { return ratio[a] < ratio[b]; });
      for (size_t i = 0; i < order.size() && static_cast<int64_t>(i) < cfg_.drop_blocks; ++i)
        chosen.insert(order[i]);
    }
    blocks_json_ = json::array();
    std::set<const ir::Node*> gone;
    int64_t removed = 0;
    for (size_t i = 0; i < blocks.size(); ++i) {
      const prune::ResidualBlock& b = blocks[i];
      json j = {{"index", i},
                {"add", b.add->name},
                {"skip", b.skip->name()},
                {"nodes", b.nodes.size()},
                {"params", b.params}};
      if (ratio[i] >= 0) j["branch_to_skip_norm"] = ratio[i];
      bool remove = chosen.count(i) && !gone.count(b.add);
      j["removed"] = remove;
      blocks_json_.push_back(j);
      if (!remove) continue;
      ir::Value* out = b.add->output(0);
      if (!ReplaceValue(out, b.skip)) continue;
      // A later block whose skip was this block's output now starts from our skip.
      for (size_t k = i + 1; k < blocks.size(); ++k)
        if (blocks[k].skip == out) blocks[k].skip = b.skip;
      for (size_t k = 0; k < b.add->num_inputs(); ++k) b.add->set_input(k, nullptr);
      g.RemoveNode(b.add);
      gone.insert(b.add);
      // Inputs from outside the branch (weights, shape chains) may die with it; names,
      // because removing nodes frees their output values.
      std::set<const ir::Node*> branch(b.nodes.begin(), b.nodes.end());
      std::vector<std::string> outside;
      for (ir::Node* n : b.nodes)
        for (ir::Value* in : n->inputs())
          if (in && !branch.count(in->producer())) outside.push_back(in->name());
      for (auto it = b.nodes.rbegin(); it != b.nodes.rend(); ++it) {
        gone.insert(*it);
        g.RemoveNode(*it);
      }
      for (const std::string& name : outside) DropDead(g, name);
      ++removed;
    }
    Count("blocks-found", static_cast<int64_t>(blocks.size()));
    Count("blocks-removed", removed);
    return removed;
  }

  // Channels per unit as the producing layer sees them (1 for a conv channel, head_dim for
  // a head), which is what `round-to` rounds.
  static int64_t UnitChannels(const DependencyGraph& dg, int root) {
    for (ir::Node* a : dg.group(root).anchors) {
      auto it = dg.values().find(a->output(0));
      if (it == dg.values().end()) continue;
      for (const prune::Segment& s : it->second.layout)
        if (dg.Root(s.group) == root) return s.block;
    }
    return 1;
  }

  std::vector<double> WeightScores(const DependencyGraph& dg, int r, const std::string& crit,
                                   std::string* used) {
    std::vector<double> s(dg.group(r).units, 0.0);
    auto add = [&](Member::Role role, bool l2) {
      bool any = false;
      for (const Member* m : dg.MembersOf(r)) {
        if (m->kind != Member::Kind::kParam || m->role != role) continue;
        if (!IsFloat(ConstantOf(m->node->input(m->slot))->dtype())) continue;
        std::vector<double> v = MemberNorms(dg, *m, r, l2);
        for (size_t u = 0; u < s.size() && u < v.size(); ++u) s[u] += v[u];
        any = true;
      }
      return any;
    };
    if (crit == "bn-gamma") {
      if (add(Member::Role::kNormScale, false)) return s;
      *used = "l1 (no BatchNorm in the group)";
      std::fill(s.begin(), s.end(), 0.0);
      add(Member::Role::kWeight, false);
      return s;
    }
    add(Member::Role::kWeight, crit == "l2");
    return s;
  }

  // Mean |activation| per unit over the calibration samples, each observed value
  // normalized by its own mean so that layers of different scale count alike.
  std::map<int, std::vector<double>> ActivationScores(const ir::Model& model,
                                                      const DependencyGraph& dg,
                                                      const std::vector<int>& roots,
                                                      PassContext& ctx) {
    std::set<int> wanted(roots.begin(), roots.end());
    struct Watch {
      int axis;
      Layout layout;
      std::vector<double> sum;  // per channel
      double count = 0;         // elements per channel seen
    };
    std::map<std::string, Watch> watch;
    for (const auto& [v, vl] : dg.values()) {
      if (v->graph() != model.graph.get() || !v->producer()) continue;
      bool any = false;
      for (const prune::Segment& s : vl.layout) any = any || wanted.count(dg.Root(s.group));
      if (any)
        watch[v->name()] =
            Watch{vl.axis, vl.layout, std::vector<double>(prune::LayoutSize(vl.layout), 0.0)};
    }
    calibrate::DataSet data = calibrate::DataSet::Open(ctx.data_files, *model.graph);
    int64_t samples = std::min<int64_t>(cfg_.samples, data.size());
    if (samples <= 0) ThrowInvalid("pass 'prune-structured': the calibration data has no samples");
    runtime::SessionOptions so;
    so.threads = ctx.threads;
    so.observer = [&](const ir::Node& n, const std::vector<const ir::Tensor*>& outs) {
      for (size_t i = 0; i < outs.size(); ++i) {
        if (!outs[i] || !n.output(i) || outs[i]->dtype() != ir::DType::kFloat32) continue;
        auto it = watch.find(n.output(i)->name());
        if (it == watch.end()) continue;
        Watch& w = it->second;
        const ir::Tensor& t = *outs[i];
        if (w.axis >= t.rank() || t.shape()[w.axis] != static_cast<int64_t>(w.sum.size())) continue;
        int64_t dim = t.shape()[w.axis], inner = 1;
        for (int a = w.axis + 1; a < t.rank(); ++a) inner *= t.shape()[a];
        const float* d = t.data<float>();
        for (uint64_t k = 0; k < t.numel(); ++k)
          w.sum[(static_cast<int64_t>(k) / inner) % dim] += std::fabs(d[k]);
        w.count += static_cast<double>(t.numel()) / dim;
      }
    };
    auto session = runtime::Session::Create(std::shared_ptr<const ir::Model>(model.Clone()), so);
    if (ctx.log)
      ctx.log("prune-structured: activation statistics on " + std::to_string(samples) + " samples");
    for (int64_t i = 0; i < samples; ++i) session->Run(data.Batch(i, 1));
    std::map<int, std::vector<double>> scores;
    for (int r : roots) scores[r].assign(dg.group(r).units, 0.0);
    for (auto& [name, w] : watch) {
      if (w.count <= 0) continue;
      double total = 0;
      for (double s : w.sum) total += s;
      double mean = total / (w.count * w.sum.size()) + 1e-30;
      int64_t off = 0;
      for (const prune::Segment& s : w.layout) {
        int r = dg.Root(s.group);
        if (scores.count(r))
          for (int64_t u = 0; u < s.units; ++u)
            for (int64_t j = 0; j < s.block; ++j)
              scores[r][u] += w.sum[off + u * s.block + j] / w.count / mean;
        off += s.units * s.block;
      }
    }
    return scores;
  }

  int64_t RoundKeep(int64_t keep, int64_t units, int64_t unit_channels) const {
    keep = std::max<int64_t>(keep, 1);
    if (cfg_.round_to > 1) {
      int64_t step = cfg_.round_to / std::gcd(unit_channels, cfg_.round_to);
      keep = (keep + step - 1) / step * step;
    }
    return std::min(keep, units);
  }

  Removed Choose(const DependencyGraph& dg, const std::vector<int>& roots,
                 std::map<int, std::vector<double>>& scores) const {
    std::map<int, int64_t> remove_count;
    if (cfg_.scope == "global") {
      // One ranking across groups: scores normalized by their group's mean, channels
      // removed lowest first until `sparsity` of all candidate channels are gone.
      struct Item {
        double score;
        int root;
      };
      std::vector<Item> items;
      int64_t total = 0;
      for (int r : roots) {
        const auto& s = scores[r];
        double mean =
            std::accumulate(s.begin(), s.end(), 0.0) / std::max<size_t>(s.size(), 1) + 1e-30;
        for (double v : s) items.push_back({v / mean, r});
        total += dg.group(r).units * UnitChannels(dg, r);
      }
      std::stable_sort(items.begin(), items.end(),
                       [](const Item& a, const Item& b) { return a.score < b.score; });
      int64_t target = static_cast<int64_t>(std::floor(cfg_.sparsity * total)), done = 0;
      for (const Item& it : items) {
        if (done >= target) break;
        if (remove_count[it.root] + 1 >= dg.group(it.root).units) continue;
        ++remove_count[it.root];
        done += UnitChannels(dg, it.root);
      }
    } else {
      for (int r : roots)
        remove_count[r] = static_cast<int64_t>(std::floor(cfg_.sparsity * dg.group(r).units));
    }
    Removed removed;
    for (int r : roots) {
      int64_t units = dg.group(r).units;
      int64_t keep = RoundKeep(units - remove_count[r], units, UnitChannels(dg, r));
      const auto& s = scores[r];
      std::vector<int64_t> order(units);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return s[a] < s[b]; });
      std::vector<int64_t> gone(order.begin(), order.begin() + (units - keep));
      std::sort(gone.begin(), gone.end());
      removed[r] = gone;
    }
    return removed;
  }

  json GroupJson(const DependencyGraph& dg, int r, const Removed& removed,
                 const std::map<int, std::string>& skipped,
                 const std::map<int, std::string>& used) const {
    const prune::Group& gr = dg.group(r);
    json j;
    j["id"] = r;
    j["kind"] = gr.kind;
    json anchors = json::array();
    for (ir::Node* a : gr.anchors) anchors.push_back(a->name);
    j["anchors"] = anchors;
    int64_t uc = UnitChannels(dg, r);
    auto it = removed.find(r);
    int64_t gone = it == removed.end() ? 0 : static_cast<int64_t>(it->second.size());
    j["units_before"] = gr.units;
    j["units_after"] = gr.units - gone;
    j["channels_per_unit"] = uc;
    j["channels_before"] = gr.units * uc;
    j["channels_after"] = (gr.units - gone) * uc;
    j["prunable"] = gr.prunable;
    if (!gr.prunable) j["reasons"] = gr.reasons;
    if (skipped.count(r)) j["skipped"] = skipped.at(r);
    if (used.count(r)) j["criterion"] = used.at(r);
    if (gone) j["removed_units"] = it->second;
    j["coupled_by"] = gr.coupled_by;
    json members = json::array();
    for (const Member* m : dg.MembersOf(r)) {
      json mj;
      mj["why"] = m->why;
      mj["node"] = m->node->name;
      if (m->kind == Member::Kind::kParam) {
        mj["tensor"] = m->node->input(m->slot)->name();
        mj["axis"] = m->axis;
      }
      mj["size_before"] = prune::LayoutSize(m->layout);
      mj["size_after"] = dg.KeptSize(m->layout, removed);
      members.push_back(mj);
    }
    j["members"] = members;
    return j;
  }

  // One row of the decision table: what shrinks, by how much, and why it is coupled.
  static std::string GroupLine(const json& g) {
    std::string line = "group " + std::to_string(g["id"].get<int>()) + " [" +
                       g["kind"].get<std::string>() + "] " + g["anchors"].dump() + ": " +
                       std::to_string(g["channels_before"].get<int64_t>()) + " -> " +
                       std::to_string(g["channels_after"].get<int64_t>()) + " channels, " +
                       std::to_string(g["members"].size()) + " members";
    if (!g["coupled_by"].empty()) line += "; coupled by " + g["coupled_by"].dump();
    if (g.contains("reasons")) line += "; not prunable: " + g["reasons"][0].get<std::string>();
    if (g.contains("skipped")) line += "; skipped: " + g["skipped"].get<std::string>();
    return line;
  }

  // Replaces input `slot` of `n` by `t`: in place when `n` is the constant's only reader
  // (names stay stable), else as a new initializer.
  static void ReplaceConstant(ir::Graph& g, ir::Node* n, int slot, ir::Tensor t,
                              std::vector<ir::Value*>* orphans) {
    ir::Value* v = n->input(slot);
    bool only_here = v->is_initializer() && !v->is_graph_output() && !v->is_graph_input();
    for (const ir::Use& u : v->uses()) only_here = only_here && u.user == n && u.index == slot;
    if (only_here) {
      v->type = ir::ValueType::Tensor(t.dtype(), ir::MakeShape(t.shape()));
      *v->mutable_initializer() = std::move(t);
      return;
    }
    ir::Value* nv = AddConstant(g, v->name(), std::move(t));
    n->set_input(slot, nv);
    orphans->push_back(v);
  }

  // Removes value `name` and its producers when nothing reads them any more (by name:
  // an earlier removal may already have freed it).
  static void DropDead(ir::Graph& g, const std::string& name) {
    ir::Value* v = g.FindValue(name);
    if (!v || v->graph() != &g || !v->uses().empty() || v->is_graph_output() || v->is_graph_input())
      return;
    if (v->is_initializer()) {
      g.RemoveInitializer(v);
      return;
    }
    ir::Node* p = v->producer();
    if (!p || !p->subgraphs().empty()) return;
    for (ir::Value* o : p->outputs())
      if (o && (!o->uses().empty() || o->is_graph_output())) return;
    std::vector<ir::Value*> ins = p->inputs();
    std::vector<std::string> names;
    for (ir::Value* in : ins)
      if (in) names.push_back(in->name());
    g.RemoveNode(p);
    for (const std::string& n : names) DropDead(g, n);
  }

  void Rewrite(ir::Model& model, const DependencyGraph& dg, const Removed& removed, bool inferred) {
    ir::Graph& g = *model.graph;
    std::map<std::pair<ir::Node*, int>, std::map<int, std::vector<int64_t>>> slices;
    std::map<std::pair<ir::Node*, int>, std::map<int64_t, int64_t>> entries;
    std::vector<ir::Value*> orphans;
    for (const Member& m : dg.members()) {
      int64_t before = prune::LayoutSize(m.layout), after = dg.KeptSize(m.layout, removed);
      if (before == after) continue;
      switch (m.kind) {
        case Member::Kind::kParam:
          slices[{m.node, m.slot}][m.axis] = DependencyGraph::KeptIndices(dg, m.layout, removed);
          break;
        case Member::Kind::kGroupAttr:
          m.node->set_attr(ir::Attribute::Int("group", after));
          break;
        case Member::Kind::kShapeEntry:
          entries[{m.node, m.slot}][m.index] = after;
          break;
        case Member::Kind::kShapePiece: {
          ir::Value* old = m.node->input(m.slot);
          ir::Value* nv = AddConstant(
              g, old->name() + "_pruned",
              ir::Tensor::FromVector(ir::DType::kInt64, {1}, std::vector<int64_t>{after}));
          m.node->set_input(m.slot, nv);
          orphans.push_back(old);
          break;
        }
      }
    }
    for (auto& [key, axes] : slices) {
      const ir::Tensor* t = ConstantOf(key.first->input(key.second));
      ReplaceConstant(g, key.first, key.second, SliceTensor(*t, axes), &orphans);
    }
    for (auto& [key, values] : entries) {
      const ir::Tensor* t = ConstantOf(key.first->input(key.second));
      std::vector<int64_t> v = t->ToInt64();
      for (auto& [i, x] : values) v[i] = x;
      ir::Tensor nt(t->dtype(), t->shape());
      for (size_t i = 0; i < v.size(); ++i) {
        if (t->dtype() == ir::DType::kInt32)
          nt.mutable_data<int32_t>()[i] = static_cast<int32_t>(v[i]);
        else
          nt.mutable_data<int64_t>()[i] = v[i];
      }
      ReplaceConstant(g, key.first, key.second, std::move(nt), &orphans);
    }
    std::vector<std::string> orphan_names;
    for (ir::Value* v : orphans) orphan_names.push_back(v->name());
    for (const std::string& n : orphan_names) DropDead(g, n);
    for (const auto& [v, vl] : dg.values())
      if (v->type.shape && vl.axis < static_cast<int>(v->type.shape->size()))
        (*v->type.shape)[vl.axis] = ir::Dim::Known(dg.KeptSize(vl.layout, removed));
    if (inferred) {
      try {
        prune::InferShapesWithFusedOps(model);
        ir::InferShapes(model);
      } catch (const Error& e) {
        throw Error(
            ErrorCode::kInternal,
            std::string("prune-structured: the pruned graph fails shape inference: ") + e.what());
      }
    }
  }

  Config cfg_;
  json details_;
  json blocks_json_ = json::array();
};

}  // namespace

const PassEntry& PruneStructuredPass() {
  using T = OptionInfo::Type;
  static const PassEntry entry = {
      {"prune-structured",
       "Remove whole channels, neurons and attention heads with dependency propagation "
       "(a smaller dense model)",
       {
           Opt("sparsity", T::kFloat, "0.25",
               "fraction of units removed per group (or overall with scope=global)", {}, 0, 1),
           Opt("criterion", T::kEnum, "l1",
               "importance: weight L1/L2 norm, |BatchNorm gamma|, "
               "mean |activation| on calibration data",
               {"l1", "l2", "bn-gamma", "activation"}),
           Opt("scope", T::kEnum, "local",
               "local: sparsity per group; global: one ranking across groups", {"local", "global"}),
           Opt("round-to", T::kInt, "1",
               "kept channels rounded up to a multiple of this (8 or 16 suit SIMD kernels)", {}, 1,
               1024),
           Opt("targets", T::kStringList, "conv,linear,heads,ffn", "group kinds to prune"),
           Opt("include", T::kStringList, "",
               "only groups whose producing node name matches a glob"),
           Opt("exclude", T::kStringList, "",
               "skip groups whose producing node name matches a glob"),
           Opt("samples", T::kInt, "32",
               "calibration samples for criterion=activation and drop-blocks", {}, 1, 1e9),
           Opt("remove-blocks", T::kStringList, "",
               "residual blocks removed by index (see Details: blocks)"),
           Opt("drop-blocks", T::kInt, "0",
               "remove this many residual blocks with the smallest "
               "||branch||/||skip|| on calibration data",
               {}, 0, 1e6),
       },
       {"groups-found", "groups-pruned", "groups-not-prunable", "channels-removed", "blocks-found",
        "blocks-removed", "params-before", "params-after"}},
      [](const PassOptions& o) -> std::unique_ptr<Pass> {
        return std::make_unique<PruneStructured>(o);
      }};
  return entry;
}

}  // namespace edgepress::passes
