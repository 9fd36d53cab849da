// The direct convolution's driver (conv_direct.h), shared by the ISAs: tap groups at the
// padding, task split, channel blocking, prefetch plan and the calls into one ISA's tile and store.
#include "runtime/kernels/conv/conv_direct.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <utility>
#include <vector>

#include <unistd.h>

#include "ir/error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::conv_direct {

namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The L1 data cache in bytes (glibc reads CPUID; 48 KiB, the size the blocks were first
// tuned for, where it does not say).
int64_t L1DataBytes() {
  static const int64_t bytes = [] {
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    const long b = sysconf(_SC_LEVEL1_DCACHE_SIZE);
    if (b > 0) return static_cast<int64_t>(b);
#endif
    return int64_t{48} << 10;
  }();
  return bytes;
}

// Whether a weight block of weight_floats fits in L1 beside a scratch of scratch_floats
// and the tile's source rows.
bool BlockFitsL1(int64_t weight_floats, int64_t scratch_floats) {
  constexpr int64_t kRowsBytes = 4 << 10;  // the source rows, roughly
  return (scratch_floats + weight_floats) * int64_t{sizeof(float)} + kRowsBytes <= L1DataBytes();
}

// Output pixels of a task's run (Run): two 56-wide rows, a 7x7 plane, part of a wide row.
constexpr int64_t kRunPixels = 112;

// AVX2: measured with bench/conv_bench.cc under EDGEPRESS_MAX_ISA=avx2 on the Xeon (thread
// CPU time, 1 thread, load ~5, two interleaved rounds), direct vs the implicit GEMM's 6x16
// tile: ResNet-18's 3x3 layers 2.41-2.61 -> 2.26-2.35 ms (64->64 on 56), 3.02-3.26 ->
// 2.30-2.32 ms (512->512 on 7), 1.54-1.66 -> 1.14-1.16 ms (stride 2 256->512); unlike
// AVX-512 the short-K stems win too (7x7/2 conv1 3->64 2.61 -> 2.21 ms, 3x3/2 3->32 0.45 ->
// 0.32-0.34 ms, 3->16 0.22-0.24 -> 0.17-0.18 ms: the 6x16 implicit tile packs and
// multiplies a K of 27-147 with little reuse, and the 8 x 8 store is cheap next to it).
// It lost where a block is mostly padding: the detector's 96->24 (24 of 32 computed) 3.44 ->
// 3.55-3.72 ms. So: 7/8 of the computed channels real, any K; blocks of 24 (OcBlock) make
// M = 24, 72, 120 whole.
bool PreferAvx2(int64_t mg, int64_t taps) {
  const int B = OcBlock(Isa::kAvx2, mg);
  const int64_t computed = CeilDiv(mg, B) * B;
  return taps > 1 && 8 * mg >= 7 * computed;
}

}  // namespace

bool Prefer(Isa isa, int64_t mg, int64_t cg, int64_t taps) {
  if (isa == Isa::kAvx2) return PreferAvx2(mg, taps);
  if (isa != Isa::kAvx512) return false;
  const int64_t computed = CeilDiv(mg, 64) * 64;
  // With long weight blocks (Zen 4) the short K wins as well: ResNet's conv1 (7x7/2, 3 ->
  // 64 on 224x224, one block of all 3 channels) 2.71-2.74 -> 2.43-2.46 ms against the
  // implicit GEMM's 12x32 tile (conv_bench, thread CPU time, 1 thread, load 7.5).
  return taps > 1 && 8 * mg >= 7 * computed && (cg * taps >= 256 || LongWeightBlocks(isa));
}

// AVX2, conv_bench on Zen 3 (EPYC, thread CPU time, 1 thread, min of 3 interleaved
// rounds, load 2-4), implicit GEMM -> direct: MobileNetV2's 7x7 pointwise convs 960 -> 320
// 0.559 -> 0.406 ms, 320 -> 1280 0.746 -> 0.549, 160 -> 960 0.282 -> 0.220, 960 -> 160
// 0.280 -> 0.207; MobileNetV3's 576 -> 96 and 96 -> 576 on 7x7 0.098 -> 0.072 and 0.102 ->
// 0.084. The implicit GEMM computes 64 columns for those 49 pixels; the direct tiles split
// the plane into 5-6 pixel tiles with nothing padded. Where the panels are full (14x14 is
// 196 of 208 columns, 28x28 and up all) the direct kernel tied or lost (144 -> 24 on 56x56
// 0.291 -> 0.453 ms: its 16-channel blocks re-read X per block), and so did the strided
// 1x1 projections (ResNet's 256 -> 512 to 7x7 0.226 -> 0.225).
bool PreferPointwise(Isa isa, const conv_util::ConvGeometry& g) {
  if (isa != Isa::kAvx2 || !Handles(g) || g.k_size() != 1) return false;
  for (int d = 0; d < 3; ++d)
    if (g.stride[d] != 1 || g.pad_b[d] != 0 || g.dil[d] != 1) return false;
  const int64_t out = g.out_size(), computed_cols = CeilDiv(out, 16) * 16;
  return 8 * out < 7 * computed_cols && PreferAvx2(g.mg, 2);
}

bool LongWeightBlocks(Isa isa) {
#if defined(__x86_64__)
  if (isa != Isa::kAvx512 && isa != Isa::kAvx2) return false;
  const IsaOps& ops = isa == Isa::kAvx512 ? Avx512Ops() : Avx2Ops(16);
  return !BlockFitsL1(ops.weight_floats, kRunPixels * ops.oc_block);
#else
  (void)isa;
  return false;
#endif
}

PackedWeights PackWeights(Isa isa, int64_t mg, int64_t cg, int64_t taps, const float* w) {
  const int64_t ob = OcBlock(isa, mg);
  if (ob == 0) throw Error(ErrorCode::kInternal, "conv_direct::PackWeights: no direct kernel for this ISA");
  const int64_t blocks = CeilDiv(mg, ob);
  PackedWeights pw;
  pw.oc_block = static_cast<int>(ob);
  pw.buf.assign(static_cast<size_t>(blocks * cg * taps * ob + 16), 0.f);
  pw.offset = (64 - reinterpret_cast<uintptr_t>(pw.buf.data()) % 64) % 64 / sizeof(float);
  float* p = pw.buf.data() + pw.offset;
  for (int64_t o = 0; o < mg; ++o)
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t t = 0; t < taps; ++t)
        p[static_cast<size_t>((((o / ob) * cg + c) * taps + t) * ob + o % ob)] =
            w[(o * cg + c) * taps + t];
  return pw;
}

#if defined(__x86_64__)

namespace {

// Taps k in [first, second) of a kernel of K taps with dilation d, the first reading
// position s, read inside [0, n).
std::pair<int64_t, int64_t> TapRange(int64_t s, int64_t n, int64_t K, int64_t d) {
  const int64_t lo = std::min(K, s >= 0 ? 0 : CeilDiv(-s, d));
  const int64_t hi = n - s > 0 ? std::min(K, CeilDiv(n - s, d)) : 0;
  return {lo, std::max(lo, hi)};
}

// Output columns [ow0, ow1) whose taps kw inside X are [lo, hi): the interior is one such
// interval, each column near an edge usually its own.
struct ColSpan {
  int64_t ow0, ow1, lo, hi;
};

// One task's run of output pixels, grouped by the taps that read inside X: pix[k] is the
// k-th pixel's source at its group's first tap, acc[k] its scratch row; a group's pixels
// are [begin, end) of these; its (source, weight) offset pairs for up to cb_step input
// channels (TileFn's tab), channel-major, start at tab[2 * tab0], `taps` per channel.
struct RunPlan {
  struct Group {
    int64_t r0, r1, c0, c1;  // its taps: kh in [r0, r1), kw in [c0, c1)
    int64_t begin, end, tab0, taps;
  };
  struct Segment {  // pixels [q, q + n) of the run: output row oh, columns from ow
    int64_t group, q, n, oh, ow;
  };
  struct TileSpan {
    int64_t q0, n, group;  // pixels [q0, q0 + n) of pix / acc, of groups[group]
  };
  std::vector<Segment> segs;
  std::vector<const float*> pix;
  std::vector<float*> acc;
  std::vector<int64_t> tab;
  std::vector<int64_t> tab_key, next_key;  // what tab was built for, this task's (Plan)
  std::vector<Group> groups;
  std::vector<TileSpan> tiles;
};

// Fills `plan` for the npix pixels from p0 (row-major over OW columns), each group split
// into near-equal tiles of <= tile_pixels (56 = 6 x 6 + 4 x 5, so no tile is narrow enough
// to leave the FMA units waiting on a short dependency chain). Runs once per task, so it
// works per (row, column span) segment, not per pixel: a stem's task (3 channels, 16 on
// AVX2) does ~3k cycles of FMAs, and a per-pixel plan with a division and a sort made
// MobileNet's 3->32 stem 30% slower there.
void Plan(const std::vector<std::pair<int64_t, int64_t>>& rows, const std::vector<ColSpan>& cols,
          int64_t p0, int64_t npix, int64_t OW, int64_t KW, int64_t sh, int64_t sw, int64_t pt,
          int64_t pl, int64_t dh, int64_t dw, int64_t W, int64_t B, int64_t chan,
          int64_t cb_step, int64_t taps, int tile_pixels, const float* x, float* scratch,
          RunPlan& plan) {
  plan.groups.clear();
  plan.segs.clear();
  for (int64_t q = 0, oh = p0 / OW, ow = p0 % OW; q < npix; ++oh, ow = 0) {
    const int64_t row_end = std::min(OW, ow + npix - q);
    const auto& r = rows[static_cast<size_t>(oh)];
    for (const ColSpan& cs : cols) {
      const int64_t a = std::max(ow, cs.ow0), b = std::min(row_end, cs.ow1);
      if (a >= b) continue;
      size_t gi = 0;
      while (gi < plan.groups.size() &&
             !(plan.groups[gi].r0 == r.first && plan.groups[gi].r1 == r.second &&
               plan.groups[gi].c0 == cs.lo && plan.groups[gi].c1 == cs.hi))
        ++gi;
      if (gi == plan.groups.size())
        plan.groups.push_back({r.first, r.second, cs.lo, cs.hi, 0, 0, 0, 0});
      plan.groups[gi].end += b - a;  // the count, for now
      plan.segs.push_back({static_cast<int64_t>(gi), q + a - ow, b - a, oh, a});
    }
    q += row_end - ow;
  }
  // Each group's slots, tiles and tap pairs for cb_step channels.
  int64_t pairs = 0, begin = 0;
  plan.tiles.clear();
  for (size_t gi = 0; gi < plan.groups.size(); ++gi) {
    RunPlan::Group& g = plan.groups[gi];
    const int64_t n = g.end, nt = CeilDiv(n, tile_pixels), base = n / nt, extra = n % nt;
    for (int64_t i = 0, q0 = begin; i < nt; ++i) {
      const int64_t w = base + (i < extra ? 1 : 0);
      plan.tiles.push_back({q0, w, static_cast<int64_t>(gi)});
      q0 += w;
    }
    g.begin = begin;
    g.end = begin;  // advanced as pixels land
    begin += n;
    g.tab0 = pairs;
    g.taps = (g.r1 - g.r0) * (g.c1 - g.c0);
    pairs += cb_step * g.taps;
  }
  // The pairs depend on the groups' taps and the geometry only, so consecutive tasks (the
  // rows of a plane, the channel blocks of a run) mostly share them: rebuilt when the key
  // changes. Filling them per task was ~7% of ResNet's conv1 (3 channels x 49 taps of
  // pairs for ~112 pixels of FMAs).
  std::vector<int64_t>& key = plan.next_key;
  key.assign({chan, W, dh, dw, KW, B, cb_step, taps});
  for (const RunPlan::Group& g : plan.groups) key.insert(key.end(), {g.r0, g.r1, g.c0, g.c1});
  if (key != plan.tab_key) {
    plan.tab_key.swap(key);
    plan.tab.resize(static_cast<size_t>(2 * pairs));
    int64_t* e = plan.tab.data();
    for (const RunPlan::Group& g : plan.groups)
      for (int64_t ci = 0; ci < cb_step; ++ci)
        for (int64_t kh = g.r0; kh < g.r1; ++kh)
          for (int64_t kw = g.c0; kw < g.c1; ++kw) {
            *e++ = ci * chan + (kh - g.r0) * dh * W + (kw - g.c0) * dw;
            *e++ = (ci * taps + kh * KW + kw) * B;
          }
  }
  // Pixels into their group's slots, in run order within a group (consecutive pixels
  // share rows of X).
  plan.pix.resize(static_cast<size_t>(npix));
  plan.acc.resize(static_cast<size_t>(npix));
  const float** pix = plan.pix.data();
  float** acc = plan.acc.data();
  for (const RunPlan::Segment& sg : plan.segs) {
    RunPlan::Group& g = plan.groups[static_cast<size_t>(sg.group)];
    // A pixel with no tap inside X reads nothing: any valid pointer does.
    const float* src =
        g.taps == 0 ? x : x + (sg.oh * sh - pt + g.r0 * dh) * W + (sg.ow * sw - pl + g.c0 * dw);
    const int64_t step = g.taps == 0 ? 0 : sw;
    for (int64_t j = 0; j < sg.n; ++j) {
      pix[g.end + j] = src + j * step;
      acc[g.end + j] = scratch + (sg.q + j) * B;
    }
    g.end += sg.n;
  }
}

// Input channels per weight block. The block of ops.weight_floats (~12 KiB) stays in L1
// beside the scratch and the source rows where the L1 holds them (48 KiB on the Xeon it
// was tuned on, any AVX2 scratch). Where it cannot (AVX-512's 28 KiB scratch of 112 pixels
// beside Zen 4's 32 KiB L1) the weights come from L2 whatever the block, and a block 4x as
// long saves 3 of 4 round trips of the 24 accumulators through the scratch. conv_bench on
// Zen 4 (EPYC, thread CPU time, 1 thread, load 6-7, two rounds): 64->64 on 56x56
// 2.21-2.24 -> 2.14-2.18 ms, 128->128 on 28x28 2.12-2.13 -> 2.02-2.05, 256->256 on 14x14
// 2.05-2.06 -> 1.97, stride 2 64->128 1.11-1.12 -> 1.07; 512->512 on 7x7 (16 KiB scratch:
// fits) lost with long blocks (1.87 -> 1.91-1.95) and keeps the short ones, as does AVX2
// (3072 -> 12288 floats: 2.31-2.34 -> 2.52 ms on 56x56).
//
// A pointwise conv (one tap: PreferPointwise) has 16 floats of weights per channel, so the
// weight block alone would take all 192 channels of a 7x7 plane whose source rows (49
// floats each, 37 KiB) then do not stay in L1 beside it: its block is cut so that weights,
// source rows and scratch fill 3/4 of L1. MobileNetV2's 960 -> 320 on 7x7 (conv_bench, Zen 3
// AVX2, thread CPU time, min of 4 interleaved rounds): 192 channels 0.513 ms, 128 0.413,
// 64 0.378, 32 0.412. (The 3x3 layers lost 2-5% with the same cap: their weights dominate.)
int64_t ChannelsPerBlock(const IsaOps& ops, int64_t scratch_floats, int64_t cg, int64_t taps,
                         int64_t source_floats) {
  const int64_t floats =
      BlockFitsL1(ops.weight_floats, scratch_floats) ? ops.weight_floats : 4 * ops.weight_floats;
  int64_t cb = std::max<int64_t>(1, std::min<int64_t>(cg, floats / (taps * ops.oc_block)));
  if (taps == 1) {
    const int64_t budget = L1DataBytes() / int64_t{sizeof(float)} * 3 / 4;
    cb = std::min(cb, std::max<int64_t>(1, (budget - scratch_floats) /
                                               (ops.oc_block + source_floats)));
  }
  return cb;
}

// Flush-to-zero and denormals-are-zero while the tiles run (as conv_implicit.cc: denormal
// products cost ~100x in the FMA units, and weights pruned toward zero make them).
class ScopedFlushDenormals {
 public:
  ScopedFlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~ScopedFlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
};

}  // namespace

void Run(Isa isa, const conv_util::ConvGeometry& g, const float* x, const PackedWeights& w,
         const GemmEpilogue& ep, const conv_act::PostActivation& post, const float* bias,
         const float* z, float* y, ThreadPool& pool) {
  if (isa != Isa::kAvx512 && isa != Isa::kAvx2)
    throw Error(ErrorCode::kInternal, "conv_direct::Run: AVX-512 or AVX2 only");
  if (w.oc_block != OcBlock(isa, g.mg))
    throw Error(ErrorCode::kInternal, "conv_direct::Run: weights packed for another block");
  const IsaOps& ops = isa == Isa::kAvx512 ? Avx512Ops() : Avx2Ops(w.oc_block);
  const float* packed_w = w.data();
  const int64_t B = ops.oc_block;
  const int64_t H = g.in[1], W = g.in[2], OH = g.out[1], OW = g.out[2];
  const int64_t sh = g.stride[1], sw = g.stride[2], dh = g.dil[1], dw = g.dil[2];
  const int64_t KH = g.k[1], KW = g.k[2], pt = g.pad_b[1], pl = g.pad_b[2];
  const int64_t cg = g.cg, mg = g.mg, out_size = OH * OW;
  const int taps = static_cast<int>(KH * KW);

  // Per output row: the taps kh in [first, second) that read inside X; the same per span of
  // output columns for kw.
  std::vector<std::pair<int64_t, int64_t>> rows(static_cast<size_t>(OH));
  for (int64_t oh = 0; oh < OH; ++oh)
    rows[static_cast<size_t>(oh)] = TapRange(oh * sh - pt, H, KH, dh);
  std::vector<ColSpan> col_spans;
  for (int64_t ow = 0; ow < OW; ++ow) {
    const std::pair<int64_t, int64_t> c = TapRange(ow * sw - pl, W, KW, dw);
    if (!col_spans.empty() && col_spans.back().lo == c.first && col_spans.back().hi == c.second)
      col_spans.back().ow1 = ow + 1;
    else
      col_spans.push_back({ow, ow + 1, c.first, c.second});
  }
  const int64_t chan = H * W;

  // A task: one channel block x a run of ~112 consecutive output pixels (two 56-wide
  // rows, a whole 7x7 plane, part of a wide row; contiguous in Y), so the weight block read
  // from L2 feeds ~20 tiles and the transposed store runs on whole 16-pixel groups; its
  // scratch is [pixels padded to 16][B] <= 28 KiB. Its pixels are grouped by the taps
  // inside X and each group cut into tiles (Plan). (conv_bench, loaded machine: 1 -> 2
  // rows of 56 and 16 -> 12 KiB weight blocks were 1-3% faster, within the noise.)
  const int64_t runs = CeilDiv(out_size, kRunPixels), run_pix = CeilDiv(out_size, runs);
  const int64_t oc_blocks = CeilDiv(mg, B);
  // Input channels per block ([cb][taps][B] weights): ChannelsPerBlock.
  const int64_t scratch_floats = CeilDiv(run_pix, 16) * 16 * B;
  // The floats of X one input channel of a run reads: the rows its output rows' taps touch.
  const int64_t run_rows = std::min(OH, CeilDiv(run_pix - 1, OW) + 1);
  const int64_t source_floats = std::min(H, (run_rows - 1) * sh + (KH - 1) * dh + 1) * W;
  const int64_t cb_step = ChannelsPerBlock(ops, scratch_floats, cg, taps, source_floats);
  // Each block's starting values: its bias (zero past mg), or zeros.
  std::vector<float> init(static_cast<size_t>(oc_blocks * B + 16), 0.f);
  float* init_al = reinterpret_cast<float*>(
      (reinterpret_cast<uintptr_t>(init.data()) + 63) & ~uintptr_t{63});
  if (bias) std::copy(bias, bias + mg, init_al);
  const int64_t tasks = oc_blocks * runs;
  const StoreFn store = ops.store[z != nullptr][ep.clamp];
  // 64-byte lines of weights per (channel, tap), in 16ths: B = 24 is 1.5 lines.
  auto pf_lines = [&](int64_t pairs) { return CeilDiv(pairs * B, 16); };

  auto run = [&](int64_t t0, int64_t t1) {
    const ScopedFlushDenormals flush;
    thread_local std::vector<float> scratch_buf;
    thread_local RunPlan plan;
    const size_t need = static_cast<size_t>(scratch_floats + 16);
    if (scratch_buf.size() < need) scratch_buf.resize(need);
    float* scratch = reinterpret_cast<float*>(
        (reinterpret_cast<uintptr_t>(scratch_buf.data()) + 63) & ~uintptr_t{63});
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t ob = t / runs, p0 = (t % runs) * run_pix;
      const int64_t npix = std::min(out_size - p0, run_pix);
      Plan(rows, col_spans, p0, npix, OW, KW, sh, sw, pt, pl, dh, dw, W, B, chan, cb_step, taps,
           ops.tile_pixels, x, scratch, plan);
      const int64_t ntiles = static_cast<int64_t>(plan.tiles.size());
      const float* wb = packed_w + ob * cg * taps * B;
      for (int64_t c0 = 0; c0 < cg; c0 += cb_step) {
        const int64_t cb = std::min(cb_step, cg - c0);
        const float* wc = wb + c0 * taps * B;
        // The tiles prefetch the next block: this task's next channels, or after its last
        // the next task's first (the 512-channel 7x7 tasks follow each other through the
        // output-channel blocks), split evenly over the tiles (at most one line per tap).
        // ResNet-18's 512-channel layers stream 9.4 MiB of weights per conv from memory,
        // each line used by one 7x7 plane only; with the whole next block prefetched by the
        // first tile that tile ran ~35% slower per pixel than the others (AVX-512).
        const float* pf = nullptr;
        int64_t pf_total = 0;
        if (c0 + cb_step < cg) {
          pf = wc + cb * taps * B;
          pf_total = pf_lines(std::min(cb_step, cg - c0 - cb_step) * taps);
        } else if (t + 1 < tasks) {
          pf = packed_w + (t + 1) / runs * cg * taps * B;
          pf_total = pf_lines(std::min(cb_step, cg) * taps);
        }
        // At most one line per (channel, tap) pair of a tile.
        const int64_t pf_per_tile = CeilDiv(pf_total, ntiles);
        int64_t l_done = 0;
        for (const RunPlan::TileSpan& ts : plan.tiles) {
          const RunPlan::Group& gr = plan.groups[static_cast<size_t>(ts.group)];
          const int64_t nl = std::min({pf_per_tile, cb * gr.taps, pf_total - l_done});
          ops.tiles[ts.n - 1](plan.pix.data() + ts.q0, c0 * chan, plan.tab.data() + 2 * gr.tab0,
                              cb * gr.taps, wc, plan.acc.data() + ts.q0,
                              c0 == 0 ? init_al + ob * B : nullptr,
                              pf ? pf + l_done * 16 : nullptr, nl);
          l_done += nl;
        }
      }
      // The run is contiguous in Y.
      const int64_t co0 = ob * B, nch = std::min<int64_t>(B, mg - co0);
      store(scratch, npix, nch, z ? z + co0 * out_size + p0 : nullptr, out_size, ep,
            y + co0 * out_size + p0);
      // HardSigmoid/HardSwish while the rows are in L1: a pass over all of Y afterwards
      // (conv.cc's PostPass) cost MobileNetV3's 3x3/2 stem 18% (conv_bench-style FusedConv,
      // Zen 3 AVX2: Relu 0.215 ms, HardSwish 0.254).
      conv_act::Apply(isa, post, y + co0 * out_size + p0, nch, npix, out_size);
    }
  };
  if (pool.num_threads() > 1 && tasks > 1) {
    // Each thread claims one task at a time. ParallelFor(tasks) would cut ~4 chunks per
    // thread: ResNet-18's 56x56 layers (28 tasks) and 28x28 ones (14) made 7 chunks, 4 for
    // one thread and 3 for the other at 2 threads, so 1/8 of the wall time one thread sat
    // idle; a claim per task leaves at most one task's difference (and a thread the OS
    // descheduled leaves its share to the other).
    std::atomic<int64_t> next{0};
    pool.ParallelFor(std::min<int64_t>(pool.num_threads(), tasks), 1, [&](int64_t, int64_t) {
      for (int64_t t = next.fetch_add(1, std::memory_order_relaxed); t < tasks;
           t = next.fetch_add(1, std::memory_order_relaxed))
        run(t, t + 1);
    });
  } else {
    run(0, tasks);
  }
}

#else  // !__x86_64__

void Run(Isa, const conv_util::ConvGeometry&, const float*, const PackedWeights&,
         const GemmEpilogue&, const conv_act::PostActivation&, const float*, const float*, float*,
         ThreadPool&) {
  throw Error(ErrorCode::kInternal, "conv_direct::Run: x86-64 only");
}

#endif

}  // namespace edgepress::runtime::conv_direct
