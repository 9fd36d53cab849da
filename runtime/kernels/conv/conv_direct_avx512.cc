// The direct AVX-512 convolution (conv_direct.h).
// Why: the implicit GEMM (conv_implicit.cc) packs a B panel of 32 pixels per K block and
// keeps 12 output channels per tile, so each loaded B vector feeds 12 FMAs and every
// input value is copied into a panel once per tap; ResNet-18's 3x3 convs ran at ~128
// GFLOP/s in the model against onnxruntime's ~180 (peak ~195). Here nothing is packed per
// call: the 6 x 64 tile loads 4 weight vectors and 6 broadcasts per tap (10 loads for 24
// FMAs, weights from L1), the accumulators of ~112 output pixels stay in an L1 scratch
// across input-channel blocks, and Y is written once, transposed.
#include "runtime/kernels/conv/conv_direct.h"

#include <algorithm>
#include <cstdint>

#include "ir/error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::conv_direct {

PackedWeights PackWeights(int64_t mg, int64_t cg, int64_t taps, const float* w) {
  const int64_t blocks = (mg + kOcBlock - 1) / kOcBlock;
  PackedWeights pw;
  pw.buf.assign(static_cast<size_t>(blocks * cg * taps * kOcBlock + 16), 0.f);
  pw.offset = (64 - reinterpret_cast<uintptr_t>(pw.buf.data()) % 64) % 64 / sizeof(float);
  float* p = pw.buf.data() + pw.offset;
  for (int64_t o = 0; o < mg; ++o)
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t t = 0; t < taps; ++t)
        p[static_cast<size_t>((((o / kOcBlock) * cg + c) * taps + t) * kOcBlock + o % kOcBlock)] =
            w[(o * cg + c) * taps + t];
  return pw;
}

#if defined(__x86_64__)

namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Flush-to-zero and denormals-are-zero while the tiles run (as conv_implicit.cc: denormal
// products cost ~100x in the FMA units, and weights pruned toward zero make them).
class ScopedFlushDenormals {
 public:
  ScopedFlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~ScopedFlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
};

constexpr int kTilePixels = 6;  // 6 x 4 zmm accumulators + 4 weights + 1 broadcast

// N output pixels x 64 output channels over `cb` input channels: px[i] + x_off is pixel
// i's source at the first channel and its top-left tap (pixels may lie on different output
// rows: a 7x7 plane is 9 tiles of 5-6 pixels, not 7 rows of 4 + 3); toff[t] the offset of
// tap t inside a channel; w the packed weights at the first channel ([cb][taps][64]); acc
// the scratch [N][64]. init: for the first channel block, the 64 floats every pixel
// starts from (the block's bias, or zeros), else nullptr to accumulate onto acc.
// pf, pf_lines: 64-byte lines of the next weight block to prefetch, one per tap.
// ResNet-18's 512-channel layers stream 9.4 MiB of weights per conv from memory, each
// line used by one 7x7 plane only; with the whole next block prefetched by the first tile
// (4 lines a tap) that tile still ran ~35% slower per pixel than the others, so the
// block's tiles share the prefetching.
template <int N>
__attribute__((target("avx512f"))) void Tile(const float* const* px, int64_t x_off, int64_t cb,
                                             int64_t chan,
                                             const int64_t* toff, int taps, const float* w,
                                             float* acc, const float* init, const float* pf,
                                             int64_t pf_lines) {
  __m512 a[N][4];
  const float* p[N];
#pragma GCC unroll 8
  for (int i = 0; i < N; ++i) {
    p[i] = px[i] + x_off;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j)
      a[i][j] = _mm512_load_ps(init ? init + j * 16 : acc + i * kOcBlock + j * 16);
  }
  for (int64_t c = 0; c < cb; ++c) {
    for (int t = 0; t < taps; ++t, w += kOcBlock) {
      const int64_t o = toff[t];
      if (pf_lines > 0) {
        _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
        pf += 16;
        --pf_lines;
      }
      const __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16);
      const __m512 w2 = _mm512_load_ps(w + 32), w3 = _mm512_load_ps(w + 48);
#pragma GCC unroll 8
      for (int i = 0; i < N; ++i) {
        const __m512 b = _mm512_set1_ps(p[i][o]);
        a[i][0] = _mm512_fmadd_ps(b, w0, a[i][0]);
        a[i][1] = _mm512_fmadd_ps(b, w1, a[i][1]);
        a[i][2] = _mm512_fmadd_ps(b, w2, a[i][2]);
        a[i][3] = _mm512_fmadd_ps(b, w3, a[i][3]);
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) p[i] += chan;
  }
#pragma GCC unroll 8
  for (int i = 0; i < N; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) _mm512_store_ps(acc + i * kOcBlock + j * 16, a[i][j]);
}

using TileFn = void (*)(const float* const*, int64_t, int64_t, int64_t, const int64_t*, int, const float*,
                        float*, const float*, const float*, int64_t);
constexpr TileFn kTiles[kTilePixels] = {Tile<1>, Tile<2>, Tile<3>, Tile<4>, Tile<5>, Tile<6>};

// r[i] (row i of a 16 x 16 block) -> r[j] = column j, in registers.
__attribute__((target("avx512f"), always_inline)) inline void Transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) {
    t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  // u[4g + j], 128-bit lane L: rows 4g..4g+3 of column 4L + j.
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    u[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
    const __m512 w0 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 v1 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
    const __m512 w1 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
    r[j] = _mm512_shuffle_f32x4(v0, w0, 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(v0, w0, 0xDD);
    r[4 + j] = _mm512_shuffle_f32x4(v1, w1, 0x88);
    r[12 + j] = _mm512_shuffle_f32x4(v1, w1, 0xDD);
  }
}

// Consecutive pixels of a 64-channel block from the scratch [pixels][64] (allocated to a
// multiple of 16 pixels; the bias is already in it) into Y: channel co's pixels at
// y + co * ld. nch (<= 64) channels exist; z is at the block's first channel and the first
// pixel. Templated on Z and the clamp, with a straight-line path for whole 16-channel
// groups: with runtime flags and bounds gcc spilled the transposed block.
template <bool kZ, bool kClamp>
__attribute__((target("avx512f"), always_inline)) inline void StoreChannel(
    __m512 v, __mmask16 m, const float* z, float* y, int64_t off, __m512 lo, __m512 hi) {
  if (kZ) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, z + off));
  if (kClamp) v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
  _mm512_mask_storeu_ps(y + off, m, v);
}
template <bool kZ, bool kClamp>
__attribute__((target("avx512f"))) void StoreRows(const float* scratch, int64_t npix,
                                                 int64_t nch, const float* z, int64_t ld,
                                                 const GemmEpilogue& ep, float* y) {
  const __m512 lo = _mm512_set1_ps(ep.lo), hi = _mm512_set1_ps(ep.hi);
  for (int64_t p0 = 0; p0 < npix; p0 += 16) {
    const __mmask16 m = static_cast<__mmask16>((1u << std::min<int64_t>(16, npix - p0)) - 1);
    for (int64_t c0 = 0; c0 < nch; c0 += 16) {
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) r[i] = _mm512_load_ps(scratch + (p0 + i) * kOcBlock + c0);
      Transpose16(r);
      if (nch - c0 >= 16) {
#pragma GCC unroll 16
        for (int j = 0; j < 16; ++j) StoreChannel<kZ, kClamp>(r[j], m, z, y, (c0 + j) * ld + p0, lo, hi);
      } else {
        for (int j = 0; j < nch - c0; ++j)
          StoreChannel<kZ, kClamp>(r[j], m, z, y, (c0 + j) * ld + p0, lo, hi);
      }
    }
  }
}
using StoreFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t,
                         const GemmEpilogue&, float*);

// Rows [ih0, ih0 + rn) of channels [0, cb) of X (channel stride H * W) into buf, channel
// c's row r at buf + c * chan + r * ldb (ldb a multiple of 16, buf 64-byte aligned);
// column j < wn holds X's column j - pl, zero outside X (the padding). Masked loads, so no
// lane outside X's row is read; a row is a few vector moves, not a memmove call per row
// and a memset per pad (~5% of a 56x56 layer's time with std::copy / std::fill).
__attribute__((target("avx512f"))) void FillBlock(const float* x, int64_t cb, int64_t H,
                                                 int64_t W, int64_t ih0, int64_t rn,
                                                 int64_t pl, int64_t wn, int64_t ldb,
                                                 int64_t chan, float* buf) {
  for (int64_t c = 0; c < cb; ++c) {
    for (int64_t r = 0; r < rn; ++r) {
      float* d = buf + c * chan + r * ldb;
      const int64_t ih = ih0 + r;
      if (ih < 0 || ih >= H) {
        for (int64_t k = 0; k < wn; k += 16) _mm512_store_ps(d + k, _mm512_setzero_ps());
        continue;
      }
      const float* s = x + c * H * W + ih * W;
      for (int64_t k = 0; k < wn; k += 16) {
        // Lanes [lo, hi) of this 16-column group lie inside X's row.
        const int64_t lo = std::max<int64_t>(0, pl - k), hi = std::min<int64_t>(16, W + pl - k);
        const __mmask16 m = hi <= lo ? 0
                                     : static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
        _mm512_store_ps(d + k, _mm512_maskz_loadu_ps(m, s + (k - pl)));
      }
    }
  }
}

#pragma GCC diagnostic pop

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

void Run(const conv_util::ConvGeometry& g, const float* x, const float* packed_w,
         const GemmEpilogue& ep, const float* bias, const float* z, float* y, ThreadPool& pool) {
  const int64_t H = g.in[1], W = g.in[2], OH = g.out[1], OW = g.out[2];
  const int64_t sh = g.stride[1], sw = g.stride[2], dh = g.dil[1], dw = g.dil[2];
  const int64_t KH = g.k[1], KW = g.k[2], pt = g.pad_b[1], pl = g.pad_b[2];
  const int64_t cg = g.cg, mg = g.mg, out_size = OH * OW;
  const int taps = static_cast<int>(KH * KW);

  // The source: X itself when no tap reads padding, else a zero-padded copy holding just
  // the rows and columns some tap reads (rows 16-float aligned).
  const int64_t hn = (OH - 1) * sh + (KH - 1) * dh + 1, wn = (OW - 1) * sw + (KW - 1) * dw + 1;
  const float* src = x;
  int64_t ld = W, chan = H * W;
  thread_local std::vector<float> padded;
  if (pt != 0 || pl != 0 || hn > H || wn > W) {
    ld = CeilDiv(wn, 16) * 16;
    chan = hn * ld;
    if (padded.size() < static_cast<size_t>(cg * chan + 16))
      padded.resize(static_cast<size_t>(cg * chan + 16));
    float* pd = reinterpret_cast<float*>(
        (reinterpret_cast<uintptr_t>(padded.data()) + 63) & ~uintptr_t{63});
    pool.ParallelFor(cg, std::max<int64_t>(1, 16384 / chan), [&](int64_t c0, int64_t c1) {
      FillBlock(x + c0 * H * W, c1 - c0, H, W, -pt, hn, pl, wn, ld, chan, pd + c0 * chan);
    });
    src = pd;
  }
  std::vector<int64_t> toff(static_cast<size_t>(taps));
  for (int64_t kh = 0; kh < KH; ++kh)
    for (int64_t kw = 0; kw < KW; ++kw) toff[static_cast<size_t>(kh * KW + kw)] = kh * dh * ld + kw * dw;

  // A task: one 64-channel block x a run of ~112 consecutive output pixels (two 56-wide
  // rows, a whole 7x7 plane, part of a wide row; contiguous in Y), so the weight block read
  // from L2 feeds ~20 tiles and the transposed store runs on whole 16-pixel groups; its
  // scratch is [pixels padded to 16][64] <= 28 KiB. The run is split into ceil(pixels / 6)
  // tiles of near-equal width (56 = 6 x 6 + 4 x 5), so no tile is narrow enough to leave
  // the FMA units waiting on a short dependency chain. (conv_bench, loaded machine: 1 -> 2
  // rows of 56 and 16 -> 12 KiB weight blocks were 1-3% faster, within the noise.)
  const int64_t runs = CeilDiv(out_size, 112), run_pix = CeilDiv(out_size, runs);
  const int64_t oc_blocks = CeilDiv(mg, kOcBlock);
  // Input channels per block: their weights ([cb][taps][64]) ~12 KiB, in L1 (48 KiB)
  // beside the scratch and the source rows.
  const int64_t cb_step = std::max<int64_t>(1, std::min<int64_t>(cg, 3072 / (taps * kOcBlock)));
  const int64_t* to = toff.data();
  // Each block's starting values: its bias (zero past mg), or zeros.
  std::vector<float> init(static_cast<size_t>(oc_blocks * kOcBlock + 16), 0.f);
  float* init_al = reinterpret_cast<float*>(
      (reinterpret_cast<uintptr_t>(init.data()) + 63) & ~uintptr_t{63});
  if (bias) std::copy(bias, bias + mg, init_al);
  const int64_t tasks = oc_blocks * runs;
  const StoreFn store = z ? (ep.clamp ? StoreRows<true, true> : StoreRows<true, false>)
                          : (ep.clamp ? StoreRows<false, true> : StoreRows<false, false>);

  auto run = [&](int64_t t0, int64_t t1) {
    const ScopedFlushDenormals flush;
    thread_local std::vector<float> scratch_buf;
    thread_local std::vector<const float*> pix;
    const int64_t max_pix = run_pix;
    const size_t need = static_cast<size_t>(CeilDiv(max_pix, 16) * 16 * kOcBlock + 16);
    if (scratch_buf.size() < need) scratch_buf.resize(need);
    if (pix.size() < static_cast<size_t>(max_pix)) pix.resize(static_cast<size_t>(max_pix));
    float* scratch = reinterpret_cast<float*>(
        (reinterpret_cast<uintptr_t>(scratch_buf.data()) + 63) & ~uintptr_t{63});
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t ob = t / runs, p0 = (t % runs) * run_pix;
      const int64_t npix = std::min(out_size - p0, run_pix);
      for (int64_t q = 0, oh = p0 / OW, ow = p0 % OW; q < npix; ++q) {
        pix[static_cast<size_t>(q)] = src + oh * sh * ld + ow * sw;
        if (++ow == OW) {
          ow = 0;
          ++oh;
        }
      }
      const int64_t ntiles = CeilDiv(npix, kTilePixels);
      const float* wb = packed_w + ob * cg * taps * kOcBlock;
      for (int64_t c0 = 0; c0 < cg; c0 += cb_step) {
        const int64_t cb = std::min(cb_step, cg - c0);
        const float* wc = wb + c0 * taps * kOcBlock;
        // The tiles prefetch the next block: this task's next channels, or after its last
        // the next task's first (the 512-channel 7x7 tasks follow each other through the
        // output-channel blocks), split evenly over the tiles (at most one line per tap).
        const float* pf = nullptr;
        int64_t pf_total = 0;
        if (c0 + cb_step < cg) {
          pf = wc + cb * taps * kOcBlock;
          pf_total = std::min(cb_step, cg - c0 - cb_step) * taps * 4;
        } else if (t + 1 < tasks) {
          pf = packed_w + (t + 1) / runs * cg * taps * kOcBlock;
          pf_total = std::min(cb_step, cg) * taps * 4;
        }
        const int64_t pf_per_tile = std::min<int64_t>(cb * taps, CeilDiv(pf_total, ntiles));
        for (int64_t i = 0; i < ntiles; ++i) {
          const int64_t q0 = i * npix / ntiles, n = (i + 1) * npix / ntiles - q0;
          const int64_t l0 = std::min(pf_total, i * pf_per_tile);
          const int64_t nl = std::min(pf_total - l0, pf_per_tile);
          kTiles[n - 1](pix.data() + q0, c0 * chan, cb, chan, to, taps, wc, scratch + q0 * kOcBlock,
                        c0 == 0 ? init_al + ob * kOcBlock : nullptr, pf ? pf + l0 * 16 : nullptr,
                        nl);
        }
      }
      // The run is contiguous in Y.
      const int64_t co0 = ob * kOcBlock, nch = std::min<int64_t>(kOcBlock, mg - co0);
      store(scratch, npix, nch, z ? z + co0 * out_size + p0 : nullptr, out_size, ep,
            y + co0 * out_size + p0);
    }
  };
  if (pool.num_threads() > 1 && tasks > 1)
    pool.ParallelFor(tasks, 1, run);
  else
    run(0, tasks);
}

#else  // !__x86_64__

void Run(const conv_util::ConvGeometry&, const float*, const float*, const GemmEpilogue&,
         const float*, const float*, float*, ThreadPool&) {
  throw Error(ErrorCode::kInternal, "conv_direct::Run: AVX-512 only");
}

#endif

}  // namespace edgepress::runtime::conv_direct
