// Integer depthwise kernels for AVX-512: 16 output columns per vector over the quad rows
// (qdepthwise.h), built with vpermb straight from the input rows where the CPU has VBMI
// (else vpshufb over a padded row copy). VNNI: one vpdpbusd per kernel row and group of
// 4 taps. AVX-512BW: the same dwords split into two int16 pairs (bytes 0,2 and 1,3) for
// two vpmaddwd: exact, unlike vpmaddubsw, whose int16 pair sums saturate (255*127*2 >
// 32767). Planes up to 32 KiB of quads are built whole (3x3 stride 1 then runs as one
// linear run of vectors), larger ones a few rows at a time in a ring. 3x3 and 5x5 are
// unrolled with the weights in registers, two output rows per pass; other sizes and
// dilations loop over the groups.
#include "runtime/kernels/conv/depthwise/qdepthwise.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace edgepress::runtime::qdw {

namespace {

constexpr int kVec = 16;

// (gcc 12 reports -Wmaybe-uninitialized inside unmasked AVX-512 intrinsics, which pass
// _mm512_undefined_*() as the merge source: a false positive, silenced for the file.)
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// 16 quads a block from the padded byte row: 128-bit lane k holds quads j0+4k..j0+4k+3,
// whose bytes all lie in the 16 bytes from s * (j0 + 4k); one vpshufb picks them.
__attribute__((target("avx512f,avx512bw"))) void BuildQuads(const uint8_t* src, int64_t n,
                                                            int64_t s, uint32_t* dst) {
  const __m512i pick =
      s == 1 ? _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6))
             : _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9));
  for (int64_t j0 = 0; j0 < n; j0 += kVec) {
    const uint8_t* b = src + s * j0;
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b)));
    v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 4 * s)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 8 * s)), 2);
    v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 12 * s)), 3);
    _mm512_storeu_si512(dst + j0, _mm512_shuffle_epi8(v, pick));
  }
}

// vpermb indices of quads j = 0..15 at stride s (1 or 2): byte 4j + b = s * j + b. A
// constant table: an index built on the stack per call cost a store-forwarding stall
// (16-byte stores read by a 64-byte load) larger than a row's vpermbs.
const uint8_t* VbmiIndex(int64_t s) {
  struct Tables {
    alignas(64) uint8_t idx[2][64];
    Tables() {
      for (int st = 1; st <= 2; ++st)
        for (int m = 0; m < 16; ++m)
          for (int b = 0; b < 4; ++b) idx[st - 1][4 * m + b] = static_cast<uint8_t>(st * m + b);
    }
  };
  static const Tables tables;
  return tables.idx[s - 1];
}

// The VBMI builder straight from the input row: each block's 64 window bytes are one
// masked load over the padding value (bytes outside the row are neither read nor faulted
// on), so rows need no padded copy. (Stride 2 builds every input row for half as many
// output columns: the copy was most of its time.)
__attribute__((target("avx512f,avx512bw,avx512vbmi"), always_inline)) inline void
QuadsVbmiDirect(const DirectRow& row, int64_t n, int64_t s, __m512i pick, uint32_t* dst) {
  const __m512i padv = _mm512_set1_epi8(static_cast<char>(row.pad ^ row.flip));
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(row.flip));
  const uintptr_t x = reinterpret_cast<uintptr_t>(row.x);
  for (int64_t j0 = 0; j0 < n; j0 += kVec) {
    // Window bytes [lo, hi) are the row's pixels.
    const int64_t start = s * j0 - row.pad_l;
    const int64_t lo = std::max<int64_t>(0, -start), hi = std::min<int64_t>(64, row.w - start);
    __mmask64 m = 0;
    if (hi > lo)
      m = (hi >= 64 ? ~__mmask64(0) : (__mmask64(1) << hi) - 1) & (~__mmask64(0) << lo);
    const __m512i v = _mm512_mask_loadu_epi8(padv, m, reinterpret_cast<const void*>(x + start));
    _mm512_storeu_si512(dst + j0, _mm512_permutexvar_epi8(pick, _mm512_xor_si512(v, flip)));
  }
}

__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void BuildQuadsVbmiDirect(
    const DirectRow& row, int64_t n, int64_t s, uint32_t* dst) {
  QuadsVbmiDirect(row, n, s, _mm512_load_si512(VbmiIndex(s)), dst);
}

// Every row of a whole plane (QuadRows::whole) in one loop, no call per row.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void FillWholeVbmi(const Plane& p,
                                                                          QuadRows& q) {
  const Geometry& g = *p.g;
  const __m512i pick = _mm512_load_si512(VbmiIndex(g.stride_w));
  const __m512i pad4 = _mm512_set1_epi8(static_cast<char>(q.pad()));
  const uint8_t* x = static_cast<const uint8_t*>(p.x);
  for (int64_t r = 0; r < q.rows(); ++r) {
    uint32_t* dst = q.mutable_row(r);
    const int64_t ih = r - g.pad_t;
    if (ih < 0 || ih >= g.h) {
      for (int64_t j0 = 0; j0 < q.cols(); j0 += kVec) _mm512_storeu_si512(dst + j0, pad4);
      continue;
    }
    QuadsVbmiDirect(DirectRow{x + ih * g.w, g.w, g.pad_l, q.pad(), q.flip()}, q.cols(),
                    g.stride_w, pick, dst);
  }
  q.MarkBuilt();
}

// The tap loop, once per dot product (the two need different target attributes: with
// VNNI enabled, gcc may fuse vpmaddwd + vpaddd into vpdpwssd). kKh/kG > 0 fix the kernel
// rows and groups at compile time; 0 reads them. Two output rows per pass: two
// independent accumulator chains (a 7- or 14-column row is one vector, and its taps were
// one serial chain of vpdpbusd latencies) and half the row lookups. Accumulator rows are
// ow apart; the first row of a pass stores its last vector masked (it would spill into
// the second row, stored before it), the second row's spills into the next pass's first
// row (written after it) or the buffer's spare vector.
#define QDW_DEFINE_TAPS(Name, Target, Weights, Dot)                                           \
  template <int kKh, int kG>                                                                \
  __attribute__((target(Target))) void Name(const Geometry& g, QuadRows& q, int32_t* acc) { \
    const int64_t kh = kKh > 0 ? kKh : g.kh, groups = kG > 0 ? kG : q.groups();             \
    constexpr int kN = kKh * kG > 0 ? kKh * kG : QuadRows::kMaxQuads;                       \
    __m512i wa[kN], wb[kN];                                                                 \
    for (int64_t t = 0; t < kh * groups; ++t) Weights(q.w8() + 4 * t, &wa[t], &wb[t]);      \
    const __m512i corr = _mm512_set1_epi32(q.corr());                                       \
    const int64_t step = q.group_step();                                                    \
    const __mmask16 tail = static_cast<__mmask16>((1u << (g.ow % kVec)) - 1);              \
    const uint32_t* r0[kKh > 0 ? kKh : QuadRows::kMaxQuads];                                \
    const uint32_t* r1[kKh > 0 ? kKh : QuadRows::kMaxQuads];                                \
    for (int64_t oh = 0; oh < g.oh; oh += 2) {                                              \
      for (int64_t i = 0; i < kh; ++i) r0[i] = q.Row(oh * g.stride_h + i * g.dil_h);        \
      int32_t* a0 = acc + oh * g.ow;                                                        \
      if (oh + 1 == g.oh) {                                                                 \
        for (int64_t ow = 0; ow < g.ow; ow += kVec) {                                       \
          __m512i a = corr;                                                                 \
          for (int64_t i = 0; i < kh; ++i)                                                  \
            for (int64_t k = 0; k < groups; ++k)                                            \
              a = Dot(a, _mm512_loadu_si512(r0[i] + k * step + ow), wa[i * groups + k],    \
                      wb[i * groups + k]);                                                  \
          _mm512_storeu_si512(a0 + ow, a);                                                  \
        }                                                                                   \
        break;                                                                              \
      }                                                                                     \
      for (int64_t i = 0; i < kh; ++i) r1[i] = q.Row((oh + 1) * g.stride_h + i * g.dil_h);  \
      int32_t* a1 = a0 + g.ow;                                                              \
      for (int64_t ow = 0; ow < g.ow; ow += kVec) {                                         \
        __m512i x0 = corr, x1 = corr;                                                       \
        for (int64_t i = 0; i < kh; ++i)                                                    \
          for (int64_t k = 0; k < groups; ++k) {                                            \
            const int64_t t = i * groups + k;                                               \
            x0 = Dot(x0, _mm512_loadu_si512(r0[i] + k * step + ow), wa[t], wb[t]);          \
            x1 = Dot(x1, _mm512_loadu_si512(r1[i] + k * step + ow), wa[t], wb[t]);          \
          }                                                                                 \
        _mm512_mask_storeu_epi32(a0 + ow, ow + kVec <= g.ow ? 0xFFFF : tail, x0);           \
        _mm512_storeu_si512(a1 + ow, x1);                                                   \
      }                                                                                     \
    }                                                                                       \
  }

// A linear plane (QuadRows::linear, 3x3 stride 1): its oh * ow outputs as one run of
// vectors, three rows of taps each; the last vector spills into the buffer's spare one.
#define QDW_DEFINE_LINEAR(Name, Target, Weights, Dot)                                         \
  __attribute__((target(Target))) void Name(const Geometry& g, QuadRows& q, int32_t* acc) { \
    __m512i wa[3], wb[3];                                                                   \
    for (int t = 0; t < 3; ++t) Weights(q.w8() + 4 * t, &wa[t], &wb[t]);                    \
    const __m512i corr = _mm512_set1_epi32(q.corr());                                       \
    const uint32_t* r = q.Row(0);                                                           \
    const int64_t n = g.oh * g.ow, ow = g.ow;                                               \
    for (int64_t p = 0; p < n; p += kVec) {                                                 \
      __m512i a = Dot(corr, _mm512_loadu_si512(r + p), wa[0], wb[0]);                       \
      a = Dot(a, _mm512_loadu_si512(r + p + ow), wa[1], wb[1]);                             \
      a = Dot(a, _mm512_loadu_si512(r + p + 2 * ow), wa[2], wb[2]);                         \
      _mm512_storeu_si512(acc + p, a);                                                      \
    }                                                                                       \
  }

// VNNI: the 4 weight bytes broadcast as one dword.
__attribute__((target("avx512f"), always_inline)) inline void WeightsVnni(const int8_t* w,
                                                                          __m512i* a, __m512i* b) {
  int32_t v;
  std::memcpy(&v, w, 4);
  *a = _mm512_set1_epi32(v);
  *b = *a;
}
__attribute__((target("avx512f,avx512vnni"), always_inline)) inline __m512i DotVnni(
    __m512i acc, __m512i quads, __m512i w, __m512i) {
  return _mm512_dpbusd_epi32(acc, quads, w);
}

// AVX-512BW: int16 pairs (w0, w2) and (w1, w3) against bytes (0, 2) and (1, 3).
__attribute__((target("avx512f"), always_inline)) inline void WeightsBw(const int8_t* w,
                                                                        __m512i* a, __m512i* b) {
  auto pair = [](int8_t lo, int8_t hi) {
    return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(lo)) |
                                static_cast<uint32_t>(static_cast<uint16_t>(hi)) << 16);
  };
  *a = _mm512_set1_epi32(pair(w[0], w[2]));
  *b = _mm512_set1_epi32(pair(w[1], w[3]));
}
__attribute__((target("avx512f,avx512bw"), always_inline)) inline __m512i DotBw(
    __m512i acc, __m512i quads, __m512i w02, __m512i w13) {
  const __m512i even = _mm512_and_si512(quads, _mm512_set1_epi32(0x00FF00FF));
  const __m512i odd = _mm512_srli_epi16(quads, 8);
  return _mm512_add_epi32(acc, _mm512_add_epi32(_mm512_madd_epi16(even, w02),
                                                _mm512_madd_epi16(odd, w13)));
}

QDW_DEFINE_TAPS(TapsVnni, "avx512f,avx512bw,avx512vl,avx512vnni", WeightsVnni, DotVnni)
QDW_DEFINE_TAPS(TapsBw, "avx512f,avx512bw,avx512vl", WeightsBw, DotBw)
QDW_DEFINE_LINEAR(LinearVnni, "avx512f,avx512bw,avx512vl,avx512vnni", WeightsVnni, DotVnni)
QDW_DEFINE_LINEAR(LinearBw, "avx512f,avx512bw,avx512vl", WeightsBw, DotBw)
#undef QDW_DEFINE_TAPS
#undef QDW_DEFINE_LINEAR

template <bool kVnni>
void Plane512(const Plane& p) {
  QuadRows q;
  const bool vbmi = GetCpuFeatures().avx512vbmi;
  // Planes up to 32 KiB of quads (56x56 at stride 1, 112x112 at stride 2) are built whole,
  // in one loop: 1.3x faster than the ring at 112x112 stride 2; 64 KiB gained nothing.
  if (!q.Init(p, kVec, BuildQuads, vbmi ? BuildQuadsVbmiDirect : nullptr,
              32 << 10))
    return PlaneRef(p);
  if (q.whole()) FillWholeVbmi(p, q);
  const Geometry& g = *p.g;
  thread_local std::vector<int32_t> acc;
  acc.resize(static_cast<size_t>(g.oh * g.ow + kVec));
  int32_t* a = acc.data();
  if (q.linear() && g.kh == 3)
    kVnni ? LinearVnni(g, q, a) : LinearBw(g, q, a);
  else if (g.kh == 3 && q.groups() == 1)
    kVnni ? TapsVnni<3, 1>(g, q, a) : TapsBw<3, 1>(g, q, a);
  else if (g.kh == 5 && q.groups() == 2)
    kVnni ? TapsVnni<5, 2>(g, q, a) : TapsBw<5, 2>(g, q, a);
  else
    kVnni ? TapsVnni<0, 0>(g, q, a) : TapsBw<0, 0>(g, q, a);
  StorePlane(Isa::kAvx512, p, a);
}

#pragma GCC diagnostic pop

}  // namespace

void PlaneAvx512(const Plane& p) { Plane512<false>(p); }
void PlaneAvx512Vnni(const Plane& p) { Plane512<true>(p); }

}  // namespace edgepress::runtime::qdw

#endif  // __x86_64__
