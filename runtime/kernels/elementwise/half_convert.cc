#include "runtime/kernels/elementwise/half_convert.h"

#include "ir/tensor.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime {

namespace {

#if defined(__x86_64__)
__attribute__((target("avx2,f16c"))) void HalfToFloatAvx2(const uint16_t* src, float* dst,
                                                          int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 8));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(a));
    _mm256_storeu_ps(dst + i + 8, _mm256_cvtph_ps(b));
  }
  for (; i < n; ++i) dst[i] = ir::HalfToFloat(src[i]);
}

__attribute__((target("avx2"))) void BFloat16ToFloatAvx2(const uint16_t* src, float* dst,
                                                         int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    // Interleaving a zero word below each bf16 word is the shift by 16; unpack works per
    // 128-bit lane, so lanes hold elements 0-3, 8-11 (lo) and 4-7, 12-15 (hi).
    const __m256i lo = _mm256_unpacklo_epi16(_mm256_setzero_si256(), v);
    const __m256i hi = _mm256_unpackhi_epi16(_mm256_setzero_si256(), v);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i + 8),
                        _mm256_permute2x128_si256(lo, hi, 0x31));
  }
  for (; i < n; ++i) dst[i] = ir::BFloat16ToFloat(src[i]);
}
#endif

}  // namespace

Isa HalfConvertIsa() {
  static const Isa isa = [] {
    const CpuFeatures& cpu = GetCpuFeatures();
    return !ForceScalar() && cpu.avx2 && cpu.f16c ? Isa::kAvx2 : Isa::kScalar;
  }();
  return isa;
}

void HalfToFloatArray(Isa isa, const uint16_t* src, float* dst, int64_t n) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx2) {
    HalfToFloatAvx2(src, dst, n);
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = ir::HalfToFloat(src[i]);
}

void BFloat16ToFloatArray(Isa isa, const uint16_t* src, float* dst, int64_t n) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx2) {
    BFloat16ToFloatAvx2(src, dst, n);
    return;
  }
#endif
  for (int64_t i = 0; i < n; ++i) dst[i] = ir::BFloat16ToFloat(src[i]);
}

}  // namespace edgepress::runtime
