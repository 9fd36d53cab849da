#include "tools/compress/profile_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "runtime/profile.h"

namespace edgepress::tools {

namespace {

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

std::string ProfileTable(const runtime::SessionProfile& profile, size_t top) {
  runtime::ProfileSummary s = runtime::SummarizeProfile(profile);
  std::string out =
      fmt::format("profile: {} run(s); {:.3f} ms/run inside {} nodes, {:.3f} ms/run outside them\n",
                  s.runs, s.node_ms, s.nodes.size(), s.overhead_ms);
  if (s.runs == 0) return out;
  size_t op_w = 7;
  for (const auto& op : s.op_types) op_w = std::max(op_w, op.op.size());
  out += fmt::format("\n{:<{}}  {:>5}  {:>7}  {:>10}  {:>9}  {:>6}  {}\n", "op type", op_w, "nodes",
                     "calls", "ms/run", "mean ms", "share", "kernels");
  const double per_run = 1.0 / static_cast<double>(s.runs);
  for (const auto& op : s.op_types)
    out += fmt::format("{:<{}}  {:>5}  {:>7}  {:>10.3f}  {:>9.4f}  {:>5.1f}%  {}\n", op.op, op_w,
                       op.nodes, op.calls, op.total_ms * per_run, op.mean_ms, op.share,
                       Join(op.kernels));
  top = std::min(top, s.ranked.size());
  if (top == 0) return out;
  out += fmt::format("\ntop {} of {} nodes:\n", top, s.nodes.size());
  size_t name_w = 4, kernel_w = 6;
  for (size_t k = 0; k < top; ++k) {
    const runtime::NodeProfile& n = profile.nodes[s.ranked[k]];
    name_w = std::max(name_w, n.node.size() + n.op.size() + 3);
    kernel_w = std::max(kernel_w, n.kernel.size());
  }
  out += fmt::format("{:>4}  {:<{}}  {:<{}}  {:>9}  {:>6}  {}\n", "#", "node", name_w, "kernel",
                     kernel_w, "mean ms", "share", "shapes");
  for (size_t k = 0; k < top; ++k) {
    const runtime::NodeProfileRow& row = s.nodes[s.ranked[k]];
    const runtime::NodeProfile& n = profile.nodes[row.index];
    out += fmt::format("{:>4}  {:<{}}  {:<{}}  {:>9.4f}  {:>5.1f}%  {}\n", row.index,
                       (n.node.empty() ? std::string("(unnamed)") : n.node) + " (" + n.op + ")",
                       name_w, n.kernel, kernel_w, row.mean_ms, row.share, n.shapes);
  }
  return out;
}

std::string ProfileJson(const runtime::SessionProfile& profile) {
  runtime::ProfileSummary s = runtime::SummarizeProfile(profile);
  nlohmann::ordered_json j;
  j["runs"] = s.runs;
  j["run_ms"] = s.run_ms;
  j["node_ms"] = s.node_ms;
  j["overhead_ms"] = s.overhead_ms;
  j["op_types"] = nlohmann::ordered_json::array();
  for (const auto& op : s.op_types)
    j["op_types"].push_back({{"op", op.op},
                             {"nodes", op.nodes},
                             {"calls", op.calls},
                             {"total_ms", op.total_ms},
                             {"mean_ms", op.mean_ms},
                             {"share", op.share},
                             {"kernels", op.kernels}});
  j["nodes"] = nlohmann::ordered_json::array();
  for (const runtime::NodeProfileRow& row : s.nodes) {
    const runtime::NodeProfile& n = profile.nodes[row.index];
    j["nodes"].push_back({{"index", row.index},
                          {"node", n.node},
                          {"op", n.op},
                          {"kernel", n.kernel},
                          {"isa", runtime::IsaName(n.isa)},
                          {"calls", n.calls},
                          {"total_ms", n.total_ms},
                          {"mean_ms", row.mean_ms},
                          {"share", row.share},
                          {"shapes", n.shapes}});
  }
  return j.dump();
}

}  // namespace edgepress::tools
