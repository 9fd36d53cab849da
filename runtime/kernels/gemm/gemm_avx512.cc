// SGEMM micro-kernel for AVX-512F (12 x 32).
//
// 24 zmm accumulators (12 rows x 2 vectors of 16 columns) leave 8 registers for the two B
// vectors and the A broadcasts, as MLAS's AVX-512 kernel does. Per K step that is 24 FMAs
// for 2 B loads and 12 broadcasts: the 6 x 32 tile it replaces issued 12 FMAs for 8 loads
// and could not keep both FMA ports busy (bert's FFN MatMuls 123 GFLOP/s).
//
// The tile is a template on its row count, so an edge panel of 4 rows (M = 64 leaves one)
// runs 8 FMAs per K step instead of 24 on zero padding. Column edges use masked loads and
// stores. The accumulators are named variables, not arrays: gcc 12 keeps arrays of vectors
// in memory across the K loop.
#include "runtime/kernels/gemm/gemm_ukernel.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::gemm_internal {

namespace {

constexpr int kMr = 12;

// alpha, beta * C, bias and clamp for one row of 32 (masked) columns, then the store.
__attribute__((target("avx512f"), always_inline)) inline void StoreRow(
    __m512 v0, __m512 v1, float* cr, int r, __mmask16 m0, __mmask16 m1, const StoreParams& p) {
  if (p.alpha != 1.f) {
    const __m512 va = _mm512_set1_ps(p.alpha);
    v0 = _mm512_mul_ps(v0, va);
    v1 = _mm512_mul_ps(v1, va);
  }
  if (p.beta != 0) {
    const __m512 vb = _mm512_set1_ps(p.beta);
    v0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, cr), vb, v0);
    v1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, cr + 16), vb, v1);
  }
  if (p.row_bias) {
    const __m512 rb = _mm512_set1_ps(p.row_bias[r]);
    v0 = _mm512_add_ps(v0, rb);
    v1 = _mm512_add_ps(v1, rb);
  }
  if (p.col_bias) {
    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, p.col_bias));
    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, p.col_bias + 16));
  }
  if (p.clamp) {
    const __m512 lo = _mm512_set1_ps(p.lo), hi = _mm512_set1_ps(p.hi);
    // maskz forms: gcc 12 warns on the plain ones' _mm512_undefined_ps once inlined here.
    v0 = _mm512_maskz_min_ps(0xFFFF, _mm512_maskz_max_ps(0xFFFF, v0, lo), hi);
    v1 = _mm512_maskz_min_ps(0xFFFF, _mm512_maskz_max_ps(0xFFFF, v1, lo), hi);
  }
  _mm512_mask_storeu_ps(cr, m0, v0);
  _mm512_mask_storeu_ps(cr + 16, m1, v1);
}

// Row r's A value at the current K step: packed, a[r]; raw, row r of four row groups whose
// base pointers advance together (base + 0/1/2 x lda keeps the addressing in one
// instruction each and the pointers in 5 registers).
#define EP_AVX512_A(r)                                                                   \
  (kRawA ? ((r) / 3 == 0 ? g0 : (r) / 3 == 1 ? g1 : (r) / 3 == 2 ? g2 : g3)[((r) % 3) * lda] \
         : a[r])
#define EP_AVX512_ROW(r)                                    \
  if constexpr (R > r) {                                    \
    const __m512 av = _mm512_set1_ps(EP_AVX512_A(r));       \
    c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0);             \
    c##r##1 = _mm512_fmadd_ps(av, b1, c##r##1);             \
  }
#define EP_AVX512_STORE(r) \
  if constexpr (R > r) StoreRow(c##r##0, c##r##1, c + r * ldc, r, m0, m1, p);

// kRawA: A is row-major memory (rows lda floats apart) read in place instead of a packed
// panel (rows kMr floats apart per K step).
template <int R, bool kRawA>
__attribute__((target("avx512f"))) void Tile(int cols, int64_t kc, const float* a,
                                             int64_t lda, const float* b, int64_t ldb,
                                             float* c, int64_t ldc, const StoreParams& p) {
  const float *g0 = a, *g1 = a + 3 * lda, *g2 = a + 6 * lda, *g3 = a + 9 * lda;
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
         c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00,
         c61 = c00, c70 = c00, c71 = c00, c80 = c00, c81 = c00, c90 = c00, c91 = c00;
  __m512 c100 = c00, c101 = c00, c110 = c00, c111 = c00;
  // C is read (beta) or written right after the loop: start fetching its lines now.
  for (int r = 0; r < R; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16), _MM_HINT_T0);
  }
  const char* pf = p.prefetch;
  const int64_t pf_lines = pf ? p.prefetch_lines : 0;
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    if (k < pf_lines) _mm_prefetch(pf + k * 64, _MM_HINT_T1);
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
    EP_AVX512_ROW(0)
    EP_AVX512_ROW(1)
    EP_AVX512_ROW(2)
    EP_AVX512_ROW(3)
    EP_AVX512_ROW(4)
    EP_AVX512_ROW(5)
    EP_AVX512_ROW(6)
    EP_AVX512_ROW(7)
    EP_AVX512_ROW(8)
    EP_AVX512_ROW(9)
    EP_AVX512_ROW(10)
    EP_AVX512_ROW(11)
    if constexpr (kRawA) {
      ++g0, ++g1, ++g2, ++g3;
    } else {
      a += kMr;
    }
    b += ldb;
  }
  const __mmask16 m0 = cols >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << cols) - 1);
  const __mmask16 m1 =
      cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : static_cast<__mmask16>((1u << (cols - 16)) - 1);
  EP_AVX512_STORE(0)
  EP_AVX512_STORE(1)
  EP_AVX512_STORE(2)
  EP_AVX512_STORE(3)
  EP_AVX512_STORE(4)
  EP_AVX512_STORE(5)
  EP_AVX512_STORE(6)
  EP_AVX512_STORE(7)
  EP_AVX512_STORE(8)
  EP_AVX512_STORE(9)
  EP_AVX512_STORE(10)
  EP_AVX512_STORE(11)
}
#undef EP_AVX512_A
#undef EP_AVX512_ROW
#undef EP_AVX512_STORE

using TileImpl = void (*)(int, int64_t, const float*, int64_t, const float*, int64_t, float*,
                          int64_t, const StoreParams&);

template <bool kRawA>
constexpr TileImpl kTiles[kMr] = {
    Tile<1, kRawA>, Tile<2, kRawA>, Tile<3, kRawA>, Tile<4, kRawA>,   Tile<5, kRawA>,
    Tile<6, kRawA>, Tile<7, kRawA>, Tile<8, kRawA>, Tile<9, kRawA>, Tile<10, kRawA>,
    Tile<11, kRawA>, Tile<12, kRawA>};

}  // namespace

void Avx512Kernel(int rows, int cols, int64_t kc, const float* a, const float* b, int64_t ldb,
                  float* c, int64_t ldc, const StoreParams& p) {
  kTiles<false>[rows - 1](cols, kc, a, 0, b, ldb, c, ldc, p);
}

void Avx512KernelRawA(int rows, int cols, int64_t kc, const float* a, int64_t lda,
                      const float* b, int64_t ldb, float* c, int64_t ldc, const StoreParams& p) {
  kTiles<true>[rows - 1](cols, kc, a, lda, b, ldb, c, ldc, p);
}

}  // namespace edgepress::runtime::gemm_internal
#endif  // __x86_64__
