// AVX-512 sparse kernels (sparse_gemm.h): f32_spmm_csr__avx512, f32_spmm_nm__avx512 and
// the int8 q8_spmm_csr__avx512vnni. Compiled per function with target attributes so the
// binary runs anywhere; the table only hands them out where the CPU has the ISA.
#include "runtime/kernels/sparse/sparse_gemm.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <algorithm>

// gcc 12 reports -Wmaybe-uninitialized inside unmasked AVX-512 intrinsics (their merge
// source is an undefined vector): a false positive, silenced for this file.
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace edgepress::runtime::sparse {

#define EP_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))

namespace {

EP_AVX512 inline __mmask16 TailMask(int64_t count) {
  return static_cast<__mmask16>(count >= 16 ? 0xFFFF : (1u << count) - 1);
}

// Sum of values[p] * x[k_idx[p]] over [lo, hi): x[] gathered 16 at a time; two
// accumulators hide the FMA latency.
EP_AVX512 inline float GatherDot(const float* x, const int32_t* idx, const float* val, int64_t lo,
                                 int64_t hi) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t p = lo;
  for (; p + 32 <= hi; p += 32) {
    const __m512i i0 = _mm512_loadu_si512(idx + p), i1 = _mm512_loadu_si512(idx + p + 16);
    acc0 = _mm512_fmadd_ps(_mm512_i32gather_ps(i0, x, 4), _mm512_loadu_ps(val + p), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_i32gather_ps(i1, x, 4), _mm512_loadu_ps(val + p + 16), acc1);
  }
  for (; p < hi; p += 16) {
    const __mmask16 k = TailMask(hi - p);
    const __m512i i0 = _mm512_maskz_loadu_epi32(k, idx + p);
    const __m512 g = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, i0, x, 4);
    acc0 = _mm512_fmadd_ps(g, _mm512_maskz_loadu_ps(k, val + p), acc0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

// One column of a 16-row block of A^T: sum over the column's non-zeros of
// value * at[k][0..16).
EP_AVX512 inline __m512 BlockColumn(const float* at, const int32_t* idx, const float* val,
                                    int64_t lo, int64_t hi) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t p = lo;
  for (; p + 4 <= hi; p += 4) {
    a0 = _mm512_fmadd_ps(_mm512_set1_ps(val[p]), _mm512_loadu_ps(at + idx[p] * 16), a0);
    a1 = _mm512_fmadd_ps(_mm512_set1_ps(val[p + 1]), _mm512_loadu_ps(at + idx[p + 1] * 16), a1);
    a2 = _mm512_fmadd_ps(_mm512_set1_ps(val[p + 2]), _mm512_loadu_ps(at + idx[p + 2] * 16), a2);
    a3 = _mm512_fmadd_ps(_mm512_set1_ps(val[p + 3]), _mm512_loadu_ps(at + idx[p + 3] * 16), a3);
  }
  for (; p < hi; ++p)
    a0 = _mm512_fmadd_ps(_mm512_set1_ps(val[p]), _mm512_loadu_ps(at + idx[p] * 16), a0);
  return _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
}

// alpha, bias and clamp on 16 columns from `col`, stored under `k`.
EP_AVX512 inline void StoreColumns(__m512 acc, __mmask16 k, int64_t col, float* dst,
                                   const SparseOut& o) {
  __m512 v = _mm512_mul_ps(acc, _mm512_set1_ps(o.alpha));
  if (o.col_bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, o.col_bias + col));
  if (o.clamp)
    v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(o.lo)), _mm512_set1_ps(o.hi));
  _mm512_mask_storeu_ps(dst, k, v);
}

}  // namespace

EP_AVX512 void CsrAvx512(int64_t m, const float* a, int64_t lda, const float* at,
                         const CsrWeight& w, int64_t n0, int64_t n1, const SparseOut& o) {
  const int32_t* cp = w.col_ptr.data();
  const int32_t* idx = w.k_idx.data();
  const float* val = w.values.data();
  if (!at) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = n0; j < n1; ++j)
        o.c[i * o.ldc + j] = o.Apply(GatherDot(a + i * lda, idx, val, cp[j], cp[j + 1]), j);
    return;
  }
  // 16 columns' block results go to a 16 x 16 tile (column-major), which is read back
  // transposed, one gather per row, so the epilogue and the stores are vectors along the
  // row instead of 16 strided scalar stores per column.
  alignas(64) float tile[16 * 16];
  const __m512i stride = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(16));
  for (int64_t r0 = 0; r0 < m; r0 += 16) {
    const float* atb = at + (r0 / 16) * w.k * 16;
    const int rows = static_cast<int>(std::min<int64_t>(16, m - r0));
    for (int64_t j0 = n0; j0 < n1; j0 += 16) {
      const int cols = static_cast<int>(std::min<int64_t>(16, n1 - j0));
      for (int jj = 0; jj < cols; ++jj)
        _mm512_store_ps(tile + jj * 16, BlockColumn(atb, idx, val, cp[j0 + jj], cp[j0 + jj + 1]));
      const __mmask16 k = TailMask(cols);
      for (int r = 0; r < rows; ++r) {
        const __m512 row = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k,
                                                    _mm512_add_epi32(stride, _mm512_set1_epi32(r)),
                                                    tile, 4);
        StoreColumns(row, k, j0, o.c + (r0 + r) * o.ldc + j0, o);
      }
    }
  }
}

EP_AVX512 void NMAvx512(int64_t m, const float* a, int64_t lda, const NMWeight& w, int64_t n0,
                        int64_t n1, const SparseOut& o) {
  const int nn = w.nn, mm = w.m;
  // Column block outside, rows inside: a block's weights (groups x nn x 16) stay in cache
  // while every row of A streams over them.
  for (int64_t jb = n0; jb < n1; jb += 16) {
    const float* vals = w.values.data() + w.At(jb, 0, 0);
    const uint8_t* ids = w.idx.data() + w.At(jb, 0, 0);
    for (int64_t i = 0; i < m; ++i) {
      const float* arow = a + i * lda;
      __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
      for (int64_t g = 0; g < w.groups; ++g) {
        // The group's m activations in every 128/256-bit lane: the slot index permutes
        // the right one into each column's lane.
        const __m512 ag = mm == 4 ? _mm512_broadcast_f32x4(_mm_loadu_ps(arow + g * 4))
                                  : _mm512_broadcast_f32x8(_mm256_loadu_ps(arow + g * 8));
        const int64_t base = g * nn * 16;
        int s = 0;
        for (; s + 2 <= nn; s += 2) {
          const int64_t b0 = base + s * 16, b1 = b0 + 16;
          const __m512i i0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ids + b0)));
          const __m512i i1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ids + b1)));
          acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(i0, ag), _mm512_loadu_ps(vals + b0), acc0);
          acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(i1, ag), _mm512_loadu_ps(vals + b1), acc1);
        }
        if (s < nn) {
          const int64_t b0 = base + s * 16;
          const __m512i i0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ids + b0)));
          acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(i0, ag), _mm512_loadu_ps(vals + b0), acc0);
        }
      }
      StoreColumns(_mm512_add_ps(acc0, acc1), TailMask(n1 - jb), jb, o.c + i * o.ldc + jb, o);
    }
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) void QCsrAvx512Vnni(
    int64_t m, const int32_t* a_rows, int64_t k, const QCsrWeight& w, int64_t n0, int64_t n1,
    int32_t* acc, int64_t ld_acc) {
  const int32_t* cp = w.col_ptr.data();
  const int32_t* idx = w.k_idx.data();
  const int32_t* val = w.values.data();
  for (int64_t i = 0; i < m; ++i) {
    const int32_t* x = a_rows + i * k;
    for (int64_t j = n0; j < n1; ++j) {
      __m512i s0 = _mm512_setzero_si512(), s1 = s0;
      int64_t p = cp[j];
      const int64_t hi = cp[j + 1];
      for (; p + 32 <= hi; p += 32) {
        const __m512i g0 = _mm512_i32gather_epi32(_mm512_loadu_si512(idx + p), x, 4);
        const __m512i g1 = _mm512_i32gather_epi32(_mm512_loadu_si512(idx + p + 16), x, 4);
        s0 = _mm512_dpwssd_epi32(s0, g0, _mm512_loadu_si512(val + p));
        s1 = _mm512_dpwssd_epi32(s1, g1, _mm512_loadu_si512(val + p + 16));
      }
      for (; p < hi; p += 16) {
        const __mmask16 km = static_cast<__mmask16>(hi - p >= 16 ? 0xFFFF : (1u << (hi - p)) - 1);
        const __m512i g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), km,
                                                      _mm512_maskz_loadu_epi32(km, idx + p), x, 4);
        s0 = _mm512_dpwssd_epi32(s0, g, _mm512_maskz_loadu_epi32(km, val + p));
      }
      acc[i * ld_acc + j] = _mm512_reduce_add_epi32(_mm512_add_epi32(s0, s1));
    }
  }
}

#undef EP_AVX512

}  // namespace edgepress::runtime::sparse

#pragma GCC diagnostic pop

#endif  // __x86_64__
