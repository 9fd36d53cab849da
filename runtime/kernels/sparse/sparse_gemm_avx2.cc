// AVX2 + FMA sparse kernels (sparse_gemm.h): f32_spmm_csr__avx2 and f32_spmm_nm__avx2,
// the 8-lane counterparts of the AVX-512 ones (the int8 kernel falls back to the reference
// on AVX2-only CPUs).
#include "runtime/kernels/sparse/sparse_gemm.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>

namespace edgepress::runtime::sparse {

#define EP_AVX2 __attribute__((target("avx2,fma")))

namespace {

EP_AVX2 inline float HSum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

EP_AVX2 inline float GatherDot(const float* x, const int32_t* idx, const float* val, int64_t lo,
                               int64_t hi) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t p = lo;
  for (; p + 16 <= hi; p += 16) {
    const __m256i i0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + p));
    const __m256i i1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + p + 8));
    acc0 = _mm256_fmadd_ps(_mm256_i32gather_ps(x, i0, 4), _mm256_loadu_ps(val + p), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_i32gather_ps(x, i1, 4), _mm256_loadu_ps(val + p + 8), acc1);
  }
  for (; p + 8 <= hi; p += 8) {
    const __m256i i0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + p));
    acc0 = _mm256_fmadd_ps(_mm256_i32gather_ps(x, i0, 4), _mm256_loadu_ps(val + p), acc0);
  }
  float sum = HSum(_mm256_add_ps(acc0, acc1));
  for (; p < hi; ++p) sum += val[p] * x[idx[p]];
  return sum;
}

EP_AVX2 inline __m256 BlockColumn(const float* at, const int32_t* idx, const float* val,
                                  int64_t lo, int64_t hi) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t p = lo;
  for (; p + 4 <= hi; p += 4) {
    a0 = _mm256_fmadd_ps(_mm256_set1_ps(val[p]), _mm256_loadu_ps(at + idx[p] * 8), a0);
    a1 = _mm256_fmadd_ps(_mm256_set1_ps(val[p + 1]), _mm256_loadu_ps(at + idx[p + 1] * 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_set1_ps(val[p + 2]), _mm256_loadu_ps(at + idx[p + 2] * 8), a2);
    a3 = _mm256_fmadd_ps(_mm256_set1_ps(val[p + 3]), _mm256_loadu_ps(at + idx[p + 3] * 8), a3);
  }
  for (; p < hi; ++p)
    a0 = _mm256_fmadd_ps(_mm256_set1_ps(val[p]), _mm256_loadu_ps(at + idx[p] * 8), a0);
  return _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
}

}  // namespace

EP_AVX2 void CsrAvx2(int64_t m, const float* a, int64_t lda, const float* at, const CsrWeight& w,
                     int64_t n0, int64_t n1, const SparseOut& o) {
  const int32_t* cp = w.col_ptr.data();
  const int32_t* idx = w.k_idx.data();
  const float* val = w.values.data();
  if (!at) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = n0; j < n1; ++j)
        o.c[i * o.ldc + j] = o.Apply(GatherDot(a + i * lda, idx, val, cp[j], cp[j + 1]), j);
    return;
  }
  // 8 columns' block results go to an 8 x 8 tile read back transposed (one gather per
  // row), as in the AVX-512 kernel.
  alignas(32) float tile[8 * 8];
  alignas(32) float row_out[8];
  const __m256i stride = _mm256_set_epi32(56, 48, 40, 32, 24, 16, 8, 0);
  for (int64_t r0 = 0; r0 < m; r0 += 8) {
    const float* atb = at + (r0 / 8) * w.k * 8;
    const int rows = static_cast<int>(std::min<int64_t>(8, m - r0));
    for (int64_t j0 = n0; j0 < n1; j0 += 8) {
      const int cols = static_cast<int>(std::min<int64_t>(8, n1 - j0));
      for (int jj = 0; jj < cols; ++jj)
        _mm256_store_ps(tile + jj * 8, BlockColumn(atb, idx, val, cp[j0 + jj], cp[j0 + jj + 1]));
      for (int r = 0; r < rows; ++r) {
        float* dst = o.c + (r0 + r) * o.ldc + j0;
        __m256 v = _mm256_i32gather_ps(tile, _mm256_add_epi32(stride, _mm256_set1_epi32(r)), 4);
        if (cols < 8) {
          _mm256_store_ps(row_out, v);
          for (int c = 0; c < cols; ++c) dst[c] = o.Apply(row_out[c], j0 + c);
          continue;
        }
        v = _mm256_mul_ps(v, _mm256_set1_ps(o.alpha));
        if (o.col_bias) v = _mm256_add_ps(v, _mm256_loadu_ps(o.col_bias + j0));
        if (o.clamp) v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(o.lo)), _mm256_set1_ps(o.hi));
        _mm256_storeu_ps(dst, v);
      }
    }
  }
}

EP_AVX2 void NMAvx2(int64_t m, const float* a, int64_t lda, const NMWeight& w, int64_t n0,
                    int64_t n1, const SparseOut& o) {
  const int nn = w.nn, mm = w.m;
  alignas(32) float lane[8];
  // Half-blocks of 8 columns of the 16-column blocks; rows inside so the block's weights
  // stay in cache.
  for (int64_t jb = n0; jb < n1; jb += 8) {
    const float* vals = w.values.data() + w.At(jb, 0, 0) + jb % 16;
    const uint8_t* ids = w.idx.data() + w.At(jb, 0, 0) + jb % 16;
    for (int64_t i = 0; i < m; ++i) {
      const float* arow = a + i * lda;
      __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
      for (int64_t g = 0; g < w.groups; ++g) {
        const __m256 ag = mm == 4 ? _mm256_broadcast_ps(reinterpret_cast<const __m128*>(arow + g * 4))
                                  : _mm256_loadu_ps(arow + g * 8);
        const int64_t base = g * nn * 16;
        for (int s = 0; s < nn; ++s) {
          const int64_t b0 = base + s * 16;
          const __m256i ix = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(ids + b0)));
          __m256& acc = (s & 1) ? acc1 : acc0;
          acc = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(ag, ix), _mm256_loadu_ps(vals + b0), acc);
        }
      }
      _mm256_store_ps(lane, _mm256_add_ps(acc0, acc1));
      const int cols = static_cast<int>(std::min<int64_t>(8, n1 - jb));
      for (int c = 0; c < cols; ++c) o.c[i * o.ldc + jb + c] = o.Apply(lane[c], jb + c);
    }
  }
}

#undef EP_AVX2

}  // namespace edgepress::runtime::sparse

#endif  // __x86_64__
