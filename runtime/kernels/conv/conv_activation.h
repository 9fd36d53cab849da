// The fused activations of FusedConv that are not a clamp: HardSigmoid and HardSwish
// (MobileNetV3's; onnxruntime's FusedConv takes both). The AVX-512 conv kernels MobileNet
// runs apply them in registers before their stores, as they clamp (Post512/Post256: the
// depthwise planes, the 12x32 channel-major and the pixel-major tiles, the stem); the
// other lowerings call Apply over what they stored (AVX2 implicit GEMM per finished tile,
// direct per finished run of Y, the im2col reference over all of Y). Applied to each
// finished block rather than in registers they cost as much as the separate node
// (conv_bench-style timing, 7x7 planes: 5-15% slower).
#pragma once

#include <cstdint>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "ir/graph.h"
#include "runtime/kernel.h"
#include "runtime/kernels/gemm/gemm.h"

namespace edgepress::runtime::conv_act {

struct PostActivation {
  enum class Kind : uint8_t { kNone, kHardSigmoid, kHardSwish };
  Kind kind = Kind::kNone;
  float alpha = 0.2f, beta = 0.5f;  // HardSigmoid: clamp(alpha * x + beta, 0, 1)
  bool any() const { return kind != Kind::kNone; }
};

// FusedConv's activation: Relu/Clip as the GEMM epilogue's clamp (returned), HardSigmoid
// (activation_params alpha, beta; ONNX defaults 0.2, 0.5 when absent) and HardSwish into
// *post. Throws Unsupported for any other activation, Invalid for bad params.
GemmEpilogue ParseConvActivation(const ir::Node& node, PostActivation* post);

// y[r * ld + c] = act(y[r * ld + c]) for r < rows, c < cols, in place. Isa::kAvx2 and
// kAvx512 take the SIMD loops (the CPU must have them), anything else the scalar one.
void Apply(Isa isa, const PostActivation& a, float* y, int64_t rows, int64_t cols, int64_t ld);

// One value, as Apply's scalar loop (x / 6 + 0.5 for HardSwish, as the HardSwish node).
inline float ApplyOne(const PostActivation& a, float x) {
  if (a.kind == PostActivation::Kind::kHardSwish) {
    const float v = x / 6.f + 0.5f;
    return x * (v < 0.f ? 0.f : (v > 1.f ? 1.f : v));
  }
  const float v = a.alpha * x + a.beta;
  return v < 0.f ? 0.f : (v > 1.f ? 1.f : v);
}

#if defined(__x86_64__)
// In-register forms for the kernels' stores (a.any() must hold; HardSwish's alpha is 1/6).
__attribute__((target("avx512f"), always_inline)) inline __m512 Post512(const PostActivation& a,
                                                                       __m512 x) {
  const __m512 v = _mm512_min_ps(
      _mm512_max_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(a.alpha), _mm512_set1_ps(a.beta)),
                    _mm512_setzero_ps()),
      _mm512_set1_ps(1.f));
  return a.kind == PostActivation::Kind::kHardSwish ? _mm512_mul_ps(x, v) : v;
}
__attribute__((target("avx2,fma"), always_inline)) inline __m256 Post256(const PostActivation& a,
                                                                        __m256 x) {
  const __m256 v = _mm256_min_ps(
      _mm256_max_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(a.alpha), _mm256_set1_ps(a.beta)),
                    _mm256_setzero_ps()),
      _mm256_set1_ps(1.f));
  return a.kind == PostActivation::Kind::kHardSwish ? _mm256_mul_ps(x, v) : v;
}
#endif

}  // namespace edgepress::runtime::conv_act
