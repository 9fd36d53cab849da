// Helpers shared by the GEMM-based operator kernels (MatMul, Gemm, Conv, ConvTranspose):
// input checks with messages that name the node, and the fused activation that an
// optimizer may attach to Conv/Gemm (com.microsoft FusedConv/FusedGemm style attributes
// "activation" + "activation_params"), mapped onto the GEMM epilogue's clamp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/gemm/gemm.h"

namespace edgepress::runtime::gemm_util {

inline std::string DimsToString(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

// Input `i`, which must be present and float32.
inline const ir::Tensor& FloatInput(KernelContext& ctx, size_t i, const char* what) {
  const ir::Tensor* t = ctx.input(i);
  if (!t || t->empty())
    ThrowInvalid(ctx.node().describe() + ": missing input " + std::to_string(i) + " (" + what +
                 ")");
  if (t->dtype() != ir::DType::kFloat32)
    ThrowUnsupported(ctx.node().describe() + ": input " + std::to_string(i) + " (" + what +
                     ") has dtype " + ir::DTypeName(t->dtype()) + ", expected float32");
  return *t;
}

// Optional input: nullptr when omitted; must be float32 when given.
inline const ir::Tensor* OptionalFloatInput(KernelContext& ctx, size_t i, const char* what) {
  const ir::Tensor* t = ctx.input(i);
  if (!t || t->empty()) return nullptr;
  return &FloatInput(ctx, i, what);
}

// The fused activation of `node` (no clamp when it has no "activation" attribute).
inline GemmEpilogue ParseActivation(const ir::Node& node) {
  GemmEpilogue ep;
  const std::string act = node.attr_string("activation", "");
  if (act.empty()) return ep;
  const std::vector<float> params = node.attr_floats("activation_params", {});
  ep.clamp = true;
  if (act == "Relu") {
    ep.lo = 0.f;
  } else if (act == "Clip") {
    if (params.size() != 2)
      ThrowInvalid(node.describe() + ": activation Clip needs 2 activation_params, got " +
                   std::to_string(params.size()));
    ep.lo = params[0];
    ep.hi = params[1];
  } else {
    ThrowUnsupported(node.describe() + ": fused activation '" + act +
                     "' is not supported (Relu, Clip are)");
  }
  return ep;
}

}  // namespace edgepress::runtime::gemm_util
