// Integer depthwise kernel for AVX2: 8 output columns per vector over the quad plane
// (qdepthwise.h), each dword of 4 tap bytes split into int16 pairs (bytes 0,2 and 1,3)
// for two vpmaddwd (exact; vpmaddubsw's int16 pair sums would saturate). The structure
// is qdepthwise_avx512.cc's at half the width.
#include "runtime/kernels/conv/depthwise/qdepthwise.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <vector>

namespace edgepress::runtime::qdw {

namespace {

constexpr int kVec = 8;

// 8 quads a block: 128-bit lane k holds quads j0+4k..j0+4k+3 (as qdepthwise_avx512.cc).
__attribute__((target("avx2"))) void BuildQuads(const uint8_t* src, int64_t n, int64_t s,
                                                uint32_t* dst) {
  const __m128i p1 = _mm_setr_epi8(0, 1, 2, 3, 1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6);
  const __m128i p2 = _mm_setr_epi8(0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9);
  const __m128i p = s == 1 ? p1 : p2;
  const __m256i pick = _mm256_inserti128_si256(_mm256_castsi128_si256(p), p, 1);
  for (int64_t j0 = 0; j0 < n; j0 += kVec) {
    const uint8_t* b = src + s * j0;
    const __m256i v = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 4 * s)), 1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j0), _mm256_shuffle_epi8(v, pick));
  }
}

int32_t Pair(int8_t lo, int8_t hi) {
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint16_t>(lo)) |
                              static_cast<uint32_t>(static_cast<uint16_t>(hi)) << 16);
}

// kKh/kG > 0 fix the kernel rows and groups at compile time; 0 reads them.
template <int kKh, int kG>
__attribute__((target("avx2"))) void Taps(const Geometry& g, QuadRows& q, int32_t* acc) {
  const int64_t kh = kKh > 0 ? kKh : g.kh, groups = kG > 0 ? kG : q.groups();
  constexpr int kN = kKh * kG > 0 ? kKh * kG : QuadRows::kMaxQuads;
  __m256i w02[kN], w13[kN];
  for (int64_t t = 0; t < kh * groups; ++t) {
    const int8_t* w = q.w8() + 4 * t;
    w02[t] = _mm256_set1_epi32(Pair(w[0], w[2]));
    w13[t] = _mm256_set1_epi32(Pair(w[1], w[3]));
  }
  const __m256i corr = _mm256_set1_epi32(q.corr()), low = _mm256_set1_epi32(0x00FF00FF);
  const int64_t step = q.group_step();
  const uint32_t* rows[kKh > 0 ? kKh : QuadRows::kMaxQuads];
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    for (int64_t i = 0; i < kh; ++i) rows[i] = q.Row(oh * g.stride_h + i * g.dil_h);
    for (int64_t ow = 0; ow < g.ow; ow += kVec) {
      __m256i a = corr;
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t k = 0; k < groups; ++k) {
          const __m256i v = _mm256_loadu_si256(
              reinterpret_cast<const __m256i*>(rows[i] + k * step + ow));
          const int64_t t = i * groups + k;
          a = _mm256_add_epi32(a, _mm256_add_epi32(
                                      _mm256_madd_epi16(_mm256_and_si256(v, low), w02[t]),
                                      _mm256_madd_epi16(_mm256_srli_epi16(v, 8), w13[t])));
        }
      // Rows ow apart: a row's last vector spills into the next row (written after it)
      // or the buffer's spare vector.
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + oh * g.ow + ow), a);
    }
  }
}

}  // namespace

void PlaneAvx2(const Plane& p) {
  QuadRows q;
  if (!q.Init(p, kVec, BuildQuads)) return PlaneRef(p);
  const Geometry& g = *p.g;
  thread_local std::vector<int32_t> acc;
  acc.resize(static_cast<size_t>(g.oh * g.ow + kVec));
  if (g.kh == 3 && q.groups() == 1)
    Taps<3, 1>(g, q, acc.data());
  else if (g.kh == 5 && q.groups() == 2)
    Taps<5, 2>(g, q, acc.data());
  else
    Taps<0, 0>(g, q, acc.data());
  StorePlane(Isa::kAvx2, p, acc.data());
}

}  // namespace edgepress::runtime::qdw

#endif  // __x86_64__
