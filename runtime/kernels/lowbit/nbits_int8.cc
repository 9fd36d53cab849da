// Packing, the scalar reference and the threaded driver of the int8-activation MatMulNBits
// path (nbits_int8.h). Entries: q4s8_gemm__ref, q4s8_gemm__avx2 (nbits_int8_avx2.cc),
// q4s8_gemm__avxvnni (nbits_int8_avxvnni.cc), q4s8_gemm__avx512vnni (nbits_int8_avx512vnni.cc).
#include "runtime/kernels/lowbit/nbits_int8.h"

#include <algorithm>
#include <cmath>
#include <functional>

namespace edgepress::runtime {

namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows of Y per task: a multiple of every kernel's row tile (4 and 6).
constexpr int64_t kRowsPerTask = 48;
// Panels per task: two, the AVX-512 kernel's column tile.
constexpr int64_t kPanelsPerTask = 2;

int Code(const Q4Weights& w, int64_t col, int64_t kk) {
  const uint8_t byte = w.packed[(col * w.k_blocks + kk / w.block_size) * (w.block_size / 2) +
                                (kk % w.block_size) / 2];
  return (kk & 1) ? byte >> 4 : byte & 0x0F;
}

}  // namespace

Q4Int8Packed PackQ4Int8(const Q4Weights& w) {
  Q4Int8Packed p;
  p.n = w.n;
  p.k = w.k;
  p.block_size = w.block_size;
  p.k_blocks = w.k_blocks;
  p.panels = CeilDiv(w.n, kQ4PanelCols);
  const int64_t kb = w.k_blocks, bs = w.block_size, steps = bs / 8;
  p.codes.assign(static_cast<size_t>(p.panels * kb * bs * (kQ4PanelCols / 2)), 0);
  p.scales.assign(static_cast<size_t>(p.panels * kb * kQ4PanelCols), 0.f);
  p.scaled_zero_points.assign(p.scales.size(), 0.f);
  for (int64_t col = 0; col < w.n; ++col) {
    const int64_t panel = col / kQ4PanelCols, c = col % kQ4PanelCols;
    for (int64_t b = 0; b < kb; ++b) {
      const int64_t src = col * kb + b, dst = (panel * kb + b) * kQ4PanelCols + c;
      p.scales[dst] = w.params->scales[src];
      p.scaled_zero_points[dst] = w.params->scaled_zero_points[src];
      uint8_t* out = const_cast<uint8_t*>(p.Codes(panel, b));
      for (int64_t s = 0; s < steps; ++s)
        for (int64_t j = 0; j < 4; ++j) {
          const int64_t k_lo = b * bs + 8 * s + j, k_hi = k_lo + 4;
          const int lo = k_lo < w.k ? Code(w, col, k_lo) : 0;
          const int hi = k_hi < w.k ? Code(w, col, k_hi) : 0;
          out[s * 64 + 4 * c + j] = static_cast<uint8_t>(lo | (hi << 4));
        }
    }
  }
  return p;
}

namespace nbits_detail {

void QuantizeQ8RowsRef(const float* a, int64_t k, int64_t r0, int64_t r1, Q8Rows* out) {
  const int64_t bs = out->block_size, kb = out->k_blocks;
  for (int64_t i = r0; i < r1; ++i) {
    const float* ar = a + i * k;
    int8_t* q = out->q.data() + i * out->kp;
    for (int64_t b = 0; b < kb; ++b) {
      const int64_t k0 = b * bs, k1 = std::min(k, k0 + bs);
      float amax = 0.f;
      for (int64_t kk = k0; kk < k1; ++kk) amax = std::max(amax, std::fabs(ar[kk]));
      const float inv = amax > 0.f ? 127.f / amax : 0.f;
      int32_t total = 0;
      for (int64_t kk = k0; kk < k0 + bs; ++kk) {
        float t = kk < k1 ? ar[kk] * inv : 0.f;
        // Clamped in float first: NaN becomes -127, as cvtps2dq's 0x80000000 does after
        // the SIMD clamp.
        if (!(t >= -127.f)) t = -127.f;
        if (t > 127.f) t = 127.f;
        const int32_t v = static_cast<int32_t>(std::nearbyint(t));  // half to even
        q[kk] = static_cast<int8_t>(v);
        total += v;
      }
      out->scale[i * kb + b] = amax / 127.f;
      out->sum[i * kb + b] = amax / 127.f * static_cast<float>(total);
    }
  }
}

void Q4Int8GemmRef(const Q8Rows& a, int64_t r0, int64_t r1, const Q4Int8Packed& b, int64_t p0,
                   int64_t p1, const float* bias, float* y) {
  const int64_t kb = b.k_blocks, bs = b.block_size, steps = bs / 8;
  for (int64_t i = r0; i < r1; ++i) {
    const int8_t* aq = a.q.data() + i * a.kp;
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t c = 0; c < kQ4PanelCols && p * kQ4PanelCols + c < b.n; ++c) {
        float acc = 0.f;
        for (int64_t blk = 0; blk < kb; ++blk) {
          const uint8_t* codes = b.Codes(p, blk);
          const int8_t* ab = aq + blk * bs;
          int32_t dot = 0;
          for (int64_t s = 0; s < steps; ++s)
            for (int64_t j = 0; j < 4; ++j) {
              const uint8_t byte = codes[s * 64 + 4 * c + j];
              dot += (byte & 0x0F) * ab[8 * s + j] + (byte >> 4) * ab[8 * s + 4 + j];
            }
          const float sa = a.scale[i * kb + blk], asum = a.sum[i * kb + blk];
          acc = std::fma(static_cast<float>(dot), b.Scales(p, blk)[c] * sa, acc);
          acc = std::fma(-b.ScaledZeroPoints(p, blk)[c], asum, acc);
        }
        const int64_t col = p * kQ4PanelCols + c;
        y[i * b.n + col] = acc + (bias ? bias[col] : 0.f);
      }
  }
}

}  // namespace nbits_detail

Isa Q4Int8KernelIsa(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx512Vnni || isa == Isa::kAmx) return Isa::kAvx512Vnni;
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) return Isa::kAvx2;
#endif
  (void)isa;
  return Isa::kScalar;
}

Q4Int8Impl Q4Int8ImplFor(Isa isa) {
  using namespace nbits_detail;
  switch (Q4Int8KernelIsa(isa)) {
#if defined(__x86_64__)
    case Isa::kAvx512Vnni:
      return {Q4Int8GemmAvx512Vnni, QuantizeQ8RowsAvx2, "q4s8_gemm__avx512vnni"};
    case Isa::kAvx2:
      if (GetCpuFeatures().avxvnni)
        return {Q4Int8GemmAvxVnni, QuantizeQ8RowsAvx2, "q4s8_gemm__avxvnni"};
      return {Q4Int8GemmAvx2, QuantizeQ8RowsAvx2, "q4s8_gemm__avx2"};
#endif
    default: return {Q4Int8GemmRef, QuantizeQ8RowsRef, "q4s8_gemm__ref"};
  }
}

void Q4Int8MatMul(const Q4Int8Impl& impl, const float* a, int64_t m, const Q4Int8Packed& b,
                  const float* bias, float* y, ThreadPool* pool) {
  if (m <= 0 || b.n <= 0) return;
  const Q4Int8Kernel kernel = impl.kernel;
  const Q8QuantizeFn quantize = impl.quantize;
  Q8Rows q;
  q.m = m;
  q.block_size = b.block_size;
  q.k_blocks = b.k_blocks;
  q.kp = b.k_blocks * b.block_size;
  q.q.resize(static_cast<size_t>(m * q.kp));
  q.scale.resize(static_cast<size_t>(m * q.k_blocks));
  q.sum.resize(q.scale.size());
  const bool threaded = pool && pool->num_threads() > 1;
  // Quantizing is O(M K) against the product's O(M K N): threaded only when it is large
  // enough to pay for a second wake-up of the pool (256 K floats: ~0.1 ms on one core).
  if (threaded && m >= 16 && m * b.k >= (int64_t{1} << 18))
    pool->ParallelFor(m, 8, [&](int64_t lo, int64_t hi) { quantize(a, b.k, lo, hi, &q); });
  else
    quantize(a, b.k, 0, m, &q);
  const int64_t row_tasks = CeilDiv(m, kRowsPerTask);
  const int64_t col_tasks = CeilDiv(b.panels, kPanelsPerTask);
  auto run = [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t r0 = (t % row_tasks) * kRowsPerTask, p0 = (t / row_tasks) * kPanelsPerTask;
      kernel(q, r0, std::min(m, r0 + kRowsPerTask), b, p0, std::min(b.panels, p0 + kPanelsPerTask),
             bias, y);
    }
  };
  if (threaded && row_tasks * col_tasks > 1)
    pool->ParallelFor(row_tasks * col_tasks, 1, run);
  else
    run(0, row_tasks * col_tasks);
}

}  // namespace edgepress::runtime
