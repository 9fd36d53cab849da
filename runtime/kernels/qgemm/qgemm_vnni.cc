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
#include <algorithm>
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

// The VNNI dot loop of the 8 x 32 tiles: c0/c1[r] += row r of A (4 bytes per group,
// 8 rows per 32-byte step of the packed panel, broadcast) times B's two 16-column halves
// (128 bytes per group), over k4 groups. kHalf: B's second half is not computed (c1
// untouched). Always inlined, so the accumulators stay in registers.
template <int R, bool kHalf = false>
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) inline void DotRows(
    int64_t k4, const uint8_t* a, const int8_t* b, __m512i* c0, __m512i* c1) {
  for (int64_t g = 0; g < k4; ++g) {
    const __m512i b0 = _mm512_loadu_si512(b);
    const __m512i b1 = kHalf ? b0 : _mm512_loadu_si512(b + 64);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i av = _mm512_set1_epi32(Load32(a + 4 * r));
      c0[r] = _mm512_dpbusd_epi32(c0[r], av, b0);
      if (!kHalf) c1[r] = _mm512_dpbusd_epi32(c1[r], av, b1);
    }
    a += 4 * 8;
    b += 4 * 32;
  }
}

// R rows of A starting at `a`; row r's group g is at a + g * group_stride + r * row_stride
// inside a block of 16 groups, blocks `block_stride` apart (VNNI layout: one block).
// The AVX-512 tiles store raw dots: the store (QStoreTileAvx512) applies the correction
// in the same pass as the requantization, once per tile instead of per row and register.
template <int R, bool kAmxA>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void Rows512(int64_t k4, const uint8_t* a,
                                                                   const int8_t* b,
                                                                   const QCorr& q,
                                                                   int32_t* acc) {
  __m512i c0[R], c1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_si512();
  if (!kAmxA) {
    DotRows<R>(k4, a, b, c0, c1);
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
  (void)q;
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    _mm512_storeu_si512(acc + r * 32, c0[r]);
    _mm512_storeu_si512(acc + r * 32 + 16, c1[r]);
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
  // Only the groups holding k < K: AMX's padding groups add 0 (and conv's B panels leave
  // them unwritten).
  k4 = std::min<int64_t>(k4, (corr.k + 3) / 4);
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

// rows 4g..4g+3 (32 bytes each, `stride` apart, xor `flip`) -> 128 bytes of 32 lanes x
// 4 k; 256-bit unpacks work per 128-bit lane, so the last step swaps lane halves back into
// pixel order. Column sums of int8 values via maddubs (1 x s8, no saturation at 2 x 128)
// and madd with 1s.
__attribute__((target("avx2"))) void InterleaveRows32(int64_t k, int64_t k4, const int8_t* rows,
                                                      int64_t stride, uint8_t flip,
                                                      int8_t* panel, int32_t* sums) {
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  const __m256i vflip = _mm256_set1_epi8(static_cast<char>(flip));
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t g = 0; g < k4; ++g) {
    __m256i r[4];
    for (int b = 0; b < 4; ++b) {
      const int64_t kk = 4 * g + b;
      r[b] = kk < k ? _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(
                                           rows + kk * stride)),
                                       vflip)
                    : zero;
    }
    const __m256i t0 = _mm256_unpacklo_epi8(r[0], r[1]), t1 = _mm256_unpackhi_epi8(r[0], r[1]);
    const __m256i t2 = _mm256_unpacklo_epi8(r[2], r[3]), t3 = _mm256_unpackhi_epi8(r[2], r[3]);
    const __m256i u0 = _mm256_unpacklo_epi16(t0, t2), u1 = _mm256_unpackhi_epi16(t0, t2);
    const __m256i u2 = _mm256_unpacklo_epi16(t1, t3), u3 = _mm256_unpackhi_epi16(t1, t3);
    const __m256i o0 = _mm256_permute2x128_si256(u0, u1, 0x20);  // pixels 0-7
    const __m256i o1 = _mm256_permute2x128_si256(u2, u3, 0x20);  // 8-15
    const __m256i o2 = _mm256_permute2x128_si256(u0, u1, 0x31);  // 16-23
    const __m256i o3 = _mm256_permute2x128_si256(u2, u3, 0x31);  // 24-31
    __m256i* d = reinterpret_cast<__m256i*>(panel + g * 128);
    _mm256_storeu_si256(d, o0);
    _mm256_storeu_si256(d + 1, o1);
    _mm256_storeu_si256(d + 2, o2);
    _mm256_storeu_si256(d + 3, o3);
    s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, o0), ones16));
    s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, o1), ones16));
    s2 = _mm256_add_epi32(s2, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, o2), ones16));
    s3 = _mm256_add_epi32(s3, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, o3), ones16));
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums), s0);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums + 8), s1);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums + 16), s2);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums + 24), s3);
}

// gcc 12's false -Wmaybe-uninitialized inside unmasked AVX-512 intrinsics (see below).
#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// One A panel of the 8x32 layout from 8 rows of 16 k (row r from load(r, kk, mask): 16
// bytes, 0 past K and in rows past the matrix) at a time: rows r and r + 4 share a ymm,
// two rounds of unpacks (dwords, then qwords) turn the 8 rows x 4 groups into 4 groups x
// 8 rows, which are the panel's next 4 x 32 bytes. Row sums of the uint8 bytes with
// vpdpbusd against ones (4 bytes per row and group, added exactly into the row's lane).
// The scalar PackPanel (qgemm_bytes.cc) copied 4 bytes at a time after a separate sum
// loop: a fifth of BERT's dynamic-int8 GEMM time at M = 128.
template <class LoadRow>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) inline void TransposePanel8(
    int64_t k, const LoadRow& load, uint8_t* panel, int32_t* sums) {
  const __m256i ones = _mm256_set1_epi8(1);
  __m256i s = _mm256_setzero_si256();
  const int64_t k4 = (k + 3) / 4;
  for (int64_t kk = 0; kk < k; kk += 16) {
    const __mmask16 m =
        k - kk >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (k - kk)) - 1);
    __m256i y[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r)
      y[r] = _mm256_inserti128_si256(_mm256_castsi128_si256(load(r, kk, m)), load(r + 4, kk, m),
                                     1);
    const __m256i t0 = _mm256_unpacklo_epi32(y[0], y[1]), t1 = _mm256_unpackhi_epi32(y[0], y[1]);
    const __m256i t2 = _mm256_unpacklo_epi32(y[2], y[3]), t3 = _mm256_unpackhi_epi32(y[2], y[3]);
    const __m256i g[4] = {_mm256_unpacklo_epi64(t0, t2), _mm256_unpackhi_epi64(t0, t2),
                          _mm256_unpacklo_epi64(t1, t3), _mm256_unpackhi_epi64(t1, t3)};
    const int64_t groups = std::min<int64_t>(4, k4 - kk / 4);
    uint8_t* d = panel + kk * 8;  // 32 bytes per group of 4 k
    for (int j = 0; j < groups; ++j) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 32 * j), g[j]);
      s = _mm256_dpbusd_epi32(s, g[j], ones);
    }
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums), s);
}

// Row loaders for TransposePanel8 (structs, not lambdas: a lambda's body does not take
// the enclosing function's target attribute, so the intrinsics would not inline).
struct ByteRows {
  int rows;
  const uint8_t* src;
  int64_t ld;
  __m128i flip;
  __attribute__((target("avx512f,avx512bw,avx512vl"))) __m128i operator()(int r, int64_t kk,
                                                                            __mmask16 m) const {
    if (r >= rows) return _mm_setzero_si128();
    const __m128i v = _mm_maskz_loadu_epi8(m, src + r * ld + kk);
    return _mm_maskz_mov_epi8(m, _mm_xor_si128(v, flip));
  }
};

// The bytes of QuantizeSpanAvx2<uint8_t> (quantize.cc) 16 at a time: divide, NaN -> 0,
// clamp to [-zp, 255 - zp], round half to even, add zp.
struct QuantizedRows {
  int rows;
  const float* src;
  int64_t ld;
  __m512 scale, lo, hi;
  __m512i zp;
  __attribute__((target("avx512f,avx512bw,avx512vl"))) __m128i operator()(int r, int64_t kk,
                                                                            __mmask16 m) const {
    if (r >= rows) return _mm_setzero_si128();
    __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(m, src + r * ld + kk), scale);
    v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);
    return _mm_maskz_mov_epi8(m, _mm512_cvtepi32_epi8(q));
  }
};

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void PackAPanelVnni(
    int rows, int64_t k, const uint8_t* src, int64_t ld, uint8_t flip, uint8_t* panel,
    int32_t* sums) {
  const ByteRows load{rows, src, ld, _mm_set1_epi8(static_cast<char>(flip))};
  TransposePanel8(k, load, panel, sums);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void QuantizePackAPanelVnni(
    int rows, int64_t k, const float* src, int64_t ld, float scale, int32_t zp, uint8_t* panel,
    int32_t* sums) {
  const QuantizedRows load{rows,
                           src,
                           ld,
                           _mm512_set1_ps(scale),
                           _mm512_set1_ps(static_cast<float>(-zp)),
                           _mm512_set1_ps(static_cast<float>(255 - zp)),
                           _mm512_set1_epi32(zp)};
  TransposePanel8(k, load, panel, sums);
}

#pragma GCC diagnostic pop

// y[0..16) under mask m = saturate(round(a * sc) + zp), the bounds lo/hi relative to zp.
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void QuantStore16(
    __m512i a, __m512 sc, __m512 lo, __m512 hi, __m512i zp, __mmask16 m, uint8_t* y) {
  __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(a), sc);
  v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
  _mm_mask_storeu_epi8(y, m, _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), zp)));
}

// gcc 12 reports -Wmaybe-uninitialized inside the unmasked AVX-512 intrinsics here (they
// pass _mm512_undefined_*() as the merge source), and -Wuninitialized where the fused 1-row
// tile inlines them: false positives, silenced locally.
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// Per row r of a tile, the int32 vectors (for columns 0-15 and 16-31) the raw dots need
// added: bias - za[r] * sb[j] - zb[j] * (sa[r] - k * za[r]) with row_const's share.
struct RowCorrection {
  __m512i sb0, sb1, zb0, zb1, ct0, ct1;
  __attribute__((target("avx512f"))) explicit RowCorrection(const QCorr& q)
      : sb0(_mm512_loadu_si512(q.sb)),
        sb1(_mm512_loadu_si512(q.sb + 16)),
        zb0(_mm512_loadu_si512(q.zb)),
        zb1(_mm512_loadu_si512(q.zb + 16)),
        ct0(_mm512_mullo_epi32(_mm512_set1_epi32(q.za[0]), sb0)),
        ct1(_mm512_mullo_epi32(_mm512_set1_epi32(q.za[0]), sb1)) {}
  __attribute__((target("avx512f"))) void Of(const QCorr& q, int r, __m512i* k0,
                                             __m512i* k1) const {
    const __m512i rcv = _mm512_set1_epi32(q.row_const[r]);
    if (q.za_one) {
      *k0 = _mm512_sub_epi32(rcv, ct0);
      *k1 = _mm512_sub_epi32(rcv, ct1);
    } else {
      const __m512i za = _mm512_set1_epi32(q.za[r]);
      *k0 = _mm512_sub_epi32(rcv, _mm512_mullo_epi32(za, sb0));
      *k1 = _mm512_sub_epi32(rcv, _mm512_mullo_epi32(za, sb1));
    }
    if (!q.zb_one) {
      const __m512i ta = _mm512_set1_epi32(AdjustedRowSum(q, r));
      *k0 = _mm512_sub_epi32(*k0, _mm512_mullo_epi32(ta, zb0));
      *k1 = _mm512_sub_epi32(*k1, _mm512_mullo_epi32(ta, zb1));
    }
  }
};

// QStoreQuantTileAvx512 where q.pack_store holds (|round(acc * scale)| < 2^30, per-row
// channels): no float clamp, since the conversion cannot overflow; the int32 results of
// two rows are narrowed by saturating packs (int32 -> int16 -> uint8/int8), the zero
// point added and the fused clamp applied on int16 in between, then put back in column
// order with one dword permute: row r's 32 bytes in the low half, row r + 1's in the high.
// Saturating before the zero point is added gives the same bytes: a value beyond int16
// ends beyond the output range either way. Half the vector operations of the general
// store, which dominated mobilenet's K = 16..32 pointwise convs.
// The settings of the packed stores that do not change within a tile.
struct PackedStore {
  __m512i lo8, hi8, zp16;
  bool clamp, u8;
  __mmask32 mask;  // the tile's columns
  __attribute__((target("avx512f,avx512bw"))) PackedStore(const QOutput& o, int cols) {
    u8 = o.kind == QOutput::Kind::kUInt8;
    const int32_t qmin = u8 ? 0 : -128, qmax = u8 ? 255 : 127;
    const int32_t lo = std::max(qmin, o.q_lo), hi = std::min(qmax, o.q_hi);
    lo8 = _mm512_set1_epi8(static_cast<char>(lo));
    hi8 = _mm512_set1_epi8(static_cast<char>(hi));
    zp16 = _mm512_set1_epi16(static_cast<int16_t>(o.zero_point));
    clamp = lo != qmin || hi != qmax;
    mask = cols >= 32 ? ~__mmask32(0) : (__mmask32(1) << cols) - 1;
  }
};

// One row's 32 corrected accumulators (v0: columns 0-15, v1: 16-31) requantized as int16,
// saturated, with the zero point (lanes interleaved as packs leaves them); PackBytes clamps.
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512i PackedRow16(
    __m512i v0, __m512i v1, __m512 sc, const PackedStore& ps) {
  const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(v0), sc));
  const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(v1), sc));
  return _mm512_adds_epi16(_mm512_packs_epi32(i0, i1), ps.zp16);
}

// PackedRow16 with a scale per column (v0's 16 columns scaled by sc0, v1's by sc1).
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512i PackedRow16Cols(
    __m512i v0, __m512i v1, __m512 sc0, __m512 sc1, const PackedStore& ps) {
  const __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(v0), sc0));
  const __m512i i1 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(v1), sc1));
  return _mm512_adds_epi16(_mm512_packs_epi32(i0, i1), ps.zp16);
}

// Two rows of PackedRow16 narrowed to bytes (saturating) and clamped to the fused
// activation's bounds. Clamping the bytes gives the same values as clamping the int16
// before the narrowing (the bounds lie inside the byte range and saturation is monotonic),
// with one vector a pair of rows instead of two a row.
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline __m512i PackBytes(
    __m512i p0, __m512i p1, const PackedStore& ps) {
  if (ps.u8) {
    const __m512i b = _mm512_packus_epi16(p0, p1);
    return ps.clamp ? _mm512_min_epu8(_mm512_max_epu8(b, ps.lo8), ps.hi8) : b;
  }
  const __m512i b = _mm512_packs_epi16(p0, p1);
  return ps.clamp ? _mm512_min_epi8(_mm512_max_epi8(b, ps.lo8), ps.hi8) : b;
}

// Narrows rows r (p0) and r + 1 (p1, stored when `second`) to bytes at y and y + ld. Dword
// d of the packed pair holds 4 columns of one row (packs work per 128-bit lane), so one
// permute puts row r's 32 bytes in the low half and row r + 1's in the high one.
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void StorePackedPair(
    __m512i p0, __m512i p1, bool second, const PackedStore& ps, uint8_t* y, int64_t ld) {
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m512i b = _mm512_permutexvar_epi32(order, PackBytes(p0, p1, ps));
  const __m256i b0 = _mm512_castsi512_si256(b), b1 = _mm512_extracti64x4_epi64(b, 1);
  if (ps.mask == ~__mmask32(0)) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), b0);
    if (second) _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + ld), b1);
  } else {
    _mm256_mask_storeu_epi8(y, ps.mask, b0);
    if (second) _mm256_mask_storeu_epi8(y + ld, ps.mask, b1);
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) void QStoreQuantTilePacked(
    const int32_t* acc, int rows, int cols, int64_t row0, int64_t col0, const QOutput& o,
    const QCorr& q) {
  const PackedStore ps(o, cols);
  const RowCorrection rc(q);
  const int step = o.per_channel_scale ? 1 : 0;
  const float* scale = o.scale + row0 * step;
  // Locals: the byte stores below may alias `o` as far as the compiler knows.
  const int64_t ld = o.ld;
  uint8_t* y = static_cast<uint8_t*>(o.data) + row0 * ld + col0;
  for (int r = 0; r < rows; r += 2, y += 2 * ld) {
    const int r1 = r + 1 < rows ? r + 1 : r;
    __m512i k[4];
    rc.Of(q, r, &k[0], &k[1]);
    rc.Of(q, r1, &k[2], &k[3]);
    const __m512i p0 = PackedRow16(_mm512_add_epi32(_mm512_loadu_si512(acc + r * 32), k[0]),
                                   _mm512_add_epi32(_mm512_loadu_si512(acc + r * 32 + 16), k[1]),
                                   _mm512_set1_ps(scale[r * step]), ps);
    const __m512i p1 = PackedRow16(_mm512_add_epi32(_mm512_loadu_si512(acc + r1 * 32), k[2]),
                                   _mm512_add_epi32(_mm512_loadu_si512(acc + r1 * 32 + 16), k[3]),
                                   _mm512_set1_ps(scale[r1 * step]), ps);
    StorePackedPair(p0, p1, r1 != r, ps, y, ld);
  }
}

// The 8x32 VNNI tile and QStoreQuantTilePacked in one, for products with one za and one zb
// (convs): the accumulators start from the correction (row_const[r] - za * sb[j]) instead
// of 0 and are requantized straight from the registers, without the round trip through
// `acc` or the per-row correction vectors of the separate store. kHalf: at most 16 columns
// (the last panel of a 14x14 or 28x28 conv, 4 or 16 of 32 pixels), only their half of the
// dot products; the other half's registers repeat it and are masked off at the store.
template <int R, bool kHalf>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void RowsQuant512(
    int64_t k4, const uint8_t* a, const int8_t* b, const QCorr& q, const float* scale,
    int scale_step, const PackedStore& ps, uint8_t* y, int64_t ld) {
  const __m512i za = _mm512_set1_epi32(q.za[0]);
  const __m512i ct0 = _mm512_mullo_epi32(za, _mm512_loadu_si512(q.sb));
  const __m512i ct1 = _mm512_mullo_epi32(za, _mm512_loadu_si512(q.sb + 16));
  __m512i c0[R], c1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512i rcv = _mm512_set1_epi32(q.row_const[r]);
    c0[r] = _mm512_sub_epi32(rcv, ct0);
    c1[r] = _mm512_sub_epi32(rcv, ct1);
  }
  DotRows<R, kHalf>(k4, a, b, c0, c1);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    if (kHalf) c1[r] = c0[r];
#pragma GCC unroll 4
  for (int r = 0; r < R; r += 2) {
    const int r1 = r + 1 < R ? r + 1 : r;
    const __m512i p0 = PackedRow16(c0[r], c1[r], _mm512_set1_ps(scale[r * scale_step]), ps);
    const __m512i p1 = r1 != r ? PackedRow16(c0[r1], c1[r1],
                                             _mm512_set1_ps(scale[r1 * scale_step]), ps)
                               : p0;
    StorePackedPair(p0, p1, r1 != r, ps, y + r * ld, ld);
  }
}

template <bool kHalf>
void RowsQuantDispatch(int rows, int64_t k4, const uint8_t* a, const int8_t* b, const QCorr& q,
                       const float* scale, int step, const PackedStore& ps, uint8_t* y,
                       int64_t ld) {
  switch (rows) {
    case 1: return RowsQuant512<1, kHalf>(k4, a, b, q, scale, step, ps, y, ld);
    case 2: return RowsQuant512<2, kHalf>(k4, a, b, q, scale, step, ps, y, ld);
    case 3: return RowsQuant512<3, kHalf>(k4, a, b, q, scale, step, ps, y, ld);
    case 4: return RowsQuant512<4, kHalf>(k4, a, b, q, scale, step, ps, y, ld);
    case 5: return RowsQuant512<5, kHalf>(k4, a, b, q, scale, step, ps, y, ld);
    case 6: return RowsQuant512<6, kHalf>(k4, a, b, q, scale, step, ps, y, ld);
    case 7: return RowsQuant512<7, kHalf>(k4, a, b, q, scale, step, ps, y, ld);
    default: return RowsQuant512<8, kHalf>(k4, a, b, q, scale, step, ps, y, ld);
  }
}

template <bool kHalf>
void TilesQuant(int64_t p0, int64_t p1, int64_t m, int64_t k4, const uint8_t* a,
                int64_t tile_a_bytes, const int8_t* b, const QCorr& corr, int64_t col0,
                const PackedStore& ps, const QOutput& out) {
  const int step = out.per_channel_scale ? 1 : 0;
  const int64_t ld = out.ld;
  QCorr q = corr;
  const float* scale = out.scale + p0 * 8 * step;
  uint8_t* y = static_cast<uint8_t*>(out.data) + p0 * 8 * ld + col0;
  for (int64_t pi = p0; pi < p1; ++pi) {
    const int rows = static_cast<int>(std::min<int64_t>(8, m - pi * 8));
    RowsQuantDispatch<kHalf>(rows, k4, a, b, q, scale, step, ps, y, ld);
    a += tile_a_bytes;
    q.za += 8;
    q.row_const += 8;
    scale += 8 * step;
    y += 8 * ld;
  }
}

void QByteTilesQuantAvx512Vnni(int64_t p0, int64_t p1, int64_t m, int64_t k4, const uint8_t* a,
                               int64_t tile_a_bytes, const int8_t* b, const QCorr& corr,
                               int64_t col0, int cols, const QOutput& out) {
  const PackedStore ps(out, cols);
  if (cols <= 16) return TilesQuant<true>(p0, p1, m, k4, a, tile_a_bytes, b, corr, col0, ps, out);
  TilesQuant<false>(p0, p1, m, k4, a, tile_a_bytes, b, corr, col0, ps, out);
}

// The implicit-GEMM conv tile (QImplicitTile, qgemm_internal.h): 8 output channels x 32
// "wide" pixels. The roles of the operands are swapped against RowsQuant512: the pixels'
// uint8 bytes are the vector operand, read straight from the channel-quad input at
// b + boff[g], and the int8 weights are broadcast (vpdpbusd's signed operand, so gcc folds
// the broadcast into the instruction). With weight zero point 0 the dot needs no per-pixel
// correction: the accumulators start from row_const (bias - x_zp * sum(w)).
template <int R, bool kHalf>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void RowsImplicit512(
    const QImplicitTile& t, const float* scale, int scale_step, const PackedStore& ps,
    uint8_t* y) {
  const int8_t* w = t.w;
  const uint8_t* x = t.x;
  const int64_t* boff = t.boff;
  __m512i c0[R], c1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_set1_epi32(t.row_const[r]);
  for (int64_t g = 0; g < t.k4; ++g) {
    const uint8_t* xg = x + boff[g];
    const __m512i b0 = _mm512_loadu_si512(xg);
    const __m512i b1 = kHalf ? b0 : _mm512_loadu_si512(xg + 64);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i wv = _mm512_set1_epi32(Load32(reinterpret_cast<const uint8_t*>(w) + 4 * r));
      c0[r] = _mm512_dpbusd_epi32(c0[r], b0, wv);
      if (!kHalf) c1[r] = _mm512_dpbusd_epi32(c1[r], b1, wv);
    }
    w += 4 * 32;  // groups of 32 rows (QImplicitTile)
  }
  // Pins every accumulator to one register from the loop to the store. Without it gcc 12
  // gives each accumulator a second register for the requantizing code below and copies
  // it there and back in every iteration: 2 zmm moves per vpdpbusd, about twice the loop's
  // instructions. (RowsQuant512 has the same copies; removing them there measured neutral
  // on Zen 4, whose renamer eliminates the moves, so it was left as it was.)
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) asm("" : "+v"(c0[r]), "+v"(c1[r]));
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    if (kHalf) c1[r] = c0[r];
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const int64_t ld = t.ld;
#pragma GCC unroll 4
  for (int r = 0; r < R; r += 2) {
    const int r1 = r + 1 < R ? r + 1 : r;
    const __m512i p0 = PackedRow16(c0[r], c1[r], _mm512_set1_ps(scale[r * scale_step]), ps);
    const __m512i p1 = r1 != r ? PackedRow16(c0[r1], c1[r1],
                                             _mm512_set1_ps(scale[r1 * scale_step]), ps)
                               : p0;
    const __m512i b = _mm512_permutexvar_epi32(order, PackBytes(p0, p1, ps));
    const __m256i v0 = _mm512_castsi512_si256(b), v1 = _mm512_extracti64x4_epi64(b, 1);
    // Lane i is wide pixel p0 + i; segment s's lanes go to y + i - shift[s]. The address
    // may lie before the row (masked-off bytes are not accessed), hence uintptr_t.
    const uintptr_t y0 = reinterpret_cast<uintptr_t>(y + r * ld);
    for (int s = 0; s < t.nseg; ++s) {
      const uintptr_t d = y0 - static_cast<uintptr_t>(t.seg_shift[s]);
      _mm256_mask_storeu_epi8(reinterpret_cast<void*>(d), t.seg_mask[s], v0);
      if (r1 != r)
        _mm256_mask_storeu_epi8(reinterpret_cast<void*>(d + static_cast<uintptr_t>(ld)),
                                t.seg_mask[s], v1);
    }
  }
}

template <bool kHalf>
void RowsImplicitDispatch(int rows, const QImplicitTile& t, const float* scale, int step,
                          const PackedStore& ps, uint8_t* y) {
  switch (rows) {
    case 1: return RowsImplicit512<1, kHalf>(t, scale, step, ps, y);
    case 2: return RowsImplicit512<2, kHalf>(t, scale, step, ps, y);
    case 3: return RowsImplicit512<3, kHalf>(t, scale, step, ps, y);
    case 4: return RowsImplicit512<4, kHalf>(t, scale, step, ps, y);
    case 5: return RowsImplicit512<5, kHalf>(t, scale, step, ps, y);
    case 6: return RowsImplicit512<6, kHalf>(t, scale, step, ps, y);
    case 7: return RowsImplicit512<7, kHalf>(t, scale, step, ps, y);
    default: return RowsImplicit512<8, kHalf>(t, scale, step, ps, y);
  }
}

void QImplicitTileAvx512Vnni(const QImplicitTile& t, const QOutput& out) {
  const PackedStore ps(out, 32);
  const int step = out.per_channel_scale ? 1 : 0;
  const float* scale = out.scale + t.row0 * step;
  uint8_t* y = static_cast<uint8_t*>(out.data) + t.row0 * t.ld;
  if (t.half) return RowsImplicitDispatch<true>(t.rows, t, scale, step, ps, y);
  RowsImplicitDispatch<false>(t.rows, t, scale, step, ps, y);
}

// 8 rows of 32 bytes (a[r]: pixel r's 32 channels) -> 32 columns of 8 bytes, column c
// (channel c's 8 pixels) stored under `mask` at y + c * ld. Three rounds of unpacks
// (bytes, words, dwords; per 128-bit lane): d[j] then holds channels 2j, 2j + 1 in its low
// lane and 16 + 2j, 17 + 2j in its high one.
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void StoreTransposed8x32(
    const __m256i* a, __mmask16 mask, uint8_t* y, int64_t ld) {
  __m256i b[8], c[8];
  for (int i = 0; i < 4; ++i) {
    b[2 * i] = _mm256_unpacklo_epi8(a[2 * i], a[2 * i + 1]);
    b[2 * i + 1] = _mm256_unpackhi_epi8(a[2 * i], a[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h)  // rows 0-3, then 4-7
    for (int i = 0; i < 2; ++i) {
      c[4 * h + 2 * i] = _mm256_unpacklo_epi16(b[4 * h + i], b[4 * h + i + 2]);
      c[4 * h + 2 * i + 1] = _mm256_unpackhi_epi16(b[4 * h + i], b[4 * h + i + 2]);
    }
  for (int j = 0; j < 4; ++j) {
    const __m256i d0 = _mm256_unpacklo_epi32(c[j], c[4 + j]);
    const __m256i d1 = _mm256_unpackhi_epi32(c[j], c[4 + j]);
    const __m256i d[2] = {d0, d1};
    for (int e = 0; e < 2; ++e) {
      const int ch = 2 * (2 * j + e);
      const __m128i lo = _mm256_castsi256_si128(d[e]), hi = _mm256_extracti128_si256(d[e], 1);
      _mm_mask_storeu_epi8(y + ch * ld, mask, lo);
      _mm_mask_storeu_epi8(y + (ch + 1) * ld, mask, _mm_unpackhi_epi64(lo, lo));
      _mm_mask_storeu_epi8(y + (ch + 16) * ld, mask, hi);
      _mm_mask_storeu_epi8(y + (ch + 17) * ld, mask, _mm_unpackhi_epi64(hi, hi));
    }
  }
}

// The pixel-major implicit tile (QImplicitPixelTile): R pixels broadcast (the unsigned
// operand), 32 output channels as two vectors of weights. No pad columns are computed, so
// on 7x7 and 14x14 planes it does 22% and 7% fewer multiplies than the wide tile; the
// price is the byte transpose of the store, small next to K = 2304-4608.
template <int R, int kStride>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void PixelsImplicit512(
    const QImplicitPixelTile& t, const PackedStore& ps, uint8_t* y) {
  const int8_t* w = t.w;
  const uint8_t* x = t.x;
  const int64_t* boff = t.boff;
  const __m512i rc0 = _mm512_loadu_si512(t.row_const), rc1 = _mm512_loadu_si512(t.row_const + 16);
  __m512i c0[R], c1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    c0[r] = rc0;
    c1[r] = rc1;
  }
  for (int64_t g = 0; g < t.k4; ++g) {
    const uint8_t* xg = x + boff[g];
    const __m512i w0 = _mm512_loadu_si512(w), w1 = _mm512_loadu_si512(w + 64);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i xv = _mm512_set1_epi32(Load32(xg + 4 * kStride * r));
      c0[r] = _mm512_dpbusd_epi32(c0[r], xv, w0);
      c1[r] = _mm512_dpbusd_epi32(c1[r], xv, w1);
    }
    w += 4 * 32;
  }
  // One register per accumulator through the store (see RowsImplicit512).
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) asm("" : "+v"(c0[r]), "+v"(c1[r]));
  const __m512 sc0 = t.per_channel_scale ? _mm512_loadu_ps(t.scale) : _mm512_set1_ps(t.scale[0]);
  const __m512 sc1 = t.per_channel_scale ? _mm512_loadu_ps(t.scale + 16) : sc0;
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  __m256i a[8];
#pragma GCC unroll 4
  for (int r = 0; r < 8; r += 2) {
    if (r >= R) {
      a[r] = a[r + 1] = _mm256_setzero_si256();
      continue;
    }
    const int r1 = r + 1 < R ? r + 1 : r;
    const __m512i p0 = PackedRow16Cols(c0[r], c1[r], sc0, sc1, ps);
    const __m512i p1 = r1 != r ? PackedRow16Cols(c0[r1], c1[r1], sc0, sc1, ps) : p0;
    const __m512i b = _mm512_permutexvar_epi32(order, PackBytes(p0, p1, ps));
    a[r] = _mm512_castsi512_si256(b);
    a[r + 1] = _mm512_extracti64x4_epi64(b, 1);
  }
  StoreTransposed8x32(a, static_cast<__mmask16>((1u << R) - 1), y, t.ld);
}

template <int kStride>
void PixelsImplicitDispatch(const QImplicitPixelTile& t, const PackedStore& ps) {
  switch (t.pixels) {
    case 1: return PixelsImplicit512<1, kStride>(t, ps, t.y);
    case 2: return PixelsImplicit512<2, kStride>(t, ps, t.y);
    case 3: return PixelsImplicit512<3, kStride>(t, ps, t.y);
    case 4: return PixelsImplicit512<4, kStride>(t, ps, t.y);
    case 5: return PixelsImplicit512<5, kStride>(t, ps, t.y);
    case 6: return PixelsImplicit512<6, kStride>(t, ps, t.y);
    case 7: return PixelsImplicit512<7, kStride>(t, ps, t.y);
    default: return PixelsImplicit512<8, kStride>(t, ps, t.y);
  }
}

void QImplicitPixelTileAvx512Vnni(const QImplicitPixelTile& t, const QOutput& out) {
  const PackedStore ps(out, 32);
  if (t.stride2) return PixelsImplicitDispatch<2>(t, ps);
  PixelsImplicitDispatch<1>(t, ps);
}

// The 8x32 VNNI tile with a float output per column (matmuls: DynamicQuantizeMatMul,
// float-output QGemm) in one: the accumulators start from the zero-point correction and
// int32 bias (-za[r]*sb[j] - (sa[r] - k*za[r])*zb[j] + bias[j], wrapping, so the sum is
// the same as QByteCorrectAvx512's in any order), and are scaled, biased, clamped and
// stored from the registers. The separate path stored the raw dots, corrected them in a
// second pass and converted them in a third: a quarter of the time at K = 384 (BERT's
// q/k/v/o and ff1). Same float operations in the same order as QStoreRowsAvx512.
struct FloatColumns {
  __m512 s0, s1, fb0, fb1, lo, hi;
  __mmask16 m0, m1;
};

template <int R>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void RowsFloat512(
    int64_t k4, const uint8_t* a, const int8_t* b, const QCorr& q, const __m512i* init,
    const FloatColumns& fc, float* y, int64_t ld) {
  __m512i c0[R], c1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const __m512i za = _mm512_set1_epi32(q.za[r]), ta = _mm512_set1_epi32(AdjustedRowSum(q, r));
    c0[r] = _mm512_sub_epi32(_mm512_sub_epi32(init[0], _mm512_mullo_epi32(za, init[2])),
                             _mm512_mullo_epi32(ta, init[4]));
    c1[r] = _mm512_sub_epi32(_mm512_sub_epi32(init[1], _mm512_mullo_epi32(za, init[3])),
                             _mm512_mullo_epi32(ta, init[5]));
  }
  DotRows<R>(k4, a, b, c0, c1);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    __m512 v0 = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(c0[r]), fc.s0), fc.fb0);
    __m512 v1 = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(c1[r]), fc.s1), fc.fb1);
    _mm512_mask_storeu_ps(y + r * ld, fc.m0, _mm512_min_ps(_mm512_max_ps(v0, fc.lo), fc.hi));
    _mm512_mask_storeu_ps(y + r * ld + 16, fc.m1, _mm512_min_ps(_mm512_max_ps(v1, fc.lo), fc.hi));
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void QByteTileFloatAvx512Vnni(
    int rows, int64_t k4, const uint8_t* a, const int8_t* b, const QCorr& corr, int64_t row0,
    int64_t col0, int cols, const QOutput& o) {
  FloatColumns fc;
  fc.m0 = cols >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << cols) - 1);
  fc.m1 = cols >= 32  ? __mmask16(0xFFFF)
          : cols > 16 ? static_cast<__mmask16>((1u << (cols - 16)) - 1)
                      : __mmask16(0);
  if (o.per_channel_scale) {
    fc.s0 = _mm512_maskz_loadu_ps(fc.m0, o.scale + col0);
    fc.s1 = _mm512_maskz_loadu_ps(fc.m1, o.scale + col0 + 16);
  } else {
    fc.s0 = fc.s1 = _mm512_set1_ps(o.scale[0]);
  }
  fc.fb0 = fc.fb1 = _mm512_setzero_ps();
  if (o.float_bias) {
    fc.fb0 = _mm512_maskz_loadu_ps(fc.m0, o.float_bias + col0);
    fc.fb1 = _mm512_maskz_loadu_ps(fc.m1, o.float_bias + col0 + 16);
  }
  fc.lo = _mm512_set1_ps(o.lo);
  fc.hi = _mm512_set1_ps(o.hi);
  // Per column: bias, sb and zb (corr's are padded to the panel's 32 columns).
  __m512i init[6] = {_mm512_setzero_si512(), _mm512_setzero_si512(),
                     _mm512_loadu_si512(corr.sb), _mm512_loadu_si512(corr.sb + 16),
                     _mm512_loadu_si512(corr.zb), _mm512_loadu_si512(corr.zb + 16)};
  if (o.bias) {
    init[0] = _mm512_maskz_loadu_epi32(fc.m0, o.bias + col0);
    init[1] = _mm512_maskz_loadu_epi32(fc.m1, o.bias + col0 + 16);
  }
  float* y = static_cast<float*>(o.data) + row0 * o.ld + col0;
  const int64_t ld = o.ld;
  switch (rows) {
    case 1: return RowsFloat512<1>(k4, a, b, corr, init, fc, y, ld);
    case 2: return RowsFloat512<2>(k4, a, b, corr, init, fc, y, ld);
    case 3: return RowsFloat512<3>(k4, a, b, corr, init, fc, y, ld);
    case 4: return RowsFloat512<4>(k4, a, b, corr, init, fc, y, ld);
    case 5: return RowsFloat512<5>(k4, a, b, corr, init, fc, y, ld);
    case 6: return RowsFloat512<6>(k4, a, b, corr, init, fc, y, ld);
    case 7: return RowsFloat512<7>(k4, a, b, corr, init, fc, y, ld);
    default: return RowsFloat512<8>(k4, a, b, corr, init, fc, y, ld);
  }
}

// The requantizing half of QStoreTileAvx512 (uint8/int8 outputs; q.row_const set).
__attribute__((target("avx512f,avx512bw,avx512vl"))) void QStoreQuantTileAvx512(
    const int32_t* acc, int rows, int cols, int64_t row0, int64_t col0, const QOutput& o,
    const QCorr& q) {
  if (q.pack_store) return QStoreQuantTilePacked(acc, rows, cols, row0, col0, o, q);
  const bool za_one = q.za_one, zb_one = q.zb_one;
  const __m512i sb0 = _mm512_loadu_si512(q.sb), sb1 = _mm512_loadu_si512(q.sb + 16);
  const __m512i zb0 = _mm512_loadu_si512(q.zb), zb1 = _mm512_loadu_si512(q.zb + 16);
  const __m512i za_all = _mm512_set1_epi32(q.za[0]);
  const __m512i ct0 = _mm512_mullo_epi32(za_all, sb0), ct1 = _mm512_mullo_epi32(za_all, sb1);
  const bool pr = o.per_row;
  const bool col_scale = o.per_channel_scale && !pr, col_bias = o.bias && !pr;
  const bool row_scale = o.per_channel_scale && pr;
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32   ? __mmask16(0xFFFF)
                       : cols > 16 ? static_cast<__mmask16>((1u << (cols - 16)) - 1)
                                   : __mmask16(0);
  const __m512 lo = _mm512_set1_ps(o.ClampLo()), hi = _mm512_set1_ps(o.ClampHi());
  const __m512i zp = _mm512_set1_epi32(o.zero_point);
  __m512i cb0 = _mm512_setzero_si512(), cb1 = cb0;
  if (col_bias) {
    cb0 = _mm512_maskz_loadu_epi32(m0, o.bias + col0);
    cb1 = _mm512_maskz_loadu_epi32(m1, o.bias + col0 + 16);
  }
  __m512 cs0 = _mm512_setzero_ps(), cs1 = cs0;
  if (col_scale) {
    cs0 = _mm512_maskz_loadu_ps(m0, o.scale + col0);
    cs1 = _mm512_maskz_loadu_ps(m1, o.scale + col0 + 16);
  }
  for (int r = 0; r < rows; ++r) {
    const int64_t row = row0 + r;
    const __m512i rcv = _mm512_set1_epi32(q.row_const[r]);
    __m512i v0 = _mm512_add_epi32(_mm512_loadu_si512(acc + r * 32), rcv);
    __m512i v1 = _mm512_add_epi32(_mm512_loadu_si512(acc + r * 32 + 16), rcv);
    if (za_one) {
      v0 = _mm512_sub_epi32(v0, ct0);
      v1 = _mm512_sub_epi32(v1, ct1);
    } else {
      const __m512i za = _mm512_set1_epi32(q.za[r]);
      v0 = _mm512_sub_epi32(v0, _mm512_mullo_epi32(za, sb0));
      v1 = _mm512_sub_epi32(v1, _mm512_mullo_epi32(za, sb1));
    }
    if (!zb_one) {
      const uint32_t ta = static_cast<uint32_t>(q.sa[r]) -
                          static_cast<uint32_t>(q.k) * static_cast<uint32_t>(q.za[r]);
      const __m512i tav = _mm512_set1_epi32(static_cast<int32_t>(ta));
      v0 = _mm512_sub_epi32(v0, _mm512_mullo_epi32(tav, zb0));
      v1 = _mm512_sub_epi32(v1, _mm512_mullo_epi32(tav, zb1));
    }
    if (col_bias) {
      v0 = _mm512_add_epi32(v0, cb0);
      v1 = _mm512_add_epi32(v1, cb1);
    }
    const __m512 rscale = _mm512_set1_ps(o.scale[row_scale ? row : 0]);
    uint8_t* y = static_cast<uint8_t*>(o.data) + row * o.ld + col0;
    QuantStore16(v0, col_scale ? cs0 : rscale, lo, hi, zp, m0, y);
    if (m1) QuantStore16(v1, col_scale ? cs1 : rscale, lo, hi, zp, m1, y + 16);
  }
}

// QStoreRow on 16 columns at a time with masked tails, for a whole tile of rows: at small K (mobilenet's 1x1 convs,
// K = 16..32) the epilogue costs more than the dot products, and the AVX2 one handles 8
// columns per step and the tail in scalar code. Same operations in the same order as
// QStoreRow (round half to even under the default MXCSR, like nearbyint).
__attribute__((target("avx512f,avx512bw,avx512vl"))) void QStoreRowsAvx512(
    const int32_t* acc, int acc_stride, int rows, int cols, int64_t row0, int64_t col0,
    const QOutput& o) {
  if (o.kind == QOutput::Kind::kInt32) {
    for (int r = 0; r < rows; ++r) QStoreRowAvx2(acc + r * acc_stride, cols, row0 + r, col0, o);
    return;
  }
  // Everything that does not depend on the row is set up once per tile.
  const bool pr = o.per_row;
  const bool col_scale = o.per_channel_scale && !pr, col_bias = o.bias && !pr;
  const bool row_scale = o.per_channel_scale && pr;
  const __mmask16 tail = static_cast<__mmask16>((1u << (cols & 15)) - 1);
  const int full = cols & ~15;
  if (o.kind == QOutput::Kind::kFloat) {  // DynamicQuantizeMatMul, float-output QLinearConv
    const bool col_fb = o.float_bias && !pr;
    const __m512 lo = _mm512_set1_ps(o.lo), hi = _mm512_set1_ps(o.hi);
    for (int r = 0; r < rows; ++r) {
      const int64_t row = row0 + r;
      const int32_t* a_row = acc + r * acc_stride;
      const __m512i rbias = _mm512_set1_epi32(o.bias && pr ? o.bias[row] : 0);
      const __m512 rscale = _mm512_set1_ps(o.scale[row_scale ? row : 0]);
      const __m512 rfb = _mm512_set1_ps(o.float_bias && pr ? o.float_bias[row] : 0.f);
      float* y = static_cast<float*>(o.data) + row * o.ld + col0;
      for (int j = 0; j < cols; j += 16) {
        const __mmask16 m = j < full ? __mmask16(0xFFFF) : tail;
        __m512i a = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, a_row + j), rbias);
        if (col_bias) a = _mm512_add_epi32(a, _mm512_maskz_loadu_epi32(m, o.bias + col0 + j));
        const __m512 sc = col_scale ? _mm512_maskz_loadu_ps(m, o.scale + col0 + j) : rscale;
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(a), sc);
        v = _mm512_add_ps(v, col_fb ? _mm512_maskz_loadu_ps(m, o.float_bias + col0 + j) : rfb);
        _mm512_mask_storeu_ps(y + j, m, _mm512_min_ps(_mm512_max_ps(v, lo), hi));
      }
    }
    return;
  }
  const __m512 lo = _mm512_set1_ps(o.ClampLo()), hi = _mm512_set1_ps(o.ClampHi());
  const __m512i zp = _mm512_set1_epi32(o.zero_point);
  for (int r = 0; r < rows; ++r) {
    const int64_t row = row0 + r;
    const int32_t* a_row = acc + r * acc_stride;
    const __m512i rbias = _mm512_set1_epi32(o.bias && pr ? o.bias[row] : 0);
    const __m512 rscale = _mm512_set1_ps(o.scale[row_scale ? row : 0]);
    uint8_t* y = static_cast<uint8_t*>(o.data) + row * o.ld + col0;
    for (int j = 0; j < cols; j += 16) {
      const __mmask16 m = j < full ? __mmask16(0xFFFF) : tail;
      __m512i a = _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, a_row + j), rbias);
      if (col_bias) a = _mm512_add_epi32(a, _mm512_maskz_loadu_epi32(m, o.bias + col0 + j));
      const __m512 sc = col_scale ? _mm512_maskz_loadu_ps(m, o.scale + col0 + j) : rscale;
      __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(a), sc);
      v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
      const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), zp);
      // In range already: plain narrowing.
      _mm_mask_storeu_epi8(y + j, m, _mm512_cvtepi32_epi8(q));
    }
  }
}

void QStoreRowAvx512(const int32_t* acc, int cols, int64_t row, int64_t col0, const QOutput& o) {
  QStoreRowsAvx512(acc, 0, 1, cols, row, col0, o);
}

// The epilogue of one AVX-512 byte tile (rows of 32 accumulators, cols <= 32) with the
// zero-point correction folded in: acc = dot - za[r]*sb[j] - zb[j]*(sa[r] - k*za[r]).
// A conv has one zero point for all its pixels (x's) and usually one for all its output
// channels (symmetric weights: 0, stored +128): then za*sb[j] is one vector pair per tile
// and zb*(sa - k*za) one scalar per row, added with the bias, so the correction costs one
// subtraction per vector instead of two multiplies and a pass over the accumulators.
// Wrapping int32 arithmetic, so the sum is the same in any order (exact).
void QStoreTileAvx512(int32_t* acc, int rows, int cols, int64_t row0, int64_t col0,
                      const QOutput& o, const QCorr& q) {
  if (o.kind == QOutput::Kind::kInt32 || o.kind == QOutput::Kind::kFloat) {
    QByteCorrectAvx512(rows, 32, q, acc);
    QStoreRowsAvx512(acc, 32, rows, cols, row0, col0, o);
    return;
  }
  QStoreQuantTileAvx512(acc, rows, cols, row0, col0, o, q);
}
#pragma GCC diagnostic pop

}  // namespace edgepress::runtime::qgemm_detail

#endif  // __x86_64__
