// int16-pair x86 micro-kernels of the integer GEMM for CPUs without VNNI (layout and
// exactness argument in qgemm.h; VNNI CPUs take the byte kernels of qgemm_vnni.cc), each
// compiled for its ISA with __attribute__((target)) and chosen at run time:
//   qs16_gemm__avx2_6x16        vpmaddwd + vpaddd, 12 ymm accumulators (2- and 4-row
//                               variants for the last panel, QTileNarrowAvx2 (6x8) for a
//                               last column panel of at most 8; QTileQuantAvx2: the 6x16
//                               tile requantizing its outputs per row, for convs)
//   qs16_gemm__avx512_6x32      vpmaddwd + vpaddd on zmm (AVX-512BW)
// and the AVX2 epilogue (int32 -> float -> requantized uint8/int8, 8 columns at a time;
// _mm256_cvtps_epi32 rounds half to even under the default MXCSR, like nearbyint).
// Accumulators are named variables, not arrays, so that gcc keeps them in registers.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/kernels/qgemm/qgemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::qgemm_detail {

namespace {

inline int32_t Pair(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The first kRows (2 or 4) rows of a 6-row panel, for the last panel of an M that is not a
// multiple of 6 (BERT's M = 128 leaves 2): the full tile would spend a third or two thirds
// of its multiplies on padding. Stores `rows` <= kRows rows.
template <int kRows>
__attribute__((target("avx2,fma"))) void TileFewRowsAvx2(int rows, int64_t k2, const int16_t* a,
                                                         const int16_t* b, int32_t* acc) {
  constexpr int kMr = 6, kNr = 16;
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
          c30 = c00, c31 = c00;
  for (int64_t kp = 0; kp < k2; ++kp) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
    __m256i av = _mm256_set1_epi32(Pair(a));
    c00 = _mm256_add_epi32(c00, _mm256_madd_epi16(av, b0));
    c01 = _mm256_add_epi32(c01, _mm256_madd_epi16(av, b1));
    av = _mm256_set1_epi32(Pair(a + 2));
    c10 = _mm256_add_epi32(c10, _mm256_madd_epi16(av, b0));
    c11 = _mm256_add_epi32(c11, _mm256_madd_epi16(av, b1));
    if constexpr (kRows == 4) {
      av = _mm256_set1_epi32(Pair(a + 4));
      c20 = _mm256_add_epi32(c20, _mm256_madd_epi16(av, b0));
      c21 = _mm256_add_epi32(c21, _mm256_madd_epi16(av, b1));
      av = _mm256_set1_epi32(Pair(a + 6));
      c30 = _mm256_add_epi32(c30, _mm256_madd_epi16(av, b0));
      c31 = _mm256_add_epi32(c31, _mm256_madd_epi16(av, b1));
    }
    a += 2 * kMr;
    b += 2 * kNr;
  }
  const __m256i rowsv[8] = {c00, c01, c10, c11, c20, c21, c30, c31};
  for (int r = 0; r < rows; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * kNr), rowsv[2 * r]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * kNr + 8), rowsv[2 * r + 1]);
  }
}

}  // namespace

// The 6x16 accumulation: c00..c51 (row r: cr0, cr1) = A panel x B panel over k2 pairs.
// The 12 accumulators, 2 B vectors and a broadcast take 15 of the 16 ymm registers; a
// compiler barrier between rows keeps gcc from loading later rows' broadcasts early (in
// QTileQuantAvx2 it did, spilling 6 accumulators to the stack every k pair).
#define EP_Q_ROW_BARRIER asm volatile("" ::: "memory")
#define EP_Q_AVX2_LOOP(MADD)                                                              \
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,       \
          c21 = c00, c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;    \
  for (int64_t kp = 0; kp < k2; ++kp) {                                                   \
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));          \
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));     \
    __m256i av = _mm256_set1_epi32(Pair(a));                                              \
    c00 = MADD(c00, av, b0);                                                              \
    c01 = MADD(c01, av, b1);                                                              \
    EP_Q_ROW_BARRIER;                                                                     \
    av = _mm256_set1_epi32(Pair(a + 2));                                                  \
    c10 = MADD(c10, av, b0);                                                              \
    c11 = MADD(c11, av, b1);                                                              \
    EP_Q_ROW_BARRIER;                                                                     \
    av = _mm256_set1_epi32(Pair(a + 4));                                                  \
    c20 = MADD(c20, av, b0);                                                              \
    c21 = MADD(c21, av, b1);                                                              \
    EP_Q_ROW_BARRIER;                                                                     \
    av = _mm256_set1_epi32(Pair(a + 6));                                                  \
    c30 = MADD(c30, av, b0);                                                              \
    c31 = MADD(c31, av, b1);                                                              \
    EP_Q_ROW_BARRIER;                                                                     \
    av = _mm256_set1_epi32(Pair(a + 8));                                                  \
    c40 = MADD(c40, av, b0);                                                              \
    c41 = MADD(c41, av, b1);                                                              \
    EP_Q_ROW_BARRIER;                                                                     \
    av = _mm256_set1_epi32(Pair(a + 10));                                                 \
    c50 = MADD(c50, av, b0);                                                              \
    c51 = MADD(c51, av, b1);                                                              \
    a += 2 * kMr;                                                                         \
    b += 2 * kNr;                                                                         \
  }

#define EP_Q_AVX2_BODY(MADD)                                                              \
  constexpr int kMr = 6, kNr = 16;                                                        \
  if (rows == 1) {                                                                        \
    __m256i c0 = _mm256_setzero_si256(), c1 = c0, d0 = c0, d1 = c0;                       \
    int64_t kp = 0;                                                                       \
    for (; kp + 2 <= k2; kp += 2) {                                                       \
      const __m256i a0 = _mm256_set1_epi32(Pair(a)), a1 = _mm256_set1_epi32(Pair(a + 2 * kMr)); \
      c0 = MADD(c0, a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)));         \
      c1 = MADD(c1, a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16)));    \
      d0 = MADD(d0, a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32)));    \
      d1 = MADD(d1, a1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 48)));    \
      a += 4 * kMr;                                                                       \
      b += 4 * kNr;                                                                       \
    }                                                                                     \
    if (kp < k2) {                                                                        \
      const __m256i a0 = _mm256_set1_epi32(Pair(a));                                      \
      c0 = MADD(c0, a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b)));         \
      c1 = MADD(c1, a0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16)));    \
    }                                                                                     \
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc), _mm256_add_epi32(c0, d0));       \
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + 8), _mm256_add_epi32(c1, d1));   \
    return;                                                                               \
  }                                                                                       \
  EP_Q_AVX2_LOOP(MADD)                                                                    \
  const __m256i rowsv[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51}; \
  for (int r = 0; r < rows; ++r) {                                                        \
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * kNr), rowsv[2 * r]);         \
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * kNr + 8), rowsv[2 * r + 1]); \
  }

#define EP_MADD_AVX2(c, a, b) _mm256_add_epi32(c, _mm256_madd_epi16(a, b))

__attribute__((target("avx2,fma"))) void QTileNarrowAvx2(int rows, int64_t k2, const int16_t* a,
                                                         const int16_t* b, int32_t* acc) {
  constexpr int kMr = 6, kNr = 16;
  __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  for (int64_t kp = 0; kp < k2; ++kp) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    c0 = EP_MADD_AVX2(c0, _mm256_set1_epi32(Pair(a)), b0);
    c1 = EP_MADD_AVX2(c1, _mm256_set1_epi32(Pair(a + 2)), b0);
    c2 = EP_MADD_AVX2(c2, _mm256_set1_epi32(Pair(a + 4)), b0);
    c3 = EP_MADD_AVX2(c3, _mm256_set1_epi32(Pair(a + 6)), b0);
    c4 = EP_MADD_AVX2(c4, _mm256_set1_epi32(Pair(a + 8)), b0);
    c5 = EP_MADD_AVX2(c5, _mm256_set1_epi32(Pair(a + 10)), b0);
    a += 2 * kMr;
    b += 2 * kNr;
  }
  const __m256i rowsv[6] = {c0, c1, c2, c3, c4, c5};
  for (int r = 0; r < rows; ++r)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * kNr), rowsv[r]);
}

__attribute__((target("avx2,fma"))) void QTileAvx2(int rows, int64_t k2, const int16_t* a,
                                                   const int16_t* b, int32_t* acc) {
  if (rows == 2) return TileFewRowsAvx2<2>(rows, k2, a, b, acc);
  if (rows == 3 || rows == 4) return TileFewRowsAvx2<4>(rows, k2, a, b, acc);
  EP_Q_AVX2_BODY(EP_MADD_AVX2)
}

namespace {

// One row of 16 accumulators requantized as QStoreRowAvx2 does (per-row bias and scale,
// clamp, round half to even, zero point), packed to 16 bytes.
__attribute__((target("avx2,fma"), always_inline)) inline void StoreRow16(
    __m256i c0, __m256i c1, int64_t row, const QOutput& o, uint8_t* y, __m256 lo, __m256 hi,
    __m256i zp, bool u8) {
  const __m256i rb = _mm256_set1_epi32(o.bias ? o.bias[row] : 0);
  const __m256 sc = _mm256_set1_ps(o.scale[o.per_channel_scale ? row : 0]);
  __m256 v0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(c0, rb)), sc);
  __m256 v1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(c1, rb)), sc);
  v0 = _mm256_min_ps(_mm256_max_ps(v0, lo), hi);
  v1 = _mm256_min_ps(_mm256_max_ps(v1, lo), hi);
  const __m256i q0 = _mm256_add_epi32(_mm256_cvtps_epi32(v0), zp);
  const __m256i q1 = _mm256_add_epi32(_mm256_cvtps_epi32(v1), zp);
  // In range already, so the saturating packs are plain narrowing. Dwords 0, 4, 1, 5 of
  // the packed bytes are columns 0-3, 4-7, 8-11, 12-15.
  const __m256i w = _mm256_packs_epi32(q0, q1);
  const __m256i bytes = u8 ? _mm256_packus_epi16(w, w) : _mm256_packs_epi16(w, w);
  const __m256i order = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 0, 0, 0, 0));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(y), _mm256_castsi256_si128(order));
}

}  // namespace

__attribute__((target("avx2,fma"))) void QTileQuantAvx2(int rows, int64_t k2, const int16_t* a,
                                                        const int16_t* b, int64_t row0,
                                                        int64_t col0, const QOutput& o) {
  constexpr int kMr = 6, kNr = 16;
  EP_Q_AVX2_LOOP(EP_MADD_AVX2)
  // Through an aligned buffer: with the requantization inlined after the loop, gcc kept
  // half the accumulators on the stack inside it (store-forwarded reloads are cheap here).
  // One store a register: an array of them was copied with rep movsq (28% of the tile at
  // K = 16).
  alignas(32) int32_t acc[kMr * kNr];
  __m256i* av = reinterpret_cast<__m256i*>(acc);
  _mm256_store_si256(av + 0, c00);
  _mm256_store_si256(av + 1, c01);
  _mm256_store_si256(av + 2, c10);
  _mm256_store_si256(av + 3, c11);
  _mm256_store_si256(av + 4, c20);
  _mm256_store_si256(av + 5, c21);
  _mm256_store_si256(av + 6, c30);
  _mm256_store_si256(av + 7, c31);
  _mm256_store_si256(av + 8, c40);
  _mm256_store_si256(av + 9, c41);
  _mm256_store_si256(av + 10, c50);
  _mm256_store_si256(av + 11, c51);
  const bool u8 = o.kind == QOutput::Kind::kUInt8;
  const __m256 lo = _mm256_set1_ps(o.ClampLo()), hi = _mm256_set1_ps(o.ClampHi());
  const __m256i zp = _mm256_set1_epi32(o.zero_point);
  uint8_t* y = static_cast<uint8_t*>(o.data) + row0 * o.ld + col0;
  for (int r = 0; r < rows; ++r) {
    const __m256i* v = reinterpret_cast<const __m256i*>(acc + r * kNr);
    StoreRow16(_mm256_load_si256(v), _mm256_load_si256(v + 1), row0 + r, o, y + r * o.ld, lo, hi,
               zp, u8);
  }
}


#define EP_Q_AVX512_BODY(MADD)                                                            \
  constexpr int kMr = 6, kNr = 32;                                                        \
  __m512i c00 = _mm512_setzero_si512(), c01 = c00, c10 = c00, c11 = c00, c20 = c00,       \
          c21 = c00, c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;    \
  for (int64_t kp = 0; kp < k2; ++kp) {                                                   \
    const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 32);            \
    __m512i av = _mm512_set1_epi32(Pair(a));                                              \
    c00 = MADD(c00, av, b0);                                                              \
    c01 = MADD(c01, av, b1);                                                              \
    av = _mm512_set1_epi32(Pair(a + 2));                                                  \
    c10 = MADD(c10, av, b0);                                                              \
    c11 = MADD(c11, av, b1);                                                              \
    av = _mm512_set1_epi32(Pair(a + 4));                                                  \
    c20 = MADD(c20, av, b0);                                                              \
    c21 = MADD(c21, av, b1);                                                              \
    av = _mm512_set1_epi32(Pair(a + 6));                                                  \
    c30 = MADD(c30, av, b0);                                                              \
    c31 = MADD(c31, av, b1);                                                              \
    av = _mm512_set1_epi32(Pair(a + 8));                                                  \
    c40 = MADD(c40, av, b0);                                                              \
    c41 = MADD(c41, av, b1);                                                              \
    av = _mm512_set1_epi32(Pair(a + 10));                                                 \
    c50 = MADD(c50, av, b0);                                                              \
    c51 = MADD(c51, av, b1);                                                              \
    a += 2 * kMr;                                                                         \
    b += 2 * kNr;                                                                         \
  }                                                                                       \
  const __m512i rowsv[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51}; \
  for (int r = 0; r < rows; ++r) {                                                        \
    _mm512_storeu_si512(acc + r * kNr, rowsv[2 * r]);                                     \
    _mm512_storeu_si512(acc + r * kNr + 16, rowsv[2 * r + 1]);                            \
  }

#define EP_MADD_AVX512(c, a, b) _mm512_add_epi32(c, _mm512_madd_epi16(a, b))

__attribute__((target("avx512f,avx512bw"))) void QTileAvx512(int rows, int64_t k2,
                                                             const int16_t* a,
                                                             const int16_t* b, int32_t* acc) {
  EP_Q_AVX512_BODY(EP_MADD_AVX512)
}


#undef EP_Q_AVX2_BODY
#undef EP_Q_AVX512_BODY
#undef EP_MADD_AVX2
#undef EP_MADD_AVX512

namespace {

// The float output of 8 accumulators (bias already added): clamp(a * scale + fb, lo, hi),
// the same operations in the row and the tile epilogue, so the same bits.
__attribute__((target("avx2,fma"), always_inline)) inline __m256 FloatOut8(__m256i a, __m256 scale,
                                                                           __m256 fb, __m256 lo,
                                                                           __m256 hi) {
  const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(a), scale), fb);
  return _mm256_min_ps(_mm256_max_ps(v, lo), hi);
}

}  // namespace

__attribute__((target("avx2,fma"))) void QStoreRowAvx2(const int32_t* acc, int cols,
                                                       int64_t row, int64_t col0,
                                                       const QOutput& o) {
  const int full = cols & ~7;
  if (full == 0 || o.kind == QOutput::Kind::kInt32) {
    QStoreRow(acc, cols, row, col0, o);
    return;
  }
  const bool pr = o.per_row;
  const __m256i rbias = _mm256_set1_epi32(o.bias && pr ? o.bias[row] : 0);
  const __m256 rscale =
      _mm256_set1_ps(o.scale[o.per_channel_scale && pr ? row : 0]);
  const bool col_scale = o.per_channel_scale && !pr, col_bias = o.bias && !pr;
  if (o.kind == QOutput::Kind::kFloat) {
    float* y = static_cast<float*>(o.data) + row * o.ld + col0;
    const __m256 rfb = _mm256_set1_ps(o.float_bias && pr ? o.float_bias[row] : 0.f);
    const bool col_fb = o.float_bias && !pr;
    const __m256 lo = _mm256_set1_ps(o.lo), hi = _mm256_set1_ps(o.hi);
    for (int j = 0; j < full; j += 8) {
      __m256i a = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j)),
                                   rbias);
      if (col_bias)
        a = _mm256_add_epi32(a, _mm256_loadu_si256(
                                    reinterpret_cast<const __m256i*>(o.bias + col0 + j)));
      _mm256_storeu_ps(y + j,
                       FloatOut8(a, col_scale ? _mm256_loadu_ps(o.scale + col0 + j) : rscale,
                                 col_fb ? _mm256_loadu_ps(o.float_bias + col0 + j) : rfb, lo, hi));
    }
  } else {
    const bool u8 = o.kind == QOutput::Kind::kUInt8;
    const __m256 lo = _mm256_set1_ps(o.ClampLo()), hi = _mm256_set1_ps(o.ClampHi());
    const __m256i zp = _mm256_set1_epi32(o.zero_point);
    const __m256i gather = _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0);
    uint8_t* y = static_cast<uint8_t*>(o.data) + row * o.ld + col0;
    for (int j = 0; j < full; j += 8) {
      __m256i a = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j)),
                                   rbias);
      if (col_bias)
        a = _mm256_add_epi32(a, _mm256_loadu_si256(
                                    reinterpret_cast<const __m256i*>(o.bias + col0 + j)));
      __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(a),
                               col_scale ? _mm256_loadu_ps(o.scale + col0 + j) : rscale);
      v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
      const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
      // In range already, so the saturating packs are plain narrowing.
      const __m256i w = _mm256_packs_epi32(q, q);
      const __m256i bytes = u8 ? _mm256_packus_epi16(w, w) : _mm256_packs_epi16(w, w);
      const __m256i lanes = _mm256_permutevar8x32_epi32(bytes, gather);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(y + j), _mm256_castsi256_si128(lanes));
    }
  }
  if (full < cols) QStoreRow(acc + full, cols - full, row, col0 + full, o);
}

__attribute__((target("avx2,fma"))) void QStoreTileAvx2(const int32_t* acc, int rows, int cols,
                                                        int64_t row0, int64_t col0,
                                                        const QOutput& o) {
  constexpr int kNr = 16;
  if (o.kind != QOutput::Kind::kFloat || o.per_row || cols != kNr) {
    for (int r = 0; r < rows; ++r) QStoreRowAvx2(acc + r * kNr, cols, row0 + r, col0, o);
    return;
  }
  // QStoreRowAvx2's per-column float path with its column vectors loaded once.
  const __m256i zero = _mm256_setzero_si256();
  const __m256i b0 =
      o.bias ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o.bias + col0)) : zero;
  const __m256i b1 =
      o.bias ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(o.bias + col0 + 8)) : zero;
  const __m256 s0 =
      o.per_channel_scale ? _mm256_loadu_ps(o.scale + col0) : _mm256_set1_ps(o.scale[0]);
  const __m256 s1 =
      o.per_channel_scale ? _mm256_loadu_ps(o.scale + col0 + 8) : _mm256_set1_ps(o.scale[0]);
  const __m256 f0 = o.float_bias ? _mm256_loadu_ps(o.float_bias + col0) : _mm256_setzero_ps();
  const __m256 f1 = o.float_bias ? _mm256_loadu_ps(o.float_bias + col0 + 8) : _mm256_setzero_ps();
  const __m256 lo = _mm256_set1_ps(o.lo), hi = _mm256_set1_ps(o.hi);
  for (int r = 0; r < rows; ++r) {
    const int32_t* a = acc + r * kNr;
    float* y = static_cast<float*>(o.data) + (row0 + r) * o.ld + col0;
    const __m256i a0 =
        _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a)), b0);
    const __m256i a1 =
        _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 8)), b1);
    _mm256_storeu_ps(y, FloatOut8(a0, s0, f0, lo, hi));
    _mm256_storeu_ps(y + 8, FloatOut8(a1, s1, f1, lo, hi));
  }
}

}  // namespace edgepress::runtime::qgemm_detail

#endif  // __x86_64__
