// Ternary weights, shared by the pack-ternary pass and distillation's fake quantization
// (distill/fake_quant.h), so "the export finds what training wrote" holds by construction.
#pragma once

#include <cstdint>
#include <vector>

namespace edgepress::passes::ternary {

// TWN per channel (Li & Liu 2016, as TernaryBERT uses): threshold d = 0.7 * mean|w|,
// a = mean of |w| over |w| > d, w <- sign(w) * a where |w| > d, else 0. Channel c holds the
// values v[c * stride_c + i * stride_i], i < len. Exact zeros stay zero.
void TernarizeTwn(float* v, int64_t channels, int64_t len, int64_t stride_c, int64_t stride_i);

// When every channel of `v` (laid out as above) holds only {-a, 0, +a} for one a >= 0 per
// channel (bit-exact magnitudes), fills `codes` ([channels][len], -1/0/+1) and `scales`
// ([channels], a; 0 for an all-zero channel) and returns true; false otherwise (also for
// non-finite values).
bool SplitTernary(const float* v, int64_t channels, int64_t len, int64_t stride_c, int64_t stride_i,
                  std::vector<int8_t>* codes, std::vector<float>* scales);

}  // namespace edgepress::passes::ternary
