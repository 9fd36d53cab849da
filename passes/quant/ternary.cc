#include "passes/quant/ternary.h"

#include <cmath>

namespace edgepress::passes::ternary {

void TernarizeTwn(float* v, int64_t channels, int64_t len, int64_t stride_c, int64_t stride_i) {
  for (int64_t c = 0; c < channels; ++c) {
    double mean = 0;
    for (int64_t i = 0; i < len; ++i) mean += std::fabs(v[c * stride_c + i * stride_i]);
    const double delta = 0.7 * mean / static_cast<double>(len);
    double sum = 0;
    int64_t kept = 0;
    for (int64_t i = 0; i < len; ++i) {
      double a = std::fabs(v[c * stride_c + i * stride_i]);
      if (a > delta) sum += a, ++kept;
    }
    const float alpha = kept ? static_cast<float>(sum / static_cast<double>(kept)) : 0.f;
    for (int64_t i = 0; i < len; ++i) {
      float& x = v[c * stride_c + i * stride_i];
      x = std::fabs(x) > delta ? std::copysign(alpha, x) : 0.f;
    }
  }
}

bool SplitTernary(const float* v, int64_t channels, int64_t len, int64_t stride_c, int64_t stride_i,
                  std::vector<int8_t>* codes, std::vector<float>* scales) {
  codes->assign(static_cast<size_t>(channels * len), 0);
  scales->assign(static_cast<size_t>(channels), 0.f);
  for (int64_t c = 0; c < channels; ++c) {
    float a = 0.f;
    for (int64_t i = 0; i < len; ++i) {
      const float x = v[c * stride_c + i * stride_i];
      if (x == 0.f) continue;  // +0 and -0
      if (!std::isfinite(x)) return false;
      if (a == 0.f) a = std::fabs(x);
      if (std::fabs(x) != a) return false;
      (*codes)[c * len + i] = x > 0 ? 1 : -1;
    }
    (*scales)[c] = a;
  }
  return true;
}

}  // namespace edgepress::passes::ternary
