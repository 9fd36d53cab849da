// AVX2 packing of the integer GEMM's A operand into the int16-pair panels of
// qs16_gemm__avx2_6x16 (qgemm_avx2.cc; layout in qgemm.h): row-major uint8/int8 rows with
// their zero points subtracted, and DynamicQuantizeMatMul's float rows quantized straight
// into the panels. Both must equal the scalar PackPanel / quantize-then-pack exactly
// (qgemm_test.cc).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/kernels/qgemm/qgemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::qgemm_detail {

namespace {

// 8 bytes as int16 less the zero point (0 where the row is past the panel's rows).
template <bool kSigned>
__attribute__((target("avx2,fma"), always_inline)) inline __m128i Widen8(const uint8_t* p,
                                                                         __m128i zp, bool valid) {
  if (!valid) return _mm_setzero_si128();
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return _mm_sub_epi16(kSigned ? _mm_cvtepi8_epi16(b) : _mm_cvtepu8_epi16(b), zp);
}

}  // namespace

// 8 k of the 6 rows at a time: each row's 8 bytes widened and its zero point subtracted
// (int16, wrapping like the scalar cast) are 4 pairs; a 4x4 transpose of rows 0-3 and an
// interleave of rows 4-5 give the 4 groups of 6 pairs, stored as 16 + 8 bytes each.
namespace {

template <bool kSigned>
__attribute__((target("avx2,fma"))) void PackAPanelBytes(int rows, int64_t k, const uint8_t* src,
                                                         int64_t ld, const int32_t* zp,
                                                         int16_t* panel) {
  constexpr int kMr = 6;
  const uint8_t* row[kMr];
  __m128i zpv[kMr];
  for (int r = 0; r < kMr; ++r) {
    row[r] = src + std::max(0, std::min(r, rows - 1)) * ld;  // rows past `rows`: unread
    zpv[r] = _mm_set1_epi16(static_cast<int16_t>(r < rows ? zp[r] : 0));
  }
  int32_t* pairs = reinterpret_cast<int32_t*>(panel);
  int64_t kk = 0;
  for (; kk + 8 <= k; kk += 8) {
    const __m128i v0 = Widen8<kSigned>(row[0] + kk, zpv[0], rows > 0);
    const __m128i v1 = Widen8<kSigned>(row[1] + kk, zpv[1], rows > 1);
    const __m128i v2 = Widen8<kSigned>(row[2] + kk, zpv[2], rows > 2);
    const __m128i v3 = Widen8<kSigned>(row[3] + kk, zpv[3], rows > 3);
    const __m128i v4 = Widen8<kSigned>(row[4] + kk, zpv[4], rows > 4);
    const __m128i v5 = Widen8<kSigned>(row[5] + kk, zpv[5], rows > 5);
    const __m128i t0 = _mm_unpacklo_epi32(v0, v1), t1 = _mm_unpacklo_epi32(v2, v3);
    const __m128i t2 = _mm_unpackhi_epi32(v0, v1), t3 = _mm_unpackhi_epi32(v2, v3);
    const __m128i u0 = _mm_unpacklo_epi32(v4, v5), u1 = _mm_unpackhi_epi32(v4, v5);
    __m128i* d = reinterpret_cast<__m128i*>(pairs + (kk / 2) * kMr);
    _mm_storeu_si128(d, _mm_unpacklo_epi64(t0, t1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(pairs + (kk / 2) * kMr + 4), u0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(pairs + (kk / 2 + 1) * kMr),
                     _mm_unpackhi_epi64(t0, t1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(pairs + (kk / 2 + 1) * kMr + 4),
                     _mm_unpackhi_epi64(u0, u0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(pairs + (kk / 2 + 2) * kMr),
                     _mm_unpacklo_epi64(t2, t3));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(pairs + (kk / 2 + 2) * kMr + 4), u1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(pairs + (kk / 2 + 3) * kMr),
                     _mm_unpackhi_epi64(t2, t3));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(pairs + (kk / 2 + 3) * kMr + 4),
                     _mm_unpackhi_epi64(u1, u1));
  }
  for (int r = 0; r < kMr; ++r) {
    int16_t* d = panel + 2 * r;
    for (int64_t j = kk; j < k; ++j) {
      int32_t v = 0;
      if (r < rows)
        v = (kSigned ? static_cast<int32_t>(static_cast<int8_t>(row[r][j])) : row[r][j]) - zp[r];
      d[(j / 2) * 2 * kMr + (j & 1)] = static_cast<int16_t>(v);
    }
    if (k & 1) d[(k / 2) * 2 * kMr + 1] = 0;
  }
}

}  // namespace

void PackAPanelBytesAvx2(int rows, int64_t k, const uint8_t* src, int64_t ld, bool is_signed,
                         const int32_t* zp, int16_t* panel) {
  if (is_signed)
    PackAPanelBytes<true>(rows, k, src, ld, zp, panel);
  else
    PackAPanelBytes<false>(rows, k, src, ld, zp, panel);
}

// Row r's int16 values go to (kp * 6 + r) pairs: 8 floats quantized at a time (the
// operations of QuantizeSpanAvx2<uint8_t>, quantize.cc, less the zero point it adds back:
// divide, NaN -> 0, clamp to [-zp, 255 - zp], round half to even), narrowed to 4 pairs and
// stored 6 pairs apart; the k % 8 tail the same way in scalar (nearbyint: half to even).
__attribute__((target("avx2,fma"))) void QuantizePackAPanelAvx2(int rows, int64_t k,
                                                                const float* src, int64_t ld,
                                                                float scale, int32_t zp,
                                                                int16_t* panel) {
  constexpr int kMr = 6;
  const int64_t k2 = (k + 1) / 2;
  const __m256 vs = _mm256_set1_ps(scale);
  const __m256 lo = _mm256_set1_ps(static_cast<float>(-zp));
  const __m256 hi = _mm256_set1_ps(static_cast<float>(255 - zp));
  const float slo = static_cast<float>(-zp), shi = static_cast<float>(255 - zp);
  int32_t* pairs = reinterpret_cast<int32_t*>(panel);
  for (int r = 0; r < kMr; ++r) {
    if (r >= rows) {
      for (int64_t kp = 0; kp < k2; ++kp) pairs[kp * kMr + r] = 0;
      continue;
    }
    const float* x = src + r * ld;
    int64_t kk = 0;
    for (; kk + 8 <= k; kk += 8) {
      __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + kk), vs);
      v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
      v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
      const __m256i w = _mm256_packs_epi32(_mm256_cvtps_epi32(v), _mm256_setzero_si256());
      const __m128i p01 = _mm256_castsi256_si128(w), p23 = _mm256_extracti128_si256(w, 1);
      int32_t* d = pairs + (kk / 2) * kMr + r;
      d[0] = _mm_cvtsi128_si32(p01);
      d[kMr] = _mm_extract_epi32(p01, 1);
      d[2 * kMr] = _mm_cvtsi128_si32(p23);
      d[3 * kMr] = _mm_extract_epi32(p23, 1);
    }
    int16_t* d = panel + 2 * r;
    for (; kk < k; ++kk) {
      float v = x[kk] / scale;
      v = v == v ? std::min(std::max(v, slo), shi) : 0.f;
      d[(kk / 2) * 2 * kMr + (kk & 1)] = static_cast<int16_t>(std::nearbyint(v));
    }
    if (k & 1) d[(k / 2) * 2 * kMr + 1] = 0;
  }
}

}  // namespace edgepress::runtime::qgemm_detail

#endif  // __x86_64__
