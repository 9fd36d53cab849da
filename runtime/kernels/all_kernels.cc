// The ordered list of kernel families compiled into the runtime. Order does not affect
// dispatch (the best ISA wins per op), only the order of `edgepress ops` listings.
#include "runtime/kernels/all_kernels.h"

namespace edgepress::runtime {

const KernelRegistry& GlobalKernelRegistry() {
  static const KernelRegistry registry = [] {
    KernelRegistry r;
    // Register<Family>Kernels(r); — one line per op-family file (kernels/<family>/*.cc).
    RegisterControlFlowKernels(r);
    RegisterPoolKernels(r);
    RegisterNormKernels(r);
    RegisterResizeKernels(r);
    RegisterRnnKernels(r);
    RegisterMatMulKernels(r);
    RegisterMatMulNBitsKernels(r);
    RegisterTernaryMatMulKernels(r);
    RegisterElementwiseKernels(r);
    RegisterTensorKernels(r);
    RegisterReduceKernels(r);
    RegisterSoftmaxKernels(r);
    RegisterConvKernels(r);
    RegisterTernaryConvKernels(r);
    RegisterQuantizeKernels(r);
    RegisterQLinearKernels(r);
    RegisterQConvKernels(r);
    RegisterQLinearEltwiseKernels(r);
    RegisterQLinearLookupKernels(r);
    RegisterQResizeKernels(r);
    RegisterQConvTransposeKernels(r);
    return r;
  }();
  return registry;
}

}  // namespace edgepress::runtime
