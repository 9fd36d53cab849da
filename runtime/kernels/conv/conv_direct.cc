// The direct convolution's driver (conv_direct.h), shared by the ISAs: padded copy, task
// split, channel blocking, prefetch plan and the calls into one ISA's tile and store.
#include "runtime/kernels/conv/conv_direct.h"

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "ir/error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::conv_direct {

namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// AVX2: measured with bench/conv_bench.cc under EDGEPRESS_MAX_ISA=avx2 on the Xeon (thread
// CPU time, 1 thread, load ~5, two interleaved rounds), direct vs the implicit GEMM's 6x16
// tile: ResNet-18's 3x3 layers 2.41-2.61 -> 2.26-2.35 ms (64->64 on 56), 3.02-3.26 ->
// 2.30-2.32 ms (512->512 on 7), 1.54-1.66 -> 1.14-1.16 ms (stride 2 256->512); unlike
// AVX-512 the short-K stems win too (7x7/2 conv1 3->64 2.61 -> 2.21 ms, 3x3/2 3->32 0.45 ->
// 0.32-0.34 ms, 3->16 0.22-0.24 -> 0.17-0.18 ms: the 6x16 implicit tile packs and
// multiplies a K of 27-147 with little reuse, and the 8 x 8 store is cheap next to it).
// It lost where a block is mostly padding: the detector's 96->24 (24 of 32 computed) 3.44 ->
// 3.55-3.72 ms. So: 7/8 of the computed channels real, any K.
bool PreferAvx2(int64_t mg, int64_t taps) {
  const int64_t computed = CeilDiv(mg, 16) * 16;
  return taps > 1 && 8 * mg >= 7 * computed;
}

}  // namespace

bool Prefer(Isa isa, int64_t mg, int64_t cg, int64_t taps) {
  if (isa == Isa::kAvx2) return PreferAvx2(mg, taps);
  if (isa != Isa::kAvx512) return false;
  const int64_t computed = CeilDiv(mg, 64) * 64;
  return taps > 1 && 8 * mg >= 7 * computed && cg * taps >= 256;
}

PackedWeights PackWeights(Isa isa, int64_t mg, int64_t cg, int64_t taps, const float* w) {
  const int64_t ob = OcBlock(isa);
  if (ob == 0) throw Error(ErrorCode::kInternal, "conv_direct::PackWeights: no direct kernel for this ISA");
  const int64_t blocks = CeilDiv(mg, ob);
  PackedWeights pw;
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

void Run(Isa isa, const conv_util::ConvGeometry& g, const float* x, const float* packed_w,
         const GemmEpilogue& ep, const float* bias, const float* z, float* y, ThreadPool& pool) {
  if (isa != Isa::kAvx512 && isa != Isa::kAvx2)
    throw Error(ErrorCode::kInternal, "conv_direct::Run: AVX-512 or AVX2 only");
  const IsaOps& ops = isa == Isa::kAvx512 ? Avx512Ops() : Avx2Ops();
  const int64_t B = ops.oc_block;
  const int64_t H = g.in[1], W = g.in[2], OH = g.out[1], OW = g.out[2];
  const int64_t sh = g.stride[1], sw = g.stride[2], dh = g.dil[1], dw = g.dil[2];
  const int64_t KH = g.k[1], KW = g.k[2], pt = g.pad_b[1], pl = g.pad_b[2];
  const int64_t cg = g.cg, mg = g.mg, out_size = OH * OW;
  const int taps = static_cast<int>(KH * KW);

  // The source: X itself when no tap reads padding, else a zero-padded copy holding just
  // the rows and columns some tap reads (rows 16-float aligned), filled by all threads.
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
      ops.fill(x + c0 * H * W, c1 - c0, H, W, -pt, hn, pl, wn, ld, chan, pd + c0 * chan);
    });
    src = pd;
  }
  std::vector<int64_t> toff(static_cast<size_t>(taps));
  for (int64_t kh = 0; kh < KH; ++kh)
    for (int64_t kw = 0; kw < KW; ++kw) toff[static_cast<size_t>(kh * KW + kw)] = kh * dh * ld + kw * dw;

  // A task: one channel block x a run of ~112 consecutive output pixels (two 56-wide
  // rows, a whole 7x7 plane, part of a wide row; contiguous in Y), so the weight block read
  // from L2 feeds ~20 tiles and the transposed store runs on whole 16-pixel groups; its
  // scratch is [pixels padded to 16][B] <= 28 KiB. The run is split into ceil(pixels / 6)
  // tiles of near-equal width (56 = 6 x 6 + 4 x 5), so no tile is narrow enough to leave
  // the FMA units waiting on a short dependency chain. (conv_bench, loaded machine: 1 -> 2
  // rows of 56 and 16 -> 12 KiB weight blocks were 1-3% faster, within the noise.)
  const int64_t runs = CeilDiv(out_size, 112), run_pix = CeilDiv(out_size, runs);
  const int64_t oc_blocks = CeilDiv(mg, B);
  // Input channels per block: their weights ([cb][taps][B]) in L1 beside the scratch and
  // the source rows.
  const int64_t cb_step = std::max<int64_t>(1, std::min<int64_t>(cg, ops.weight_floats / (taps * B)));
  const int64_t* to = toff.data();
  // Each block's starting values: its bias (zero past mg), or zeros.
  std::vector<float> init(static_cast<size_t>(oc_blocks * B + 16), 0.f);
  float* init_al = reinterpret_cast<float*>(
      (reinterpret_cast<uintptr_t>(init.data()) + 63) & ~uintptr_t{63});
  if (bias) std::copy(bias, bias + mg, init_al);
  const int64_t tasks = oc_blocks * runs;
  const StoreFn store = ops.store[z != nullptr][ep.clamp];
  const int64_t lines_per_tap = B / 16;

  auto run = [&](int64_t t0, int64_t t1) {
    const ScopedFlushDenormals flush;
    thread_local std::vector<float> scratch_buf;
    thread_local std::vector<const float*> pix;
    const int64_t max_pix = run_pix;
    const size_t need = static_cast<size_t>(CeilDiv(max_pix, 16) * 16 * B + 16);
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
      const int64_t ntiles = CeilDiv(npix, ops.tile_pixels);
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
          pf_total = std::min(cb_step, cg - c0 - cb_step) * taps * lines_per_tap;
        } else if (t + 1 < tasks) {
          pf = packed_w + (t + 1) / runs * cg * taps * B;
          pf_total = std::min(cb_step, cg) * taps * lines_per_tap;
        }
        const int64_t pf_per_tile = std::min<int64_t>(cb * taps, CeilDiv(pf_total, ntiles));
        for (int64_t i = 0; i < ntiles; ++i) {
          const int64_t q0 = i * npix / ntiles, n = (i + 1) * npix / ntiles - q0;
          const int64_t l0 = std::min(pf_total, i * pf_per_tile);
          const int64_t nl = std::min(pf_total - l0, pf_per_tile);
          ops.tiles[n - 1](pix.data() + q0, c0 * chan, cb, chan, to, taps, wc, scratch + q0 * B,
                           c0 == 0 ? init_al + ob * B : nullptr, pf ? pf + l0 * 16 : nullptr, nl);
        }
      }
      // The run is contiguous in Y.
      const int64_t co0 = ob * B, nch = std::min<int64_t>(B, mg - co0);
      store(scratch, npix, nch, z ? z + co0 * out_size + p0 : nullptr, out_size, ep,
            y + co0 * out_size + p0);
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

void Run(Isa, const conv_util::ConvGeometry&, const float*, const float*, const GemmEpilogue&,
         const float*, const float*, float*, ThreadPool&) {
  throw Error(ErrorCode::kInternal, "conv_direct::Run: x86-64 only");
}

#endif

}  // namespace edgepress::runtime::conv_direct
