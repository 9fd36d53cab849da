// A Session's per-node profile (SessionOptions::profile) summarised for reports: time per op
// type and the nodes ranked by time, each with the kernel that ran it, so a latency claim
// can be traced to the kernel responsible. Shares are of the time spent inside nodes (they
// sum to 100%); the rest of a run's wall time (input checks, frame setup, buffer release)
// is reported separately as overhead.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/session.h"

namespace edgepress::runtime {

struct OpTypeProfile {
  std::string op;                    // qualified op type
  int nodes = 0;                     // nodes of this type in the main graph
  uint64_t calls = 0;                // node executions over all runs
  double total_ms = 0;               // over all runs
  double mean_ms = 0;                // per call
  double share = 0;                  // percent of the time inside nodes
  std::vector<std::string> kernels;  // distinct kernels that ran, in first-seen order
};

struct NodeProfileRow {
  size_t index = 0;  // position in execution order (SessionProfile::nodes)
  double mean_ms = 0;
  double share = 0;  // percent of the time inside nodes
};

struct ProfileSummary {
  uint64_t runs = 0;
  double run_ms = 0;                    // wall time per run
  double node_ms = 0;                   // time inside nodes per run
  double overhead_ms = 0;               // run_ms - node_ms (never below 0)
  std::vector<OpTypeProfile> op_types;  // by total time, largest first
  std::vector<NodeProfileRow> nodes;    // every node, execution order
  std::vector<size_t> ranked;           // indices into `nodes`, by total time, largest first
};

ProfileSummary SummarizeProfile(const SessionProfile& profile);

}  // namespace edgepress::runtime
