// N:M and channel patterns of gradual pruning (distill/gradual_pattern.h).
#include "distill/gradual_pattern.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <sstream>

#include "ir/error.h"
#include "passes/prune/prune_deps.h"
#include "passes/prune/prune_util.h"
#include "passes/registry.h"

namespace edgepress::distill {

PrunePattern ParsePrunePattern(const std::string& text) {
  PrunePattern p;
  if (text.empty() || text == "unstructured") return p;
  if (text == "channels") {
    p.kind = PrunePattern::Kind::kChannels;
    return p;
  }
  int n = 0, m = 0;
  char colon = 0, extra = 0;
  std::istringstream in(text);
  if ((in >> n >> colon >> m) && colon == ':' && !(in >> extra) && n >= 1 && m > n && m <= 64) {
    p.kind = PrunePattern::Kind::kNM;
    p.n = n;
    p.m = m;
    return p;
  }
  throw Error(ErrorCode::kUsage, "prune pattern '" + text +
                                     "': expected unstructured, channels or N:M with "
                                     "1 <= N < M <= 64 (e.g. 2:4, 4:8)");
}

namespace {

// A weight pruned N:M: its parameter index and the reduction view of prune-nm.
struct NmWeight {
  size_t param;
  std::string name;
  passes::prune::ReductionView view;
};

// One parameter's share of a channel group: which unit each index of `axis` belongs to.
struct GroupMember {
  size_t param;
  int axis;
  bool weight;                // counts in the L2 score
  std::vector<int64_t> unit;  // per index along axis; -1: not this group's
};
struct ChannelGroup {
  int64_t units = 0;
  std::vector<GroupMember> members;
  std::set<int64_t> removed;
};

// `t` on the CPU as float values, row-major.
std::vector<float> Values(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

struct GradualPattern::Impl {
  PrunePattern pattern;
  std::vector<NmWeight> nm;
  std::vector<ChannelGroup> groups;

  int64_t PruneNm(const std::vector<at::Tensor>& params, std::vector<at::Tensor>& masks,
                  double s) {
    const int n = pattern.n, m = pattern.m;
    const int z = std::min(m - n, static_cast<int>(std::floor(m * s + 1e-9)));
    int64_t added = 0;
    for (const NmWeight& w : nm) {
      const at::Tensor& p = params[w.param];
      std::vector<float> val = Values(p);
      std::vector<float> keep =
          masks[w.param].defined() ? Values(masks[w.param]) : std::vector<float>(val.size(), 1.f);
      const passes::prune::ReductionView& v = w.view;
      std::vector<int64_t> idx(m);
      for (int64_t o = 0; o < v.outer; ++o)
        for (int64_t i = 0; i < v.inner; ++i)
          for (int64_t g = 0; g < v.reduction; g += m) {
            for (int r = 0; r < m; ++r) idx[r] = v.Index(o, g + r, i);
            // Masked first, then smallest |w|, ties to the lower index (prune-nm's order
            // reversed): the z first are the group's zeros.
            std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
              if ((keep[a] == 0) != (keep[b] == 0)) return keep[a] == 0;
              float fa = std::fabs(val[a]), fb = std::fabs(val[b]);
              return fa < fb || (fa == fb && a < b);
            });
            for (int r = 0; r < z; ++r)
              if (keep[idx[r]] != 0) {
                keep[idx[r]] = 0;
                ++added;
              }
          }
      masks[w.param] = torch::tensor(keep).reshape(p.sizes()).to(p.device(), p.scalar_type());
      torch::NoGradGuard ng;
      p.mul_(masks[w.param]);
    }
    return added;
  }

  int64_t PruneChannels(const std::vector<at::Tensor>& params, std::vector<at::Tensor>& masks,
                        double s) {
    std::set<size_t> touched;
    for (ChannelGroup& g : groups) {
      const int64_t k = std::min<int64_t>(
          g.units - 1, static_cast<int64_t>(std::floor(s * static_cast<double>(g.units) + 1e-9)));
      if (k <= static_cast<int64_t>(g.removed.size())) continue;
      std::vector<double> score(g.units, 0.0);
      for (const GroupMember& mb : g.members) {
        if (!mb.weight) continue;
        const at::Tensor& p = params[mb.param];
        std::vector<float> val = Values(p);
        const int64_t dim = p.size(mb.axis);
        int64_t inner = 1;
        for (int64_t a = mb.axis + 1; a < p.dim(); ++a) inner *= p.size(a);
        for (size_t i = 0; i < val.size(); ++i) {
          int64_t u = mb.unit[(static_cast<int64_t>(i) / inner) % dim];
          if (u >= 0) score[u] += static_cast<double>(val[i]) * val[i];
        }
      }
      for (int64_t u : g.removed) score[u] = -1;  // already gone: first, masks only grow
      std::vector<int64_t> order(g.units);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return score[a] < score[b]; });
      for (int64_t i = 0; i < k; ++i) g.removed.insert(order[i]);
      for (const GroupMember& mb : g.members) touched.insert(mb.param);
    }
    // Rebuild the masks of every touched parameter from all groups' removed units.
    int64_t added = 0;
    for (size_t pi : touched) {
      const at::Tensor& p = params[pi];
      std::vector<float> keep = masks[pi].defined() ? Values(masks[pi])
                                                    : std::vector<float>(p.numel(), 1.f);
      for (const ChannelGroup& g : groups)
        for (const GroupMember& mb : g.members) {
          if (mb.param != pi) continue;
          const int64_t dim = p.size(mb.axis);
          int64_t inner = 1;
          for (int64_t a = mb.axis + 1; a < p.dim(); ++a) inner *= p.size(a);
          for (size_t i = 0; i < keep.size(); ++i) {
            int64_t u = mb.unit[(static_cast<int64_t>(i) / inner) % dim];
            if (u >= 0 && g.removed.count(u) && keep[i] != 0) {
              keep[i] = 0;
              ++added;
            }
          }
        }
      masks[pi] = torch::tensor(keep).reshape(p.sizes()).to(p.device(), p.scalar_type());
      torch::NoGradGuard ng;
      p.mul_(masks[pi]);
    }
    return added;
  }
};

GradualPattern::GradualPattern(const ir::Model& model, const std::vector<std::string>& names,
                               const PrunePattern& pattern)
    : impl_(std::make_unique<Impl>()) {
  impl_->pattern = pattern;
  auto param_of = [&](const std::string& name) -> int64_t {
    auto it = std::find(names.begin(), names.end(), name);
    return it == names.end() ? -1 : static_cast<int64_t>(it - names.begin());
  };
  std::unique_ptr<ir::Model> copy = model.Clone();
  if (pattern.kind == PrunePattern::Kind::kNM) {
    for (const passes::prune::PrunableWeight& w :
         passes::prune::FindPrunable(*copy, passes::prune::FindOptions{})) {
      if (!w.has_view || !w.in_main_graph) continue;
      const ir::Tensor& t = *w.weight->initializer();
      passes::prune::ReductionView v = passes::prune::ViewOf(t.shape(), w.axis);
      int64_t i = param_of(w.weight->name());
      if (v.reduction % pattern.m != 0 || i < 0) continue;  // as prune-nm: left dense
      impl_->nm.push_back({static_cast<size_t>(i), w.weight->name(), v});
    }
    if (impl_->nm.empty())
      ThrowInvalid("gradual " + std::to_string(pattern.n) + ":" + std::to_string(pattern.m) +
                   " pruning: no weight's reduction length is a multiple of " +
                   std::to_string(pattern.m));
  } else if (pattern.kind == PrunePattern::Kind::kChannels) {
    using passes::prune::DependencyGraph;
    DependencyGraph dg = DependencyGraph::Build(*copy);
    const std::set<std::string> kinds = {"conv", "linear", "heads", "ffn"};
    for (int r : dg.Roots()) {
      const passes::prune::Group& gr = dg.group(r);
      if (gr.kind == "fixed" || gr.anchors.empty() || !gr.prunable || !kinds.count(gr.kind))
        continue;
      ChannelGroup g;
      g.units = gr.units;
      bool ok = true;
      for (const passes::prune::Member* mb : dg.MembersOf(r)) {
        if (mb->kind != passes::prune::Member::Kind::kParam) continue;
        int64_t i = param_of(mb->node->input(mb->slot)->name());
        if (i < 0) {
          ok = false;  // a member the trainer cannot mask: leave the group dense
          break;
        }
        GroupMember gm{static_cast<size_t>(i), mb->axis,
                       mb->role == passes::prune::Member::Role::kWeight, {}};
        const int64_t dim = passes::prune::LayoutSize(mb->layout);
        const ir::Tensor* t = mb->node->input(mb->slot)->initializer();
        if (!t || mb->axis >= t->rank() || t->shape()[mb->axis] != dim) {
          ok = false;
          break;
        }
        gm.unit.assign(dim, -1);
        int64_t off = 0;
        for (const passes::prune::Segment& s : mb->layout) {
          if (dg.Root(s.group) == r)
            for (int64_t e = 0; e < s.units * s.block; ++e) gm.unit[off + e] = e / s.block;
          off += s.units * s.block;
        }
        g.members.push_back(std::move(gm));
      }
      if (ok && !g.members.empty()) impl_->groups.push_back(std::move(g));
    }
    if (impl_->groups.empty())
      ThrowInvalid("gradual channel pruning: the student has no prunable channel group "
                   "(prune-structured's analysis found none)");
  }
}

GradualPattern::~GradualPattern() = default;

int64_t GradualPattern::Prune(const std::vector<at::Tensor>& params,
                              std::vector<at::Tensor>& masks, double s) {
  return impl_->pattern.kind == PrunePattern::Kind::kNM ? impl_->PruneNm(params, masks, s)
                                                        : impl_->PruneChannels(params, masks, s);
}

void GradualPattern::RestoreMasks(const std::vector<at::Tensor>& params,
                                  std::vector<at::Tensor>& masks) const {
  torch::NoGradGuard ng;
  std::set<size_t> mine;
  for (const NmWeight& w : impl_->nm) mine.insert(w.param);
  for (ChannelGroup& g : impl_->groups) {
    for (const GroupMember& mb : g.members) mine.insert(mb.param);
    // A unit is removed when its first weight member's slice is all zero.
    for (const GroupMember& mb : g.members) {
      if (!mb.weight) continue;
      const at::Tensor& p = params[mb.param];
      std::vector<float> val = Values(p);
      std::vector<double> sq(g.units, 0.0);
      const int64_t dim = p.size(mb.axis);
      int64_t inner = 1;
      for (int64_t a = mb.axis + 1; a < p.dim(); ++a) inner *= p.size(a);
      for (size_t i = 0; i < val.size(); ++i) {
        int64_t u = mb.unit[(static_cast<int64_t>(i) / inner) % dim];
        if (u >= 0) sq[u] += std::fabs(val[i]);
      }
      for (int64_t u = 0; u < g.units; ++u)
        if (sq[u] == 0) g.removed.insert(u);
      break;
    }
  }
  for (size_t i : mine) {
    at::Tensor keep = params[i].detach().ne(0).to(params[i].scalar_type());
    if (keep.sum().item<int64_t>() < params[i].numel()) masks[i] = keep;
  }
}

int64_t GradualPattern::Finish(ir::Model& student, double final_sparsity) const {
  if (impl_->pattern.kind == PrunePattern::Kind::kNM) {
    for (const NmWeight& w : impl_->nm) {
      ir::SparseEncoding enc;
      enc.kind = ir::SparseEncoding::Kind::kNM;
      enc.n = impl_->pattern.n;
      enc.m = impl_->pattern.m;
      enc.axis = w.view.axis;
      student.graph->FindValue(w.name)->mutable_initializer()->sparse = enc;
    }
    return 0;
  }
  if (impl_->pattern.kind != PrunePattern::Kind::kChannels) return 0;
  passes::PassContext ctx;
  std::ostringstream spec;
  spec.precision(17);
  spec << "prune-structured{sparsity=" << final_sparsity << ",criterion=l2}";
  passes::PassRun run =
      passes::RunPipeline(student, passes::ParsePipeline(spec.str()), ctx, /*verify=*/true)[0];
  return run.stats.at("params-before") - run.stats.at("params-after");
}

}  // namespace edgepress::distill
