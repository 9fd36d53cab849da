// com.microsoft MatMulNBits (onnxruntime contrib op, since_version 1) with bits = 4:
//   Y[..., N] = A[..., K] x dequant(B)^T (+ bias)
// Inputs: A float; B uint8 [N, k_blocks, block_size / 2] (k_blocks = ceil(K / block_size),
// two 4-bit codes per byte, low nibble first along K); scales float [N, k_blocks] (or the
// older flat [N * k_blocks]); zero_points optional: uint8 packed like B, each row of W
// padded to whole bytes ([N, ceil(k_blocks / 2)]), or float [N, k_blocks], default 8;
// g_idx (deprecated) only as the trivial k / block_size map; bias optional float [N].
// Attributes K, N, block_size (power of two >= 16), bits (only 4), accuracy_level (4, as
// onnxruntime defines it, lets A be quantized to int8: the SIMD entries then quantize A per
// block and multiply on integers, nbits_int8.h, with B repacked once at load; M = 1 without
// VNNI takes the vpmaddubsw GEMV below on B's own layout. Any other level, and the scalar
// reference always, compute in fp32), weight_prepacked (must be 0). A B with a zero dimension
// (an omitted projection, per the spec) yields zeros plus bias.
//
// Every input is validated before use, with messages naming the node and input. When
// scales and zero points are initializers, their float form is built once in create();
// the 4-bit weights are used in place (no unpacked copy).
// Entries: q4_matmul_nbits__ref, q4_matmul_nbits__avx2 (fp32 paths below; int8 path
// q4s8_gemm__avxvnni where the CPU has AVX-VNNI, else q4s8_gemm__avx2), q4_matmul_nbits__avx512vnni (same fp32 paths; int8 path
// q4s8_gemm__avx512vnni).
#include "runtime/kernels/lowbit/matmul_nbits.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/gemm/gemm_op_util.h"
#include "runtime/kernels/lowbit/nbits_int8.h"
#include "runtime/thread_pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime {

namespace {

using gemm_util::DimsToString;

constexpr int64_t kMaxDim = int64_t{1} << 40;
// GEMV: columns per chunk; all rows of A run over one chunk while its weights sit in L2.
constexpr int64_t kGemvChunkCols = 64;
// GEMM path: columns dequantized at a time, straight into packed-B panels (32 x K floats
// stay within L2 for K <= 4096).
constexpr int64_t kGemmChunkCols = 32;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

void ParallelOrInline(ThreadPool* pool, int64_t n, int64_t grain,
                      const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (!pool || pool->num_threads() <= 1 || n <= grain) {
    fn(0, n);
    return;
  }
  pool->ParallelFor(n, grain, fn);
}

inline int Nibble(const uint8_t* block, int64_t j) {
  const uint8_t byte = block[j >> 1];
  return (j & 1) ? byte >> 4 : byte & 0x0F;
}

void Q4MatMulRef(const float* a, int64_t m, const Q4Weights& w, const float* bias, float* y,
                 ThreadPool* pool) {
  const int64_t k = w.k, kb = w.k_blocks, bs = w.block_size, blob = bs / 2, n = w.n;
  const Q4Params& p = *w.params;
  // Columns per task: the dequantized column buffer is allocated once per task.
  ParallelOrInline(pool, n, 8, [&](int64_t n0, int64_t n1) {
    std::vector<float> col(static_cast<size_t>(k));
    for (int64_t c = n0; c < n1; ++c) {
      for (int64_t kk = 0; kk < k; ++kk) {
        const int64_t b = kk / bs;
        const uint8_t* block = w.packed + (c * kb + b) * blob;
        col[kk] = (static_cast<float>(Nibble(block, kk % bs)) - p.zero_points[c * kb + b]) *
                  p.scales[c * kb + b];
      }
      for (int64_t i = 0; i < m; ++i) {
        const float* ar = a + i * k;
        float acc = 0.f;
        for (int64_t kk = 0; kk < k; ++kk) acc += ar[kk] * col[kk];
        y[i * n + c] = acc + (bias ? bias[c] : 0.f);
      }
    }
  });
}

#if defined(__x86_64__)
#define EP_AVX2 __attribute__((target("avx2,fma")))

// Elements 8j'..8j'+7 of a block from the 4 bytes at p, as floats: a broadcast 32-bit load
// shifted by 0, 4, ..., 28 puts nibble i of the word (element i, low nibble first) in
// lane i.
EP_AVX2 inline __m256 Nibbles8(const uint8_t* p, __m256i shifts, __m256i mask) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_cvtepi32_ps(
      _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(v), shifts), mask));
}

EP_AVX2 inline float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

EP_AVX2 float DotAvx2(const float* x, const float* z, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(z + i), acc);
  float s = HSum(acc);
  for (; i < n; ++i) s += x[i] * z[i];
  return s;
}

// y[r][c] for columns [n, n + C) and R rows of A: each expanded weight vector feeds R
// rows. `a` holds the rows zero-padded to kp = k_blocks * block_size floats, `asum` their
// per-block sums (kb floats per row); y rows are `ldy` apart.
template <int C, int R>
EP_AVX2 void GemvTileAvx2(const float* a, int64_t kp, const float* asum, const Q4Weights& w,
                          int64_t n, const float* bias, float* y, int64_t ldy) {
  const int64_t kb = w.k_blocks, bs = w.block_size, blob = bs / 2;
  const Q4Params& p = *w.params;
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i mask = _mm256_set1_epi32(0x0F);
  const uint8_t* wp[C];
  const float* sp[C];
  __m256 acc[C][R];
  for (int c = 0; c < C; ++c) {
    wp[c] = w.packed + (n + c) * kb * blob;
    sp[c] = p.scales.data() + (n + c) * kb;
    for (int r = 0; r < R; ++r) acc[c][r] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < kb; ++b) {
    const float* ab = a + b * bs;
    __m256 d[C][R];
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r) d[c][r] = _mm256_setzero_ps();
    for (int64_t j = 0; j < bs; j += 8) {
      __m256 av[R];
      for (int r = 0; r < R; ++r) av[r] = _mm256_loadu_ps(ab + r * kp + j);
      for (int c = 0; c < C; ++c) {
        const __m256 q = Nibbles8(wp[c] + j / 2, shifts, mask);
        for (int r = 0; r < R; ++r) d[c][r] = _mm256_fmadd_ps(av[r], q, d[c][r]);
      }
    }
    for (int c = 0; c < C; ++c) {
      const __m256 vs = _mm256_set1_ps(sp[c][b]);
      for (int r = 0; r < R; ++r) acc[c][r] = _mm256_fmadd_ps(d[c][r], vs, acc[c][r]);
      wp[c] += blob;
    }
  }
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r) {
      const float zsum = DotAvx2(p.scaled_zero_points.data() + (n + c) * kb, asum + r * kb, kb);
      y[r * ldy + n + c] = HSum(acc[c][r]) - zsum + (bias ? bias[n + c] : 0.f);
    }
}

// Columns [c0, c1) for R rows: C columns per tile, single columns for the rest.
template <int C, int R>
EP_AVX2 void GemvRowsAvx2(const float* a, int64_t kp, const float* asum, const Q4Weights& w,
                          int64_t c0, int64_t c1, const float* bias, float* y, int64_t ldy) {
  int64_t c = c0;
  for (; c + C <= c1; c += C) GemvTileAvx2<C, R>(a, kp, asum, w, c, bias, y, ldy);
  for (; c < c1; ++c) GemvTileAvx2<1, R>(a, kp, asum, w, c, bias, y, ldy);
}

EP_AVX2 void PadRowAvx2(const float* a, int64_t k, int64_t kb, int64_t bs, float* ap,
                        float* asum) {
  std::memcpy(ap, a, static_cast<size_t>(k) * sizeof(float));
  std::memset(ap + k, 0, static_cast<size_t>(kb * bs - k) * sizeof(float));
  for (int64_t b = 0; b < kb; ++b) {
    __m256 s = _mm256_setzero_ps();
    for (int64_t j = 0; j < bs; j += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(ap + b * bs + j));
    asum[b] = HSum(s);
  }
}

void Q4GemvAvx2(const float* a, int64_t m, const Q4Weights& w, const float* bias, float* y,
                ThreadPool* pool) {
  const int64_t k = w.k, kb = w.k_blocks, bs = w.block_size, kp = kb * bs, n = w.n;
  std::vector<float> ap(static_cast<size_t>(m * kp)), asum(static_cast<size_t>(m * kb));
  for (int64_t i = 0; i < m; ++i)
    PadRowAvx2(a + i * k, k, kb, bs, ap.data() + i * kp, asum.data() + i * kb);
  const int64_t chunks = CeilDiv(n, kGemvChunkCols);
  ParallelOrInline(pool, chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t ch = lo; ch < hi; ++ch) {
      const int64_t c0 = ch * kGemvChunkCols, c1 = std::min(n, c0 + kGemvChunkCols);
      for (int64_t i = 0; i < m;) {
        const float* ar = ap.data() + i * kp;
        const float* sr = asum.data() + i * kb;
        float* yr = y + i * n;
        switch (std::min<int64_t>(m - i, 4)) {
          case 4: GemvRowsAvx2<1, 4>(ar, kp, sr, w, c0, c1, bias, yr, n); i += 4; break;
          case 3: GemvRowsAvx2<1, 3>(ar, kp, sr, w, c0, c1, bias, yr, n); i += 3; break;
          case 2: GemvRowsAvx2<2, 2>(ar, kp, sr, w, c0, c1, bias, yr, n); i += 2; break;
          default: GemvRowsAvx2<4, 1>(ar, kp, sr, w, c0, c1, bias, yr, n); i += 1; break;
        }
      }
    }
  });
}

// ---- accuracy_level 4: A quantized to int8 per block, integer dot products ----
//
// Each row of A is quantized per block: a_q = round(a * 127 / max|a|), scale as = max|a| /
// 127. For every 32 weights (16 packed bytes) one 256-bit vector holds the low nibbles
// (elements 0, 2, ..., 30) in its lower half and the high nibbles (1, 3, ..., 31) in its
// upper half; a_q is stored in that order, so vpmaddubsw (u8 codes x s8 activations) needs
// no unpacking. It is exact here: |15 * 127 * 2| per int16 lane, and up to 8 groups (a
// 256-wide block) sum to 30480 < 2^15 before vpmaddwd widens them.
// y = sum_b s * as * dot_int - (s * z) * (as * sum a_q).

struct QuantRow {
  std::vector<int8_t> q;       // kp bytes, permuted per 32
  std::vector<float> scale;    // per block: as
  std::vector<float> sum;      // per block: as * sum(a_q)
};

// Rounds half to even (cvtps2dq under the default MXCSR), like nearbyint.
EP_AVX2 void QuantizeRowInt8(const float* a, int64_t k, int64_t kb, int64_t bs, QuantRow* r) {
  r->q.assign(static_cast<size_t>(kb * bs), 0);
  r->scale.assign(static_cast<size_t>(kb), 0.f);
  r->sum.assign(static_cast<size_t>(kb), 0.f);
  const __m256 sign = _mm256_set1_ps(-0.f);
  const __m256i lim = _mm256_set1_epi32(127), nlim = _mm256_set1_epi32(-127);
  alignas(32) int32_t tmp[8];
  for (int64_t b = 0; b < kb; ++b) {
    const int64_t k0 = b * bs, k1 = std::min(k, k0 + bs);
    __m256 vmax = _mm256_setzero_ps();
    int64_t kk = k0;
    for (; kk + 8 <= k1; kk += 8)
      vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(a + kk)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float amax = _mm_cvtss_f32(m4);
    for (; kk < k1; ++kk) amax = std::max(amax, std::fabs(a[kk]));
    const float as = amax / 127.f, inv = amax > 0.f ? 127.f / amax : 0.f;
    const __m256 vinv = _mm256_set1_ps(inv);
    int32_t total = 0;
    int8_t* qb = r->q.data() + k0;
    for (int64_t j = 0; j < k1 - k0; j += 8) {
      const int64_t cnt = std::min<int64_t>(8, k1 - k0 - j);
      __m256 v;
      if (cnt == 8) {
        v = _mm256_loadu_ps(a + k0 + j);
      } else {
        alignas(32) float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t e = 0; e < cnt; ++e) part[e] = a[k0 + j + e];
        v = _mm256_load_ps(part);
      }
      const __m256i q = _mm256_max_epi32(
          nlim, _mm256_min_epi32(lim, _mm256_cvtps_epi32(_mm256_mul_ps(v, vinv))));
      _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), q);
      for (int64_t e = 0; e < cnt; ++e) {
        const int64_t jj = j + e, g = jj / 32, o = jj % 32;
        qb[g * 32 + (o % 2) * 16 + o / 2] = static_cast<int8_t>(tmp[e]);
        total += tmp[e];
      }
    }
    r->scale[b] = as;
    r->sum[b] = as * static_cast<float>(total);
  }
}

template <int C>
EP_AVX2 void GemvTileInt8Avx2(const QuantRow& qa, const Q4Weights& w, int64_t n,
                              const float* bias, float* y) {
  const int64_t kb = w.k_blocks, bs = w.block_size, blob = bs / 2;
  const Q4Params& p = *w.params;
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  const uint8_t* wp[C];
  const float* sp[C];
  __m256 acc[C];
  for (int c = 0; c < C; ++c) {
    wp[c] = w.packed + (n + c) * kb * blob;
    sp[c] = p.scales.data() + (n + c) * kb;
    acc[c] = _mm256_setzero_ps();
  }
  for (int64_t b = 0; b < kb; ++b) {
    const int8_t* ab = qa.q.data() + b * bs;
    __m256i d[C];
    for (int c = 0; c < C; ++c) d[c] = _mm256_setzero_si256();
    for (int64_t g = 0; g < bs; g += 32) {
      const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab + g));
      for (int c = 0; c < C; ++c) {
        const __m256i v = _mm256_broadcastsi128_si256(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(wp[c] + g / 2)));
        const __m256i q =
            _mm256_and_si256(_mm256_blend_epi32(v, _mm256_srli_epi16(v, 4), 0xF0), mask);
        d[c] = _mm256_add_epi16(d[c], _mm256_maddubs_epi16(q, av));
      }
    }
    const float as = qa.scale[b];
    for (int c = 0; c < C; ++c) {
      const __m256 dot = _mm256_cvtepi32_ps(_mm256_madd_epi16(d[c], ones));
      acc[c] = _mm256_fmadd_ps(dot, _mm256_set1_ps(sp[c][b] * as), acc[c]);
      wp[c] += blob;
    }
  }
  for (int c = 0; c < C; ++c) {
    const float zsum = DotAvx2(p.scaled_zero_points.data() + (n + c) * kb, qa.sum.data(), kb);
    y[n + c] = HSum(acc[c]) - zsum + (bias ? bias[n + c] : 0.f);
  }
}

EP_AVX2 inline void Transpose8x8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// Columns [c0, c0 + cols) of the product (rows of W), cols <= nr, dequantized straight
// into one packed-B panel of the GEMM (K rows of nr floats; columns past `cols` are zero):
// 8 columns x 8 k values are expanded per column, then transposed in registers.
EP_AVX2 void DequantPanelAvx2(const Q4Weights& w, int64_t c0, int64_t cols, int nr,
                              float* panel) {
  const int64_t k = w.k, kb = w.k_blocks, bs = w.block_size, blob = bs / 2;
  const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
  const __m256i mask = _mm256_set1_epi32(0x0F);
  for (int g = 0; g < nr; g += 8) {
    const int live = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(8, cols - g)));
    if (live == 0) {
      for (int64_t kk = 0; kk < k; ++kk)
        _mm256_storeu_ps(panel + kk * nr + g, _mm256_setzero_ps());
      continue;
    }
    const uint8_t* wp[8];
    for (int c = 0; c < live; ++c) wp[c] = w.packed + (c0 + g + c) * kb * blob;
    for (int64_t b = 0; b < kb; ++b) {
      __m256 vs[8], vz[8];
      for (int c = 0; c < live; ++c) {
        vs[c] = _mm256_set1_ps(w.params->scales[(c0 + g + c) * kb + b]);
        vz[c] = _mm256_set1_ps(w.params->scaled_zero_points[(c0 + g + c) * kb + b]);
      }
      for (int64_t j = 0; j < bs && b * bs + j < k; j += 8) {
        __m256 r[8];
        for (int c = 0; c < 8; ++c)
          r[c] = c < live ? _mm256_fmsub_ps(Nibbles8(wp[c] + b * blob + j / 2, shifts, mask),
                                            vs[c], vz[c])
                          : _mm256_setzero_ps();
        Transpose8x8(r);
        const int64_t k0 = b * bs + j;
        const int rows = static_cast<int>(std::min<int64_t>(8, k - k0));
        for (int i = 0; i < rows; ++i) _mm256_storeu_ps(panel + (k0 + i) * nr + g, r[i]);
      }
    }
  }
}

void Q4GemmAvx2(const float* a, int64_t m, const Q4Weights& w, const float* bias, float* y,
                ThreadPool* pool) {
  const int64_t k = w.k, n = w.n;
  const int nr = GemmNr(Isa::kAvx2);
  const int64_t chunk_cols = CeilDiv(kGemmChunkCols, nr) * nr;
  const PackedMatrix pa = PackA(Isa::kAvx2, false, m, k, a, k);
  const int64_t chunks = CeilDiv(n, chunk_cols);
  // One panel buffer per task index; tasks take chunks round-robin.
  const int64_t tasks = std::min<int64_t>(chunks, pool ? pool->num_threads() : 1);
  const int64_t buf_floats = chunk_cols * k;
  std::vector<float> bufs(static_cast<size_t>(tasks * buf_floats));
  ParallelOrInline(tasks > 1 ? pool : nullptr, tasks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      float* buf = bufs.data() + t * buf_floats;
      for (int64_t ch = t; ch < chunks; ch += tasks) {
        const int64_t c0 = ch * chunk_cols, cols = std::min(n - c0, chunk_cols);
        for (int64_t q = 0; q * nr < cols; ++q)
          DequantPanelAvx2(w, c0 + q * nr, std::min<int64_t>(nr, cols - q * nr), nr,
                           buf + q * nr * k);
        GemmEpilogue ep;
        if (bias) {
          ep.bias_kind = GemmEpilogue::Bias::kPerCol;
          ep.bias = bias + c0;
        }
        SgemmEx(Isa::kAvx2, m, cols, k, 1.f, GemmOperand::Packed(pa),
                GemmOperand::PackedView(buf, Isa::kAvx2, cols, k), 0.f, y + c0, n, nullptr,
                bias ? &ep : nullptr);
      }
    }
  });
}
bool Q4Int8Applies(const Q4Weights& w) { return w.block_size % 32 == 0 && w.block_size <= 256; }

void Q4GemvInt8Avx2(const float* a, int64_t m, const Q4Weights& w, const float* bias, float* y,
                    ThreadPool* pool) {
  const int64_t k = w.k, kb = w.k_blocks, bs = w.block_size, n = w.n;
  std::vector<QuantRow> rows(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) QuantizeRowInt8(a + i * k, k, kb, bs, &rows[i]);
  const int64_t chunks = CeilDiv(n, kGemvChunkCols);
  ParallelOrInline(pool, chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t ch = lo; ch < hi; ++ch) {
      const int64_t c0 = ch * kGemvChunkCols, c1 = std::min(n, c0 + kGemvChunkCols);
      for (int64_t i = 0; i < m; ++i) {
        int64_t c = c0;
        for (; c + 4 <= c1; c += 4) GemvTileInt8Avx2<4>(rows[i], w, c, bias, y + i * n);
        for (; c < c1; ++c) GemvTileInt8Avx2<1>(rows[i], w, c, bias, y + i * n);
      }
    }
  });
}
#undef EP_AVX2
#endif  // __x86_64__

// ---- the operator ----

bool IsPowerOfTwo(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

struct Attrs {
  int64_t k = 0, n = 0, bits = 4, block_size = 0, k_blocks = 0, accuracy_level = 0;
};

Attrs ReadAttrs(const ir::Node& node) {
  Attrs at;
  if (!node.has_attr("K") || !node.has_attr("N") || !node.has_attr("block_size"))
    ThrowInvalid(node.describe() + ": MatMulNBits needs the attributes K, N and block_size");
  at.k = node.attr_int("K", 0);
  at.n = node.attr_int("N", 0);
  at.bits = node.attr_int("bits", 4);
  at.block_size = node.attr_int("block_size", 0);
  if (at.k <= 0 || at.k > kMaxDim || at.n <= 0 || at.n > kMaxDim)
    ThrowInvalid(node.describe() + ": attributes K=" + std::to_string(at.k) +
                 " and N=" + std::to_string(at.n) + " must be in [1, 2^40]");
  if (at.bits != 4)
    ThrowUnsupported(node.describe() + ": MatMulNBits with bits=" + std::to_string(at.bits) +
                     " is not supported (only bits=4)");
  if (!IsPowerOfTwo(at.block_size) || at.block_size < 16 || at.block_size > 65536)
    ThrowInvalid(node.describe() + ": block_size=" + std::to_string(at.block_size) +
                 " must be a power of two in [16, 65536]");
  if (node.attr_int("weight_prepacked", 0) != 0)
    ThrowUnsupported(node.describe() + ": weight_prepacked=" +
                     std::to_string(node.attr_int("weight_prepacked", 0)) +
                     " (an execution-provider layout) is not supported");
  at.accuracy_level = node.attr_int("accuracy_level", 0);
  at.k_blocks = CeilDiv(at.k, at.block_size);
  return at;
}

std::string InputName(size_t i) {
  static const char* const kNames[] = {"A", "B", "scales", "zero_points", "g_idx", "bias"};
  return std::to_string(i) + " (" + kNames[i] + ")";
}

void CheckBias(const ir::Node& node, const Attrs& at, const ir::Tensor* bias) {
  if (!bias) return;
  if (bias->dtype() != ir::DType::kFloat32)
    ThrowUnsupported(node.describe() + ": input " + InputName(5) + " has dtype " +
                     ir::DTypeName(bias->dtype()) + ", expected float32");
  if (bias->numel() != static_cast<uint64_t>(at.n))
    ThrowInvalid(node.describe() + ": input " + InputName(5) + " has shape " +
                 DimsToString(bias->shape()) + ", expected [" + std::to_string(at.n) + "]");
}

// Checks scales, zero_points and g_idx against the attributes (B is checked by the caller).
void CheckParams(const ir::Node& node, const Attrs& at, const ir::Tensor* scales,
                 const ir::Tensor* zp, const ir::Tensor* g_idx) {
  const uint64_t nkb = static_cast<uint64_t>(at.n) * static_cast<uint64_t>(at.k_blocks);
  if (!scales) ThrowInvalid(node.describe() + ": missing input " + InputName(2));
  if (scales->dtype() != ir::DType::kFloat32)
    ThrowUnsupported(node.describe() + ": input " + InputName(2) + " has dtype " +
                     ir::DTypeName(scales->dtype()) + ", expected float32");
  if (scales->numel() != nkb)
    ThrowInvalid(node.describe() + ": input " + InputName(2) + " has shape " +
                 DimsToString(scales->shape()) + ", expected [" + std::to_string(at.n) + "," +
                 std::to_string(at.k_blocks) + "]");
  if (zp) {
    if (zp->dtype() == ir::DType::kUInt8) {
      const uint64_t want = static_cast<uint64_t>(at.n) * CeilDiv(at.k_blocks, 2);
      if (zp->numel() != want)
        ThrowInvalid(node.describe() + ": input " + InputName(3) + " (packed uint8) has shape " +
                     DimsToString(zp->shape()) + ", expected [" + std::to_string(at.n) + "," +
                     std::to_string(CeilDiv(at.k_blocks, 2)) + "]");
    } else if (zp->dtype() == ir::DType::kFloat32) {
      if (zp->numel() != nkb)
        ThrowInvalid(node.describe() + ": input " + InputName(3) + " (float) has shape " +
                     DimsToString(zp->shape()) + ", expected [" + std::to_string(at.n) + "," +
                     std::to_string(at.k_blocks) + "]");
    } else {
      ThrowUnsupported(node.describe() + ": input " + InputName(3) + " has dtype " +
                       ir::DTypeName(zp->dtype()) + ", expected uint8 (packed) or float32");
    }
  }
  if (g_idx) {
    if (g_idx->dtype() != ir::DType::kInt32 || g_idx->numel() != static_cast<uint64_t>(at.k))
      ThrowInvalid(node.describe() + ": input " + InputName(4) + " must be int32 of " +
                   std::to_string(at.k) + " elements");
    const int32_t* g = g_idx->data<int32_t>();
    for (int64_t kk = 0; kk < at.k; ++kk)
      if (g[kk] != kk / at.block_size)
        ThrowUnsupported(node.describe() + ": input " + InputName(4) +
                         " reorders K (g_idx[" + std::to_string(kk) + "]=" +
                         std::to_string(g[kk]) + "); only the trivial k / block_size map is "
                         "supported");
  }
}

Q4Params ParamsFrom(const Attrs& at, const ir::Tensor& scales, const ir::Tensor* zp) {
  return MakeQ4Params(at.n, at.k_blocks, scales.data<float>(),
                      zp && zp->dtype() == ir::DType::kUInt8 ? zp->data<uint8_t>() : nullptr,
                      zp && zp->dtype() == ir::DType::kFloat32 ? zp->data<float>() : nullptr);
}

const ir::Tensor* Present(const ir::Tensor* t) { return t && !t->empty() ? t : nullptr; }

template <Isa kIsa>
class MatMulNBitsKernel : public Kernel {
 public:
  explicit MatMulNBitsKernel(const KernelInit& init) : at_(ReadAttrs(init.node)) {
    auto constant = [&](size_t i) {
      return i < init.constant_inputs.size() ? Present(init.constant_inputs[i]) : nullptr;
    };
    const ir::Tensor* scales = constant(2);
    // Absent zero points are as good as constant; an input that is a graph input is not.
    const bool zp_known = init.node.inputs().size() <= 3 || !init.node.inputs()[3] ||
                          constant(3) != nullptr;
    if (scales && zp_known) {
      const ir::Tensor* zp = constant(3);
      CheckParams(init.node, at_, scales, zp, nullptr);
      params_ = std::make_unique<Q4Params>(ParamsFrom(at_, *scales, zp));
      scales_raw_ = scales->raw();
      zp_raw_ = zp ? zp->raw() : nullptr;
      // The int8-activation path's weight layout, built once (as large as B itself).
      const ir::Tensor* b = constant(1);
      if (UsesInt8() && b && b->dtype() == ir::DType::kUInt8 &&
          b->numel() == static_cast<uint64_t>(at_.n * at_.k_blocks * (at_.block_size / 2))) {
        packed_ = std::make_unique<Q4Int8Packed>(PackQ4Int8(WeightsOf(b->data<uint8_t>(),
                                                                      params_.get())));
        b_raw_ = b->raw();
      }
    }
  }

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor& a = gemm_util::FloatInput(ctx, 0, "A");
    const ir::Tensor* b = ctx.input(1);
    if (!b) ThrowInvalid(node.describe() + ": missing input " + InputName(1));
    const ir::Tensor* scales = Present(ctx.input(2));
    const ir::Tensor* zp = Present(ctx.input(3));
    const ir::Tensor* g_idx = Present(ctx.input(4));
    const ir::Tensor* bias = Present(ctx.input(5));
    if (a.rank() < 1 || a.shape().back() != at_.k)
      ThrowInvalid(node.describe() + ": input " + InputName(0) + " has shape " +
                   DimsToString(a.shape()) + ", its last dimension must be K=" +
                   std::to_string(at_.k));
    if (b->dtype() != ir::DType::kUInt8)
      ThrowUnsupported(node.describe() + ": input " + InputName(1) + " has dtype " +
                       ir::DTypeName(b->dtype()) + ", expected uint8");
    const std::vector<int64_t> want_b = {at_.n, at_.k_blocks, at_.block_size / 2};
    bool b_ok = b->rank() == 3;
    for (size_t i = 0; b_ok && i < 3; ++i)
      b_ok = b->shape()[i] == want_b[i] || (b->numel() == 0 && b->shape()[i] == 0);
    if (!b_ok)
      ThrowInvalid(node.describe() + ": input " + InputName(1) + " has shape " +
                   DimsToString(b->shape()) + ", expected " + DimsToString(want_b) +
                   " for K=" + std::to_string(at_.k) + ", N=" + std::to_string(at_.n) +
                   ", block_size=" + std::to_string(at_.block_size));
    const bool omitted = b->numel() == 0;  // spec: an omitted projection, Y = bias or 0
    CheckBias(node, at_, bias);
    if (!omitted) CheckParams(node, at_, scales, zp, g_idx);

    std::vector<int64_t> out_shape = a.shape();
    out_shape.back() = at_.n;
    const int64_t m = static_cast<int64_t>(a.numel()) / at_.k;
    if (m > 0 && at_.n > kMaxDim / m)
      ThrowInvalid(node.describe() + ": output " + DimsToString(out_shape) +
                   " exceeds 2^40 elements");
    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kFloat32, out_shape);
    if (y.numel() == 0) return;
    float* yd = y.mutable_data<float>();
    const float* bd = bias ? bias->data<float>() : nullptr;
    if (omitted) {
      for (int64_t i = 0; i < m; ++i)
        for (int64_t c = 0; c < at_.n; ++c) yd[i * at_.n + c] = bd ? bd[c] : 0.f;
      return;
    }
    Q4Params local;
    const Q4Params* params = params_.get();
    if (!params || scales->raw() != scales_raw_ || (zp ? zp->raw() : nullptr) != zp_raw_) {
      local = ParamsFrom(at_, *scales, zp);
      params = &local;
    }
    const Q4Weights w = WeightsOf(b->data<uint8_t>(), params);
    // The fp32 kernels are AVX2 code on every x86 entry.
    const Isa fp_isa = kIsa == Isa::kScalar ? Isa::kScalar : Isa::kAvx2;
    if (UsesInt8()) {
      // M = 1 without any VNNI: the vpmaddubsw GEMV on B's own layout is as fast as the
      // packed AVX2 kernel; with VNNI the packed kernel is 1.6-3x faster
      // (bench/int4_gemv_bench.cc).
      const Q4Int8Impl impl = Q4Int8ImplFor(kIsa);
      if (m == 1 && impl.kernel == nbits_detail::Q4Int8GemmAvx2 &&
          Q4MatMulInt8(fp_isa, a.data<float>(), m, w, bd, yd, &ctx.pool()))
        return;
      const Q4Int8Packed* pk = nullptr;
      Q4Int8Packed local_pk;
      if (packed_ && b->raw() == b_raw_ && params == params_.get()) {
        pk = packed_.get();
      } else {
        local_pk = PackQ4Int8(w);
        pk = &local_pk;
      }
      Q4Int8MatMul(impl, a.data<float>(), m, *pk, bd, yd, &ctx.pool());
      return;
    }
    Q4MatMul(fp_isa, a.data<float>(), m, w, bd, yd, &ctx.pool());
  }

 private:
  // accuracy_level 4 lets A be quantized to int8, as onnxruntime defines it; the reference
  // entry always computes in fp32.
  bool UsesInt8() const { return at_.accuracy_level == 4 && kIsa != Isa::kScalar; }

  Q4Weights WeightsOf(const uint8_t* packed, const Q4Params* params) const {
    Q4Weights w;
    w.n = at_.n;
    w.k = at_.k;
    w.block_size = at_.block_size;
    w.k_blocks = at_.k_blocks;
    w.packed = packed;
    w.params = params;
    return w;
  }

  Attrs at_;
  std::unique_ptr<Q4Params> params_;
  std::unique_ptr<Q4Int8Packed> packed_;
  const void* scales_raw_ = nullptr;
  const void* zp_raw_ = nullptr;
  const void* b_raw_ = nullptr;
};

template <Isa kIsa>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  return std::make_unique<MatMulNBitsKernel<kIsa>>(init);
}

}  // namespace

Q4Params MakeQ4Params(int64_t n, int64_t k_blocks, const float* scales,
                      const uint8_t* zero_points_u8, const float* zero_points_f32) {
  Q4Params p;
  const size_t total = static_cast<size_t>(n * k_blocks);
  p.scales.assign(scales, scales + total);
  p.zero_points.assign(total, 8.f);
  const int64_t zp_row = CeilDiv(k_blocks, 2);
  for (int64_t c = 0; c < n; ++c)
    for (int64_t b = 0; b < k_blocks; ++b) {
      float& z = p.zero_points[c * k_blocks + b];
      if (zero_points_u8)
        z = static_cast<float>(Nibble(zero_points_u8 + c * zp_row, b));
      else if (zero_points_f32)
        z = zero_points_f32[c * k_blocks + b];
    }
  p.scaled_zero_points.resize(total);
  for (size_t i = 0; i < total; ++i) p.scaled_zero_points[i] = p.scales[i] * p.zero_points[i];
  return p;
}

void Q4MatMul(Isa isa, const float* a, int64_t m, const Q4Weights& w, const float* bias,
              float* y, ThreadPool* pool) {
  if (m <= 0 || w.n <= 0) return;
#if defined(__x86_64__)
  if (isa == Isa::kAvx2) {
    if (m >= kQ4GemmMinRows && GemmNr(Isa::kAvx2) % 8 == 0)  // panels of whole 8-col groups
      Q4GemmAvx2(a, m, w, bias, y, pool);
    else
      Q4GemvAvx2(a, m, w, bias, y, pool);
    return;
  }
#endif
  Q4MatMulRef(a, m, w, bias, y, pool);
}

bool Q4MatMulInt8(Isa isa, const float* a, int64_t m, const Q4Weights& w, const float* bias,
                  float* y, ThreadPool* pool) {
#if defined(__x86_64__)
  // Rows run one at a time here, so from 2 rows on the fp32 multi-row tiles (one nibble
  // expansion for up to 4 rows) are as fast; the decoder GEMV (M = 1) gains 2x.
  if (isa == Isa::kAvx2 && m == 1 && w.n > 0 && Q4Int8Applies(w)) {
    Q4GemvInt8Avx2(a, m, w, bias, y, pool);
    return true;
  }
#endif
  return false;
}

void RegisterMatMulNBitsKernels(KernelRegistry& r) {
  r.Add({"MatMulNBits", "com.microsoft", ir::DType::kFloat32, Isa::kScalar,
         "q4_matmul_nbits__ref", Create<Isa::kScalar>});
#if defined(__x86_64__)
  r.Add({"MatMulNBits", "com.microsoft", ir::DType::kFloat32, Isa::kAvx2,
         "q4_matmul_nbits__avx2", Create<Isa::kAvx2>});
  r.Add({"MatMulNBits", "com.microsoft", ir::DType::kFloat32, Isa::kAvx512Vnni,
         "q4_matmul_nbits__avx512vnni", Create<Isa::kAvx512Vnni>});
#endif
}

}  // namespace edgepress::runtime
