// Reduction kernels (ReduceMean/Sum/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare):
// scalar reference entries "any_reduce_<op>__ref" for every numeric dtype, and AVX2
// entries "f32_reduce_{mean,sum,max,min}__avx2".
#pragma once

#include "runtime/kernel.h"

namespace edgepress::runtime {
void RegisterReduceKernels(KernelRegistry& r);
}  // namespace edgepress::runtime
