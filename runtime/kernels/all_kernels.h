// One registration function per op-family file (kernels/<family>/); all_kernels.cc calls each once.
#pragma once

#include "runtime/kernel.h"

namespace edgepress::runtime {
// Add a line here and in all_kernels.cc for each op-family file that registers kernels.
void RegisterControlFlowKernels(KernelRegistry& r);
void RegisterPoolKernels(KernelRegistry& r);
void RegisterNormKernels(KernelRegistry& r);
void RegisterResizeKernels(KernelRegistry& r);
void RegisterRnnKernels(KernelRegistry& r);
void RegisterMatMulKernels(KernelRegistry& r);
void RegisterMatMulNBitsKernels(KernelRegistry& r);
void RegisterTernaryMatMulKernels(KernelRegistry& r);
void RegisterTernaryConvKernels(KernelRegistry& r);
void RegisterElementwiseKernels(KernelRegistry& r);
void RegisterTensorKernels(KernelRegistry& r);
void RegisterReduceKernels(KernelRegistry& r);
void RegisterSoftmaxKernels(KernelRegistry& r);
void RegisterConvKernels(KernelRegistry& r);
void RegisterQuantizeKernels(KernelRegistry& r);
void RegisterQLinearKernels(KernelRegistry& r);
void RegisterQConvKernels(KernelRegistry& r);
void RegisterQLinearEltwiseKernels(KernelRegistry& r);
void RegisterQLinearLookupKernels(KernelRegistry& r);
void RegisterQResizeKernels(KernelRegistry& r);
void RegisterQConvTransposeKernels(KernelRegistry& r);
}  // namespace edgepress::runtime
