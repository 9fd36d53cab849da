// The uint8 x int8 byte layouts of the integer GEMM (layout and exactness in qgemm.h):
// packing with the 128 shift and the zero-point sums, and the driver that runs the
// vpdpbusd / tdpbusd micro-kernels (qgemm_vnni.cc, qgemm_amx.cc) tile by tile.
//
// Like the int16 driver there is no K blocking: a tile's accumulators stay in registers
// (or AMX tiles) for the whole K, then the zero-point correction and the epilogue run once.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "ir/error.h"
#include "runtime/kernels/qgemm/qgemm_internal.h"

namespace edgepress::runtime::qgemm_detail {

namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t PanelBytes(Isa isa, bool is_a, int64_t k) {
  return ByteK4(isa, k) * 4 * (is_a ? ByteMr(isa) : ByteNr(isa));
}

// Packs indices [i0, i0 + w) of op(s) (op(s)[i][kk]; indices past `count` are zero) into
// one panel, as uint8 (`to_u8`, A) or int8 (B), and writes each index's shifted zero
// point and byte sum. `amx` selects the row-major 64-k block layout of AMX A panels.
template <typename T>
void PackPanel(const QSource& s, int64_t count, int64_t k, int64_t k4, int64_t i0, int w,
               bool to_u8, bool amx, uint8_t* panel, int32_t* zp_out, int32_t* sum_out) {
  std::memset(panel, 0, static_cast<size_t>(k4 * 4 * w));
  // Flip by 128 when the source's signedness differs from the target's.
  const bool flip = std::is_same<T, int8_t>::value == to_u8;
  const uint8_t x = flip ? 0x80 : 0;
  const int32_t zshift = flip ? (to_u8 ? 128 : -128) : 0;
  const int valid = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(w, count - i0)));
  auto off = [&](int64_t kk, int wi) -> int64_t {
    return amx ? ((kk >> 6) * w + wi) * 64 + (kk & 63) : ((kk >> 2) * w + wi) * 4 + (kk & 3);
  };
  auto val = [&](uint8_t v) { return to_u8 ? static_cast<int32_t>(v) : static_cast<int32_t>(static_cast<int8_t>(v)); };
  for (int wi = 0; wi < w; ++wi) {
    zp_out[wi] = 0;
    sum_out[wi] = 0;
    if (wi >= valid) continue;
    const int64_t i = i0 + wi;
    zp_out[wi] = (s.zero_points ? s.zero_points[s.per_channel_zp ? i : 0] : 0) + zshift;
  }
  const T* p = static_cast<const T*>(s.data);
  if (!s.trans) {
    // Contiguous source rows (activations as A, conv weights, per call for A): flip into
    // a row buffer, sum it, then copy whole 4-byte groups (VNNI) or 64-byte runs (AMX).
    thread_local std::vector<uint8_t> row;
    if (row.size() < static_cast<size_t>(k)) row.resize(static_cast<size_t>(k));
    for (int wi = 0; wi < valid; ++wi) {
      const uint8_t* src = reinterpret_cast<const uint8_t*>(p + (i0 + wi) * s.ld);
      if (x) {
        for (int64_t kk = 0; kk < k; ++kk) row[static_cast<size_t>(kk)] = src[kk] ^ x;
        src = row.data();
      }
      int32_t sum = 0;
      if (to_u8)
        for (int64_t kk = 0; kk < k; ++kk) sum += src[kk];
      else
        for (int64_t kk = 0; kk < k; ++kk) sum += static_cast<int8_t>(src[kk]);
      sum_out[wi] = sum;
      const int64_t run = amx ? 64 : 4;
      for (int64_t kk = 0; kk < k; kk += run)
        std::memcpy(panel + off(kk, wi), src + kk, static_cast<size_t>(std::min(run, k - kk)));
    }
  } else {
    // op(s)[i][kk] = s[kk * ld + i]: read each source row once, contiguously.
    for (int64_t kk = 0; kk < k; ++kk) {
      const T* src = p + kk * s.ld + i0;
      for (int wi = 0; wi < valid; ++wi) {
        const uint8_t v = static_cast<uint8_t>(src[wi]) ^ x;
        panel[off(kk, wi)] = v;
        sum_out[wi] += val(v);
      }
    }
  }
}

// Whether every requantized value round(acc * scale) of a per-row product lies within
// +-2^30, so that an epilogue may convert without clamping first (no float -> int32
// overflow) and saturate afterwards. The bytes give |a - za| <= max(|za|, |255 - za|) for
// uint8 A and |b - zb| <= max(zb + 128, 127 - zb) for int8 B (zb in [zb_lo, zb_hi]), so
// |acc| <= K * both + |bias|, and a wrapped int32 is below 2^31 anyway. Per-column scales
// or biases (matmul outputs) take the general store.
bool PackedStoreSafe(int64_t m, int64_t k, const int32_t* za, int32_t zb_lo, int32_t zb_hi,
                     const QOutput& out) {
  if (!out.per_row && (out.per_channel_scale || out.bias)) return false;
  const double b_max = std::max(static_cast<double>(zb_hi) + 128, 127.0 - zb_lo);
  for (int64_t i = 0; i < m; ++i) {
    const double a_max = std::max(std::abs(static_cast<double>(za[i])), std::abs(255.0 - za[i]));
    double acc = static_cast<double>(k) * a_max * b_max;
    if (out.bias) acc += std::abs(static_cast<double>(out.bias[i]));
    const double scale = out.scale[out.per_channel_scale ? i : 0];
    // Written so that a NaN scale fails the test.
    if (!(std::min(acc, 2147483648.0) * std::abs(scale) < 1073741824.0)) return false;
  }
  return true;
}

void ParallelOrInline(ThreadPool* pool, int64_t n, int64_t grain,
                      const std::function<void(int64_t, int64_t)>& fn) {
  if (pool && pool->num_threads() > 1)
    pool->ParallelFor(n, grain, fn);
  else if (n > 0)
    fn(0, n);
}

}  // namespace

bool ByteAmxLayout(Isa isa) { return isa == Isa::kAmx; }

int64_t ByteK4(Isa isa, int64_t k) {
  const int64_t k4 = CeilDiv(k, 4);
  return ByteAmxLayout(isa) ? CeilDiv(k4, 16) * 16 : k4;
}

int ByteMr(Isa isa) {
  if (ByteAmxLayout(isa)) return 16;
  return isa == Isa::kAvx2 ? 6 : 8;
}

int ByteNr(Isa isa) { return isa == Isa::kAvx2 ? 16 : 32; }

const QByteKernel& ByteKernelFor(Isa isa, int64_t m) {
#if defined(__x86_64__)
  static const QByteKernel kAvxVnni{6, 16, QByteTileAvxVnni, "qu8s8_gemm__avxvnni_6x16", 6 * 4};
  static const QByteKernel kVnni{8, 32, QByteTileAvx512Vnni, "qu8s8_gemm__avx512vnni_8x32", 8 * 4,
                                 nullptr, nullptr, false};
  static const QByteKernel kVnniAmxA{16, 32, QByteTileAvx512VnniAmxA,
                                     "qu8s8_gemm__avx512vnni_16x32", 16 * 4, nullptr, nullptr,
                                     false};
  static const QByteKernel kAmx{32, 32, QByteTileAmx, "qu8s8_gemm__amx_32x32", 32 * 4,
                                AmxBegin, AmxEnd, false};
  if (isa == Isa::kAvx2) return kAvxVnni;
  if (isa == Isa::kAmx) return m >= QGemmAmxMinM() && AmxUsable() ? kAmx : kVnniAmxA;
  return kVnni;
#else
  (void)m;
  throw Error(ErrorCode::kInternal, "QGemm: byte layout on a non-x86 build");
#endif
}

int64_t BytePackedSize(Isa isa, bool is_a, int64_t dim, int64_t k) {
  const int w = is_a ? ByteMr(isa) : ByteNr(isa);
  const int64_t panels = CeilDiv(dim, w);
  const int64_t bytes = panels * PanelBytes(isa, is_a, k) + panels * w * 8;
  return CeilDiv(bytes, 2);
}

void BytePackPanels(Isa isa, bool is_a, int64_t dim, int64_t k, const QSource& s, int64_t p0,
                    int64_t p1, int16_t* dst) {
  const int w = is_a ? ByteMr(isa) : ByteNr(isa);
  const int64_t panels = CeilDiv(dim, w);
  p1 = std::min(p1, panels);
  const int64_t pb = PanelBytes(isa, is_a, k), k4 = ByteK4(isa, k);
  uint8_t* base = reinterpret_cast<uint8_t*>(dst);
  int32_t* zp = reinterpret_cast<int32_t*>(base + panels * pb);
  int32_t* sum = zp + panels * w;
  // B's columns are op(B)'s "rows" here: op(B)[k][j] read as row j of B^T.
  QSource t = s;
  if (!is_a) t.trans = !s.trans;
  const bool amx = is_a && ByteAmxLayout(isa);
#if defined(__x86_64__)
  if (is_a && isa == Isa::kAvx512Vnni && !s.trans) {
    // Row-major A (activations, per call): the vectorised transposition.
    const bool flip = s.dtype == ir::DType::kInt8;
    const uint8_t* src = static_cast<const uint8_t*>(s.data);
    for (int64_t p = p0; p < p1; ++p) {
      const int rows = static_cast<int>(std::min<int64_t>(w, dim - p * w));
      PackAPanelVnni(rows, k, src + p * w * s.ld, s.ld, flip ? 0x80 : 0, base + p * pb,
                     sum + p * w);
      for (int r = 0; r < w; ++r) {
        const int64_t i = p * w + r;
        zp[i] = r >= rows ? 0
                          : (s.zero_points ? s.zero_points[s.per_channel_zp ? i : 0] : 0) +
                                (flip ? 128 : 0);
      }
    }
    return;
  }
#endif
  for (int64_t p = p0; p < p1; ++p) {
    if (t.dtype == ir::DType::kInt8)
      PackPanel<int8_t>(t, dim, k, k4, p * w, w, is_a, amx, base + p * pb, zp + p * w, sum + p * w);
    else
      PackPanel<uint8_t>(t, dim, k, k4, p * w, w, is_a, amx, base + p * pb, zp + p * w, sum + p * w);
  }
}

void QGemmBytesRun(Isa isa, int64_t m, int64_t n, int64_t k, const int16_t* a_data,
                   const int16_t* b_data, const QOutput& out, ThreadPool* pool, int part,
                   int parts) {
  const QByteKernel& mk = ByteKernelFor(isa, m);
  const int amr = ByteMr(isa), nr = ByteNr(isa);
  const int64_t k4 = ByteK4(isa, k);
  const int64_t a_pb = PanelBytes(isa, true, k), b_pb = PanelBytes(isa, false, k);
  const int64_t a_panels = CeilDiv(m, amr), b_panels = CeilDiv(n, nr);
  const uint8_t* a = reinterpret_cast<const uint8_t*>(a_data);
  const int8_t* b = reinterpret_cast<const int8_t*>(b_data);
  const int32_t* za = reinterpret_cast<const int32_t*>(a + a_panels * a_pb);
  const int32_t* sa = za + a_panels * amr;
  const int32_t* zb = reinterpret_cast<const int32_t*>(b + b_panels * b_pb);
  const int32_t* sb = zb + b_panels * nr;
  // The kernel's tile may span several packed A panels (AMX: two 16-row panels, which
  // are contiguous); its A "panel" stride is then mr rows.
  const int mr = mk.mr;
  const int64_t tile_a_bytes = mk.a_panel_bytes_per_group * k4;
  const int64_t mp_all = CeilDiv(m, mr), np = b_panels;
  const int64_t mp0 = part * mp_all / parts, mp = (part + 1) * mp_all / parts - mp0;
  if (static_cast<double>(m) * n * k < 65536) pool = nullptr;
  // An A block of mcp tiles stays in L2 while B panels stream.
  int64_t mcp = std::max<int64_t>(1, std::min<int64_t>(16, (192 << 10) / std::max<int64_t>(1, tile_a_bytes)));
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
  const int32_t k32 = static_cast<int32_t>(k);
  // The fused store's per-product constants (QCorr): at mobilenet's K = 16..32 its
  // per-tile and per-row set-up would otherwise cost as much as its vectors.
  const bool quant_out = out.kind == QOutput::Kind::kUInt8 || out.kind == QOutput::Kind::kInt8;
  bool za_one = true, zb_one = true, pack_store = false;
  std::vector<int32_t> row_const;
  if (!mk.corrects && quant_out) {
    for (int64_t i = 1; i < m; ++i) za_one &= za[i] == za[0];
    int32_t zb_lo = zb[0], zb_hi = zb[0];
    for (int64_t j = 1; j < n; ++j) {
      zb_lo = std::min(zb_lo, zb[j]);
      zb_hi = std::max(zb_hi, zb[j]);
    }
    zb_one = zb_lo == zb_hi;
    pack_store = PackedStoreSafe(m, k, za, zb_lo, zb_hi, out);
    row_const.resize(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      const uint32_t ta = static_cast<uint32_t>(sa[i]) -
                          static_cast<uint32_t>(k32) * static_cast<uint32_t>(za[i]);
      uint32_t rc = out.bias && out.per_row ? static_cast<uint32_t>(out.bias[i]) : 0u;
      if (zb_one) rc -= ta * static_cast<uint32_t>(zb[0]);
      row_const[static_cast<size_t>(i)] = static_cast<int32_t>(rc);
    }
  }
#if defined(__x86_64__)
  // The VNNI 8x32 tile requantizes in registers where the packed store applies (convs).
  const bool fused_quant = pack_store && za_one && zb_one && mk.tile == QByteTileAvx512Vnni;
  // ... and stores float outputs per column (matmuls) from the registers too.
  const bool fused_float =
      out.kind == QOutput::Kind::kFloat && !out.per_row && mk.tile == QByteTileAvx512Vnni;
  const QStoreFn store = QStoreRowAvx2;  // AVX-VNNI; AVX-512 CPUs store whole tiles
#else
  const QStoreFn store = QStoreRow;
#endif
  auto run_tiles = [&](int64_t t0, int64_t t1) {
    alignas(64) int32_t acc[32 * 32];
    if (mk.begin) mk.begin(k);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t ti = t / tiles_n, tj = t % tiles_n;
      const int64_t p0 = mp0 + ti * mcp, p1 = std::min(mp0 + mp, p0 + mcp);
      const int64_t q0 = tj * ncp, q1 = std::min(np, q0 + ncp);
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t col0 = q * nr;
        const int cols = static_cast<int>(std::min<int64_t>(nr, n - col0));
#if defined(__x86_64__)
        if (fused_quant) {
          QCorr corr{za + p0 * mr, sa + p0 * mr, zb + col0, sb + col0, k32};
          corr.za_one = corr.zb_one = corr.pack_store = true;
          corr.row_const = row_const.data() + p0 * mr;
          QByteTilesQuantAvx512Vnni(p0, p1, m, k4, a + p0 * tile_a_bytes, tile_a_bytes,
                                    b + q * b_pb, corr, col0, cols, out);
          continue;
        }
#endif
        for (int64_t pi = p0; pi < p1; ++pi) {
          const int64_t row0 = pi * mr;
          const int rows = static_cast<int>(std::min<int64_t>(mr, m - row0));
          QCorr corr{za + row0, sa + row0, zb + col0, sb + col0, k32};
          corr.za_one = za_one;
          corr.zb_one = zb_one;
          corr.pack_store = pack_store;
          if (!row_const.empty()) corr.row_const = row_const.data() + row0;
#if defined(__x86_64__)
          if (fused_float) {
            QByteTileFloatAvx512Vnni(rows, k4, a + pi * tile_a_bytes, b + q * b_pb, corr, row0,
                                     col0, cols, out);
            continue;
          }
#endif
          mk.tile(rows, k4, a + pi * tile_a_bytes, b + q * b_pb, corr, acc);
#if defined(__x86_64__)
          if (!mk.corrects) {
            QStoreTileAvx512(acc, rows, cols, row0, col0, out, corr);
            continue;
          }
#endif
          for (int r = 0; r < rows; ++r) store(acc + r * nr, cols, row0 + r, col0, out);
        }
      }
    }
    if (mk.end) mk.end();
  };
  ParallelOrInline(pool, tiles_m * tiles_n, 1, run_tiles);
}

}  // namespace edgepress::runtime::qgemm_detail

namespace edgepress::runtime {

using qgemm_detail::ByteK4;
using qgemm_detail::ByteNr;
#if defined(__x86_64__)
using qgemm_detail::InterleaveRows32;
#endif

bool QGemmQuantizesInPack(Isa isa) {
  return isa == Isa::kAvx512Vnni ||
         (isa == Isa::kAvx2 && QGemmIsaSupported(isa) && !QGemmBytes(isa));
}

void QPackAPanelsQuantized(Isa isa, int64_t m, int64_t k, const float* x, int64_t ld,
                           float scale, int32_t zp, int64_t p0, int64_t p1, int16_t* dst) {
  if (!QGemmQuantizesInPack(isa))
    throw Error(ErrorCode::kInternal, "QPackAPanelsQuantized: not available for this ISA");
#if defined(__x86_64__)
  if (isa == Isa::kAvx2) {  // int16 pairs (qgemm.h), zero point subtracted
    const int mr = QGemmMr(isa);
    const int64_t panel = (k + 1) / 2 * 2 * mr;
    p1 = std::min(p1, (m + mr - 1) / mr);
    for (int64_t p = p0; p < p1; ++p)
      qgemm_detail::QuantizePackAPanelAvx2(static_cast<int>(std::min<int64_t>(mr, m - p * mr)), k,
                                           x + p * mr * ld, ld, scale, zp, dst + p * panel);
    return;
  }
  const int w = qgemm_detail::ByteMr(isa);
  const int64_t panels = (m + w - 1) / w;
  p1 = std::min(p1, panels);
  const int64_t pb = ByteK4(isa, k) * 4 * w;
  uint8_t* base = reinterpret_cast<uint8_t*>(dst);
  int32_t* zps = reinterpret_cast<int32_t*>(base + panels * pb);
  int32_t* sums = zps + panels * w;
  for (int64_t p = p0; p < p1; ++p) {
    const int rows = static_cast<int>(std::min<int64_t>(w, m - p * w));
    qgemm_detail::QuantizePackAPanelVnni(rows, k, x + p * w * ld, ld, scale, zp, base + p * pb,
                                         sums + p * w);
    for (int r = 0; r < w; ++r) zps[p * w + r] = r < rows ? zp : 0;
  }
#else
  (void)m, (void)k, (void)x, (void)ld, (void)scale, (void)zp, (void)p0, (void)p1, (void)dst;
#endif
}

void QPackBPanelFromRows(Isa isa, int64_t k, int64_t n, int32_t zp, int64_t q,
                         const int8_t* rows, int16_t* dst, int64_t stride, uint8_t flip) {
  const int nr = ByteNr(isa);
  if (stride == 0) stride = nr;
  const int64_t panels = (n + nr - 1) / nr, k4 = ByteK4(isa, k);
  const int64_t pb = k4 * 4 * nr;
  int8_t* panel = reinterpret_cast<int8_t*>(dst) + q * pb;
  int32_t* tail = reinterpret_cast<int32_t*>(reinterpret_cast<uint8_t*>(dst) + panels * pb);
  int32_t* zps = tail + q * nr;                 // zero points of all panels, then sums
  int32_t* sums = tail + panels * nr + q * nr;
  for (int j = 0; j < nr; ++j) zps[j] = q * nr + j < n ? zp : 0;
  // Only the groups holding k < K are written: AMX's padding groups (up to 64 k) meet
  // zero A bytes, so their content does not matter, and at mobilenet's K = 16..32 they
  // would be most of the work.
  const int64_t groups = (k + 3) / 4;
#if defined(__x86_64__)
  if (nr == 32) return InterleaveRows32(k, groups, rows, stride, flip, panel, sums);
#endif
  for (int j = 0; j < nr; ++j) sums[j] = 0;
  for (int64_t g = 0; g < groups; ++g)
    for (int j = 0; j < nr; ++j)
      for (int b = 0; b < 4; ++b) {
        const int64_t kk = 4 * g + b;
        const int8_t v = kk < k ? static_cast<int8_t>(rows[kk * stride + j] ^ flip) : int8_t{0};
        panel[(g * nr + j) * 4 + b] = v;
        sums[j] += v;
      }
}

}  // namespace edgepress::runtime
