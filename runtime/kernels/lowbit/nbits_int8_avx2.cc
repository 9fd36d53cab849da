// q4s8_gemm__avx2: the int8-activation MatMulNBits kernel for CPUs without VNNI
// (nbits_int8.h), and the AVX2 row quantizer every SIMD kernel uses.
//
// A tile is up to 4 rows x 8 columns (half a 16-column panel). Per step of 8 k, one 32-byte
// load holds those 8 columns' codes; `& 15` and `>> 4 & 15` give u8 operands for
// vpmaddubsw against four activation bytes broadcast per row. vpmaddubsw saturates int16,
// but here each int16 lane sums two products of at most 15 * 127, and four steps (16
// products, 30480 < 32767) are summed in int16 before vpmaddwd widens them to int32, so
// the dot product is exact and equal to the reference's.
#include <algorithm>
#include <cstring>

#include "runtime/kernels/lowbit/nbits_int8.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::nbits_detail {

namespace {

#define EP_AVX2 __attribute__((target("avx2,fma")))

inline int32_t Load32(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Rows r0..r0+R-1 x columns [8h, 8h + 8) of panel p.
template <int R>
EP_AVX2 void Tile(const Q8Rows& a, int64_t r0, const Q4Int8Packed& b, int64_t p, int h,
                  const float* bias, float* y) {
  const int64_t kb = b.k_blocks, bs = b.block_size, steps = bs / 8;
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  const int8_t* ar[R];
  __m256 acc[R];
  for (int r = 0; r < R; ++r) {
    ar[r] = a.q.data() + (r0 + r) * a.kp;
    acc[r] = _mm256_setzero_ps();
  }
  for (int64_t blk = 0; blk < kb; ++blk) {
    const uint8_t* codes = b.Codes(p, blk) + 32 * h;
    const int8_t* ab[R];
    for (int r = 0; r < R; ++r) ab[r] = ar[r] + blk * bs;
    __m256i dot[R];
    for (int r = 0; r < R; ++r) dot[r] = _mm256_setzero_si256();
    for (int64_t s0 = 0; s0 < steps; s0 += 4) {
      __m256i d16[R];
      for (int r = 0; r < R; ++r) d16[r] = _mm256_setzero_si256();
      for (int64_t s = s0; s < s0 + 4 && s < steps; ++s) {
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 64 * s));
        const __m256i lo = _mm256_and_si256(raw, mask);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
        for (int r = 0; r < R; ++r) {
          const __m256i a_lo = _mm256_set1_epi32(Load32(ab[r] + 8 * s));
          const __m256i a_hi = _mm256_set1_epi32(Load32(ab[r] + 8 * s + 4));
          d16[r] = _mm256_add_epi16(d16[r], _mm256_maddubs_epi16(lo, a_lo));
          d16[r] = _mm256_add_epi16(d16[r], _mm256_maddubs_epi16(hi, a_hi));
        }
      }
      for (int r = 0; r < R; ++r) dot[r] = _mm256_add_epi32(dot[r], _mm256_madd_epi16(d16[r], ones));
    }
    const __m256 sw = _mm256_loadu_ps(b.Scales(p, blk) + 8 * h);
    const __m256 szp = _mm256_loadu_ps(b.ScaledZeroPoints(p, blk) + 8 * h);
    for (int r = 0; r < R; ++r) {
      const __m256 sa = _mm256_set1_ps(a.scale[(r0 + r) * kb + blk]);
      const __m256 asum = _mm256_set1_ps(a.sum[(r0 + r) * kb + blk]);
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[r]), _mm256_mul_ps(sw, sa), acc[r]);
      acc[r] = _mm256_fnmadd_ps(szp, asum, acc[r]);
    }
  }
  const int64_t col0 = p * kQ4PanelCols + 8 * h;
  const int cols = static_cast<int>(std::min<int64_t>(8, b.n - col0));
  alignas(32) float bv[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  if (bias) std::memcpy(bv, bias + col0, cols * sizeof(float));
  const __m256 vb = _mm256_load_ps(bv);
  for (int r = 0; r < R; ++r) {
    float* yr = y + (r0 + r) * b.n + col0;
    const __m256 out = _mm256_add_ps(acc[r], vb);
    if (cols == 8) {
      _mm256_storeu_ps(yr, out);
    } else {
      alignas(32) float tmp[8];
      _mm256_store_ps(tmp, out);
      std::memcpy(yr, tmp, cols * sizeof(float));
    }
  }
}

using TileFn = void (*)(const Q8Rows&, int64_t, const Q4Int8Packed&, int64_t, int, const float*,
                        float*);
constexpr TileFn kTiles[] = {Tile<1>, Tile<2>, Tile<3>, Tile<4>};

}  // namespace

void Q4Int8GemmAvx2(const Q8Rows& a, int64_t r0, int64_t r1, const Q4Int8Packed& b, int64_t p0,
                    int64_t p1, const float* bias, float* y) {
  for (int64_t p = p0; p < p1; ++p)
    for (int h = 0; h < 2 && p * kQ4PanelCols + 8 * h < b.n; ++h)
      for (int64_t r = r0; r < r1;) {
        const int rows = static_cast<int>(std::min<int64_t>(4, r1 - r));
        kTiles[rows - 1](a, r, b, p, h, bias, y);
        r += rows;
      }
}

EP_AVX2 void QuantizeQ8RowsAvx2(const float* a, int64_t k, int64_t r0, int64_t r1, Q8Rows* out) {
  const int64_t bs = out->block_size, kb = out->k_blocks;
  const __m256 sign = _mm256_set1_ps(-0.f);
  const __m256 lim = _mm256_set1_ps(127.f), nlim = _mm256_set1_ps(-127.f);
  for (int64_t i = r0; i < r1; ++i) {
    const float* ar = a + i * k;
    int8_t* q = out->q.data() + i * out->kp;
    for (int64_t b = 0; b < kb; ++b) {
      const int64_t k0 = b * bs, k1 = std::min(k, k0 + bs);
      __m256 vmax = _mm256_setzero_ps();
      int64_t kk = k0;
      for (; kk + 8 <= k1; kk += 8)
        vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(ar + kk)));
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, vmax);
      float amax = 0.f;
      for (float v : lanes) amax = std::max(amax, v);
      for (; kk < k1; ++kk) amax = std::max(amax, ar[kk] < 0 ? -ar[kk] : ar[kk]);
      const float inv = amax > 0.f ? 127.f / amax : 0.f;
      const __m256 vinv = _mm256_set1_ps(inv);
      __m256i total = _mm256_setzero_si256();
      for (int64_t j = k0; j < k0 + bs; j += 8) {
        __m256 v;
        if (j + 8 <= k1) {
          v = _mm256_loadu_ps(ar + j);
        } else {
          alignas(32) float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
          for (int64_t e = j; e < k1; ++e) part[e - j] = ar[e];
          v = _mm256_load_ps(part);
        }
        // max(nlim, NaN) is nlim (maxps returns its second operand on NaN), as the
        // reference's float clamp.
        v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v, vinv), nlim), lim);
        const __m256i qi = _mm256_cvtps_epi32(v);
        total = _mm256_add_epi32(total, qi);
        const __m128i w16 =
            _mm_packs_epi32(_mm256_castsi256_si128(qi), _mm256_extracti128_si256(qi, 1));
        const __m128i w8 = _mm_packs_epi16(w16, w16);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(q + j), w8);
      }
      alignas(32) int32_t t[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(t), total);
      const int32_t sum = t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
      out->scale[i * kb + b] = amax / 127.f;
      out->sum[i * kb + b] = amax / 127.f * static_cast<float>(sum);
    }
  }
}

#undef EP_AVX2

}  // namespace edgepress::runtime::nbits_detail

#endif  // __x86_64__
