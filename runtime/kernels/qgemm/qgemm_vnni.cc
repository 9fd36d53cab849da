// vpdpbusd micro-kernels of the integer GEMM on the uint8 x int8 byte layout (qgemm.h):
//   qu8s8_gemm__avx512vnni_8x32   AVX-512 VNNI, 8 rows x 2 zmm (16 accumulators)
//   qu8s8_gemm__avx512vnni_16x32  the same on AMX's row-major A panels (kAmx, small m)
//   qu8s8_gemm__avxvnni_6x16      AVX-VNNI (VEX, 256-bit), 6 rows x 2 ymm
// Each step broadcasts 4 bytes (4 consecutive k) of one A row and multiplies them with
// 4 bytes per B column: vpdpbusd adds the four uint8 x int8 products to the int32 lane
// with no intermediate saturation (unlike vpmaddubsw), so the dot is exact. The
// zero-point correction (QCorr) is applied to the accumulators before they are stored.
// The row count is a template parameter so that a tile with few valid rows (M = 1..7,
// transformer decode, the last panel) does only its rows' work; accumulator arrays are
// indexed with constants after unrolling, so gcc keeps them in registers.
#include <cstring>

#include "runtime/kernels/qgemm/qgemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::qgemm_detail {

namespace {

inline int32_t Load32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// sa - k * za with wrapping int32 arithmetic.
inline int32_t AdjustedRowSum(const QCorr& c, int r) {
  return static_cast<int32_t>(static_cast<uint32_t>(c.sa[r]) -
                              static_cast<uint32_t>(c.k) * static_cast<uint32_t>(c.za[r]));
}

// R rows of A starting at `a`; row r's group g is at a + g * group_stride + r * row_stride
// inside a block of 16 groups, blocks `block_stride` apart (VNNI layout: one block).
template <int R, bool kAmxA>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void Rows512(int64_t k4, const uint8_t* a,
                                                                   const int8_t* b,
                                                                   const QCorr& q,
                                                                   int32_t* acc) {
  __m512i c0[R], c1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_si512();
  if (!kAmxA) {
    for (int64_t g = 0; g < k4; ++g) {
      const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m512i av = _mm512_set1_epi32(Load32(a + 4 * r));
        c0[r] = _mm512_dpbusd_epi32(c0[r], av, b0);
        c1[r] = _mm512_dpbusd_epi32(c1[r], av, b1);
      }
      a += 4 * 8;
      b += 4 * 32;
    }
  } else {
    // AMX A panel: per block of 16 groups, 16 rows x 64 bytes.
    for (int64_t g = 0; g < k4; ++g) {
      const uint8_t* ag = a + (g >> 4) * 1024 + (g & 15) * 4;
      const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m512i av = _mm512_set1_epi32(Load32(ag + 64 * r));
        c0[r] = _mm512_dpbusd_epi32(c0[r], av, b0);
        c1[r] = _mm512_dpbusd_epi32(c1[r], av, b1);
      }
      b += 4 * 32;
    }
  }
  const __m512i zb0 = _mm512_loadu_si512(q.zb), zb1 = _mm512_loadu_si512(q.zb + 16);
  const __m512i sb0 = _mm512_loadu_si512(q.sb), sb1 = _mm512_loadu_si512(q.sb + 16);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512i za = _mm512_set1_epi32(q.za[r]), ta = _mm512_set1_epi32(AdjustedRowSum(q, r));
    __m512i v0 = _mm512_sub_epi32(c0[r], _mm512_mullo_epi32(za, sb0));
    __m512i v1 = _mm512_sub_epi32(c1[r], _mm512_mullo_epi32(za, sb1));
    v0 = _mm512_sub_epi32(v0, _mm512_mullo_epi32(ta, zb0));
    v1 = _mm512_sub_epi32(v1, _mm512_mullo_epi32(ta, zb1));
    _mm512_storeu_si512(acc + r * 32, v0);
    _mm512_storeu_si512(acc + r * 32 + 16, v1);
  }
}

template <bool kAmxA>
void Dispatch512(int rows, int64_t k4, const uint8_t* a, const int8_t* b, const QCorr& q,
                 int32_t* acc) {
  switch (rows) {
    case 1: return Rows512<1, kAmxA>(k4, a, b, q, acc);
    case 2: return Rows512<2, kAmxA>(k4, a, b, q, acc);
    case 3: return Rows512<3, kAmxA>(k4, a, b, q, acc);
    case 4: return Rows512<4, kAmxA>(k4, a, b, q, acc);
    case 5: return Rows512<5, kAmxA>(k4, a, b, q, acc);
    case 6: return Rows512<6, kAmxA>(k4, a, b, q, acc);
    case 7: return Rows512<7, kAmxA>(k4, a, b, q, acc);
    default: return Rows512<8, kAmxA>(k4, a, b, q, acc);
  }
}

template <int R>
__attribute__((target("avx2,avxvnni"))) void Rows256(int64_t k4, const uint8_t* a,
                                                     const int8_t* b, const QCorr& q,
                                                     int32_t* acc) {
  __m256i c0[R], c1[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm256_setzero_si256();
  for (int64_t g = 0; g < k4; ++g) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256i av = _mm256_set1_epi32(Load32(a + 4 * r));
      c0[r] = _mm256_dpbusd_avx_epi32(c0[r], av, b0);
      c1[r] = _mm256_dpbusd_avx_epi32(c1[r], av, b1);
    }
    a += 4 * 6;
    b += 4 * 16;
  }
  const __m256i zb0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q.zb));
  const __m256i zb1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q.zb + 8));
  const __m256i sb0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q.sb));
  const __m256i sb1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q.sb + 8));
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    const __m256i za = _mm256_set1_epi32(q.za[r]), ta = _mm256_set1_epi32(AdjustedRowSum(q, r));
    __m256i v0 = _mm256_sub_epi32(c0[r], _mm256_mullo_epi32(za, sb0));
    __m256i v1 = _mm256_sub_epi32(c1[r], _mm256_mullo_epi32(za, sb1));
    v0 = _mm256_sub_epi32(v0, _mm256_mullo_epi32(ta, zb0));
    v1 = _mm256_sub_epi32(v1, _mm256_mullo_epi32(ta, zb1));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * 16), v0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * 16 + 8), v1);
  }
}

}  // namespace

void QByteTileAvx512Vnni(int rows, int64_t k4, const uint8_t* a, const int8_t* b,
                         const QCorr& corr, int32_t* acc) {
  Dispatch512<false>(rows, k4, a, b, corr, acc);
}

void QByteTileAvx512VnniAmxA(int rows, int64_t k4, const uint8_t* a, const int8_t* b,
                             const QCorr& corr, int32_t* acc) {
  Dispatch512<true>(rows < 8 ? rows : 8, k4, a, b, corr, acc);
  if (rows > 8) {
    const QCorr lower{corr.za + 8, corr.sa + 8, corr.zb, corr.sb, corr.k};
    Dispatch512<true>(rows - 8, k4, a + 8 * 64, b, lower, acc + 8 * 32);
  }
}

void QByteTileAvxVnni(int rows, int64_t k4, const uint8_t* a, const int8_t* b,
                      const QCorr& corr, int32_t* acc) {
  switch (rows) {
    case 1: return Rows256<1>(k4, a, b, corr, acc);
    case 2: return Rows256<2>(k4, a, b, corr, acc);
    case 3: return Rows256<3>(k4, a, b, corr, acc);
    case 4: return Rows256<4>(k4, a, b, corr, acc);
    case 5: return Rows256<5>(k4, a, b, corr, acc);
    default: return Rows256<6>(k4, a, b, corr, acc);
  }
}

__attribute__((target("avx512f"))) void QByteCorrectAvx512(int rows, int nr, const QCorr& q,
                                                            int32_t* acc) {
  for (int r = 0; r < rows; ++r) {
    const __m512i za = _mm512_set1_epi32(q.za[r]), ta = _mm512_set1_epi32(AdjustedRowSum(q, r));
    for (int j = 0; j < nr; j += 16) {
      __m512i v = _mm512_loadu_si512(acc + r * nr + j);
      v = _mm512_sub_epi32(v, _mm512_mullo_epi32(za, _mm512_loadu_si512(q.sb + j)));
      v = _mm512_sub_epi32(v, _mm512_mullo_epi32(ta, _mm512_loadu_si512(q.zb + j)));
      _mm512_storeu_si512(acc + r * nr + j, v);
    }
  }
}

}  // namespace edgepress::runtime::qgemm_detail

#endif  // __x86_64__
