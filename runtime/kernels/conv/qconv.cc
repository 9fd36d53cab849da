// Integer convolutions on the int8 GEMM (qgemm.h), NCHW, 1-D/2-D/3-D, groups, strides,
// dilations, pads/auto_pad, as conv.cc does for float:
//   ConvInteger            x, w, x_zero_point?, w_zero_point? -> int32
//   QLinearConv            x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B? -> y
//   edgepress QLinearConv  QLinearConv plus `activation` = "Relu", and float output when
//                          y_scale/y_zp are omitted (fuse-qdq's target; docs/ops.md)
// Per image and group, Y_g[Mg, pixels] = W_g[Mg, Cg*kprod] x col[Cg*kprod, pixels]: the
// weights (constant in real models) are packed once as the GEMM's A operand with their
// zero points subtracted; im2col writes (x - x_zp) as int16 pairs straight into B panels,
// with 0 for padding (the padded value *is* the zero point); on AVX2 a vector at a time
// (qconv_im2col_avx2.h), chunk by chunk into L2 ahead of the GEMM as the byte layouts do. On VNNI/AMX CPUs (QGemmBytes)
// the panels hold bytes instead (x as int8, padding = x_zp) with per-pixel column sums. A 1x1
// stride-1 unpadded conv packs X directly. Depthwise convs (one input and one output channel per
// group) take the integer plane kernels of qdepthwise.h instead. Requantization: y =
// saturate(round(acc * (x_scale * w_scale[m] / y_scale)) + y_zp), the multiplier computed in
// float32 as onnxruntime does.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/conv/conv_util.h"
#include "runtime/kernels/conv/depthwise/qdepthwise.h"
#include "runtime/kernels/conv/qconv_im2col.h"
#include "runtime/kernels/conv/qconv_im2col_avx2.h"
#include "runtime/kernels/conv/qconv_implicit.h"
#include "runtime/kernels/gemm/gemm_op_util.h"
#include "runtime/kernels/qgemm/qgemm.h"
#include "runtime/kernels/quant/quantize_util.h"
#include "runtime/kernels/quant/requant.h"
#include "runtime/thread_pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime {

namespace {

using conv_util::ConvAttrs;
using conv_util::ConvGeometry;
using gemm_util::DimsToString;
using qim2col::Im2ColRows;
using qim2col::QIm2ColBytes;
using qim2col::QIm2ColPanels;

const ir::Tensor* Opt(KernelContext& ctx, size_t i) {
  const ir::Tensor* t = ctx.input(i);
  return t && !t->empty() ? t : nullptr;
}

const ir::Tensor& QInput(KernelContext& ctx, size_t i, const char* what) {
  const ir::Tensor* t = Opt(ctx, i);
  if (!t)
    ThrowInvalid(ctx.node().describe() + ": missing input " + std::to_string(i) + " (" + what +
                 ")");
  if (t->dtype() != ir::DType::kUInt8 && t->dtype() != ir::DType::kInt8)
    ThrowUnsupported(ctx.node().describe() + ": input " + std::to_string(i) + " (" + what +
                     ") has dtype " + ir::DTypeName(t->dtype()) + ", expected uint8 or int8");
  return *t;
}

// ---- depthwise: one input and one output channel per group, rank <= 2 (qdepthwise.h) ----

qdw::Geometry DwGeometry(const ConvGeometry& g) {
  qdw::Geometry d;
  d.h = g.in[1];
  d.w = g.in[2];
  d.oh = g.out[1];
  d.ow = g.out[2];
  d.kh = g.k[1];
  d.kw = g.k[2];
  d.stride_h = g.stride[1];
  d.stride_w = g.stride[2];
  d.dil_h = g.dil[1];
  d.dil_w = g.dil[2];
  d.pad_t = g.pad_b[1];
  d.pad_l = g.pad_b[2];
  return d;
}

// Depthwise weights as int16 (w - w_zp), [m][taps].
std::vector<int16_t> DepthwiseWeights(const ir::Tensor& w, const std::vector<int32_t>& w_zp) {
  const int64_t m = w.shape()[0], ks = m > 0 ? static_cast<int64_t>(w.numel()) / m : 0;
  std::vector<int16_t> out(w.numel());
  for (int64_t o = 0; o < m; ++o)
    for (int64_t i = 0; i < ks; ++i) {
      const int32_t z = w_zp[w_zp.size() > 1 ? o : 0];
      const int32_t v = w.dtype() == ir::DType::kInt8 ? w.data<int8_t>()[o * ks + i]
                                                      : w.data<uint8_t>()[o * ks + i];
      out[static_cast<size_t>(o * ks + i)] = static_cast<int16_t>(v - z);
    }
  return out;
}

int64_t OutputElementSize(const ir::Tensor& y) {
  return y.dtype() == ir::DType::kUInt8 || y.dtype() == ir::DType::kInt8 ? 1 : 4;
}

// fn(lo, hi) over [0, n) as one contiguous share a thread, [t n / T, (t + 1) n / T): the
// same thread writes the same output lines from run to run, so they stay in its core's L2
// (work claimed in 4T chunks landed on either core; see ChunkPlan).
template <class Fn>
void ParallelShares(ThreadPool& pool, int64_t n, const Fn& fn) {
  const int64_t threads = std::min<int64_t>(pool.num_threads(), n);
  pool.ParallelFor(threads, 1, [&](int64_t t0, int64_t t1) {
    const int64_t lo = t0 * n / threads, hi = t1 * n / threads;
    if (lo < hi) fn(lo, hi);
  });
}

// Depthwise convs (one input and one output channel per group, rank <= 2) on the integer
// plane kernels of qdepthwise.h; `wd` from DepthwiseWeights, `wd_in_int8` when the caller
// knows every value of it lies in [-128, 127] (false: the block kernel checks).
void RunDepthwise(Isa isa, ThreadPool& pool, const ConvGeometry& g, const ir::Tensor& x,
                  int32_t x_zp, const int16_t* wd, bool wd_in_int8, const QOutput& out,
                  ir::Tensor& y) {
  const int64_t ks = g.k_size(), in_size = g.in_size(), out_size = g.out_size();
  const int64_t elem = OutputElementSize(y);
  const qdw::Geometry dg = DwGeometry(g);
  const bool s8 = x.dtype() == ir::DType::kInt8;
  // Small planes: blocks of 16 channels a call (qdepthwise.h, channel blocks), each
  // thread's run of blocks within one image as one call (its padded plane set up once).
  qdw::Block blk{&dg, x.raw(), s8, x_zp, wd, &out, 0, g.m, y.mutable_raw(), wd_in_int8};
  if (qdw::BlockHandles(isa, blk)) {
    const int64_t nb = (g.m + 15) / 16;
    ParallelShares(pool, g.n * nb, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi;) {
        const int64_t n = t / nb, b0 = t % nb, b1 = std::min(nb, b0 + (hi - t));
        qdw::Block b = blk;
        b.x = static_cast<const uint8_t*>(x.raw()) + (n * g.c + b0 * 16) * in_size;
        b.w = wd + b0 * 16 * ks;
        b.channel0 = b0 * 16;
        b.channels = std::min(g.m, b1 * 16) - b0 * 16;
        b.y = static_cast<uint8_t*>(y.mutable_raw()) + (n * g.m + b0 * 16) * out_size * elem;
        qdw::RunBlock(isa, b);
        t += b1 - b0;
      }
    });
    return;
  }
  ParallelShares(pool, g.n * g.m, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t m = t % g.m;
      qdw::Plane p{
          &dg,         static_cast<const uint8_t*>(x.raw()) + (t / g.m * g.c + m) * in_size,
          s8,          x_zp,
          wd + m * ks, &out,
          m,           static_cast<uint8_t*>(y.mutable_raw()) + t * out_size * elem};
      qdw::RunPlane(isa, p);
    }
  });
}

// How the fused im2col + GEMM (byte layouts; AVX2's int16 pairs) is cut into tasks. Chunks of panels whose
// packed columns stay in L2 (~256 KiB), each written and multiplied by the same thread
// right away, instead of the whole column matrix (5.5 MB for a 96-channel 3x3 conv on
// 80x80) going through memory between the two. Fused whenever the panels give every thread
// two: mobilenet's 112x112 and 56x56 convs fit one or two L2 chunks, and unfused they wrote
// and re-read the whole column matrix and paid a second pool dispatch.
// With several threads there is one task a thread: thread share t is the contiguous panels
// [t P / T, (t + 1) P / T) (sizes differ by at most one), run as its own L2 chunks. Chunks
// claimed one by one landed on either thread from run to run, so the output lines a thread
// wrote sat in the other core's L2 the next time and a pointwise conv on 56x56 or 28x28
// (K = 24..192: few multiplies per output byte) ran no faster on 2 threads than on 1 (bench/
// qconv_threads_bench.cc). A fixed share also keeps a pixel range on one core from one
// pointwise conv to the next.
struct ChunkPlan {
  int64_t panels = 0, nchunks = 1, mparts = 1, chunk = 0, l2_chunk = 1, tasks = 1;
  int threads = 1;
  bool fused = false;

  // `fusable`: the im2col writes panels from any q_base on (the byte layouts, AVX2's int16
  // pairs of `elem` bytes).
  ChunkPlan(const ConvGeometry& g, int64_t kdim, int nr, bool fusable, int elem, int num_threads)
      : threads(num_threads) {
    panels = (g.out_size() + nr - 1) / nr;
    l2_chunk = std::max<int64_t>(1, (256 << 10) / std::max<int64_t>(1, kdim * nr * elem));
    fused = fusable && (threads == 1 || panels >= 2 * threads);
    if (threads == 1) {
      nchunks = (panels + l2_chunk - 1) / l2_chunk;
      chunk = l2_chunk;
      return;
    }
    tasks = threads;
    // Each share in L2-sized chunks of about equal size.
    const int64_t share = (panels + threads - 1) / threads;
    nchunks = threads * ((share + l2_chunk - 1) / l2_chunk);
    // Few panels (14x14: 7 of 32 pixels) do not divide among the threads (4 + 3 at two),
    // and at 20-40 us a conv each chunk claimed costs: then the rows are split instead,
    // one part a thread, each packing all the columns itself. Only with at least 4
    // 32-row tiles (AMX's) a thread: the expand convs (64->384, 96->576) gained 12-16%
    // at 2 threads, the projections (384->64) lost 25%, their repacked K = 384 columns
    // costing as much as the 2 row tiles' GEMM, and 96 rows would split 1 + 2 tiles.
    const int64_t row_tiles = (g.mg + 31) / 32;
    if (fused && panels < 4 * threads && panels % threads != 0 && row_tiles >= 4 * threads) {
      mparts = threads;
      nchunks = 1;
    }
    chunk = (panels + nchunks - 1) / nchunks;  // the largest
  }
  // Panel where chunk c begins (c = nchunks: the end).
  int64_t Begin(int64_t c) const {
    return threads > 1 ? c * panels / nchunks : std::min(panels, c * l2_chunk);
  }
  // Task t (of `tasks`, one a thread) runs chunks [FirstChunk(t), FirstChunk(t + 1)); when
  // the rows are split (mparts > 1) it runs every chunk for row part t instead.
  int64_t FirstChunk(int64_t t) const { return t * nchunks / tasks; }
};

// The fused im2col + GEMM of one image and group (ChunkPlan): each task writes its chunks
// of B panels into a buffer of its own and multiplies them right away.
template <typename Im2Col>
void RunFusedChunks(Isa isa, ThreadPool& pool, const ChunkPlan& plan, int64_t mg, int64_t kdim,
                    int64_t out_size, int64_t elem, const QPacked& wg, const QOutput& o,
                    const Im2Col& im2col) {
  const int nr = QGemmNr(isa);
  const int64_t mparts = plan.mparts;
  pool.ParallelFor(plan.tasks, 1, [&](int64_t t0, int64_t t1) {
    thread_local std::vector<int16_t> buf;
    const int64_t bneed = QPackedBSize(isa, kdim, plan.chunk * nr);
    if (buf.size() < static_cast<size_t>(bneed)) buf.resize(static_cast<size_t>(bneed));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t c0 = mparts > 1 ? 0 : plan.FirstChunk(t);
      const int64_t c1 = mparts > 1 ? plan.nchunks : plan.FirstChunk(t + 1);
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t q0 = plan.Begin(c), q1 = plan.Begin(c + 1);
        if (q0 == q1) continue;
        const int64_t n0 = q0 * nr, nc = std::min(out_size, q1 * nr) - n0;
        im2col(q0, q1, buf.data(), q0, nc);
        QOutput oc = o;
        oc.data = static_cast<uint8_t*>(o.data) + n0 * elem;
        QGemm(isa, mg, nc, kdim, QOperand::Of(wg), QOperand{buf.data(), isa, nc, kdim}, oc,
              nullptr, mparts > 1 ? static_cast<int>(t) : 0, static_cast<int>(mparts));
      }
    }
  });
}

// Every other conv: per image and group, im2col into B panels and the int8 GEMM with the
// packed weights `pw` (one per group) as A.
void RunGemm(Isa isa, ThreadPool& pool, const ConvGeometry& g, const ir::Tensor& x, int32_t x_zp,
             const std::vector<QPacked>& pw, const QOutput& out, ir::Tensor& y) {
  const int64_t in_size = g.in_size(), out_size = g.out_size();
  const int64_t elem = OutputElementSize(y);
  const int64_t kdim = g.cg * g.k_size();
  const bool pointwise = g.k_size() == 1 && g.stride[0] == 1 && g.stride[1] == 1 &&
                         g.stride[2] == 1 && g.pad_b[0] == 0 && g.pad_b[1] == 0 &&
                         g.pad_b[2] == 0 && out_size == in_size;
  const int nr = QGemmNr(isa);
  const bool bytes = QGemmBytes(isa);
  const Im2ColRows rows(pointwise ? ConvGeometry{} : g);
#if defined(__x86_64__)
  const bool pairs_avx2 = !bytes && isa == Isa::kAvx2 && nr == 16;  // QIm2ColPanelsAvx2
#else
  const bool pairs_avx2 = false;
#endif
  const ChunkPlan plan(g, kdim, nr, bytes || pairs_avx2, bytes ? 1 : 2, pool.num_threads());
  const int64_t panels = plan.panels;
  thread_local std::vector<int16_t> col;
  const int64_t need = plan.fused ? 0 : QPackedBSize(isa, kdim, out_size);
  if (col.size() < static_cast<size_t>(need)) col.resize(static_cast<size_t>(need));
  const bool s8 = x.dtype() == ir::DType::kInt8;
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t gi = 0; gi < g.group; ++gi) {
      const uint8_t* xg = static_cast<const uint8_t*>(x.raw()) + (n * g.c + gi * g.cg) * in_size;
      int16_t* dst = col.data();
      const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, kdim * nr));
      QOutput o = out;
      o.data = static_cast<uint8_t*>(y.mutable_raw()) + (n * g.m + gi * g.mg) * out_size * elem;
      o.ld = out_size;
      // Channel lookups (scale, bias) are by absolute output channel: shift them.
      if (o.per_channel_scale) o.scale += gi * g.mg;
      if (o.bias) o.bias += gi * g.mg;
      const QPacked& wg = pw[static_cast<size_t>(gi)];
      const Im2ColRows* r = pointwise ? nullptr : &rows;
      const int32_t zp8 = s8 ? x_zp : x_zp - 128;  // byte B is int8: uint8 x is stored x - 128
      const QSource src{xg, x.dtype(), in_size, false, &x_zp, false};  // pointwise: B is X
      // Panels [lo, hi) of B written from d on as panels q - q_base (only the fusable
      // layouts take q_base > 0); n_pack: the byte layouts' column count.
      auto im2col = [&](int64_t lo, int64_t hi, int16_t* d, int64_t q_base, int64_t n_pack) {
        const int8_t* xs = reinterpret_cast<const int8_t*>(xg);
        if (bytes) {
          const int8_t pad = static_cast<int8_t>(zp8);
          if (s8)
            QIm2ColBytes(isa, g, r, xs, pad, kdim, lo, hi, nr, d, q_base, n_pack);
          else
            QIm2ColBytes(isa, g, r, xg, pad, kdim, lo, hi, nr, d, q_base, n_pack);
#if defined(__x86_64__)
        } else if (pairs_avx2) {
          if (s8)
            qim2col::QIm2ColPanelsAvx2(g, r, xs, x_zp, lo, hi, d, q_base);
          else
            qim2col::QIm2ColPanelsAvx2(g, r, xg, x_zp, lo, hi, d, q_base);
#endif
        } else if (pointwise) {
          QPackBPanels(isa, kdim, out_size, src, lo, hi, d);
        } else if (s8) {
          QIm2ColPanels(g, rows, xs, x_zp, lo, hi, nr, d);
        } else {
          QIm2ColPanels(g, rows, xg, x_zp, lo, hi, nr, d);
        }
      };
      if (plan.fused) {
        RunFusedChunks(isa, pool, plan, g.mg, kdim, out_size, elem, wg, o, im2col);
        continue;
      }
      pool.ParallelFor(panels, grain,
                       [&](int64_t lo, int64_t hi) { im2col(lo, hi, dst, 0, out_size); });
      QGemm(isa, g.mg, out_size, kdim, QOperand::Of(wg), QOperand{dst, isa, out_size, kdim}, o,
            &pool);
    }
  }
}

enum class Mode { kConvInteger, kQLinearConv };

template <Isa kIsa, Mode kMode>
class QConvKernel : public Kernel {
 public:
  explicit QConvKernel(const KernelInit& init) : attrs_(ConvAttrs::Read(init.node)) {
    const ir::Node& node = init.node;
    act_ = qutil::ReadActivation(node);
    constant_inputs_ = init.constant_inputs;
    const size_t wi = WIndex(), wzi = WZpIndex();
    auto cst = [&](size_t i) -> const ir::Tensor* {
      return i < init.constant_inputs.size() ? init.constant_inputs[i] : nullptr;
    };
    const ir::Tensor* w = cst(wi);
    if (!w || w->rank() < 3 || w->numel() == 0 ||
        (w->dtype() != ir::DType::kUInt8 && w->dtype() != ir::DType::kInt8))
      return;
    const bool has_zp = wzi < node.num_inputs() && node.input(wzi) != nullptr;
    const ir::Tensor* wz = cst(wzi);
    if (has_zp && !wz) return;
    const int64_t m = w->shape()[0];
    if (attrs_.group < 1 || m % attrs_.group != 0) return;
    if (wz &&
        (wz->dtype() != w->dtype() || (wz->numel() != 1 && static_cast<int64_t>(wz->numel()) != m)))
      return;
    w_zp_ = wz ? qutil::ZeroPoints(node, wz, wz->numel()) : std::vector<int32_t>{0};
    const int64_t mg = m / attrs_.group, kdim = static_cast<int64_t>(w->numel()) / m;
    if (w->shape()[1] == 1 && mg == 1 && w->rank() <= 4) {
      dw_w_ = DepthwiseWeights(*w, w_zp_);
      dw_w_in_int8_ = std::all_of(dw_w_.begin(), dw_w_.end(),
                                  [](int16_t v) { return v >= -128 && v <= 127; });
      // The depthwise plane kernel for profiles (pads taken as non-negative, as in every
      // model seen; a plane with negative pads runs the reference).
      qdw::Geometry dg;
      dg.kh = w->rank() == 4 ? w->shape()[2] : 1;
      dg.kw = w->shape()[w->rank() - 1];
      dg.stride_w = attrs_.strides.empty() ? 1 : attrs_.strides.back();
      dg.oh = dg.ow = 1;
      std::string name;
      for (int64_t o = 0; o < m && name != "ref"; ++o) {
        qdw::Plane pl;
        pl.g = &dg;
        pl.w = dw_w_.data() + o * kdim;
        name = qdw::PlaneKernelName(kIsa, pl);
      }
      // Planes up to 112x112 run as 16-channel blocks where the CPU has them.
      const bool blocks = (kIsa == Isa::kAvx512Vnni || kIsa == Isa::kAmx) &&
                          GetCpuFeatures().avx512vbmi && name != "ref";
      variant_ = blocks
                     ? "depthwise avx512vnni_block16 (padded plane <= 128x128, else " + name + ")"
                     : "depthwise " + name;
    } else {
      packed_w_ = PackWeights(attrs_.group, mg, kdim, *w, w_zp_);
      if (kMode == Mode::kQLinearConv &&
          qimplicit::PackWeights(kIsa, *w, w_zp_, attrs_.group, &implicit_w_))
        variant_ = "implicit 8x32 for k x k stride-1 same convs, else im2col";
    }
    packed_shape_ = w->shape();
    packed_dtype_ = w->dtype();
  }

  std::string Variant() const override { return variant_; }

  static size_t WIndex() { return kMode == Mode::kConvInteger ? 1 : 3; }
  static size_t WZpIndex() { return kMode == Mode::kConvInteger ? 3 : 5; }

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = QInput(ctx, 0, "x");
    const ir::Tensor& w = QInput(ctx, WIndex(), "w");
    const ConvGeometry g = conv_util::ConvForward(node, attrs_, x.shape(), w.shape());
    Params local;
    const Params& p = ReadParams(ctx, x, w, g, &local);
    const QOutput& out = p.rq.out;
    ir::Tensor& y = ctx.AllocateOutput(0, p.rq.dtype, g.OutputShape());
    if (y.numel() == 0) return;
    const bool use_packed = p.cached || (!packed_shape_.empty() && w.shape() == packed_shape_ &&
                                         w.dtype() == packed_dtype_ && p.w_zp == w_zp_);
    if (g.cg == 1 && g.mg == 1 && g.rank <= 2) {
      std::vector<int16_t> local_w;
      if (!use_packed || dw_w_.empty()) local_w = DepthwiseWeights(w, p.w_zp);
      if (local_w.empty())
        RunDepthwise(kIsa, ctx.pool(), g, x, p.x_zp, dw_w_.data(), dw_w_in_int8_, out, y);
      else
        RunDepthwise(kIsa, ctx.pool(), g, x, p.x_zp, local_w.data(), false, out, y);
      return;
    }
    if (use_packed && !implicit_w_.w.empty() &&
        qimplicit::Run(ctx.pool(), g, x, p.x_zp, implicit_w_, out, y))
      return;
    std::vector<QPacked> local_w;
    if (!use_packed) local_w = PackWeights(g.group, g.mg, g.cg * g.k_size(), w, p.w_zp);
    RunGemm(kIsa, ctx.pool(), g, x, p.x_zp, use_packed ? packed_w_ : local_w, out, y);
  }

 private:
  using Requant = qutil::Requant;

  // What inputs 1.. give a run: zero points and the requantization (scales, bias).
  struct Params {
    int32_t x_zp = 0;
    std::vector<int32_t> w_zp;
    Requant rq;
    bool cached = false;  // read from the constants the weights were packed with
  };

  // The run's Params: when every input but x is the constant tensor the kernel was
  // created with (initializers: every model seen), the ones read on the first such run,
  // else read now into `local`. Rebuilding the per-channel vectors on every run cost ~3%
  // of an int8 mobilenet's time.
  const Params& ReadParams(KernelContext& ctx, const ir::Tensor& x, const ir::Tensor& w,
                           const ConvGeometry& g, Params* local) {
    bool constant = !packed_shape_.empty() && ctx.num_inputs() == constant_inputs_.size();
    for (size_t i = 1; constant && i < ctx.num_inputs(); ++i)
      constant = ctx.input(i) == constant_inputs_[i];
    if (constant && cached_.cached) return cached_;
    Params* p = constant ? &cached_ : local;
    p->x_zp = qutil::OneZeroPoint(ctx.node(), Opt(ctx, 2), x.dtype(), "x_zero_point");
    p->w_zp = WeightZeroPoints(ctx, w, g.m);
    ReadRequant(ctx, g, &p->rq);
    // Packed at creation from these very tensors, with the zero points just read.
    p->cached = constant && p->w_zp == w_zp_;
    return *p;
  }

  static std::vector<int32_t> WeightZeroPoints(KernelContext& ctx, const ir::Tensor& w, int64_t m) {
    const ir::Node& node = ctx.node();
    const ir::Tensor* wz = Opt(ctx, WZpIndex());
    if (wz && wz->dtype() != w.dtype())
      ThrowInvalid(node.describe() + ": w_zero_point dtype differs from w");
    if (wz && wz->numel() != 1 && static_cast<int64_t>(wz->numel()) != m)
      ThrowInvalid(node.describe() + ": w_zero_point has " + std::to_string(wz->numel()) +
                   " values, expected 1 or " + std::to_string(m));
    return wz ? qutil::ZeroPoints(node, wz, wz->numel()) : std::vector<int32_t>{0};
  }

  // ConvInteger: int32 accumulators. QLinearConv: the multiplier x_scale * w_scale[m] /
  // y_scale, the output zero point and the fused activation's bounds, and the int32 bias;
  // edgepress's QLinearConv without y_scale writes float.
  void ReadRequant(KernelContext& ctx, const ConvGeometry& g, Requant* rq) const {
    QOutput& out = rq->out;
    out.per_row = true;
    if (kMode != Mode::kQLinearConv) return;
    const ir::Node& node = ctx.node();
    const std::vector<float> xs = qutil::ScalesOf(node, Opt(ctx, 1), 1, "x_scale");
    const std::vector<float> ws = qutil::ScalesOf(node, Opt(ctx, 4), g.m, "w_scale");
    const ir::Tensor* ys_t = Opt(ctx, 6);
    const ir::Tensor* b = Opt(ctx, 8);
    if (!ys_t && node.domain() != "edgepress") ThrowInvalid(node.describe() + ": missing y_scale");
    qutil::FillRequant(node, xs[0], ws, ys_t, Opt(ctx, 7), act_, rq);
    if (b) {
      if (b->dtype() != ir::DType::kInt32 || b->rank() != 1 || b->shape()[0] != g.m)
        ThrowInvalid(node.describe() + ": bias B must be int32 of shape [" + std::to_string(g.m) +
                     "], got " + ir::DTypeName(b->dtype()) + DimsToString(b->shape()));
      out.bias = b->data<int32_t>();
    }
  }

  // The GEMM's A operand per group: weights with their zero points subtracted, packed.
  static std::vector<QPacked> PackWeights(int64_t group, int64_t mg, int64_t kdim,
                                          const ir::Tensor& w, const std::vector<int32_t>& w_zp) {
    std::vector<QPacked> packed;
    for (int64_t gi = 0; gi < group; ++gi) {
      QSource src{
          static_cast<const uint8_t*>(w.raw()) + gi * mg * kdim, w.dtype(),      kdim, false,
          w_zp.data() + (w_zp.size() > 1 ? gi * mg : 0),         w_zp.size() > 1};
      packed.push_back(QPackA(kIsa, mg, kdim, src));
    }
    return packed;
  }

  ConvAttrs attrs_;
  qutil::Activation act_;
  std::vector<QPacked> packed_w_;
  qimplicit::PackedWeights implicit_w_;  // empty unless qconv_implicit.h applies
  std::vector<int16_t> dw_w_;
  bool dw_w_in_int8_ = false;
  std::string variant_;
  std::vector<int64_t> packed_shape_;
  ir::DType packed_dtype_ = ir::DType::kUndefined;
  std::vector<int32_t> w_zp_;
  std::vector<const ir::Tensor*> constant_inputs_;  // per input, from KernelInit
  Params cached_;
};

template <Isa kIsa, Mode kMode>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  return std::make_unique<QConvKernel<kIsa, kMode>>(init);
}

}  // namespace

void RegisterQConvKernels(KernelRegistry& r) {
  using ir::DType;
  r.Add({"ConvInteger", "", DType::kUndefined, Isa::kScalar, "q8_convinteger__ref",
         Create<Isa::kScalar, Mode::kConvInteger>});
  r.Add({"QLinearConv", "", DType::kUndefined, Isa::kScalar, "q8_qlinearconv__ref",
         Create<Isa::kScalar, Mode::kQLinearConv>});
  r.Add({"QLinearConv", "edgepress", DType::kUndefined, Isa::kScalar, "q8_ep_qlinearconv__ref",
         Create<Isa::kScalar, Mode::kQLinearConv>});
#if defined(__x86_64__)
  r.Add({"ConvInteger", "", DType::kUndefined, Isa::kAvx2, "q8_convinteger__avx2_6x16",
         Create<Isa::kAvx2, Mode::kConvInteger>});
  r.Add({"QLinearConv", "", DType::kUndefined, Isa::kAvx2, "q8_qlinearconv__avx2_6x16",
         Create<Isa::kAvx2, Mode::kQLinearConv>});
  r.Add({"QLinearConv", "edgepress", DType::kUndefined, Isa::kAvx2, "q8_ep_qlinearconv__avx2_6x16",
         Create<Isa::kAvx2, Mode::kQLinearConv>});
  r.Add({"ConvInteger", "", DType::kUndefined, Isa::kAvx512, "q8_convinteger__avx512_6x32",
         Create<Isa::kAvx512, Mode::kConvInteger>});
  r.Add({"QLinearConv", "", DType::kUndefined, Isa::kAvx512, "q8_qlinearconv__avx512_6x32",
         Create<Isa::kAvx512, Mode::kQLinearConv>});
  r.Add({"QLinearConv", "edgepress", DType::kUndefined, Isa::kAvx512,
         "q8_ep_qlinearconv__avx512_6x32", Create<Isa::kAvx512, Mode::kQLinearConv>});
  r.Add({"ConvInteger", "", DType::kUndefined, Isa::kAvx512Vnni, "q8_convinteger__avx512vnni_8x32",
         Create<Isa::kAvx512Vnni, Mode::kConvInteger>});
  r.Add({"QLinearConv", "", DType::kUndefined, Isa::kAvx512Vnni, "q8_qlinearconv__avx512vnni_8x32",
         Create<Isa::kAvx512Vnni, Mode::kQLinearConv>});
  r.Add({"QLinearConv", "edgepress", DType::kUndefined, Isa::kAvx512Vnni,
         "q8_ep_qlinearconv__avx512vnni_8x32", Create<Isa::kAvx512Vnni, Mode::kQLinearConv>});
  r.Add({"ConvInteger", "", DType::kUndefined, Isa::kAmx, "q8_convinteger__amx_32x32",
         Create<Isa::kAmx, Mode::kConvInteger>});
  r.Add({"QLinearConv", "", DType::kUndefined, Isa::kAmx, "q8_qlinearconv__amx_32x32",
         Create<Isa::kAmx, Mode::kQLinearConv>});
  r.Add({"QLinearConv", "edgepress", DType::kUndefined, Isa::kAmx, "q8_ep_qlinearconv__amx_32x32",
         Create<Isa::kAmx, Mode::kQLinearConv>});
#endif
}

}  // namespace edgepress::runtime
