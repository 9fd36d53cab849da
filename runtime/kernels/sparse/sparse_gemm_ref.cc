// Packing, the scalar reference kernels, the per-ISA table and the drivers of the sparse
// GEMMs (sparse_gemm.h). The reference kernels accumulate in float in index order, the
// same order as the SIMD kernels' per-lane sums, so results differ only by the SIMD
// kernels' partial-sum splits.
#include <algorithm>
#include <cstring>
#include <functional>

#include "runtime/kernels/sparse/sparse_gemm.h"

namespace edgepress::runtime::sparse {

namespace {
float At(const float* b, int64_t ldb, bool trans, int64_t kk, int64_t j) {
  return trans ? b[j * ldb + kk] : b[kk * ldb + j];
}

void ParallelColumns(ThreadPool* pool, int64_t n, int64_t grain,
                     const std::function<void(int64_t, int64_t)>& fn) {
  if (pool && pool->num_threads() > 1 && n > grain)
    pool->ParallelFor((n + grain - 1) / grain, 1, [&](int64_t lo, int64_t hi) {
      fn(lo * grain, std::min(n, hi * grain));
    });
  else if (n > 0)
    fn(0, n);
}
}  // namespace

CsrWeight PackCsr(const float* b, int64_t ldb, bool trans, int64_t k, int64_t n) {
  CsrWeight w;
  w.k = k;
  w.n = n;
  w.col_ptr.assign(static_cast<size_t>(n + 1), 0);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t kk = 0; kk < k; ++kk) {
      const float v = At(b, ldb, trans, kk, j);
      if (v == 0.f) continue;
      w.k_idx.push_back(static_cast<int32_t>(kk));
      w.values.push_back(v);
    }
    w.col_ptr[j + 1] = static_cast<int32_t>(w.values.size());
  }
  return w;
}

bool PackNM(const float* b, int64_t ldb, bool trans, int64_t k, int64_t n, NMWeight* out) {
  auto max_per_group = [&](int m) {
    int worst = 0;
    for (int64_t j = 0; j < n; ++j)
      for (int64_t g = 0; g < k / m; ++g) {
        int c = 0;
        for (int t = 0; t < m; ++t) c += At(b, ldb, trans, g * m + t, j) != 0.f;
        worst = std::max(worst, c);
      }
    return worst;
  };
  int m = 0, nn = 0;
  if (k % 4 == 0 && (nn = max_per_group(4)) <= 2) {
    m = 4;
  } else if (k % 8 == 0 && (nn = max_per_group(8)) <= 4) {
    m = 8;
  } else {
    return false;
  }
  nn = std::max(nn, 1);
  NMWeight& w = *out;
  w.k = k;
  w.n = n;
  w.nn = nn;
  w.m = m;
  w.groups = k / m;
  w.n_padded = (n + 15) / 16 * 16;
  const size_t total = static_cast<size_t>(w.groups * nn * w.n_padded);
  w.values.assign(total, 0.f);
  w.idx.assign(total, 0);
  for (int64_t g = 0; g < w.groups; ++g)
    for (int64_t j = 0; j < n; ++j) {
      int s = 0;
      for (int t = 0; t < m && s < nn; ++t) {
        const float v = At(b, ldb, trans, g * m + t, j);
        if (v == 0.f) continue;
        const size_t at = w.At(j, g, s) + static_cast<size_t>(j % 16);
        w.values[at] = v;
        w.idx[at] = static_cast<uint8_t>(t);
        ++s;
      }
    }
  return true;
}

QCsrWeight PackQCsr(const void* b, bool is_signed, int64_t ldb, bool trans, int64_t k, int64_t n,
                    const int32_t* zb, bool per_col_zb) {
  QCsrWeight w;
  w.k = k;
  w.n = n;
  w.col_ptr.assign(static_cast<size_t>(n + 1), 0);
  for (int64_t j = 0; j < n; ++j) {
    const int32_t z = zb ? zb[per_col_zb ? j : 0] : 0;
    for (int64_t kk = 0; kk < k; ++kk) {
      const int64_t at = trans ? j * ldb + kk : kk * ldb + j;
      const int32_t raw = is_signed ? static_cast<const int8_t*>(b)[at]
                                    : static_cast<const uint8_t*>(b)[at];
      const int32_t v = raw - z;
      if (v == 0) continue;
      w.k_idx.push_back(static_cast<int32_t>(kk));
      // The int16 bit pattern in the low half, zero high half: vpdpwssd of a sign-extended
      // int32 activation with it adds exactly a * v (the high halves multiply to 0).
      w.values.push_back(static_cast<int32_t>(static_cast<uint16_t>(static_cast<int16_t>(v))));
    }
    w.col_ptr[j + 1] = static_cast<int32_t>(w.values.size());
  }
  return w;
}

void PackATransposed(int64_t m, int64_t k, const float* a, int64_t lda, int lanes, float* at) {
  const int64_t blocks = (m + lanes - 1) / lanes;
  for (int64_t blk = 0; blk < blocks; ++blk) {
    float* dst = at + blk * k * lanes;
    const int64_t r0 = blk * lanes;
    const int rows = static_cast<int>(std::min<int64_t>(lanes, m - r0));
    if (rows < lanes) std::memset(dst, 0, sizeof(float) * static_cast<size_t>(k * lanes));
    for (int r = 0; r < rows; ++r) {
      const float* src = a + (r0 + r) * lda;
      for (int64_t kk = 0; kk < k; ++kk) dst[kk * lanes + r] = src[kk];
    }
  }
}

void CsrRef(int64_t m, const float* a, int64_t lda, const float* at, const CsrWeight& w,
            int64_t n0, int64_t n1, const SparseOut& o) {
  (void)at;  // the reference reads A directly in both forms
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = n0; j < n1; ++j) {
      float acc = 0.f;
      for (int32_t p = w.col_ptr[j]; p < w.col_ptr[j + 1]; ++p)
        acc += w.values[p] * a[i * lda + w.k_idx[p]];
      o.c[i * o.ldc + j] = o.Apply(acc, j);
    }
}

void NMRef(int64_t m, const float* a, int64_t lda, const NMWeight& w, int64_t n0, int64_t n1,
           const SparseOut& o) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = n0; j < n1; ++j) {
      float acc = 0.f;
      for (int64_t g = 0; g < w.groups; ++g)
        for (int s = 0; s < w.nn; ++s) {
          const size_t at = w.At(j, g, s) + static_cast<size_t>(j % 16);
          acc += w.values[at] * a[i * lda + g * w.m + w.idx[at]];
        }
      o.c[i * o.ldc + j] = o.Apply(acc, j);
    }
}

void QCsrRef(int64_t m, const int32_t* a_rows, int64_t k, const QCsrWeight& w, int64_t n0,
             int64_t n1, int32_t* acc, int64_t ld_acc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = n0; j < n1; ++j) {
      int32_t s = 0;
      for (int32_t p = w.col_ptr[j]; p < w.col_ptr[j + 1]; ++p)
        s += static_cast<int16_t>(w.values[p] & 0xFFFF) * a_rows[i * k + w.k_idx[p]];
      acc[i * ld_acc + j] = s;
    }
}

bool SparseIsaAvailable(Isa isa) {
#if defined(__x86_64__)
  const CpuFeatures& cpu = GetCpuFeatures();
  if (isa == Isa::kAvx2) return cpu.Has(Isa::kAvx2);
  if (isa == Isa::kAvx512) return cpu.Has(Isa::kAvx512);
  if (isa == Isa::kAvx512Vnni) return cpu.Has(Isa::kAvx512) && cpu.Has(Isa::kAvx512Vnni);
#endif
  return isa == Isa::kScalar;
}

const SparseKernels& SparseKernelsFor(Isa isa) {
  static const SparseKernels kRef{Isa::kScalar, 8, CsrRef, NMRef, QCsrRef,
                                  "f32_spmm_csr__ref", "f32_spmm_nm__ref", "q8_spmm_csr__ref"};
#if defined(__x86_64__)
  static const SparseKernels kAvx2{Isa::kAvx2, 8, CsrAvx2, NMAvx2, QCsrRef,
                                   "f32_spmm_csr__avx2", "f32_spmm_nm__avx2", "q8_spmm_csr__ref"};
  static const SparseKernels kAvx512{Isa::kAvx512, 16, CsrAvx512, NMAvx512, QCsrRef,
                                     "f32_spmm_csr__avx512", "f32_spmm_nm__avx512",
                                     "q8_spmm_csr__ref"};
  static const SparseKernels kVnni{Isa::kAvx512Vnni, 16, CsrAvx512, NMAvx512, QCsrAvx512Vnni,
                                   "f32_spmm_csr__avx512", "f32_spmm_nm__avx512",
                                   "q8_spmm_csr__avx512vnni"};
  if ((isa == Isa::kAvx512Vnni || isa == Isa::kAmx) && SparseIsaAvailable(Isa::kAvx512Vnni))
    return kVnni;
  if ((isa == Isa::kAvx512 || isa == Isa::kAvx512Vnni || isa == Isa::kAmx) &&
      SparseIsaAvailable(Isa::kAvx512))
    return kAvx512;
  if (isa != Isa::kScalar && SparseIsaAvailable(Isa::kAvx2)) return kAvx2;
#endif
  return kRef;
}

void SpmmCsr(const SparseKernels& ks, int64_t m, const float* a, int64_t lda, const CsrWeight& w,
             const SparseOut& o, ThreadPool* pool) {
  if (m <= 0 || w.n <= 0) return;
  const float* at = nullptr;
  // The gather form costs M passes over the weights, the transposed form one pass for a
  // whole block of `lanes` rows: measured crossover near M = lanes / 4 (5 of 16 on AVX-512).
  if (m > ks.lanes / 4 && ks.isa != Isa::kScalar) {
    thread_local std::vector<float> buf;
    const int64_t blocks = (m + ks.lanes - 1) / ks.lanes;
    const size_t need = static_cast<size_t>(blocks * w.k * ks.lanes);
    if (buf.size() < need) buf.resize(need);
    PackATransposed(m, w.k, a, lda, ks.lanes, buf.data());
    at = buf.data();
  }
  // Tasks of a few dozen columns: enough work each to amortise the pool.
  if (static_cast<double>(w.nnz()) * m < 65536) pool = nullptr;
  ParallelColumns(pool, w.n, 32, [&](int64_t n0, int64_t n1) {
    ks.csr(m, a, lda, at, w, n0, n1, o);
  });
}

void SpmmNM(const SparseKernels& ks, int64_t m, const float* a, int64_t lda, const NMWeight& w,
            const SparseOut& o, ThreadPool* pool) {
  if (m <= 0 || w.n <= 0) return;
  if (static_cast<double>(w.groups) * w.nn * w.n * m < 65536) pool = nullptr;
  ParallelColumns(pool, w.n, 64, [&](int64_t n0, int64_t n1) { ks.nm(m, a, lda, w, n0, n1, o); });
}

void QSpmmCsr(const SparseKernels& ks, int64_t m, const int32_t* a_rows, int64_t k,
              const QCsrWeight& w, int32_t* acc, int64_t ld_acc, ThreadPool* pool) {
  if (m <= 0 || w.n <= 0) return;
  if (static_cast<double>(w.nnz()) * m < 65536) pool = nullptr;
  ParallelColumns(pool, w.n, 32, [&](int64_t n0, int64_t n1) {
    ks.qcsr(m, a_rows, k, w, n0, n1, acc, ld_acc);
  });
}

}  // namespace edgepress::runtime::sparse
