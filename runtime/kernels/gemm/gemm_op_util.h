// Helpers shared by the GEMM-based operator kernels (MatMul, Gemm, Conv, ConvTranspose):
// input checks with messages that name the node, numpy batch broadcasting of the matrix
// products, and the fused activation that an
// optimizer may attach to Conv/Gemm (com.microsoft FusedConv/FusedGemm style attributes
// "activation" + "activation_params"), mapped onto the GEMM epilogue's clamp.
#pragma once

#include <algorithm>
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

// Numpy broadcasting of two batch shapes (MatMul, QLinearMatMul, MatMulInteger; whole shapes
// for QLinearAdd/QLinearMul, `what` names them in the error); throws naming the node.
inline std::vector<int64_t> BroadcastBatch(const ir::Node& node, const std::vector<int64_t>& a,
                                    const std::vector<int64_t>& b,
                                    const char* what = "batch dimensions") {
  const size_t r = std::max(a.size(), b.size());
  std::vector<int64_t> out(r);
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    const int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      ThrowInvalid(node.describe() + ": " + what + " " + DimsToString(a) + " and " +
                   DimsToString(b) + " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// For each index of the broadcast batch `out`, the flat batch index into `in`.
inline std::vector<int64_t> BatchIndices(const std::vector<int64_t>& in,
                                         const std::vector<int64_t>& out) {
  int64_t total = 1;
  for (int64_t d : out) total *= d;
  const size_t r = out.size(), off = r - in.size();
  std::vector<int64_t> stride(r, 0);
  int64_t s = 1;
  for (size_t i = r; i-- > off;) {
    stride[i] = in[i - off] == 1 ? 0 : s;
    s *= in[i - off];
  }
  std::vector<int64_t> idx(static_cast<size_t>(total));
  std::vector<int64_t> pos(r, 0);
  for (int64_t t = 0; t < total; ++t) {
    int64_t flat = 0;
    for (size_t i = 0; i < r; ++i) flat += pos[i] * stride[i];
    idx[static_cast<size_t>(t)] = flat;
    for (size_t i = r; i-- > 0;) {
      if (++pos[i] < out[i]) break;
      pos[i] = 0;
    }
  }
  return idx;
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
