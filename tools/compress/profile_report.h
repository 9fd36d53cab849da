// The profile of `bench --profile` (and any report that wants it) as a text table and as
// JSON. The table shows time per op type and the `top` slowest nodes; the JSON lists every
// op type and every node in execution order, each with the kernel (KernelDef name) that ran.
#pragma once

#include <cstddef>
#include <string>

#include "runtime/session.h"

namespace edgepress::tools {

std::string ProfileTable(const runtime::SessionProfile& profile, size_t top);
// A JSON object: {"runs", "run_ms", "node_ms", "overhead_ms", "op_types": [...], "nodes": [...]}.
std::string ProfileJson(const runtime::SessionProfile& profile);

}  // namespace edgepress::tools
