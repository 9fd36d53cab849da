// The integer GEMM entry points, the int16-pair driver (packing, blocking, threading), the
// portable micro-kernel and the scalar epilogue; see qgemm.h. The int16 x86 micro-kernels
// live in qgemm_avx2.cc; the uint8 x int8 byte layouts (VNNI, AMX) in qgemm_bytes.cc.
//
// There is no K blocking: a tile's int32 accumulators stay in registers for the whole K
// and are written once through the epilogue. At the K of real layers (<= 4608 for
// resnet's 3x3x512) a B panel (nr * K int16) streams from L2 at a fraction of the
// bandwidth the multiply rate needs; the A block is sized to stay in L2.
#include "runtime/kernels/qgemm/qgemm.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "ir/error.h"
#include "runtime/kernels/qgemm/qgemm_internal.h"

namespace edgepress::runtime {

using qgemm_detail::QMicroKernel;

namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <int kMr, int kNr>
void ScalarTile(int rows, int64_t k2, const int16_t* a, const int16_t* b, int32_t* acc) {
  int32_t c[kMr][kNr] = {};
  for (int64_t kp = 0; kp < k2; ++kp) {
    for (int r = 0; r < kMr; ++r) {
      const int32_t a0 = a[2 * r], a1 = a[2 * r + 1];
      for (int j = 0; j < kNr; ++j) c[r][j] += a0 * b[2 * j] + a1 * b[2 * j + 1];
    }
    a += 2 * kMr;
    b += 2 * kNr;
  }
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < kNr; ++j) acc[r * kNr + j] = c[r][j];
}

// A tile's epilogue as one row store per row.
template <int kNr, qgemm_detail::QStoreFn kRow>
void StoreRows(const int32_t* acc, int rows, int cols, int64_t row0, int64_t col0,
               const QOutput& out) {
  for (int r = 0; r < rows; ++r) kRow(acc + r * kNr, cols, row0 + r, col0, out);
}

const QMicroKernel& KernelFor(Isa isa) {
  static const QMicroKernel kScalarK{6, 16, ScalarTile<6, 16>, StoreRows<16, QStoreRow>,
                                     "qs16_gemm__scalar_6x16"};
#if defined(__x86_64__)
  using namespace qgemm_detail;
  static const QMicroKernel kAvx2K{6, 16, QTileAvx2, QStoreTileAvx2, "qs16_gemm__avx2_6x16",
                                   QTileNarrowAvx2, QTileQuantAvx2};
  static const QMicroKernel kAvx512K{6, 32, QTileAvx512, StoreRows<32, QStoreRowAvx2>,
                                     "qs16_gemm__avx512_6x32"};
  // CPUs with VNNI take the byte layouts (QGemmBytes) and never reach here.
  if (isa == Isa::kAvx2) return kAvx2K;
  if (isa == Isa::kAvx512) return kAvx512K;
#endif
  return kScalarK;
}

// Packing keys: panels of one ISA are interchangeable with those of another of equal nr/mr
// only when the tile shape matches, so packed operands record the canonical ISA.
Isa CanonicalIsa(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx2) return Isa::kAvx2;
  if (isa == Isa::kAvx512) return Isa::kAvx512;
  if (isa == Isa::kAvx512Vnni || isa == Isa::kAmx) return isa;
#endif
  return Isa::kScalar;
}

template <typename T>
inline int16_t Elem(const QSource& s, int64_t i, int64_t k, int32_t zp) {
  const T* p = static_cast<const T*>(s.data);
  const T v = s.trans ? p[k * s.ld + i] : p[i * s.ld + k];
  return static_cast<int16_t>(static_cast<int32_t>(v) - zp);
}

// Packs rows/columns [i0, i0 + width) of `s` (op(s)[i][k]) into `dst` as K2 groups of
// `width` int16 pairs; indices past `count` or k past `k` are zero.
template <typename T>
void PackPanel(const QSource& s, int64_t count, int64_t k, int64_t i0, int width,
               int16_t* dst) {
  const int64_t k2 = CeilDiv(k, 2);
  const int valid = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(width, count - i0)));
  for (int w = 0; w < valid; ++w) {
    const int64_t i = i0 + w;
    const int32_t zp = s.zero_points ? s.zero_points[s.per_channel_zp ? i : 0] : 0;
    int16_t* d = dst + 2 * w;
    if (!s.trans) {
      // Contiguous source row: the common case for both operands, kept branch-free.
      const T* src = static_cast<const T*>(s.data) + i * s.ld;
      int64_t kk = 0;
      for (; kk + 1 < k; kk += 2, d += 2 * width) {
        d[0] = static_cast<int16_t>(static_cast<int32_t>(src[kk]) - zp);
        d[1] = static_cast<int16_t>(static_cast<int32_t>(src[kk + 1]) - zp);
      }
      if (kk < k) {
        d[0] = static_cast<int16_t>(static_cast<int32_t>(src[kk]) - zp);
        d[1] = 0;
      }
    } else {
      for (int64_t kp = 0; kp < k2; ++kp, d += 2 * width) {
        d[0] = Elem<T>(s, i, 2 * kp, zp);
        d[1] = 2 * kp + 1 < k ? Elem<T>(s, i, 2 * kp + 1, zp) : int16_t{0};
      }
    }
  }
  for (int w = valid; w < width; ++w)
    for (int64_t kp = 0; kp < k2; ++kp) dst[(kp * width + w) * 2] = dst[(kp * width + w) * 2 + 1] = 0;
}

void PackPanelAny(const QSource& s, int64_t count, int64_t k, int64_t i0, int width,
                  int16_t* dst) {
  if (s.dtype == ir::DType::kInt8)
    PackPanel<int8_t>(s, count, k, i0, width, dst);
  else
    PackPanel<uint8_t>(s, count, k, i0, width, dst);
}

void ParallelOrInline(ThreadPool* pool, int64_t n, int64_t grain,
                      const std::function<void(int64_t, int64_t)>& fn) {
  if (pool && pool->num_threads() > 1)
    pool->ParallelFor(n, grain, fn);
  else if (n > 0)
    fn(0, n);
}

template <typename T>
void StoreQuantized(const int32_t* acc, int cols, int64_t row, int64_t col0, const QOutput& o) {
  constexpr int32_t qmin = std::numeric_limits<T>::min(), qmax = std::numeric_limits<T>::max();
  // Clamping before rounding keeps the float -> int conversion in range; the bounds are
  // integers, so the result equals clamping afterwards.
  const float lo = static_cast<float>(std::max(qmin, o.q_lo)) - static_cast<float>(o.zero_point);
  const float hi = static_cast<float>(std::min(qmax, o.q_hi)) - static_cast<float>(o.zero_point);
  T* y = static_cast<T*>(o.data) + row * o.ld + col0;
  for (int j = 0; j < cols; ++j) {
    const int64_t ch = o.per_row ? row : col0 + j;
    int32_t a = acc[j] + (o.bias ? o.bias[ch] : 0);
    float v = static_cast<float>(a) * o.scale[o.per_channel_scale ? ch : 0];
    v = std::min(std::max(v, lo), hi);
    y[j] = static_cast<T>(static_cast<int32_t>(std::nearbyint(v)) + o.zero_point);
  }
}

}  // namespace

void QStoreRow(const int32_t* acc, int cols, int64_t row, int64_t col0, const QOutput& o) {
  switch (o.kind) {
    case QOutput::Kind::kInt32: {
      int32_t* y = static_cast<int32_t*>(o.data) + row * o.ld + col0;
      for (int j = 0; j < cols; ++j)
        y[j] = acc[j] + (o.bias ? o.bias[o.per_row ? row : col0 + j] : 0);
      return;
    }
    case QOutput::Kind::kFloat: {
      float* y = static_cast<float*>(o.data) + row * o.ld + col0;
      for (int j = 0; j < cols; ++j) {
        const int64_t ch = o.per_row ? row : col0 + j;
        const int32_t a = acc[j] + (o.bias ? o.bias[ch] : 0);
        float v = static_cast<float>(a) * o.scale[o.per_channel_scale ? ch : 0];
        if (o.float_bias) v += o.float_bias[ch];
        v = std::min(std::max(v, o.lo), o.hi);
        y[j] = v;
      }
      return;
    }
    case QOutput::Kind::kUInt8: return StoreQuantized<uint8_t>(acc, cols, row, col0, o);
    case QOutput::Kind::kInt8: return StoreQuantized<int8_t>(acc, cols, row, col0, o);
  }
}

void QStoreRowIsa(Isa isa, const int32_t* acc, int cols, int64_t row, int64_t col0,
                  const QOutput& out) {
#if defined(__x86_64__)
  if (!ForceScalar()) {
    if (isa == Isa::kAvx512 || isa == Isa::kAvx512Vnni || isa == Isa::kAmx)
      return qgemm_detail::QStoreRowAvx512(acc, cols, row, col0, out);
    if (isa == Isa::kAvx2) return qgemm_detail::QStoreRowAvx2(acc, cols, row, col0, out);
  }
#endif
  QStoreRow(acc, cols, row, col0, out);
}

Isa BestQGemmIsa() {
  static const Isa best = [] {
    if (ForceScalar()) return Isa::kScalar;
    const CpuFeatures& cpu = GetCpuFeatures();
#if defined(__x86_64__)
    if (cpu.Has(Isa::kAmx) && cpu.Has(Isa::kAvx512Vnni) && qgemm_detail::AmxUsable())
      return Isa::kAmx;
#endif
    if (cpu.Has(Isa::kAvx512Vnni)) return Isa::kAvx512Vnni;
    if (cpu.Has(Isa::kAvx512)) return Isa::kAvx512;
    if (cpu.Has(Isa::kAvx2)) return Isa::kAvx2;
    return Isa::kScalar;
  }();
  return best;
}

bool QGemmIsaSupported(Isa isa) {
  if (isa == Isa::kScalar) return true;
#if defined(__x86_64__)
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512 || isa == Isa::kAvx512Vnni)
    return GetCpuFeatures().Has(isa);
  // kAmx needs the VNNI kernel for small m (and as the fallback when the OS refuses AMX).
  if (isa == Isa::kAmx) return GetCpuFeatures().Has(isa) && GetCpuFeatures().Has(Isa::kAvx512Vnni);
#endif
  return false;
}

bool QGemmBytes(Isa isa) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx512Vnni || isa == Isa::kAmx) return true;
  if (isa == Isa::kAvx2) return GetCpuFeatures().avxvnni && !ForceScalar();
#endif
  (void)isa;
  return false;
}

// Measured with bench/qgemm_bench.cc at 768x768, 1 thread (Xeon with AMX, shared and
// noisy): m = 8: VNNI 530 GOP/s (AMX tiles half padding: 505); m = 16: AMX 1940 vs VNNI
// 595; m >= 32: AMX ~2100.
int64_t QGemmAmxMinM() { return 16; }

int QGemmMr(Isa isa) { return QGemmBytes(isa) ? qgemm_detail::ByteMr(isa) : KernelFor(isa).mr; }
int QGemmNr(Isa isa) { return QGemmBytes(isa) ? qgemm_detail::ByteNr(isa) : KernelFor(isa).nr; }
const char* QGemmKernelName(Isa isa, int64_t m) {
  return QGemmBytes(isa) ? qgemm_detail::ByteKernelFor(isa, m).name : KernelFor(isa).name;
}

int64_t QPackedASize(Isa isa, int64_t m, int64_t k) {
  if (QGemmBytes(isa)) return qgemm_detail::BytePackedSize(isa, true, m, k);
  const int mr = KernelFor(isa).mr;
  return CeilDiv(m, mr) * mr * CeilDiv(k, 2) * 2;
}

int64_t QPackedBSize(Isa isa, int64_t k, int64_t n) {
  if (QGemmBytes(isa)) return qgemm_detail::BytePackedSize(isa, false, n, k);
  const int nr = KernelFor(isa).nr;
  return CeilDiv(n, nr) * nr * CeilDiv(k, 2) * 2;
}

QPacked QPackA(Isa isa, int64_t m, int64_t k, const QSource& a) {
  const int mr = QGemmMr(isa);
  QPacked p;
  p.isa = CanonicalIsa(isa);
  p.is_a = true;
  p.rows_or_cols = m;
  p.k = k;
  p.data.resize(static_cast<size_t>(QPackedASize(isa, m, k)));
  QPackAPanels(isa, m, k, a, 0, CeilDiv(m, mr), p.data.data());
  return p;
}

void QPackAPanels(Isa isa, int64_t m, int64_t k, const QSource& a, int64_t p0, int64_t p1,
                  int16_t* dst) {
  if (QGemmBytes(isa)) return qgemm_detail::BytePackPanels(isa, true, m, k, a, p0, p1, dst);
  const int mr = KernelFor(isa).mr;
  const int64_t panel = CeilDiv(k, 2) * 2 * mr;
#if defined(__x86_64__)
  if (isa == Isa::kAvx2 && !a.trans && !ForceScalar()) {  // row-major A: 8 k x 6 rows at once
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t i0 = p * mr;
      const int rows = static_cast<int>(std::min<int64_t>(mr, m - i0));
      int32_t zp[6] = {};
      for (int r = 0; r < rows; ++r)
        zp[r] = a.zero_points ? a.zero_points[a.per_channel_zp ? i0 + r : 0] : 0;
      const uint8_t* src = static_cast<const uint8_t*>(a.data) + i0 * a.ld;
      qgemm_detail::PackAPanelBytesAvx2(rows, k, src, a.ld, a.dtype == ir::DType::kInt8, zp,
                                        dst + p * panel);
    }
    return;
  }
#endif
  for (int64_t p = p0; p < p1; ++p) PackPanelAny(a, m, k, p * mr, mr, dst + p * panel);
}

void QPackBPanels(Isa isa, int64_t k, int64_t n, const QSource& b, int64_t q0, int64_t q1,
                  int16_t* dst) {
  if (QGemmBytes(isa)) return qgemm_detail::BytePackPanels(isa, false, n, k, b, q0, q1, dst);
  const int nr = KernelFor(isa).nr;
  const int64_t panel = CeilDiv(k, 2) * 2 * nr;
  // B's columns are op(B)'s "rows" for PackPanel: op(B)[k][j] read as row j of B^T.
  QSource t = b;
  t.trans = !b.trans;
  for (int64_t q = q0; q < q1; ++q) PackPanelAny(t, n, k, q * nr, nr, dst + q * panel);
}

QPacked QPackB(Isa isa, int64_t k, int64_t n, const QSource& b) {
  QPacked p;
  p.isa = CanonicalIsa(isa);
  p.is_a = false;
  p.rows_or_cols = n;
  p.k = k;
  p.data.resize(static_cast<size_t>(QPackedBSize(isa, k, n)));
  QPackBPanels(isa, k, n, b, 0, CeilDiv(n, QGemmNr(isa)), p.data.data());
  return p;
}

void QGemm(Isa isa, int64_t m, int64_t n, int64_t k, const QOperand& a, const QOperand& b,
           const QOutput& out, ThreadPool* pool, int part, int parts) {
  if (m <= 0 || n <= 0) return;
  if (parts < 1 || part < 0 || part >= parts)
    throw Error(ErrorCode::kInternal, "QGemm: row part out of range");
  const Isa canon = CanonicalIsa(isa);
  if (CanonicalIsa(a.isa) != canon || a.dim != m || a.k != k || CanonicalIsa(b.isa) != canon ||
      b.dim != n || b.k != k)
    throw Error(ErrorCode::kInternal, "QGemm: packed operands do not match the call");
  if (QGemmBytes(isa))
    return qgemm_detail::QGemmBytesRun(isa, m, n, k, a.data, b.data, out, pool, part, parts);
  const QMicroKernel& mk = KernelFor(isa);
  const int mr = mk.mr, nr = mk.nr;
  const int64_t k2 = CeilDiv(k, 2);
  const int64_t mp_all = CeilDiv(m, mr), np = CeilDiv(n, nr);
  const int64_t mp0 = part * mp_all / parts, mp = (part + 1) * mp_all / parts - mp0;
  if (static_cast<double>(m) * n * k < 65536) pool = nullptr;
  // An A block of mcp panels (mcp * mr * K int16) stays in L2 while B panels stream; B is
  // read once per block, so the cap of 64 panels lets BERT's M = 128 at K = 384 (22
  // panels, 101 KB) stream its 1.2 MB int16 B once instead of twice.
  int64_t mcp = std::max<int64_t>(1, std::min<int64_t>(64, (192 << 10) / (mr * k2 * 4)));
  int64_t ncp = std::max<int64_t>(1, 256 / nr);
  const int threads = pool ? pool->num_threads() : 1;
  if (threads > 1) {
    while (CeilDiv(mp, mcp) * CeilDiv(np, ncp) < 2 * threads && (mcp > 1 || ncp > 1)) {
      if (ncp >= mcp && ncp > 1)
        ncp = (ncp + 1) / 2;
      else
        mcp = (mcp + 1) / 2;
    }
  }
  const int64_t tiles_m = CeilDiv(mp, mcp), tiles_n = CeilDiv(np, ncp);
  const int64_t a_panel = k2 * 2 * mr, b_panel = k2 * 2 * nr;
  // Per-row quantized outputs (convs: row = output channel) skip the int32 round trip.
  const bool fuse_store = mk.tile_quant && !ForceScalar() && out.per_row &&
                          (out.kind == QOutput::Kind::kUInt8 || out.kind == QOutput::Kind::kInt8);
  auto run_tiles = [&](int64_t t0, int64_t t1) {
    alignas(64) int32_t acc[8 * 64];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t ti = t / tiles_n, tj = t % tiles_n;
      const int64_t p0 = mp0 + ti * mcp, p1 = std::min(mp0 + mp, p0 + mcp);
      const int64_t q0 = tj * ncp, q1 = std::min(np, q0 + ncp);
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t col0 = q * nr;
        const int cols = static_cast<int>(std::min<int64_t>(nr, n - col0));
        for (int64_t pi = p0; pi < p1; ++pi) {
          const int64_t row0 = pi * mr;
          const int rows = static_cast<int>(std::min<int64_t>(mr, m - row0));
          if (fuse_store && cols == nr && rows > 4) {  // fewer rows: the few-row tiles
            mk.tile_quant(rows, k2, a.data + pi * a_panel, b.data + q * b_panel, row0, col0, out);
            continue;
          }
          const qgemm_detail::QTileFn tile = mk.tile_narrow && 2 * cols <= nr ? mk.tile_narrow : mk.tile;
          tile(rows, k2, a.data + pi * a_panel, b.data + q * b_panel, acc);
          mk.store(acc, rows, cols, row0, col0, out);
        }
      }
    }
  };
  ParallelOrInline(pool, tiles_m * tiles_n, 1, run_tiles);
}

void QGemmReference(int64_t m, int64_t n, int64_t k, const QSource& a, const QSource& b,
                    const QOutput& out) {
  std::vector<int32_t> row(static_cast<size_t>(std::max<int64_t>(n, 1)));
  QSource bt = b;
  bt.trans = !b.trans;  // op(B)[k][j] = (B^T)[j][k]
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      int64_t s = 0;
      const int32_t za = a.zero_points ? a.zero_points[a.per_channel_zp ? i : 0] : 0;
      const int32_t zb = b.zero_points ? b.zero_points[b.per_channel_zp ? j : 0] : 0;
      for (int64_t kk = 0; kk < k; ++kk) {
        const int32_t av = a.dtype == ir::DType::kInt8 ? Elem<int8_t>(a, i, kk, za)
                                                       : Elem<uint8_t>(a, i, kk, za);
        const int32_t bv = b.dtype == ir::DType::kInt8 ? Elem<int8_t>(bt, j, kk, zb)
                                                       : Elem<uint8_t>(bt, j, kk, zb);
        s += static_cast<int64_t>(av) * bv;
      }
      row[static_cast<size_t>(j)] = static_cast<int32_t>(s);
    }
    QStoreRow(row.data(), static_cast<int>(n), i, 0, out);
  }
}

}  // namespace edgepress::runtime
