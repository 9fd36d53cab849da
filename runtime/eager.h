// Runs a single node outside a Session: for kernel tests (every SIMD kernel against
// its scalar reference) and for constant folding. Inputs that are initializers of the
// node's graph are passed to the kernel's create() as constants, as a Session would.
#pragma once

#include <vector>

#include "runtime/kernel.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

// Uses `def` when given, else the best registered kernel for this CPU (honouring
// EDGEPRESS_FORCE_SCALAR). Throws Error(kUnsupported) when no kernel exists.
std::vector<ir::Tensor> RunNode(const ir::Node& node, const std::vector<const ir::Tensor*>& inputs,
                                ThreadPool& pool, const KernelDef* def = nullptr);

// Every registered kernel for an op (all ISAs the CPU has), for comparison tests.
std::vector<const KernelDef*> KernelsFor(const std::string& op_type, const std::string& domain,
                                         ir::DType dtype);

}  // namespace edgepress::runtime
