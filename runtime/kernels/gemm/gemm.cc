// The SGEMM driver (packing, cache blocking, threading) and the table of its micro-kernels
// (one file per ISA: gemm_scalar.cc, gemm_avx2.cc, gemm_avx512.cc); see gemm.h.
//
// Each micro-kernel computes one tile of at most mr rows and exactly nr (zero-padded)
// columns over a K block, keeping the accumulators in registers, and then applies
// alpha/beta and, on the last K block only, the epilogue. Edge tiles with fewer columns
// go through a small stack buffer so that no store ever writes past C.
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/gemm/gemm_ukernel.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "ir/error.h"

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace edgepress::runtime {

namespace {

constexpr int64_t kKc = 256;      // K block: one nr-wide B panel of kc floats stays in L1
// Rows per tile: an A block of kMcRows x kc (264 KiB) stays in L2. One tile spans all rows
// of a transformer's [batch * seq, hidden] activations, so each panel of a constant B
// streams from L3 once per GEMM instead of once per 96 rows (bert fixture's MatMuls 50 ->
// 45.5 ms/run thread-CPU at 1 thread; the row split for threads happens below).
constexpr int64_t kMcRows = 264;
constexpr int64_t kNcCols = 256;  // columns per tile

using namespace gemm_internal;  // StoreParams, TileFn, the micro-kernels

struct MicroKernel {
  int mr, nr;
  TileFn fn;
  const char* name;
  GemvFn gemv;  // M <= kGemvMaxRows, nr columns per call
  TileRawAFn raw_a = nullptr;  // the tile reading a raw non-transposed A in place, if any
  bool prefetches = false;     // the tiles issue StoreParams::prefetch themselves
};

const MicroKernel& KernelFor(Isa isa) {
  static const MicroKernel kScalarK{6, 16, ScalarKernel, "f32_gemm__scalar_6x16", GemvScalar};
#if defined(__x86_64__)
  static const MicroKernel kAvx2K{6, 16, Avx2Kernel, "f32_gemm__avx2_6x16", GemvAvx2};
  static const MicroKernel kAvx512K{12, 32, Avx512Kernel, "f32_gemm__avx512_12x32",
                                     GemvAvx512, Avx512KernelRawA, true};
  if (isa == Isa::kAvx2) return kAvx2K;
  if (isa == Isa::kAvx512 || isa == Isa::kAvx512Vnni || isa == Isa::kAmx) return kAvx512K;
#endif
  return kScalarK;
}

// Canonical ISA of the micro-kernel used for `isa` (so PackedMatrix::isa can be compared).
Isa CanonicalIsa(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx2) return Isa::kAvx2;
  if (isa == Isa::kAvx512 || isa == Isa::kAvx512Vnni || isa == Isa::kAmx) return Isa::kAvx512;
#endif
  return Isa::kScalar;
}

void PackAPanel(bool trans, const float* a, int64_t lda, int64_t m, int64_t k, int mr,
                int64_t panel, float* dst) {
  const int64_t row0 = panel * mr;
  const int rows = static_cast<int>(std::min<int64_t>(mr, m - row0));
  if (trans) {
    // op(A)[i][kk] = a[kk * lda + i]: each k step reads `rows` contiguous floats.
    for (int64_t kk = 0; kk < k; ++kk) {
      const float* src = a + kk * lda + row0;
      float* d = dst + kk * mr;
      for (int r = 0; r < rows; ++r) d[r] = src[r];
      for (int r = rows; r < mr; ++r) d[r] = 0;
    }
    return;
  }
  // K outer, rows inner: the panel is written front to back (mr read streams, one write
  // stream). Rows outer wrote every 48th byte of the whole panel mr times over, which cost
  // bert's ff2 (A 256 x 1536) a fifth of its GEMM time.
  const float* src[16];  // mr <= 16 for every micro-kernel
  for (int r = 0; r < rows; ++r) src[r] = a + (row0 + r) * lda;
  for (int64_t kk = 0; kk < k; ++kk) {
    float* d = dst + kk * mr;
    for (int r = 0; r < rows; ++r) d[r] = src[r][kk];
    for (int r = rows; r < mr; ++r) d[r] = 0;
  }
}

void PackBPanel(bool trans, const float* b, int64_t ldb, int64_t k, int64_t n, int nr,
                int64_t panel, float* dst) {
  const int64_t col0 = panel * nr;
  const int cols = static_cast<int>(std::min<int64_t>(nr, n - col0));
  if (!trans) {
    for (int64_t kk = 0; kk < k; ++kk) {
      const float* src = b + kk * ldb + col0;
      float* d = dst + kk * nr;
      std::memcpy(d, src, sizeof(float) * cols);
      for (int j = cols; j < nr; ++j) d[j] = 0;
    }
    return;
  }
  // op(B)[kk][j] = b[j * ldb + kk].
  for (int j = 0; j < cols; ++j) {
    const float* src = b + (col0 + j) * ldb;
    for (int64_t kk = 0; kk < k; ++kk) dst[kk * nr + j] = src[kk];
  }
  for (int j = cols; j < nr; ++j)
    for (int64_t kk = 0; kk < k; ++kk) dst[kk * nr + j] = 0;
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Sets flush-to-zero and denormals-are-zero for the micro-kernels' duration on the calling
// thread and restores the caller's MXCSR afterwards. A denormal operand costs an FMA a
// microcode assist of ~100 cycles: the masked Softmax of a causal decoder emits ~1e-39 for
// its -inf entries (its exp clamps instead of returning 0), and the following
// MatMul(Softmax, V) ran 2.4x slower end to end on the GPT fixture (profile: 71% in the
// AVX-512 micro-kernel). Values below 1.2e-38 change the result by less than that per
// product, far inside float rounding of any non-denormal sum.
class ScopedFlushDenormals {
 public:
#if defined(__x86_64__)
  ScopedFlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFtzDaz); }
  ~ScopedFlushDenormals() { _mm_setcsr(saved_); }

 private:
  static constexpr unsigned kFtzDaz = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)
  unsigned saved_;
#endif
};

void ParallelOrInline(ThreadPool* pool, int64_t n, int64_t grain,
                      const std::function<void(int64_t, int64_t)>& fn) {
  if (pool && pool->num_threads() > 1)
    pool->ParallelFor(n, grain, fn);
  else if (n > 0)
    fn(0, n);
}

// Whether 64 consecutive rows `ld` floats apart start in at least 16 of the 64 sets of a
// 48 KiB / 12-way L1 (64-byte lines): then a K block of a B panel read in place stays
// cached across the A panels of a tile.
bool RowsSpreadOverL1(int64_t ld) {
  uint64_t seen = 0;
  for (int64_t r = 0; r < 64; ++r) seen |= uint64_t{1} << (((r * ld * 4) >> 6) & 63);
  return __builtin_popcountll(seen) >= 16;
}

// Whether all k rows of an nr-column panel read in place fit in half of the L1 sets they
// map to (12 ways each): then a short K (attention's Q.K^T with K = 32 or 64, B = K^T
// with rows of 128 or 64 floats) needs no packing even where RowsSpreadOverL1 says no.
bool ShortKFitsL1(int64_t ld, int64_t k, int nr) {
  if (k > 64) return false;
  const int64_t lines_per_row = (nr * 4 + 63) / 64;
  uint64_t seen = 0;
  for (int64_t r = 0; r < k; ++r)
    for (int64_t l = 0; l < lines_per_row; ++l)
      seen |= uint64_t{1} << ((((r * ld * 4) >> 6) + l) & 63);
  return k * lines_per_row <= __builtin_popcountll(seen) * 12 / 2;
}

constexpr int64_t kGemvMaxRows = 4;

// M <= 4 with a non-transposed raw A and B either packed (constant weights) or raw
// non-transposed: one pass over B in column blocks of nr, no packing, threads splitting the
// blocks in one dispatch. Returns false for the operand forms it does not take.
bool TryGemv(const MicroKernel& mk, Isa canon, int64_t m, int64_t n, int64_t k, float alpha,
             const GemmOperand& a, const GemmOperand& b, float beta, float* c, int64_t ldc,
             ThreadPool* pool, const GemmEpilogue* ep) {
  if (m > kGemvMaxRows || a.packed || a.view || a.trans || b.view || (!b.packed && b.trans))
    return false;
  const int nr = mk.nr;
  const float* bd = b.data;
  int64_t ldb = b.ld, block_stride = nr;  // raw: block q starts at column q * nr
  if (b.packed) {
    if (b.packed->is_a || b.packed->isa != canon || b.packed->rows_or_cols != n ||
        b.packed->k != k)
      throw Error(ErrorCode::kInternal, "SgemmEx: packed B does not match the call");
    bd = b.packed->data.data();
    ldb = nr;
    block_stride = k * nr;  // panel q holds K groups of nr floats
  }
  const int64_t blocks = CeilDiv(n, nr);
  // Each chunk of blocks should stream at least ~64 KiB of B so that waking a thread pays.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, k * nr));
  auto run = [&](int64_t q0, int64_t q1) {
    const ScopedFlushDenormals flush;
    alignas(64) float acc[kGemvMaxRows * 32];
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t col0 = q * nr;
      const int cols = static_cast<int>(std::min<int64_t>(nr, n - col0));
      mk.gemv(static_cast<int>(m), cols, k, a.data, a.ld, bd + q * block_stride, ldb, acc);
      StoreParams sp;
      sp.alpha = alpha;
      sp.beta = beta;
      if (ep) {
        if (ep->bias_kind == GemmEpilogue::Bias::kPerRow) sp.row_bias = ep->bias;
        if (ep->bias_kind == GemmEpilogue::Bias::kPerCol) sp.col_bias = ep->bias + col0;
        sp.clamp = ep->clamp;
        sp.lo = ep->lo;
        sp.hi = ep->hi;
      }
      StoreTileScalar(static_cast<int>(m), cols, acc, nr, c + col0, ldc, sp);
    }
  };
  ParallelOrInline(pool, blocks, grain, run);
  return true;
}

// C = beta * C + epilogue, for K == 0.
void ScaleOnly(int64_t m, int64_t n, float beta, float* c, int64_t ldc,
               const GemmEpilogue* ep) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float v = beta == 0 ? 0.f : beta * c[i * ldc + j];
      if (ep && ep->bias_kind == GemmEpilogue::Bias::kPerRow) v += ep->bias[i];
      if (ep && ep->bias_kind == GemmEpilogue::Bias::kPerCol) v += ep->bias[j];
      if (ep && ep->clamp) v = std::min(std::max(v, ep->lo), ep->hi);
      c[i * ldc + j] = v;
    }
  }
}

}  // namespace

Isa BestGemmIsa() {
  static const Isa best = [] {
    if (ForceScalar()) return Isa::kScalar;
    const CpuFeatures& cpu = GetCpuFeatures();
    if (cpu.Has(Isa::kAvx512)) return Isa::kAvx512;
    if (cpu.Has(Isa::kAvx2)) return Isa::kAvx2;
    return Isa::kScalar;
  }();
  return best;
}

int GemmMr(Isa isa) { return KernelFor(isa).mr; }
int GemmNr(Isa isa) { return KernelFor(isa).nr; }
const char* GemmKernelName(Isa isa) { return KernelFor(isa).name; }

PackedMatrix PackA(Isa isa, bool trans_a, int64_t m, int64_t k, const float* a, int64_t lda) {
  const MicroKernel& mk = KernelFor(isa);
  PackedMatrix p;
  p.isa = CanonicalIsa(isa);
  p.is_a = true;
  p.rows_or_cols = m;
  p.k = k;
  const int64_t panels = CeilDiv(m, mk.mr);
  p.data.assign(static_cast<size_t>(panels * k * mk.mr), 0.f);
  for (int64_t i = 0; i < panels; ++i)
    PackAPanel(trans_a, a, lda, m, k, mk.mr, i, p.data.data() + i * k * mk.mr);
  return p;
}

PackedMatrix PackB(Isa isa, bool trans_b, int64_t k, int64_t n, const float* b, int64_t ldb) {
  const MicroKernel& mk = KernelFor(isa);
  PackedMatrix p;
  p.isa = CanonicalIsa(isa);
  p.is_a = false;
  p.rows_or_cols = n;
  p.k = k;
  const int64_t panels = CeilDiv(n, mk.nr);
  p.data.assign(static_cast<size_t>(panels * k * mk.nr), 0.f);
  for (int64_t j = 0; j < panels; ++j)
    PackBPanel(trans_b, b, ldb, k, n, mk.nr, j, p.data.data() + j * k * mk.nr);
  return p;
}

int64_t PackedBSize(Isa isa, int64_t k, int64_t n) {
  const int nr = KernelFor(isa).nr;
  return CeilDiv(n, nr) * nr * k;
}

namespace {

// Where the tiles read A: packed panels (constant weights, a view, or the calling thread's
// buffer) or, when the micro-kernel can, the raw rows in place.
struct APanels {
  const float* data;
  bool raw;  // raw rows, a.ld apart
};

APanels PrepareA(const MicroKernel& mk, Isa canon, int64_t m, int64_t k, const GemmOperand& a,
                 ThreadPool* pool) {
  if (a.packed) {
    if (!a.packed->is_a || a.packed->isa != canon || a.packed->rows_or_cols != m ||
        a.packed->k != k)
      throw Error(ErrorCode::kInternal, "SgemmEx: packed A does not match the call");
    return {a.packed->data.data(), false};
  }
  if (a.view) {
    if (CanonicalIsa(a.view_isa) != canon || a.view_dim != m || a.view_k != k)
      throw Error(ErrorCode::kInternal, "SgemmEx: packed A view does not match the call");
    return {a.view, false};
  }
  if (mk.raw_a && !a.trans) return {a.data, true};
  // Packing buffers are per calling thread and grow only, so steady-state inference does
  // no allocation and touches no fresh pages.
  thread_local std::vector<float> a_buf;
  const int mr = mk.mr;
  const int64_t mp = CeilDiv(m, mr);
  if (a_buf.size() < static_cast<size_t>(mp * mr * k)) a_buf.resize(mp * mr * k);
  float* dst = a_buf.data();
  ParallelOrInline(pool, mp, 4, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      PackAPanel(a.trans, a.data, a.ld, m, k, mr, i, dst + i * k * mr);
  });
  return {dst, false};
}

// Where the tiles read B: packed panels of K groups of nr floats, or (direct) the raw rows
// in place with only a ragged last panel packed.
struct BPanels {
  const float* data;
  const float* last;  // the packed ragged last panel of a direct B
  bool direct;
  int64_t ld_full;  // row stride of direct B's full panels
  int64_t n, k;
  int nr;

  // Panel q from K row pc on, and the distance between its K rows.
  const float* Panel(int64_t q, int64_t pc, int64_t* ldb) const {
    if (!direct) {
      *ldb = nr;
      return data + q * k * nr + pc * nr;
    }
    if ((q + 1) * nr > n) {
      *ldb = nr;
      return last + pc * nr;
    }
    *ldb = ld_full;
    return data + pc * ld_full + q * nr;
  }
};

BPanels PrepareB(const MicroKernel& mk, Isa canon, int64_t n, int64_t k, const GemmOperand& b,
                 ThreadPool* pool) {
  const int nr = mk.nr;
  const int64_t np = CeilDiv(n, nr);
  thread_local std::vector<float> b_buf;
  BPanels p{nullptr, nullptr, false, nr, n, k, nr};
  // Raw non-transposed B is read in place, K rows b.ld apart, when its rows spread over
  // the L1 sets (RowsSpreadOverL1): its full nr-column panels are already what the
  // micro-kernel reads, so only a ragged last panel is packed. This spares 1x1
  // convolutions (X is B) a copy of X: gemm_bench's MobileNetV2 1x1 shapes 24x3136x144
  // 69 -> 120 GFLOP/s and 960x49x160 110 -> 150. With a power-of-two-ish leading dimension
  // (square 512, BERT's 1536) the rows of a K block collide in 2 sets and packing is
  // faster (166 vs 127 GFLOP/s), so those still pack.
  p.direct = !b.packed && !b.view && !b.trans &&
             (RowsSpreadOverL1(b.ld) || ShortKFitsL1(b.ld, k, nr));
  if (b.packed) {
    if (b.packed->is_a || b.packed->isa != canon || b.packed->rows_or_cols != n ||
        b.packed->k != k)
      throw Error(ErrorCode::kInternal, "SgemmEx: packed B does not match the call");
    p.data = b.packed->data.data();
  } else if (b.view) {
    if (CanonicalIsa(b.view_isa) != canon || b.view_dim != n || b.view_k != k)
      throw Error(ErrorCode::kInternal, "SgemmEx: packed B view does not match the call");
    p.data = b.view;
  } else if (p.direct) {
    p.data = b.data;
    p.ld_full = b.ld;
    if (n % nr != 0) {
      if (b_buf.size() < static_cast<size_t>(nr * k)) b_buf.resize(nr * k);
      PackBPanel(false, b.data, b.ld, k, n, nr, np - 1, b_buf.data());
      p.last = b_buf.data();
    }
  } else {
    if (b_buf.size() < static_cast<size_t>(np * nr * k)) b_buf.resize(np * nr * k);
    float* dst = b_buf.data();
    ParallelOrInline(pool, np, 4, [&](int64_t lo, int64_t hi) {
      for (int64_t j = lo; j < hi; ++j)
        PackBPanel(b.trans, b.data, b.ld, k, n, nr, j, dst + j * k * nr);
    });
    p.data = dst;
  }
  return p;
}

// Tiles of mcp x ncp panels, K in blocks of kc_step.
struct TileGrid {
  int64_t mcp, ncp, tiles_m, tiles_n, kc_step;
};

// With several threads, shrink the tiles until there are a few per thread so that small
// GEMMs still spread out. Halve the longer side (in rows vs columns, after clamping to the
// matrix): at M = 64 (gpt) the columns split into equal tiles and each thread streams half
// of B, where a row split gave one thread 36 rows and the other 28 and both all of B.
TileGrid PlanTiles(int64_t mp, int64_t np, int mr, int nr, int64_t k, int threads) {
  int64_t mcp = std::min(mp, std::max<int64_t>(1, kMcRows / mr));
  int64_t ncp = std::min(np, std::max<int64_t>(1, kNcCols / nr));
  if (threads > 1) {
    while (CeilDiv(mp, mcp) * CeilDiv(np, ncp) < 2 * threads && (mcp > 1 || ncp > 1)) {
      if (ncp > 1 && (ncp * nr >= mcp * mr || mcp == 1))
        ncp = (ncp + 1) / 2;
      else
        mcp = (mcp + 1) / 2;
    }
  }
  const int64_t kblocks = CeilDiv(k, kKc);
  return {mcp, ncp, CeilDiv(mp, mcp), CeilDiv(np, ncp), CeilDiv(k, kblocks)};
}

// One GEMM call's operands as the tiles see them.
struct GemmCall {
  const MicroKernel& mk;
  int64_t m, n, k;
  float alpha, beta;
  APanels a;
  int64_t lda;  // raw A's row stride
  BPanels b;
  float* c;
  int64_t ldc;
  const GemmEpilogue* ep;
};

// The micro-kernel over rows p0..p1 (in mr-row panels) of B panel q, K rows [pc, pc + kc).
// The next packed B panel's K block is fetched into L2 in slices while this one runs: a
// transformer's weights come from L3 once per GEMM, and the first A panel otherwise waits on
// each of their lines (bert MatMuls 40.0 -> 36.7 ms/run). GEMMs at M = 64 with weights out
// of cache still run at ~0.7 of their in-cache rate (fetching the whole panel at once
// measured the same).
void RunPanelColumn(const GemmCall& g, int64_t p0, int64_t p1, int64_t q, int64_t q1,
                    int64_t pc, int64_t kc) {
  const MicroKernel& mk = g.mk;
  const int mr = mk.mr, nr = mk.nr;
  const bool first = pc == 0, last = pc + kc >= g.k;
  int64_t ldb;
  const float* bpanel = g.b.Panel(q, pc, &ldb);
  const int64_t col0 = q * nr;
  const int cols = static_cast<int>(std::min<int64_t>(nr, g.n - col0));
  const float* next = nullptr;
  int64_t next_lines = 0, slice = 0;
  if (q + 1 < q1 && !g.b.direct) {
    int64_t ldn;
    next = g.b.Panel(q + 1, pc, &ldn);
    next_lines = kc * nr * static_cast<int64_t>(sizeof(float)) / 64;
    slice = CeilDiv(next_lines, p1 - p0);
  }
  for (int64_t pi = p0; pi < p1; ++pi) {
    StoreParams sp;
    if (next) {
      const int64_t l0 = (pi - p0) * slice, l1 = std::min(next_lines, l0 + slice);
      if (mk.prefetches && l1 - l0 <= kc) {  // one line per K step
        sp.prefetch = reinterpret_cast<const char*>(next) + l0 * 64;
        sp.prefetch_lines = l1 - l0;
      } else {
        for (int64_t l = l0; l < l1; ++l)
          __builtin_prefetch(reinterpret_cast<const char*>(next) + l * 64, 0, 2);
      }
    }
    const int64_t row0 = pi * mr;
    const int rows = static_cast<int>(std::min<int64_t>(mr, g.m - row0));
    sp.alpha = g.alpha;
    sp.beta = first ? g.beta : 1.f;
    if (last && g.ep) {
      if (g.ep->bias_kind == GemmEpilogue::Bias::kPerRow) sp.row_bias = g.ep->bias + row0;
      if (g.ep->bias_kind == GemmEpilogue::Bias::kPerCol) sp.col_bias = g.ep->bias + col0;
      sp.clamp = g.ep->clamp;
      sp.lo = g.ep->lo;
      sp.hi = g.ep->hi;
    }
    float* ct = g.c + row0 * g.ldc + col0;
    if (g.a.raw)
      mk.raw_a(rows, cols, kc, g.a.data + row0 * g.lda + pc, g.lda, bpanel, ldb, ct, g.ldc, sp);
    else
      mk.fn(rows, cols, kc, g.a.data + pi * g.k * mr + pc * mr, bpanel, ldb, ct, g.ldc, sp);
  }
}

}  // namespace

void SgemmEx(Isa isa, int64_t m, int64_t n, int64_t k, float alpha, const GemmOperand& a,
             const GemmOperand& b, float beta, float* c, int64_t ldc, ThreadPool* pool,
             const GemmEpilogue* ep) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    ScaleOnly(m, n, beta, c, ldc, ep);
    return;
  }
  // Waking the pool costs more than a GEMM this small.
  if (static_cast<double>(m) * n * k < 32768) pool = nullptr;
  const MicroKernel& mk = KernelFor(isa);
  const Isa canon = CanonicalIsa(isa);
  if (TryGemv(mk, canon, m, n, k, alpha, a, b, beta, c, ldc, pool, ep)) return;
  const GemmCall call{mk, m, n, k, alpha, beta, PrepareA(mk, canon, m, k, a, pool), a.ld,
                      PrepareB(mk, canon, n, k, b, pool), c, ldc, ep};
  const int64_t mp = CeilDiv(m, mk.mr), np = CeilDiv(n, mk.nr);
  const TileGrid grid = PlanTiles(mp, np, mk.mr, mk.nr, k, pool ? pool->num_threads() : 1);
  auto run_tiles = [&](int64_t t0, int64_t t1) {
    const ScopedFlushDenormals flush;  // per thread: MXCSR is thread state
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t ti = t / grid.tiles_n, tj = t % grid.tiles_n;
      const int64_t p0 = ti * grid.mcp, p1 = std::min(mp, p0 + grid.mcp);
      const int64_t q0 = tj * grid.ncp, q1 = std::min(np, q0 + grid.ncp);
      for (int64_t pc = 0; pc < k; pc += grid.kc_step)
        for (int64_t q = q0; q < q1; ++q)
          RunPanelColumn(call, p0, p1, q, q1, pc, std::min(grid.kc_step, k - pc));
    }
  };
  ParallelOrInline(pool, grid.tiles_m * grid.tiles_n, 1, run_tiles);
}

void Sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
           int64_t ldc, ThreadPool* pool, const GemmEpilogue* epilogue) {
  SgemmEx(BestGemmIsa(), m, n, k, alpha, GemmOperand::Raw(a, lda, trans_a),
          GemmOperand::Raw(b, ldb, trans_b), beta, c, ldc, pool, epilogue);
}

void SgemmReference(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                    const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                    float* c, int64_t ldc, const GemmEpilogue* ep) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t kk = 0; kk < k; ++kk) {
        const float av = trans_a ? a[kk * lda + i] : a[i * lda + kk];
        const float bv = trans_b ? b[j * ldb + kk] : b[kk * ldb + j];
        acc += static_cast<double>(av) * bv;
      }
      float v = static_cast<float>(alpha * acc);
      if (beta != 0) v += beta * c[i * ldc + j];
      if (ep && ep->bias_kind == GemmEpilogue::Bias::kPerRow) v += ep->bias[i];
      if (ep && ep->bias_kind == GemmEpilogue::Bias::kPerCol) v += ep->bias[j];
      if (ep && ep->clamp) v = std::min(std::max(v, ep->lo), ep->hi);
      c[i * ldc + j] = v;
    }
  }
}

}  // namespace edgepress::runtime

