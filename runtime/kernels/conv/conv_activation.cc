#include "runtime/kernels/conv/conv_activation.h"

#include <algorithm>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "ir/error.h"
#include "runtime/kernels/conv/simd8_avx2.h"
#include "runtime/kernels/gemm/gemm_op_util.h"

namespace edgepress::runtime::conv_act {

namespace {

using Kind = PostActivation::Kind;

// Written as the elementwise kernels' HardSigmoid/HardSwish (x / 6 + 0.5 for HardSwish),
// so the fused node rounds like the unfused pair up to the FMA of the SIMD loops.
void RowRef(const PostActivation& a, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = y[i];
    if (a.kind == Kind::kHardSwish) {
      const float v = std::min(std::max(x / 6.f + 0.5f, 0.f), 1.f);
      y[i] = x * v;
    } else {
      y[i] = std::min(std::max(a.alpha * x + a.beta, 0.f), 1.f);
    }
  }
}

#if defined(__x86_64__)
// The rows take the kernels' in-register forms (conv_activation.h), so a fused store and
// this pass over Y compute the same values.
__attribute__((target("avx2,fma"))) void RowAvx2(const PostActivation& a, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, Post256(a, _mm256_loadu_ps(y + i)));
  if (i < n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - i)), idx);
    StoreFirst(y + i, Post256(a, _mm256_maskload_ps(y + i, mask)), n - i);  // no vmaskmovps store
  }
}

// gcc 12 reports -Wmaybe-uninitialized inside unmasked AVX-512 intrinsics (their merge
// source is _mm512_undefined_ps()): a false positive, as in depthwise_avx512.cc.
#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx512f"))) void RowAvx512(const PostActivation& a, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, Post512(a, _mm512_loadu_ps(y + i)));
  if (i < n) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, mask, Post512(a, _mm512_maskz_loadu_ps(mask, y + i)));
  }
}
#pragma GCC diagnostic pop
#endif

}  // namespace

GemmEpilogue ParseConvActivation(const ir::Node& node, PostActivation* post) {
  *post = PostActivation{};
  const std::string act = node.attr_string("activation", "");
  if (act == "HardSwish") {
    post->kind = Kind::kHardSwish;
    post->alpha = 1.f / 6.f;
    post->beta = 0.5f;
    return GemmEpilogue{};
  }
  if (act == "HardSigmoid") {
    const std::vector<float> p = node.attr_floats("activation_params", {});
    if (!p.empty() && p.size() != 2)
      ThrowInvalid(node.describe() + ": activation HardSigmoid needs 2 activation_params "
                   "(alpha, beta), got " + std::to_string(p.size()));
    post->kind = Kind::kHardSigmoid;
    if (p.size() == 2) {
      post->alpha = p[0];
      post->beta = p[1];
    }
    return GemmEpilogue{};
  }
  return gemm_util::ParseActivation(node);
}

void Apply(Isa isa, const PostActivation& a, float* y, int64_t rows, int64_t cols, int64_t ld) {
  if (!a.any() || rows <= 0 || cols <= 0) return;
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * ld;
#if defined(__x86_64__)
    if (isa == Isa::kAvx512) {
      RowAvx512(a, yr, cols);
      continue;
    }
    if (isa == Isa::kAvx2) {
      RowAvx2(a, yr, cols);
      continue;
    }
#endif
    RowRef(a, yr, cols);
  }
}

}  // namespace edgepress::runtime::conv_act
