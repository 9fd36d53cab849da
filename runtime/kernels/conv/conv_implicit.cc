// Implicit-GEMM convolution driver; see conv_implicit.h. The micro-kernels are the SGEMM's
// (gemm_ukernel.h), so the tile arithmetic is the one gemm_test already checks; what is
// new here is where B comes from (the phase-split source) and where C goes (a tile buffer
// scattered into Y).
#include "runtime/kernels/conv/conv_implicit.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "ir/error.h"
#include "runtime/kernels/gemm/gemm_ukernel.h"
#include "runtime/tile_split.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::conv_implicit {

namespace {

using conv_util::ConvGeometry;
using gemm_internal::StoreParams;
using gemm_internal::TileFn;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// One B panel row per GEMM row k of the K block: nr floats from src + off[k].
using PackFn = void (*)(const float* src, const int64_t* off, int64_t kc, float* dst);

template <int kNr>
void PackPanelPortable(const float* src, const int64_t* off, int64_t kc, float* dst) {
  for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * kNr, src + off[k], sizeof(float) * kNr);
}

// The last panel read in place from X: `cols` real columns, zeros after.
void PackPanelPartial(const float* src, const int64_t* off, int64_t kc, int cols, int nr,
                      float* dst) {
  for (int64_t k = 0; k < kc; ++k, dst += nr) {
    std::memcpy(dst, src + off[k], sizeof(float) * cols);
    std::fill(dst + cols, dst + nr, 0.f);
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) void PackPanelAvx2(const float* src, const int64_t* off,
                                                   int64_t kc, float* dst) {
  for (int64_t k = 0; k < kc; ++k, dst += 16) {
    const float* s = src + off[k];
    _mm256_storeu_ps(dst, _mm256_loadu_ps(s));
    _mm256_storeu_ps(dst + 8, _mm256_loadu_ps(s + 8));
  }
}

__attribute__((target("avx512f"))) void PackPanelAvx512(const float* src, const int64_t* off,
                                                       int64_t kc, float* dst) {
  for (int64_t k = 0; k < kc; ++k, dst += 32) {
    const float* s = src + off[k];
    _mm512_storeu_ps(dst, _mm512_loadu_ps(s));
    _mm512_storeu_ps(dst + 16, _mm512_loadu_ps(s + 16));
  }
}
#endif

// Adds Z to a stored rows x nr tile, then clamps (FusedConv: the activation follows the sum).
void AddZClamp(int rows, int nr, const TileStore& p, float* c, int64_t ldc) {
  for (int r = 0; r < rows; ++r) {
    float* cr = c + r * ldc;
    const float* zr = p.z + r * p.ldz;
    for (int j = 0; j < nr; ++j) {
      const float v = cr[j] + zr[j];
      cr[j] = p.clamp ? std::min(std::max(v, p.lo), p.hi) : v;
    }
  }
}

// The SGEMM's 6 x 16 tiles behind the ConvTileFn interface. Their store has no sum input:
// with Z, the tile is stored unclamped and Z added while it is still in L1.
template <TileFn kFn, int kNr>
void GemmTile(int rows, int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
              const TileStore& p) {
  StoreParams sp;
  sp.beta = p.accumulate ? 1.f : 0.f;
  sp.row_bias = p.row_bias;
  sp.clamp = p.clamp && !p.z;
  sp.lo = p.lo;
  sp.hi = p.hi;
  kFn(rows, kNr, kc, a, b, p.ldb > 0 ? p.ldb : kNr, c, ldc, sp);
  if (p.z) AddZClamp(rows, kNr, p, c, ldc);
}

bool UsesAvx512Tile(Isa isa) {
#if defined(__x86_64__)
  return isa == Isa::kAvx512 || isa == Isa::kAvx512Vnni || isa == Isa::kAmx;
#else
  (void)isa;
  return false;
#endif
}

PackFn PackFor(Isa isa) {
#if defined(__x86_64__)
  if (UsesAvx512Tile(isa)) return PackPanelAvx512;
  if (isa == Isa::kAvx2) return PackPanelAvx2;
#endif
  return PackPanelPortable<16>;
}

// Flush-to-zero and denormals-are-zero while the micro-kernels run, as SgemmEx does (a
// denormal operand costs an FMA a ~100-cycle assist); the caller's MXCSR is restored.
class ScopedFlushDenormals {
 public:
#if defined(__x86_64__)
  ScopedFlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~ScopedFlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#endif
};

// Copies tile rows (virtual pixels [v0, v1), row stride ldt) into Y rows (stride
// out_size), dropping the virtual columns ow >= OW. With FusedConv's Z (z: Y's layout, at
// the same first row) the tile holds the unclamped sum without Z: Z is added and the
// clamp applied here, in the one pass that writes Y.
void ScatterTile(const float* t, int64_t ldt, int rows, int64_t v0, int64_t v1, int64_t wq,
                 int64_t ow_n, int64_t out_size, const float* z, const GemmEpilogue& ep,
                 float* y) {
  for (int r = 0; r < rows; ++r) {
    const float* tr = t + r * ldt;
    float* yr = y + r * out_size;
    const float* zr = z ? z + r * out_size : nullptr;
    for (int64_t oh = v0 / wq; oh * wq < v1; ++oh) {
      const int64_t a = std::max(v0, oh * wq), b = std::min(v1, oh * wq + ow_n);
      if (a >= b) continue;
      const int64_t yo = oh * ow_n + (a - oh * wq);
      if (!zr) {
        std::memcpy(yr + yo, tr + (a - v0), sizeof(float) * (b - a));
        continue;
      }
      for (int64_t i = 0; i < b - a; ++i) {
        const float v = tr[a - v0 + i] + zr[yo + i];
        yr[yo + i] = ep.clamp ? std::min(std::max(v, ep.lo), ep.hi) : v;
      }
    }
  }
}

// dst[j] = src[2j] for j < n, reading nothing past src[2n - 2]. Stride-2 stems (3 input
// channels, 224x224) spent 40% of their time in the scalar copy into the phase planes.
void EvenColumns(const float* src, int64_t n, float* dst) {
  int64_t j = 0;
#if defined(__x86_64__)
  for (; 2 * j + 8 <= 2 * n - 1; j += 4) {  // SSE (x86-64 baseline): 4 per 2 loads
    const __m128 a = _mm_loadu_ps(src + 2 * j), b = _mm_loadu_ps(src + 2 * j + 4);
    _mm_storeu_ps(dst + j, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
  }
#endif
  for (; j < n; ++j) dst[j] = src[2 * j];
}

#if defined(__x86_64__)
// EvenColumns with 16 outputs per two loads and one vpermt2ps, the last 1..16 masked (so
// still nothing read past src[2n - 2]). A 1x1 stride-2 projection spent 16% of its time
// in the SSE loop (28 outputs per row, 7 iterations and a scalar-free tail).
__attribute__((target("avx512f"))) void EvenColumnsAvx512(const float* src, int64_t n,
                                                         float* dst) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (int64_t j = 0; j < n; j += 16) {
    const int64_t r = std::min<int64_t>(16, n - j), in = 2 * r - 1;  // floats needed
    const __mmask16 lo = in >= 16 ? __mmask16(0xffff) : __mmask16((1u << in) - 1);
    const __mmask16 hi = in > 16 ? __mmask16((1u << (in - 16)) - 1) : __mmask16(0);
    const __m512 a = _mm512_maskz_loadu_ps(lo, src + 2 * j);
    const __m512 b = _mm512_maskz_loadu_ps(hi, src + 2 * j + 16);
    _mm512_mask_storeu_ps(dst + j, __mmask16((1u << r) - 1), _mm512_permutex2var_ps(a, even, b));
  }
}
#endif

}  // namespace

bool PackInPlaceB() {
  static const bool on = [] {
    const char* e = std::getenv("EDGEPRESS_CONV_PACK_B");
    return e && *e == '1';
  }();
  return on;
}

bool PrefetchWeights() {
  static const bool on = [] {
    const char* e = std::getenv("EDGEPRESS_CONV_PREFETCH");
    return !(e && *e == '0');
  }();
  return on;
}

int ConvMr(Isa isa) { return UsesAvx512Tile(isa) ? 12 : 6; }
int ConvNr(Isa isa) { return UsesAvx512Tile(isa) ? 32 : 16; }

ConvTileFn ConvTileFor(Isa isa) {
#if defined(__x86_64__)
  if (UsesAvx512Tile(isa)) return Ukernel12x32Avx512;
  if (isa == Isa::kAvx2) return GemmTile<gemm_internal::Avx2Kernel, 16>;
#endif
  return GemmTile<gemm_internal::ScalarKernel, 16>;
}

ConvTileFn PixelMajorTileFor(Isa isa, int cols) {
#if defined(__x86_64__)
  if (UsesAvx512Tile(isa)) return Ukernel7xNAvx512(cols);
#else
  (void)cols;
#endif
  (void)isa;
  return [](int rows, int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
            const TileStore& p) { UkernelRef(kPmRows, kPmCols, rows, kc, a, b, c, ldc, p); };
}

// On AVX-512 the conv's own tile is instantiated per row count, so a partial last panel
// computes only its rows there too.
ConvTileFn ConvTailTileFor(Isa isa) { return ConvTileFor(isa); }

int ConvTailMr(Isa isa, int64_t m) {
  (void)m;
  return ConvMr(isa);
}

void UkernelRef(int mr, int nr, int rows, int64_t kc, const float* a, const float* b, float* c,
                int64_t ldc, const TileStore& p) {
  const bool full = p.keep == 0xffffffffu;
  const int64_t ldb = p.ldb > 0 ? p.ldb : nr;
  for (int r = 0; r < rows; ++r) {
    for (int j = 0, at = 0; j < nr; ++j) {
      if (!full && (j >= 32 || !((p.keep >> j) & 1u))) continue;  // dropped column
      float s = 0.f;
      for (int64_t k = 0; k < kc; ++k) s += a[k * mr + r] * b[k * ldb + j];
      const int cj = full ? j : at++;  // kept columns are packed
      float v = p.accumulate ? c[r * ldc + cj] + s : s;
      if (p.row_bias) v += p.row_bias[r];
      if (p.z) v += p.z[r * p.ldz + cj];
      if (p.clamp) v = std::min(std::max(v, p.lo), p.hi);
      c[r * ldc + cj] = v;
    }
  }
}

int64_t PackedWeightsSize(Isa isa, int64_t m, int64_t k) {
  const int mr = ConvMr(isa), tail = ConvTailMr(isa, m);
  return (m / mr) * mr * k + (m % mr != 0 ? tail * k : 0);
}

PackedMatrix PackWeights(Isa isa, int64_t m, int64_t k, const float* w) {
  const int mr = ConvMr(isa);
  if (mr == GemmMr(isa)) return PackA(isa, false, m, k, w, k);
  PackedMatrix p;
  p.isa = isa;
  p.is_a = true;
  p.rows_or_cols = m;
  p.k = k;
  p.data.assign(static_cast<size_t>(PackedWeightsSize(isa, m, k)), 0.f);
  const int tail = ConvTailMr(isa, m);
  for (int64_t pi = 0; pi < CeilDiv(m, mr); ++pi) {
    const int rows = (pi + 1) * mr <= m ? mr : tail;  // panel width: mr, or the tail's
    float* d = p.data.data() + pi * mr * k;
    for (int r = 0; r < rows && pi * mr + r < m; ++r) {
      const float* src = w + (pi * mr + r) * k;
      for (int64_t kk = 0; kk < k; ++kk) d[kk * rows + r] = src[kk];
    }
  }
  return p;
}

Plan MakePointwisePlan(const ConvGeometry& g) {
  Plan p;
  p.in_place = true;
  p.hq = g.out[1];
  p.wq = g.out[2];
  p.chan = g.in_size();
  p.nv = g.out_size();
  p.phase_used.assign(1, true);
  p.off.resize(static_cast<size_t>(g.cg));
  for (int64_t c = 0; c < g.cg; ++c) p.off[static_cast<size_t>(c)] = c * p.chan;
  return p;
}

Plan MakePlan(const ConvGeometry& g, int nr) {
  Plan p;
  p.sh = g.stride[1];
  p.sw = g.stride[2];
  // Padded extent the outputs read; taps past the input (trailing pads) read zero.
  const int64_t hp = (g.out[1] - 1) * p.sh + (g.k[1] - 1) * g.dil[1] + 1;
  const int64_t wp = (g.out[2] - 1) * p.sw + (g.k[2] - 1) * g.dil[2] + 1;
  p.hq = CeilDiv(hp, p.sh);
  p.wq = CeilDiv(wp, p.sw);
  p.chan = p.sh * p.sw * p.hq * p.wq;
  p.nv = (g.out[1] - 1) * p.wq + g.out[2];
  // The last panel reads up to nr - 1 virtual pixels past the last valid one (see .h).
  p.source_size = g.cg * p.chan + nr + 16;
  p.off.resize(static_cast<size_t>(g.cg * g.k[1] * g.k[2]));
  p.phase_used.assign(static_cast<size_t>(p.sh * p.sw), false);
  size_t i = 0;
  for (int64_t c = 0; c < g.cg; ++c)
    for (int64_t kh = 0; kh < g.k[1]; ++kh)
      for (int64_t kw = 0; kw < g.k[2]; ++kw) {
        const int64_t th = kh * g.dil[1], tw = kw * g.dil[2];
        const int64_t phase = (th % p.sh) * p.sw + tw % p.sw;
        p.phase_used[static_cast<size_t>(phase)] = true;
        p.off[i++] = c * p.chan + phase * p.hq * p.wq + (th / p.sh) * p.wq + tw / p.sw;
      }
  return p;
}

void BuildSource(const ConvGeometry& g, const Plan& plan, const float* x, int64_t c0,
                 int64_t c1, float* source, Isa isa) {
  auto even_columns = EvenColumns;
#if defined(__x86_64__)
  if (UsesAvx512Tile(isa)) even_columns = EvenColumnsAvx512;
#else
  (void)isa;
#endif
  const int64_t H = g.in[1], W = g.in[2], pt = g.pad_b[1], pl = g.pad_b[2];
  const int64_t sh = plan.sh, sw = plan.sw, hq = plan.hq, wq = plan.wq;
  for (int64_t c = c0; c < c1; ++c) {
    const float* xc = x + c * H * W;
    for (int64_t p = 0; p < sh; ++p) {
      for (int64_t q = 0; q < sw; ++q) {
        if (!plan.phase_used[static_cast<size_t>(p * sw + q)]) continue;
        float* ph = source + c * plan.chan + (p * sw + q) * hq * wq;
        // Input column of phase column j is j * sw + q - pl, inside [0, W) for j in [j0, j1).
        const int64_t j0 = std::min(wq, pl - q <= 0 ? 0 : CeilDiv(pl - q, sw));
        const int64_t last = W - 1 + pl - q;  // j * sw <= last
        const int64_t j1 = std::max(j0, std::min(wq, last < 0 ? 0 : last / sw + 1));
        for (int64_t i = 0; i < hq; ++i) {
          float* row = ph + i * wq;
          const int64_t ih = i * sh + p - pt;
          if (ih < 0 || ih >= H) {
            std::fill(row, row + wq, 0.f);
            continue;
          }
          const float* xr = xc + ih * W + q - pl;
          std::fill(row, row + j0, 0.f);
          if (sw == 1) {
            std::memcpy(row + j0, xr + j0, sizeof(float) * (j1 - j0));
          } else if (sw == 2) {
            even_columns(xr + 2 * j0, j1 - j0, row + j0);
          } else {
            for (int64_t j = j0; j < j1; ++j) row[j] = xr[j * sw];
          }
          std::fill(row + j1, row + wq, 0.f);
        }
      }
    }
  }
}

namespace {

// How Run cuts the product Y = W x B (m weight rows, nv virtual pixels, K = Cg*kh*kw):
// tiles of mcp A panels x ncp B panels, K blocks of kc_step rows, and B panels packed
// `group` at a time.
struct TilePlan {
  int64_t mp = 0, np = 0;            // A panels (mr rows), B panels (nr pixels)
  int64_t mcp = 0, ncp = 0;          // panels per tile
  int64_t tiles_m = 0, tiles_n = 0;  // tiles
  int64_t kc_step = 0;               // K block
  int64_t group = 1;                 // B panels packed together
};

// At most this many B panels are packed per group.
constexpr int64_t kMaxGroup = 16;

TilePlan PlanTiles(int64_t m, int64_t nv, int64_t k, int mr, int nr, int threads) {
  TilePlan t;
  // Tiles of mcp A panels x ncp B panels (96 x 256 on one thread), cut for several
  // threads by their estimated finishing times (runtime/tile_split.h): a tile packs its
  // own B panels, about 2 weight rows' worth of work per column, and streams its weight
  // rows, about 4 columns' worth per row. Counting tiles left ResNet-18's 56x56 layer at
  // 13 (7 + 6) and cut 72 -> 24 on 28x28 into 8 + 8 + 8 + 1 pixel panels.
  t.mp = CeilDiv(m, mr);
  t.np = CeilDiv(nv, nr);
  t.mcp = std::max<int64_t>(1, 96 / mr);
  t.ncp = std::max<int64_t>(1, 256 / nr);
  if (threads > 1) {
    const TileBlocks blocks = SplitTiles({m, mr, t.mcp, 2}, {nv, nr, t.ncp, 4}, threads);
    t.mcp = blocks.rows;
    t.ncp = blocks.cols;
  }
  t.tiles_m = CeilDiv(t.mp, t.mcp);
  t.tiles_n = CeilDiv(t.np, t.ncp);
  // K block: one packed B panel (kc x nr, 32 KiB) stays in L1 while the A panels stream
  // through (conv_bench, ResNet-18 3x3 layers: 16 KiB blocks were 1-7% slower).
  const int64_t kc_max = 8192 / nr;
  const int64_t kblocks = CeilDiv(k, kc_max);
  t.kc_step = CeilDiv(k, kblocks);
  // B panels packed per group: one (its kc x nr floats stay in L1 while the tile's A
  // panels stream through), or, when the K block is short and the tile's panels fit in
  // 32 KiB together, all of them, the A panels then outer: each A panel's rows of Y are
  // written as long runs. With K = 16-32 (MobileNet's first expand convs, 56x56 and
  // 112x112, 1-5 MiB of output) the 96 rows of a tile each advancing 128 bytes per
  // panel left the stores, not the FMAs, the limit (MobileNetV2 in-model, 1 thread:
  // 16 -> 96 on 112x112 0.85 -> 0.68 ms, 24 -> 144 on 56x56 0.29 -> 0.20). With one or
  // two A panels (16 channels) there are few rows to gain and 16 -> 16 / 32 -> 16 ran
  // 13-15% slower: those keep one panel per group.
  if (kblocks == 1 && t.ncp * t.kc_step * nr <= 8192 && std::min(t.mcp, t.mp) >= 4)
    t.group = std::min<int64_t>(t.ncp, kMaxGroup);
  return t;
}

// One B panel of a group, as packed for its K block.
struct PanelMeta {
  int64_t y_at = 0;
  uint32_t keep = 0xffffffffu;
  bool skip = false, to_y = false;
  const float* b = nullptr;  // the B panel: packed (ldb 0) or X itself (ldb: X's plane)
  int64_t ldb = 0;
};

// The channel-major tile loop of one Run: what every tile shares, and its phases.
class ChannelMajorRun {
 public:
  ChannelMajorRun(Isa isa, const ConvGeometry& g, const Plan& plan, const PackedMatrix& w,
                  const TileIo& io, int threads)
      : isa_(isa), plan_(plan), io_(io) {
    mr_ = ConvMr(isa);
    nr_ = ConvNr(isa);
    tile_ = ConvTileFor(isa);
    // A partial last panel (M = 16, 40, 88... on AVX-512) runs the SGEMM's 12x32 tile,
    // which computes only the rows it is given; the conv's own tile always computes all 12.
    tail_mr_ = ConvTailMr(isa, g.mg);
    tail_tile_ = g.mg % mr_ != 0 ? ConvTailTileFor(isa) : tile_;
    pack_ = PackFor(isa);
    m_ = g.mg;
    k_ = g.cg * g.k[1] * g.k[2];
    ow_n_ = g.out[2];
    out_size_ = g.out_size();
    wq_ = plan.wq;
    nv_ = plan.nv;
    pa_ = w.data.data();
    prefetch_ = PrefetchWeights();
    // Virtual pixels are Y's pixels (no dropped columns): whole panels go straight to Y
    // and only a ragged last panel through the tile buffer.
    direct_ = wq_ == ow_n_;
    // The AVX-512 tile stores a panel straight into Y with its dropped columns squeezed
    // out (TileStore::keep): no tile buffer, and no second pass over Y to scatter it and
    // add Z (3-6% of ResNet-18, whose padded 3x3 planes all have wq = OW + 2).
    compact_ = UsesAvx512Tile(isa);
    // A 1x1 in-place conv's whole B panels are read from X by the tiles (ldb = X's
    // plane): X's channel rows already are the panel's K rows, and the copy into bbuf cost
    // as much as it saved when few A panels reuse it. MobileNetV2 on the AMD EPYC (Zen 4)
    // dev machine, conv_bench, 1 thread, min thread CPU time, load ~7, packed -> read in
    // place: 32 -> 16 on 112x112 (2 A panels) 0.168 -> 0.133 ms, 144 -> 24 on 56x56
    // 0.236 -> 0.200, 192 -> 32 on 28x28 0.098 -> 0.088, 14x14 expand/projection convs
    // 4-6% faster; in the model its projection convs ran 5-20% faster (per-node min over
    // 8 rounds, interleaved).
    b_in_place_ = plan.in_place && !PackInPlaceB();
    tp_ = PlanTiles(m_, nv_, k_, mr_, nr_, threads);
  }

  int64_t tiles() const { return tp_.tiles_m * tp_.tiles_n; }
  // Worth splitting across threads.
  bool parallel() const { return tiles() > 1 && static_cast<double>(m_) * nv_ * k_ >= 65536; }

  void RunTiles(int64_t t0, int64_t t1) const {
    const ScopedFlushDenormals flush;
    thread_local std::vector<float> bbuf, ctile;
    PanelMeta meta[kMaxGroup];
    if (bbuf.size() < static_cast<size_t>(tp_.group * tp_.kc_step * nr_))
      bbuf.resize(tp_.group * tp_.kc_step * nr_);
    const int64_t ldt = tp_.ncp * nr_;
    if (ctile.size() < static_cast<size_t>(tp_.mcp * mr_ * ldt))
      ctile.resize(tp_.mcp * mr_ * ldt);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t ti = t / tp_.tiles_n, tj = t % tp_.tiles_n;
      const int64_t p0 = ti * tp_.mcp, p1 = std::min(tp_.mp, p0 + tp_.mcp);
      const int64_t q0 = tj * tp_.ncp, q1 = std::min(tp_.np, q0 + tp_.ncp);
      for (int64_t pc = 0; pc < k_; pc += tp_.kc_step) {
        const int64_t kc = std::min(tp_.kc_step, k_ - pc);
        for (int64_t g0 = q0; g0 < q1; g0 += tp_.group) {
          const int64_t g1 = std::min(q1, g0 + tp_.group);
          PackGroup(g0, g1, pc, kc, bbuf.data(), meta);
          ComputeGroup(p0, p1, q0, g0, g1, pc, kc, meta, ctile.data(), ldt);
        }
      }
      FinishTile(p0, p1, q0, q1, ctile.data(), ldt);
    }
  }

 private:
  // Packs B panels [g0, g1) for the K block at pc; a panel of only dropped columns is
  // skipped.
  void PackGroup(int64_t g0, int64_t g1, int64_t pc, int64_t kc, float* bbuf,
                 PanelMeta* meta) const {
    const int64_t* off = plan_.off.data();
    for (int64_t q = g0; q < g1; ++q) {
      PanelMeta& pm = meta[q - g0];
      const int64_t cols = std::min<int64_t>(nr_, nv_ - q * nr_);
      // Y offset of the panel's first column; with `compact`, of its first kept one.
      pm.y_at = q * nr_;
      pm.keep = 0xffffffffu;
      pm.skip = false;
      if (compact_ && !(direct_ && cols == nr_)) {
        KeptColumns(q, cols, &pm);
        if (pm.skip) continue;
      }
      float* bq = bbuf + (q - g0) * tp_.kc_step * nr_;
      pm.b = bq;
      pm.ldb = 0;
      if (b_in_place_ && cols == nr_) {  // X's channel rows are the panel's K rows
        pm.b = io_.src + q * nr_ + off[pc];
        pm.ldb = plan_.chan;
      } else if (plan_.in_place && cols < nr_) {  // X has no slack past its last pixel
        PackPanelPartial(io_.src + q * nr_, off + pc, kc, static_cast<int>(cols), nr_, bq);
      } else {
        pack_(io_.src + q * nr_, off + pc, kc, bq);
      }
      pm.to_y = compact_ || (direct_ && cols == nr_);
    }
  }

  // Which of panel q's `cols` virtual pixels exist in Y, and where the first one goes.
  void KeptColumns(int64_t q, int64_t cols, PanelMeta* pm) const {
    pm->keep = 0;
    pm->y_at = -1;
    // Two divisions per panel, not per column: 64 of them cost 5-10% of a stem conv.
    int64_t oh = q * nr_ / wq_, ow = q * nr_ % wq_;
    for (int64_t j = 0; j < cols; ++j) {
      if (ow < ow_n_) {
        pm->keep |= 1u << j;
        if (pm->y_at < 0) pm->y_at = oh * ow_n_ + ow;
      }
      if (++ow == wq_) {
        ow = 0;
        ++oh;
      }
    }
    pm->skip = pm->keep == 0;
  }

  // The micro-kernel over A panels [p0, p1) x the group's packed B panels.
  void ComputeGroup(int64_t p0, int64_t p1, int64_t q0, int64_t g0, int64_t g1, int64_t pc,
                    int64_t kc, const PanelMeta* meta, float* ctile, int64_t ldt) const {
    // Locals, not members: the tile calls are indirect, so members would be reloaded
    // around each of them (K = 16-32 pointwise convs make thousands of short calls).
    const int64_t mr = mr_, nr = nr_, m = m_, k = k_, out_size = out_size_;
    const float* const pa = pa_;
    float* const y = io_.y;
    const bool first = pc == 0, last = pc + kc >= k;
    for (int64_t pi = p0; pi < p1; ++pi) {
      const int64_t row0 = pi * mr;
      const bool is_tail = (pi + 1) * mr > m;
      const ConvTileFn fn = is_tail ? tail_tile_ : tile_;
      const float* a = pa + pi * k * mr + pc * (is_tail ? tail_mr_ : mr);
      const int rows = static_cast<int>(std::min<int64_t>(mr, m - row0));
      for (int64_t q = g0; q < g1; ++q) {
        const PanelMeta& pm = meta[q - g0];
        if (pm.skip) continue;
        TileStore sp;
        sp.accumulate = !first;
        if (last) {
          sp.row_bias = io_.bias ? io_.bias + row0 : nullptr;
          // A tile bound for the tile buffer gets Z and the clamp in ScatterTile.
          sp.clamp = io_.ep.clamp && (pm.to_y || !io_.z);
          sp.lo = io_.ep.lo;
          sp.hi = io_.ep.hi;
          if (compact_) sp.post = io_.post;  // the 12 x 32 tile applies it (to_y)
          if (io_.z && pm.to_y) {
            sp.z = io_.z + row0 * out_size + pm.y_at;
            sp.ldz = out_size;
          }
        }
        sp.keep = pm.keep;
        sp.ldb = pm.ldb;
        // First pass over this K block's A panels (they come from L3 inside a model): the
        // tile requests the next panel's rows, or the next K block's first panel.
        if (q == q0 && prefetch_) {
          if (pi + 1 < p1)
            sp.prefetch = pa + (pi + 1) * k * mr + pc * mr;
          else if (pc + kc < k)
            sp.prefetch = pa + p0 * k * mr + (pc + kc) * mr;
        }
        float* c = pm.to_y ? y + row0 * out_size + pm.y_at
                           : ctile + (pi - p0) * mr * ldt + (q - q0) * nr;
        fn(rows, kc, a, pm.b, c, pm.to_y ? out_size : ldt, sp);
      }
    }
  }

  // What the tile buffer still holds goes to Y (with Z and the clamp), and the tiles that
  // cannot apply the post-activation in registers get it here.
  void FinishTile(int64_t p0, int64_t p1, int64_t q0, int64_t q1, const float* ctile,
                  int64_t ldt) const {
    const int64_t row0 = p0 * mr_;
    const int64_t rows = std::min(m_, p1 * mr_) - row0;
    // Direct: only a ragged last panel (if this tile has it) is in the tile buffer.
    const int64_t s0 = direct_ ? std::max(q0 * nr_, (tp_.np - 1) * nr_) : q0 * nr_;
    const int64_t s1 = std::min(nv_, q1 * nr_);
    if (!compact_ && s0 < s1 && (!direct_ || nv_ % nr_ != 0))
      ScatterTile(ctile + (s0 - q0 * nr_), ldt, static_cast<int>(rows), s0, s1, wq_, ow_n_,
                  out_size_, io_.z ? io_.z + row0 * out_size_ : nullptr, io_.ep,
                  io_.y + row0 * out_size_);
    if (io_.post.any() && !compact_) {
      // The AVX2 and scalar tiles do not apply it: the tile's virtual pixels [v0, v1) are
      // Y's pixels [y_at(v0), y_at(v1)) of its rows.
      auto y_at = [&](int64_t v) { return (v / wq_) * ow_n_ + std::min(v % wq_, ow_n_); };
      const int64_t ya = y_at(q0 * nr_), yb = y_at(std::min(nv_, q1 * nr_));
      conv_act::Apply(isa_, io_.post, io_.y + row0 * out_size_ + ya, rows, yb - ya, out_size_);
    }
  }

  Isa isa_;
  const Plan& plan_;
  TileIo io_;
  int mr_ = 0, nr_ = 0, tail_mr_ = 0;
  ConvTileFn tile_ = nullptr, tail_tile_ = nullptr;
  PackFn pack_ = nullptr;
  int64_t m_ = 0, k_ = 0, ow_n_ = 0, out_size_ = 0, wq_ = 0, nv_ = 0;
  const float* pa_ = nullptr;
  bool prefetch_ = false, direct_ = false, compact_ = false, b_in_place_ = false;
  TilePlan tp_;
};

// X itself for an in-place plan, else the phase-split source built into `source`.
const float* PrepareSource(Isa isa, const ConvGeometry& g, const Plan& plan, const float* x,
                           std::vector<float>* source, ThreadPool& pool) {
  if (plan.in_place) return x;
  if (source->size() < static_cast<size_t>(plan.source_size))
    source->resize(static_cast<size_t>(plan.source_size));
  float* s = source->data();
  std::fill(s + g.cg * plan.chan, s + plan.source_size, 0.f);
  auto build = [&](int64_t lo, int64_t hi) { BuildSource(g, plan, x, lo, hi, s, isa); };
  if (pool.num_threads() > 1 && g.cg * plan.chan >= 16384)
    pool.ParallelFor(g.cg, std::max<int64_t>(1, 4096 / plan.chan), build);
  else
    build(0, g.cg);
  return s;
}

}  // namespace

void Run(Isa isa, const ConvGeometry& g, const Plan& plan, const float* x,
         const PackedMatrix& w, const GemmEpilogue& ep, const float* bias, const float* z,
         float* y, std::vector<float>* source, ThreadPool& pool, const PackedMatrix* pixel_major_w,
         const conv_act::PostActivation& post) {
  const int64_t k = g.cg * g.k[1] * g.k[2];
  if (w.rows_or_cols != g.mg || w.k != k ||
      w.data.size() != static_cast<size_t>(PackedWeightsSize(isa, g.mg, w.k)))
    throw Error(ErrorCode::kInternal, "conv_implicit::Run: packed weights do not match");
  const float* src = PrepareSource(isa, g, plan, x, source, pool);
  if (pixel_major_w) {
    RunPixelMajor(isa, g, plan, src, *pixel_major_w, ep, bias, z, y, pool, post);
    return;
  }
  const ChannelMajorRun run(isa, g, plan, w, {src, ep, bias, z, y, post}, pool.num_threads());
  auto tiles = [&](int64_t t0, int64_t t1) { run.RunTiles(t0, t1); };
  if (pool.num_threads() > 1 && run.parallel())
    pool.ParallelFor(run.tiles(), 1, tiles);
  else
    tiles(0, run.tiles());
}

}  // namespace edgepress::runtime::conv_implicit
