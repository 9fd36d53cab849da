// The implicit-GEMM convolution with pixels on the tile's rows (conv_implicit.h,
// RunPixelMajor): Y^T[pixels, Mg] = patches^T[pixels, K] x W^T[K, Mg].
// Why: the channel-major 12 x 32 tile wastes rows when Mg is not a multiple of 12 (64
// channels: 72 computed) and columns when a plane is small (7x7 with a 9-wide padded phase:
// 61 virtual pixels in two 32-wide panels, 49 of them real). Here a row panel is up to 7
// pixels of one output row (ResNet/MobileNet widths 56, 28, 14, 7 are multiples of 7, and
// no virtual column is computed) and a column panel 64 output channels (every multiple of
// 64 is whole). The A panel of a K block is packed from the phase-split source (7 floats
// per GEMM row) and reused by every channel panel; W^T is packed once per kernel. Results
// gather in a per-thread [pixels][channels] buffer and go to Y transposed, with bias, Z
// and the clamp, in one pass.
#include <algorithm>
#include <cstring>

#include "ir/error.h"
#include "runtime/kernels/conv/conv_implicit.h"
#include "runtime/tile_split.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::conv_implicit {

namespace {

using conv_util::ConvGeometry;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Flush-to-zero and denormals-are-zero while the micro-kernels run (see conv_implicit.cc).
class ScopedFlushDenormals {
 public:
#if defined(__x86_64__)
  ScopedFlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~ScopedFlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#endif
};

// Requests floats [p, p + n) into L2, one prefetch per 64-byte line.
void PrefetchL2(const float* p, int64_t n) {
#if defined(__x86_64__)
  for (int64_t i = 0; i < n; i += 16) _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T1);
#else
  (void)p;
  (void)n;
#endif
}

// Pixel panels: up to kPmRows pixels of one output row, never across rows, so each panel
// is contiguous in the source (virtual pixel v0 = oh * wq + ow0) and in Y.
struct PixelPanel {
  int64_t v0, y0;  // first virtual pixel, first pixel of Y
  int rows;
};

std::vector<PixelPanel> PixelPanels(const ConvGeometry& g, const Plan& plan) {
  std::vector<PixelPanel> p;
  const int64_t oh_n = g.out[1], ow_n = g.out[2];
  for (int64_t oh = 0; oh < oh_n; ++oh)
    for (int64_t ow = 0; ow < ow_n; ow += kPmRows)
      p.push_back({oh * plan.wq + ow, oh * ow_n + ow,
                   static_cast<int>(std::min<int64_t>(kPmRows, ow_n - ow))});
  return p;
}

// One A panel of a K block: kPmRows floats per GEMM row k from src + off[k] (`rows` real,
// zeros after; nothing read past them, so X itself can be the source).
void PackPixelPanelPortable(const float* src, const int64_t* off, int64_t kc, int rows,
                            float* dst) {
  for (int64_t k = 0; k < kc; ++k, dst += kPmRows) {
    const float* s = src + off[k];
    int r = 0;
    for (; r < rows; ++r) dst[r] = s[r];
    for (; r < kPmRows; ++r) dst[r] = 0.f;
  }
}

#if defined(__x86_64__)
// The same with one masked load and store per row: the scalar copy cost ~10% of the tile
// time when a K block's A panels feed only a few channel panels.
__attribute__((target("avx512f"))) void PackPixelPanelAvx512(const float* src,
                                                            const int64_t* off, int64_t kc,
                                                            int rows, float* dst) {
  const __mmask16 load = static_cast<__mmask16>((1u << rows) - 1);
  const __mmask16 store = static_cast<__mmask16>((1u << kPmRows) - 1);
  for (int64_t k = 0; k < kc; ++k, dst += kPmRows)
    _mm512_mask_storeu_ps(dst, store, _mm512_maskz_loadu_ps(load, src + off[k]));
}
#endif

// One pixel panel of the [pixels][channels] tile (row stride ldc, channel c0 at column 0)
// into Y's channel rows c0..c1 at pixel y0: bias, Z and the clamp applied on the way.
void StorePanelPortable(const float* c, int64_t ldc, int rows, int64_t c0, int64_t c1,
                        const float* bias, const float* z, const GemmEpilogue& ep,
                        const conv_act::PostActivation& post, int64_t out_size, int64_t y0,
                        float* y) {
  for (int64_t co = c0; co < c1; ++co) {
    const float bv = bias ? bias[co] : 0.f;
    float* yr = y + co * out_size + y0;
    const float* zr = z ? z + co * out_size + y0 : nullptr;
    const float* cc = c + (co - c0);
    for (int r = 0; r < rows; ++r) {
      float v = cc[r * ldc] + bv;
      if (zr) v += zr[r];
      if (ep.clamp) v = std::min(std::max(v, ep.lo), ep.hi);
      if (post.any()) v = conv_act::ApplyOne(post, v);
      yr[r] = v;
    }
  }
}

#if defined(__x86_64__)
// The same, 8 channels at a time: the panel's (up to 8) pixel rows of 8 channels are one
// 8x8 transpose in registers, then each channel's pixels are one masked store. The scalar
// loop above cost as much as the multiply-adds when K is short (a 16 -> 96 conv on 112x112
// ran at 24 GFLOP/s, 4x slower than the channel-major tiles). The masked loads and stores
// are AVX-512VL's (k-mask): AVX's vmaskmovps store is microcoded on AMD Zen, where it made
// this store 17% of a 7x7 pixel-major conv's time (160 -> 960, perf on the Zen 4 dev
// machine); the pixel-major path only runs on the AVX-512 entries, which require VL.
__attribute__((target("avx2,fma,avx512f,avx512vl"))) void StorePanelAvx512(
    const float* c, int64_t ldc, int rows, int64_t c0, int64_t c1, const float* bias,
    const float* z, const GemmEpilogue& ep, const conv_act::PostActivation& post,
    int64_t out_size, int64_t y0, float* y) {
  static_assert(kPmRows <= 8, "one 8x8 transpose per panel");
  const __mmask8 mask = static_cast<__mmask8>((1u << rows) - 1);
  const __m256 lo = _mm256_set1_ps(ep.lo), hi = _mm256_set1_ps(ep.hi);
  int64_t co = c0;
  for (; co + 8 <= c1; co += 8) {
    const float* cc = c + (co - c0);
    __m256 r[8];
    for (int i = 0; i < 8; ++i)
      r[i] = i < rows ? _mm256_loadu_ps(cc + i * ldc) : _mm256_setzero_ps();
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    __m256 col[8];  // col[j]: the panel's pixels of channel co + j
    col[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    col[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    col[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    col[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    col[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    col[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    col[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    col[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
    for (int j = 0; j < 8; ++j) {
      __m256 v = col[j];
      if (bias) v = _mm256_add_ps(v, _mm256_set1_ps(bias[co + j]));
      float* yr = y + (co + j) * out_size + y0;
      if (z) v = _mm256_add_ps(v, _mm256_maskz_loadu_ps(mask, z + (co + j) * out_size + y0));
      if (ep.clamp) v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
      if (post.any()) v = conv_act::Post256(post, v);
      _mm256_mask_storeu_ps(yr, mask, v);
    }
  }
  if (co < c1)
    StorePanelPortable(c + (co - c0), ldc, rows, co, c1, bias, z, ep, post, out_size, y0, y);
}
#endif

}  // namespace

PackedMatrix PackWeightsPixelMajor(int64_t m, int64_t k, const float* w) {
  PackedMatrix p;
  p.isa = Isa::kAvx512;
  p.is_a = false;
  p.rows_or_cols = m;
  p.k = k;
  const int64_t panels = CeilDiv(m, kPmCols);
  p.data.assign(static_cast<size_t>(panels * kPmCols * k), 0.f);
  for (int64_t co = 0; co < m; ++co) {
    float* d = p.data.data() + (co / kPmCols) * kPmCols * k + co % kPmCols;
    for (int64_t kk = 0; kk < k; ++kk) d[kk * kPmCols] = w[co * k + kk];
  }
  return p;
}

bool PreferPixelMajor(Isa isa, const ConvGeometry& g, const Plan& plan) {
  if (ConvNr(isa) != 32) return false;  // the 7 x 64 tile is AVX-512 only
  const int64_t m = g.mg, mr = ConvMr(isa), nr = ConvNr(isa);
  // Multiply-adds each layout computes per GEMM row k, padding included.
  const double channel_major = static_cast<double>(CeilDiv(m, mr) * mr) * CeilDiv(plan.nv, nr) * nr;
  const int64_t pixel_rows = g.out[1] * CeilDiv(g.out[2], kPmRows) * kPmRows;
  const double pixel_major = static_cast<double>(pixel_rows) * CeilDiv(m, kPmCols) * kPmCols;
  // conv_bench (thread CPU time, loaded machine): 512 channels on 7x7, ratio 0.76: 108 ->
  // 136 GFLOP/s; 256 on 14x14 (0.85) even; with one or two channel panels (64-channel
  // layers) the A packing is spread over too few B panels: 144 -> 120; with a short K
  // (pointwise 96 -> 576 on 7x7) the transposed store is too large a share: 104 -> 81.
  // MobileNetV2's 7x7 pointwise convs (interleaved runs, min thread CPU time, load ~7):
  // 960 -> 320 0.249 -> 0.195 ms, 320 -> 1280 0.334 -> 0.315; at K <= 576 it lost
  // (576 -> 96 0.044 -> 0.050, 160 -> 960 0.118 -> 0.134).
  const int64_t k = g.cg * g.k[1] * g.k[2];
  if (g.k[1] * g.k[2] == 1 && CeilDiv(m, kPmCols) >= 2) {
    // Pointwise, since the transposed store is vectorised (StorePanelAvx512). conv_bench,
    // 1 thread, min thread CPU time, load ~3, GFLOP/s channel-major -> pixel-major:
    // 7x7 960 -> 160 (MAC ratio 0.875) 107 -> 126, 960 -> 320 107 -> 151, 320 -> 1280
    // 119 -> 130, 160 -> 960 (0.77) 127 -> 134, 96 -> 576 (0.77) 116 -> 128; kept
    // channel-major: 7x7 576 -> 96 (1.02) 111 vs 104, 14x14 96 -> 576 (0.875, short K)
    // 136 vs 121, 576 -> 96 (0.98) 139 vs 108, and every plane of 28x28 and more.
    // Counted exactly since both tiles skip whole 16-column vectors they do not need: a
    // last channel panel of 16/32/48 channels (Ukernel7xNAvx512) and a last pixel panel
    // keeping at most 16 columns (Tile12x32's half). MobileNetV3's 7x7 576 -> 96 switches
    // to pixel-major (43-45 vs 48-50 us in the model); 14x14 576 -> 96 (0.94) stays
    // channel-major, where pixel-major ran 8-13% slower in MobileNetV2 (interleaved
    // per-node profiles, 8-10 rounds, load ~4).
    const int64_t last = plan.nv % nr;
    const double cm_exact = static_cast<double>(CeilDiv(m, mr) * mr) *
                            ((plan.nv / nr) * nr + (last == 0 ? 0 : last <= 16 ? 16 : nr));
    const double pm_exact = static_cast<double>(pixel_rows) * CeilDiv(m, 16) * 16;
    return pm_exact < (k >= 256 ? 0.9 : 0.8) * cm_exact;
  }
  return k >= 256 && CeilDiv(m, kPmCols) >= 4 && pixel_major < 0.8 * channel_major;
}

namespace {

// One B slice (kc rows of a 64-channel panel) against n pixel panels: their A panels
// a_stride floats apart, their C blocks kPmRows rows of ldc apart. `next` (next_floats
// floats; null for none) is the slice the following step reads, requested into L2 a share
// per pixel panel while this slice's tiles run.
void SliceTimesPanels(ConvTileFn fn, int64_t n, int64_t kc, const float* a, int64_t a_stride,
                      const float* b, float* c, int64_t ldc, bool accumulate,
                      const float* next, int64_t next_floats) {
  const int64_t share = CeilDiv(next_floats, 16 * n) * 16;
  TileStore sp;
  sp.accumulate = accumulate;
  for (int64_t i = 0; i < n; ++i) {
    if (next) {
      const int64_t lo = i * share, hi = std::min(next_floats, lo + share);
      PrefetchL2(next + lo, hi - lo);
    }
    fn(kPmRows, kc, a + i * a_stride, b, c + i * kPmRows * ldc, ldc, sp);
  }
}

// The pixel-major tile loop of one RunPixelMajor: what every tile shares, and its phases.
class PixelMajorRun {
 public:
  PixelMajorRun(Isa isa, const ConvGeometry& g, const Plan& plan, const PackedMatrix& wt,
                const TileIo& io, int threads)
      : io_(io) {
    tile_ = PixelMajorTileFor(isa);
#if defined(__x86_64__)
    if (ConvNr(isa) == 32) {
      pack_ = PackPixelPanelAvx512;
      store_ = StorePanelAvx512;
    }
#endif
    m_ = g.mg;
    k_ = g.cg * g.k[1] * g.k[2];
    out_size_ = g.out_size();
    if (wt.rows_or_cols != m_ || wt.k != k_ ||
        wt.data.size() != static_cast<size_t>(CeilDiv(m_, kPmCols) * kPmCols * k_))
      throw Error(ErrorCode::kInternal,
                  "conv_implicit::RunPixelMajor: packed weights do not match");
    w_ = wt.data.data();
    panels_ = PixelPanels(g, plan);
    np_ = static_cast<int64_t>(panels_.size());
    nq_ = CeilDiv(m_, kPmCols);
    // A last channel panel of fewer than 64 channels runs the narrower tile.
    last_tile_ = PixelMajorTileFor(isa, static_cast<int>(m_ - (nq_ - 1) * kPmCols));
    // Tiles of up to 8 pixel panels x 8 channel panels (each packed A panel feeds up to
    // 8 B panels: with 4, 7x7 layers ran 100 instead of 136 GFLOP/s), cut for several
    // threads by their estimated finishing times (runtime/tile_split.h): a tile packs its
    // own pixel panels, about 16 channels' worth of work each, and streams its channels'
    // weights, about one pixel panel's worth (so 160 -> 960 on 7x7 keeps whole-plane
    // tiles: cut into 4 + 3 pixel panels as well, each thread read all 614 KB of
    // weights, 0.096 -> 0.110 ms in conv_bench at 2 threads). Counting tiles cut 96 ->
    // 576 on 7x7 into 8 + 1 channel panels: 68 -> 63 us from a second thread (now 41 us).
    pcp_ = std::min<int64_t>(np_, 8);
    qcp_ = std::min<int64_t>(nq_, 8);
    if (threads > 1) {
      const TileBlocks blocks = SplitTiles({np_, 1, pcp_, 1}, {m_, kPmCols, qcp_, 16}, threads);
      pcp_ = blocks.rows;
      qcp_ = blocks.cols;
    }
    tiles_q_ = CeilDiv(nq_, qcp_);
    // K block: a 64-wide B slice of kc rows is 16 KiB at kc = 64, the block's A panels up
    // to 8 x 1.75 KiB, together well inside L1 (48 KiB) with the tile's C rows. At kc =
    // 128 (32 + 28 KiB) they were not: MobileNetV2's 7x7 pointwise nodes ran 5-10% slower
    // (in-model per-node profiles, interleaved, 8 rounds each: 128 vs 64 vs 48 vs 32; 48
    // and 64 even, 32 slower again).
    kc_step_ = CeilDiv(k_, CeilDiv(k_, 64));
    off_ = plan.off.data();
    prefetch_ = PrefetchWeights();
    // Loop order. K <= 384 (expand convs: many channel panels, short K): the tile's pixel
    // panels are packed over the whole K once (<= 75 KiB, L2), then each channel panel
    // runs all its K blocks with its C block (7 x 7 x 64 floats per pixel panel) kept in
    // L1, its weights streamed in order, and is stored transposed right after. Longer K
    // (projections): K blocks outer, each block's A panels packed once and reused by
    // every channel panel. In-model per-node profiles (interleaved, 8 rounds x 2 orders):
    // 160 -> 960 and 320 -> 1280 on 7x7 6-15% faster channel-panel-outer; 960 -> 160,
    // 576 -> 160 4-10% slower, so they keep the K-outer order.
    q_outer_ = k_ <= 384;
  }

  int64_t tiles() const { return CeilDiv(np_, pcp_) * tiles_q_; }

  void RunTiles(int64_t t0, int64_t t1) const {
    const ScopedFlushDenormals flush;
    thread_local std::vector<float> abuf, ctile;
    const int64_t a_floats = pcp_ * (q_outer_ ? k_ : kc_step_) * kPmRows;
    if (abuf.size() < static_cast<size_t>(a_floats)) abuf.resize(a_floats);
    const int64_t ldc = q_outer_ ? kPmCols : qcp_ * kPmCols;
    if (ctile.size() < static_cast<size_t>(pcp_ * kPmRows * ldc))
      ctile.resize(pcp_ * kPmRows * ldc);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t p0 = (t / tiles_q_) * pcp_, p1 = std::min(np_, p0 + pcp_);
      const int64_t q0 = (t % tiles_q_) * qcp_, q1 = std::min(nq_, q0 + qcp_);
      if (q_outer_)
        ChannelPanelsOuter(p0, p1, q0, q1, abuf.data(), ctile.data());
      else
        KBlocksOuter(p0, p1, q0, q1, abuf.data(), ctile.data(), ldc);
    }
  }

 private:
  // Packs pixel panels [p0, p1) over K rows [pc, pc + kc), a_stride floats apart.
  void PackPanels(int64_t p0, int64_t p1, int64_t pc, int64_t kc, float* abuf,
                  int64_t a_stride) const {
    for (int64_t pi = p0; pi < p1; ++pi) {
      const PixelPanel& pp = panels_[static_cast<size_t>(pi)];
      pack_(io_.src + pp.v0, off_ + pc, kc, pp.rows, abuf + (pi - p0) * a_stride);
    }
  }

  // Transposed into Y: channel co's row gets each panel's pixels, contiguous.
  void StorePanels(int64_t p0, int64_t p1, int64_t c0, int64_t c1, const float* ctile,
                   int64_t ldc) const {
    for (int64_t pi = p0; pi < p1; ++pi) {
      const PixelPanel& pp = panels_[static_cast<size_t>(pi)];
      store_(ctile + (pi - p0) * kPmRows * ldc, ldc, pp.rows, c0, c1, io_.bias, io_.z, io_.ep,
             io_.post, out_size_, pp.y0, io_.y);
    }
  }

  // K <= 384: pixel panels packed over the whole K, then each channel panel over all
  // its K blocks, stored right after.
  void ChannelPanelsOuter(int64_t p0, int64_t p1, int64_t q0, int64_t q1, float* afull,
                          float* ctile) const {
    const int64_t k = k_, kc_step = kc_step_;
    PackPanels(p0, p1, 0, k, afull, k * kPmRows);
    for (int64_t q = q0; q < q1; ++q) {
      const ConvTileFn fn = q + 1 == nq_ ? last_tile_ : tile_;
      for (int64_t pc = 0; pc < k; pc += kc_step) {
        const int64_t kc = std::min(kc_step, k - pc);
        const float* b = w_ + q * kPmCols * k + pc * kPmCols;
        const float* next = nullptr;
        int64_t next_floats = 0;
        if (prefetch_ && pc + kc < k) {
          next = b + kc * kPmCols;
          next_floats = std::min(kc_step, k - pc - kc) * kPmCols;
        } else if (prefetch_ && q + 1 < q1) {
          next = w_ + (q + 1) * kPmCols * k;
          next_floats = kc_step * kPmCols;
        }
        SliceTimesPanels(fn, p1 - p0, kc, afull + pc * kPmRows, k * kPmRows, b, ctile, kPmCols,
                         pc > 0, next, next_floats);
      }
      StorePanels(p0, p1, q * kPmCols, std::min(m_, (q + 1) * kPmCols), ctile, kPmCols);
    }
  }

  // Longer K: K blocks outer, each block's pixel panels packed once and reused by every
  // channel panel of the tile; the tile's C block is stored at the end.
  void KBlocksOuter(int64_t p0, int64_t p1, int64_t q0, int64_t q1, float* abuf, float* ctile,
                    int64_t ldc) const {
    const int64_t k = k_, kc_step = kc_step_;
    for (int64_t pc = 0; pc < k; pc += kc_step) {
      const int64_t kc = std::min(kc_step, k - pc);
      PackPanels(p0, p1, pc, kc, abuf, kc_step * kPmRows);
      for (int64_t q = q0; q < q1; ++q) {
        const float* b = w_ + q * kPmCols * k + pc * kPmCols;
        // The slice the next (q, K block) step reads.
        const float* next = nullptr;
        int64_t next_floats = 0;
        if (prefetch_ && q + 1 < q1) {
          next = b + kPmCols * k;
          next_floats = kc * kPmCols;
        } else if (prefetch_ && pc + kc < k) {
          next = w_ + q0 * kPmCols * k + (pc + kc) * kPmCols;
          next_floats = std::min(kc_step, k - pc - kc) * kPmCols;
        }
        const ConvTileFn fn = q + 1 == nq_ ? last_tile_ : tile_;
        SliceTimesPanels(fn, p1 - p0, kc, abuf, kc_step * kPmRows, b,
                         ctile + (q - q0) * kPmCols, ldc, pc > 0, next, next_floats);
      }
    }
    StorePanels(p0, p1, q0 * kPmCols, std::min(m_, q1 * kPmCols), ctile, ldc);
  }

  TileIo io_;
  ConvTileFn tile_ = nullptr, last_tile_ = nullptr;
  decltype(&PackPixelPanelPortable) pack_ = PackPixelPanelPortable;
  decltype(&StorePanelPortable) store_ = StorePanelPortable;
  int64_t m_ = 0, k_ = 0, out_size_ = 0;
  const float* w_ = nullptr;
  std::vector<PixelPanel> panels_;
  int64_t np_ = 0, nq_ = 0, pcp_ = 0, qcp_ = 0, tiles_q_ = 0, kc_step_ = 0;
  const int64_t* off_ = nullptr;
  bool prefetch_ = false, q_outer_ = false;
};

}  // namespace

void RunPixelMajor(Isa isa, const ConvGeometry& g, const Plan& plan, const float* src,
                   const PackedMatrix& wt, const GemmEpilogue& ep, const float* bias,
                   const float* z, float* y, ThreadPool& pool,
                   const conv_act::PostActivation& post) {
  const PixelMajorRun run(isa, g, plan, wt, {src, ep, bias, z, y, post}, pool.num_threads());
  auto tiles = [&](int64_t t0, int64_t t1) { run.RunTiles(t0, t1); };
  if (pool.num_threads() > 1 && run.tiles() > 1)
    pool.ParallelFor(run.tiles(), 1, tiles);
  else
    tiles(0, run.tiles());
}

}  // namespace edgepress::runtime::conv_implicit
