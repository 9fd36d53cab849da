#include "runtime/profile.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <utility>

namespace edgepress::runtime {

ProfileSummary SummarizeProfile(const SessionProfile& profile) {
  ProfileSummary s;
  s.runs = profile.runs;
  double node_total = 0;
  for (const NodeProfile& n : profile.nodes) node_total += n.total_ms;
  const double per_run = profile.runs ? 1.0 / static_cast<double>(profile.runs) : 0.0;
  s.run_ms = profile.run_ms * per_run;
  s.node_ms = node_total * per_run;
  s.overhead_ms = std::max(0.0, s.run_ms - s.node_ms);
  auto share = [&](double ms) { return node_total > 0 ? 100.0 * ms / node_total : 0.0; };

  std::map<std::string, size_t> by_op;
  for (size_t i = 0; i < profile.nodes.size(); ++i) {
    const NodeProfile& n = profile.nodes[i];
    s.nodes.push_back(
        {i, n.calls ? n.total_ms / static_cast<double>(n.calls) : 0.0, share(n.total_ms)});
    auto [it, fresh] = by_op.emplace(n.op, s.op_types.size());
    if (fresh) {
      OpTypeProfile t;
      t.op = n.op;
      s.op_types.push_back(std::move(t));
    }
    OpTypeProfile& op = s.op_types[it->second];
    ++op.nodes;
    op.calls += n.calls;
    op.total_ms += n.total_ms;
    if (std::find(op.kernels.begin(), op.kernels.end(), n.kernel) == op.kernels.end())
      op.kernels.push_back(n.kernel);
  }
  for (OpTypeProfile& op : s.op_types) {
    op.mean_ms = op.calls ? op.total_ms / static_cast<double>(op.calls) : 0.0;
    op.share = share(op.total_ms);
  }
  // Stable, so ties keep graph order and the report is deterministic.
  std::stable_sort(
      s.op_types.begin(), s.op_types.end(),
      [](const OpTypeProfile& a, const OpTypeProfile& b) { return a.total_ms > b.total_ms; });
  s.ranked.resize(s.nodes.size());
  std::iota(s.ranked.begin(), s.ranked.end(), size_t{0});
  std::stable_sort(s.ranked.begin(), s.ranked.end(), [&](size_t a, size_t b) {
    return profile.nodes[a].total_ms > profile.nodes[b].total_ms;
  });
  return s;
}

}  // namespace edgepress::runtime
