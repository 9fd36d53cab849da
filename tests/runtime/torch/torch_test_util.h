// Shared by the torch-backend suites: the agreement measure between two runtimes.
//
// Per output tensor: max_i |a_i - b_i| / max(max_i |b_i|, 1e-6) (b = the reference, the
// native runtime). Scaling by the output's largest magnitude, as tests/runtime/
// ort_compare_test.cc does, keeps elements near zero from dominating while still bounding
// every element's error by the tolerance times the output's range. Integer and bool
// outputs must be equal (error 0 or infinity); NaN must meet NaN, infinities their equal.
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"
#include "ir/tensor.h"

namespace edgepress::test_util {

// Tolerance (scaled max error) for static QDQ graphs (quantize-static) between LibTorch and
// the native runtime. LibTorch computes each DequantizeLinear -> Conv/Gemm -> QuantizeLinear
// in float, in the summation order of its CPU kernels; a sum that lands within float error
// of a rounding tie can then quantize one step away from the native runtime's exact integer
// result (or its own float order), and that one step of an intermediate activation moves
// the logits by about 1e-3 of their range. Seen on an AVX2-only Zen 3 (digits CNN, 360
// images: 0.00126), never on the AVX-512 machines; the native outputs are identical across
// those builds. 4e-3 is one step of a uint8 output's range (1/255): a wrong kernel moves
// far more than that.
constexpr double kQdqTolerance = 4e-3;

struct Agreement {
  double error = 0;    // worst scaled error over the outputs
  std::string detail;  // structural mismatch, empty when none
};

inline Agreement CompareOutputs(const std::vector<std::pair<std::string, ir::Tensor>>& got,
                                const std::vector<std::pair<std::string, ir::Tensor>>& want) {
  Agreement r;
  if (got.size() != want.size()) {
    r.detail = std::to_string(got.size()) + " outputs, expected " + std::to_string(want.size());
    r.error = INFINITY;
    return r;
  }
  for (size_t o = 0; o < got.size(); ++o) {
    const ir::Tensor &a = got[o].second, &b = want[o].second;
    if (got[o].first != want[o].first || a.dtype() != b.dtype() || a.shape() != b.shape()) {
      r.detail = "output '" + want[o].first + "': got '" + got[o].first + "' " +
                 ir::DTypeName(a.dtype()) + ir::ShapeToString(ir::MakeShape(a.shape())) +
                 ", expected " + ir::DTypeName(b.dtype()) +
                 ir::ShapeToString(ir::MakeShape(b.shape()));
      r.error = INFINITY;
      return r;
    }
    if (b.dtype() == ir::DType::kString) continue;
    std::vector<double> x = a.ToDouble(), y = b.ToDouble();
    bool exact = !ir::IsFloat(b.dtype());
    double max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      if (std::isnan(x[i]) && std::isnan(y[i])) continue;
      if (x[i] == y[i]) continue;
      double d = std::fabs(x[i] - y[i]);
      if (std::isnan(d)) d = INFINITY;
      if (exact && d > 0) d = INFINITY;
      max_diff = std::max(max_diff, d);
    }
    for (double v : y)
      if (std::isfinite(v)) max_ref = std::max(max_ref, std::fabs(v));
    double e = max_diff == 0 ? 0 : max_diff / std::max(max_ref, 1e-6);
    if (e > r.error) {
      r.error = e;
      r.detail = "output '" + want[o].first + "'";
    }
  }
  return r;
}

}  // namespace edgepress::test_util
