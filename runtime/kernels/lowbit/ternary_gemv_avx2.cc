// Ternary GEMV tile for AVX2 (ternary_matmul.h): 8 codes (2 bytes) per step. Each byte
// (4 codes) indexes a 256-entry table of 4 floats (+1/0/-1), so two 16-byte loads and an
// insert give the weight vector, which each row of the tile multiplies in one FMA (exact:
// the same float result as adding or subtracting a[k]). The table (4 KiB) stays in L1; it
// replaced a shift/compare decode that cost 7 operations per 8 weights, which made M = 1
// slower than the fp32 GEMV. The decoding is shared by the up to 4 rows of the tile.
#include <cstring>

#include "runtime/kernels/lowbit/ternary_matmul.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::ternary_detail {

#if defined(__x86_64__)
#define EP_AVX2 __attribute__((target("avx2,fma")))

namespace {

struct CodeTable {
  alignas(16) float v[256][4] = {};
  constexpr CodeTable() {
    const float value[4] = {0.f, 1.f, 0.f, -1.f};  // 0b10 reads as 0, as TernaryAt does
    for (int b = 0; b < 256; ++b)
      for (int i = 0; i < 4; ++i) v[b][i] = value[(b >> (2 * i)) & 3];
  }
};
constexpr CodeTable kTable;

EP_AVX2 inline float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int C, int R>
EP_AVX2 void Tile(const float* a, const TernaryWeights& w, int64_t n0, const float* bias, float* y,
                  int64_t ldy) {
  const int64_t k = w.k, row_bytes = w.kp / 4, full = k / 8, rem = k % 8;
  const uint8_t* wp[C];
  __m256 acc[C][R];
  for (int c = 0; c < C; ++c) {
    wp[c] = w.codes + (n0 + c) * row_bytes;
    for (int r = 0; r < R; ++r) acc[c][r] = _mm256_setzero_ps();
  }
  auto step = [&](const __m256* av, int64_t j) EP_AVX2 {
    for (int c = 0; c < C; ++c) {
      const uint8_t* p = wp[c] + j * 2;
      const __m256 wv = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_load_ps(kTable.v[p[0]])),
                                             _mm_load_ps(kTable.v[p[1]]), 1);
      for (int r = 0; r < R; ++r) acc[c][r] = _mm256_fmadd_ps(av[r], wv, acc[c][r]);
    }
  };
  for (int64_t j = 0; j < full; ++j) {
    __m256 av[R];
    for (int r = 0; r < R; ++r) av[r] = _mm256_loadu_ps(a + r * k + j * 8);
    step(av, j);
  }
  if (rem) {  // zero-padded copies of the row tails; the codes past K are 0
    alignas(32) float tail[R][8] = {};
    __m256 av[R];
    for (int r = 0; r < R; ++r) {
      std::memcpy(tail[r], a + r * k + full * 8, static_cast<size_t>(rem) * sizeof(float));
      av[r] = _mm256_load_ps(tail[r]);
    }
    step(av, full);
  }
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r)
      y[r * ldy + n0 + c] = w.scales[n0 + c] * HSum(acc[c][r]) + (bias ? bias[n0 + c] : 0.f);
}

// Columns per tile by rows: C x R accumulators, R activations and the decoded masks fit in
// 16 registers.
template <int R>
EP_AVX2 void Rows(const float* a, const TernaryWeights& w, int64_t c0, int64_t c1,
                  const float* bias, float* y, int64_t ldy) {
  constexpr int C = R == 1 ? 8 : R == 2 ? 4 : 2;
  int64_t c = c0;
  for (; c + C <= c1; c += C) Tile<C, R>(a, w, c, bias, y, ldy);
  for (; c < c1; ++c) Tile<1, R>(a, w, c, bias, y, ldy);
}

}  // namespace

void GemvAvx2(const float* a, int64_t m, const TernaryWeights& w, int64_t c0, int64_t c1,
              const float* bias, float* y, int64_t ldy) {
  switch (m) {
    case 1:
      Rows<1>(a, w, c0, c1, bias, y, ldy);
      break;
    case 2:
      Rows<2>(a, w, c0, c1, bias, y, ldy);
      break;
    case 3:
      Rows<3>(a, w, c0, c1, bias, y, ldy);
      break;
    default:
      Rows<4>(a, w, c0, c1, bias, y, ldy);
      break;
  }
}
#undef EP_AVX2
#else
void GemvAvx2(const float*, int64_t, const TernaryWeights&, int64_t, int64_t, const float*, float*,
              int64_t) {}
#endif

}  // namespace edgepress::runtime::ternary_detail
