// QLinearConvTranspose (com.microsoft, as onnxruntime's contrib op defines it; and the
// edgepress form with `activation` and float output when y_scale/y_zp are omitted, as
// for QLinearConv, docs/ops.md): fuse-qdq's target for DQ -> ConvTranspose -> Q.
//   x, x_scale, x_zp, w, w_scale, w_zp, y_scale?, y_zp?, B? -> y
// w is ConvTranspose's [C, M/group, k...] int8/uint8 weight, per tensor or per output
// channel (w_scale/w_zp of size 1 or M/group: quantization axis 1, the channels of one
// group). Same structure as the float ConvTranspose (conv_transpose.cc), in exact integer
// arithmetic, per image and group:
//   col[Mg*kprod, in] = (W_g - w_zp)^T [Mg*kprod, Cg] x (X_g - x_zp)[Cg, in]   (int32, QGemm)
// then each col entry is added into its output position (col2im, int32 sums, exact), and
// every output channel row is requantized once by the QGemm epilogue:
//   y = saturate(round((acc + B[m]) * x_scale * w_scale[m] / y_scale) + y_zp)
// (multiplier in float32 as onnxruntime computes it). Constant weights are packed once.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/conv/conv_util.h"
#include "runtime/kernels/gemm/gemm_op_util.h"
#include "runtime/kernels/qgemm/qgemm.h"
#include "runtime/kernels/quant/quantize_util.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

using conv_util::ConvAttrs;
using conv_util::ConvGeometry;

const ir::Tensor* Opt(KernelContext& ctx, size_t i) {
  const ir::Tensor* t = ctx.input(i);
  return t && !t->empty() ? t : nullptr;
}

bool Is8Bit(ir::DType t) { return t == ir::DType::kUInt8 || t == ir::DType::kInt8; }


template <Isa kIsa>
class QConvTransposeKernel : public Kernel {
 public:
  explicit QConvTransposeKernel(const KernelInit& init) : attrs_(ConvAttrs::Read(init.node)) {
    act_ = qutil::ReadActivation(init.node);
    auto cst = [&](size_t i) -> const ir::Tensor* {
      return i < init.constant_inputs.size() ? init.constant_inputs[i] : nullptr;
    };
    const ir::Tensor* w = cst(3);
    const bool has_zp = init.node.num_inputs() > 5 && init.node.input(5) != nullptr;
    const ir::Tensor* wz = cst(5);
    if (!w || (has_zp && !wz) || w->rank() < 3 || w->numel() == 0 || !Is8Bit(w->dtype())) return;
    if (attrs_.group < 1 || w->shape()[0] % attrs_.group != 0) return;  // Run() reports it
    if (wz && (wz->dtype() != w->dtype() || (wz->numel() != 1 && static_cast<int64_t>(wz->numel()) != w->shape()[1])))
      return;
    w_zp_ = wz ? qutil::ZeroPoints(init.node, wz, wz->numel()) : std::vector<int32_t>{0};
    packed_w_ = Pack(*w, w_zp_);
    packed_shape_ = w->shape();
    packed_dtype_ = w->dtype();
  }

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor* x = Opt(ctx, 0);
    const ir::Tensor* w = Opt(ctx, 3);
    if (!x || !w || !Is8Bit(x->dtype()) || !Is8Bit(w->dtype()))
      ThrowInvalid(node.describe() + ": x and w must be uint8 or int8 tensors");
    const ConvGeometry g = conv_util::ConvTransposeForward(node, attrs_, x->shape(), w->shape());
    const int32_t x_zp = qutil::OneZeroPoint(node, Opt(ctx, 2), x->dtype(), "x_zero_point");
    const ir::Tensor* wz = Opt(ctx, 5);
    if (wz && wz->dtype() != w->dtype())
      ThrowInvalid(node.describe() + ": w_zero_point dtype differs from w");
    if (wz && wz->numel() != 1 && static_cast<int64_t>(wz->numel()) != g.mg)
      ThrowInvalid(node.describe() + ": w_zero_point has " + std::to_string(wz->numel()) +
                   " values, expected 1 or " + std::to_string(g.mg) + " (axis 1)");
    const std::vector<int32_t> w_zp =
        wz ? qutil::ZeroPoints(node, wz, wz->numel()) : std::vector<int32_t>{0};
    std::vector<float> mult;
    ir::DType out_dtype;
    const QOutput out = ReadEpilogue(ctx, g, mult, out_dtype);
    ir::Tensor& y = ctx.AllocateOutput(0, out_dtype, g.OutputShape());
    if (y.numel() == 0) return;
    const int64_t elem = out_dtype == ir::DType::kFloat32 ? 4 : 1;
    const bool use_packed = !packed_w_.empty() && w->shape() == packed_shape_ &&
                            w->dtype() == packed_dtype_ && w_zp == w_zp_;
    const std::vector<QPacked> local = use_packed ? std::vector<QPacked>{} : Pack(*w, w_zp);
    const std::vector<QPacked>& pw = use_packed ? packed_w_ : local;
    const bool disjoint = conv_util::TapsTileOutput(g);
    for (int64_t n = 0; n < g.n; ++n) {
      for (int64_t gi = 0; gi < g.group; ++gi) {
        GroupJob job{g, x->dtype(), x_zp, elem, nullptr, &pw[static_cast<size_t>(gi)], out};
        job.xg = static_cast<const uint8_t*>(x->raw()) + (n * g.c + gi * g.cg) * g.in_size();
        job.o.data = static_cast<uint8_t*>(y.mutable_raw()) +
                     (n * g.m + gi * g.mg) * g.out_size() * elem;
        job.o.ld = g.out_size();
        job.o.scale += gi * g.mg;  // channel lookups are by absolute output channel
        if (job.o.bias) job.o.bias += gi * g.mg;
        if (disjoint)
          RunDisjointGroup(ctx.pool(), job);
        else
          RunOverlappingGroup(ctx.pool(), job);
      }
    }
  }

 private:
  // One (image, group) of the op: its input planes, packed weights and output epilogue.
  struct GroupJob {
    const ConvGeometry& g;
    ir::DType xt;
    int32_t x_zp;
    int64_t elem;  // output bytes per element (4: float, 1: int8/uint8)
    const uint8_t* xg;
    const QPacked* wg;
    QOutput o;  // addresses the group's first output channel
  };

  // The requantization of every output channel m: multiplier x_scale * w_scale[m % mg] /
  // y_scale (into `mult`, which the result points at), y_zp, activation bounds, int32 bias;
  // without y_scale (edgepress form only) a float output.
  QOutput ReadEpilogue(KernelContext& ctx, const ConvGeometry& g, std::vector<float>& mult,
                       ir::DType& out_dtype) const {
    const ir::Node& node = ctx.node();
    const std::vector<float> xs = qutil::ScalesOf(node, Opt(ctx, 1), 1, "x_scale");
    const std::vector<float> ws = qutil::ScalesOf(node, Opt(ctx, 4), g.mg, "w_scale");
    const ir::Tensor* ys_t = Opt(ctx, 6);
    const ir::Tensor* yz = Opt(ctx, 7);
    const ir::Tensor* b = Opt(ctx, 8);
    const float ys = ys_t ? qutil::ScalesOf(node, ys_t, 1, "y_scale")[0] : 1.f;
    mult.resize(static_cast<size_t>(g.m));
    for (int64_t m = 0; m < g.m; ++m) {
      const float s = ws[ws.size() > 1 ? static_cast<size_t>(m % g.mg) : 0];
      mult[static_cast<size_t>(m)] = ys_t ? xs[0] * s / ys : xs[0] * s;
    }
    QOutput out;
    out.per_row = true;
    out.scale = mult.data();
    out.per_channel_scale = true;
    out.lo = act_.lo;
    out.hi = act_.hi;
    if (ys_t) {
      out_dtype = yz ? yz->dtype() : ir::DType::kUInt8;
      if (!Is8Bit(out_dtype))
        ThrowUnsupported(node.describe() + ": y_zero_point dtype " + ir::DTypeName(out_dtype) +
                         " is not supported");
      if (yz && yz->numel() != 1)
        ThrowUnsupported(node.describe() + ": y_zero_point must be per-tensor");
      out.kind = out_dtype == ir::DType::kInt8 ? QOutput::Kind::kInt8 : QOutput::Kind::kUInt8;
      out.zero_point = qutil::ZeroPoints(node, yz, 1)[0];
      out.q_lo = qutil::QuantizeBound(act_.lo, ys, out.zero_point);
      out.q_hi = qutil::QuantizeBound(act_.hi, ys, out.zero_point);
    } else {
      if (node.domain() != "edgepress") ThrowInvalid(node.describe() + ": missing y_scale");
      out_dtype = ir::DType::kFloat32;
      out.kind = QOutput::Kind::kFloat;
    }
    if (b) {
      if (b->dtype() != ir::DType::kInt32 || b->rank() != 1 || b->shape()[0] != g.m)
        ThrowInvalid(node.describe() + ": bias B must be int32 of shape [" + std::to_string(g.m) +
                     "], got " + ir::DTypeName(b->dtype()) + gemm_util::DimsToString(b->shape()));
      out.bias = b->data<int32_t>();
    }
    return out;
  }

  // Disjoint windows (stride = kernel): the epilogue runs on the GEMM rows directly (row r =
  // channel r / kprod: per-row copies of the channel's multiplier and bias), then the final
  // values are scattered to their output positions.
  static void RunDisjointGroup(ThreadPool& pool, const GroupJob& j) {
    const ConvGeometry& g = j.g;
    const int64_t ks = g.k_size(), rows = g.mg * ks, in_size = g.in_size();
    // Scratch of the calling thread; the pool's tasks use it through pointers (a thread_local
    // named inside a task would be the worker's own).
    thread_local std::vector<uint8_t> fin_buf;
    fin_buf.resize(static_cast<size_t>(rows * in_size * j.elem));
    std::vector<float> rmult(static_cast<size_t>(rows));
    std::vector<int32_t> rbias(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      rmult[static_cast<size_t>(r)] = j.o.scale[r / ks];
      rbias[static_cast<size_t>(r)] = j.o.bias ? j.o.bias[r / ks] : 0;
    }
    uint8_t* const fin = fin_buf.data();
    QOutput ro = j.o;
    ro.scale = rmult.data();
    ro.bias = rbias.data();
    ro.data = fin;
    ro.ld = in_size;
    GemmChunks(pool, j.xt, j.xg, in_size, g.cg, rows, *j.wg, j.x_zp, ro, j.elem);
    uint8_t* yg = static_cast<uint8_t*>(j.o.data);
    pool.ParallelFor(g.mg, 1, [&](int64_t lo, int64_t hi) {
      if (j.elem == 4)
        Scatter<float>(g, reinterpret_cast<const float*>(fin), lo, hi,
                       reinterpret_cast<float*>(yg));
      else
        Scatter<uint8_t>(g, fin, lo, hi, yg);
    });
  }

  // Overlapping windows: int32 col = W^T X, col2im sums per output channel (exact), then the
  // epilogue once per output row.
  static void RunOverlappingGroup(ThreadPool& pool, const GroupJob& j) {
    const ConvGeometry& g = j.g;
    const int64_t in_size = g.in_size(), out_size = g.out_size(), rows = g.mg * g.k_size();
    thread_local std::vector<int32_t> col_buf, acc_buf;
    col_buf.resize(static_cast<size_t>(rows * in_size));
    acc_buf.resize(static_cast<size_t>(g.mg * out_size));
    int32_t* const col = col_buf.data();
    int32_t* const acc = acc_buf.data();
    std::fill(acc, acc + g.mg * out_size, 0);
    if (in_size > 0 && g.cg > 0) {
      QOutput co;
      co.kind = QOutput::Kind::kInt32;
      co.data = col;
      co.ld = in_size;
      GemmChunks(pool, j.xt, j.xg, in_size, g.cg, rows, *j.wg, j.x_zp, co, 4);
      pool.ParallelFor(g.mg, 1, [&](int64_t lo, int64_t hi) {
        conv_util::Col2ImAdd(g, col, lo, hi, acc);
      });
    }
    pool.ParallelFor(g.mg, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t m = lo; m < hi; ++m)
        for (int64_t c0 = 0; c0 < out_size; c0 += kStoreChunk) {
          const int cols = static_cast<int>(std::min<int64_t>(kStoreChunk, out_size - c0));
          QStoreRowIsa(kIsa, acc + m * out_size + c0, cols, m, c0, j.o);
        }
    });
  }

  static constexpr int64_t kStoreChunk = int64_t{1} << 20;

  // y[m][id*k0+kd][ih*k1+kh][iw*k2+kw] = fin[(m*kprod + tap)][pixel] for channels [m0, m1).
  template <typename T>
  static void Scatter(const ConvGeometry& g, const T* fin, int64_t m0, int64_t m1, T* y) {
    const int64_t ks = g.k_size(), in_size = g.in_size(), out_size = g.out_size();
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t t = 0; t < ks; ++t) {
        const int64_t kw = t % g.k[2], kh = (t / g.k[2]) % g.k[1], kd = t / (g.k[2] * g.k[1]);
        const T* src = fin + (m * ks + t) * in_size;
        T* ym = y + m * out_size;
        for (int64_t id = 0; id < g.in[0]; ++id)
          for (int64_t ih = 0; ih < g.in[1]; ++ih) {
            const T* s = src + (id * g.in[1] + ih) * g.in[2];
            T* d = ym + ((id * g.k[0] + kd) * g.out[1] + ih * g.k[1] + kh) * g.out[2] + kw;
            for (int64_t iw = 0; iw < g.in[2]; ++iw) d[iw * g.k[2]] = s[iw];
          }
      }
  }

  // out(op(A) x X) over X's pixels in chunks of B panels that stay in L2, each packed and
  // multiplied by one thread (no whole-matrix pack, one dispatch). `o` addresses column 0
  // of the result (row stride in_size, `elem` bytes an element).
  static void GemmChunks(ThreadPool& pool, ir::DType xt, const uint8_t* xg, int64_t in_size,
                         int64_t cg, int64_t rows, const QPacked& wg, int32_t x_zp, const QOutput& o,
                         int64_t elem) {
    const int nr = QGemmNr(kIsa);
    const int64_t panels = (in_size + nr - 1) / nr;
    const int64_t chunk = std::max<int64_t>(1, (128 << 10) / std::max<int64_t>(1, cg * nr));
    pool.ParallelFor((panels + chunk - 1) / chunk, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t n0 = c * chunk * nr, nc = std::min(in_size, (c + 1) * chunk * nr) - n0;
        thread_local std::vector<int16_t> bbuf;
        const int64_t need = QPackedBSize(kIsa, cg, nc);
        if (bbuf.size() < static_cast<size_t>(need)) bbuf.resize(static_cast<size_t>(need));
        PackX(xt, xg + n0, in_size, cg, nc, x_zp, bbuf.data());
        QOutput oc = o;
        oc.data = static_cast<uint8_t*>(o.data) + n0 * elem;
        QGemm(kIsa, rows, nc, cg, QOperand::Of(wg), QOperand{bbuf.data(), kIsa, nc, cg}, oc, nullptr);
      }
    });
  }

  // A panel set per group: op(A)[r][ci] = W[gi*cg + ci][r] (r = local output channel x
  // kernel position), the zero point of r's output channel subtracted.
  std::vector<QPacked> Pack(const ir::Tensor& w, const std::vector<int32_t>& zp) const {
    const int64_t c = w.shape()[0], cg = c / attrs_.group, rows = static_cast<int64_t>(w.numel()) / c;
    const int64_t mg = w.shape()[1], ks = rows / mg;
    std::vector<int32_t> row_zp(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) row_zp[static_cast<size_t>(r)] = zp[zp.size() > 1 ? static_cast<size_t>(r / ks) : 0];
    std::vector<QPacked> p;
    for (int64_t gi = 0; gi < attrs_.group; ++gi) {
      const QSource a{static_cast<const uint8_t*>(w.raw()) + gi * cg * rows, w.dtype(), rows, true,
                      row_zp.data(), true};
      p.push_back(QPackA(kIsa, rows, cg, a));
    }
    return p;
  }

  // B = X[k rows, n columns] (row stride ld) packed for kIsa. The byte layouts copy each
  // panel's rows (uint8 flipped to int8 by ^0x80, zero point moved with it) and let
  // QPackBPanelFromRows interleave them; the int16-pair layouts use QPackBPanels.
  static void PackX(ir::DType dt, const uint8_t* x, int64_t ld, int64_t k, int64_t n, int32_t zp,
                    int16_t* dst) {
    const int nr = QGemmNr(kIsa);
    const int64_t panels = (n + nr - 1) / nr;
    if (!QGemmBytes(kIsa)) {
      const QSource src{x, dt, ld, false, &zp, false};
      QPackBPanels(kIsa, k, n, src, 0, panels, dst);
      return;
    }
    const bool u8 = dt == ir::DType::kUInt8;
    const uint8_t flip = u8 ? 0x80 : 0;
    thread_local std::vector<int8_t> tmp;
    if (tmp.size() < static_cast<size_t>(k * nr)) tmp.resize(static_cast<size_t>(k * nr));
    for (int64_t q = 0; q < panels; ++q) {
      const int64_t j0 = q * nr;
      const int cnt = static_cast<int>(std::min<int64_t>(nr, n - j0));
      for (int64_t kk = 0; kk < k; ++kk) {
        const uint8_t* src = x + kk * ld + j0;
        int8_t* d = tmp.data() + kk * nr;
        for (int t = 0; t < cnt; ++t) d[t] = static_cast<int8_t>(src[t] ^ flip);
        for (int t = cnt; t < nr; ++t) d[t] = 0;
      }
      QPackBPanelFromRows(kIsa, k, n, u8 ? zp - 128 : zp, q, tmp.data(), dst);
    }
  }

  ConvAttrs attrs_;
  qutil::Activation act_;
  std::vector<QPacked> packed_w_;
  std::vector<int64_t> packed_shape_;
  ir::DType packed_dtype_ = ir::DType::kUndefined;
  std::vector<int32_t> w_zp_;
};

template <Isa kIsa>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  return std::make_unique<QConvTransposeKernel<kIsa>>(init);
}

}  // namespace

void RegisterQConvTransposeKernels(KernelRegistry& r) {
  using ir::DType;
  r.Add({"QLinearConvTranspose", "com.microsoft", DType::kUndefined, Isa::kScalar,
         "q8_ms_qlinearconvtranspose__ref", Create<Isa::kScalar>});
  r.Add({"QLinearConvTranspose", "edgepress", DType::kUndefined, Isa::kScalar,
         "q8_ep_qlinearconvtranspose__ref", Create<Isa::kScalar>});
#if defined(__x86_64__)
  r.Add({"QLinearConvTranspose", "com.microsoft", DType::kUndefined, Isa::kAvx2,
         "q8_ms_qlinearconvtranspose__avx2", Create<Isa::kAvx2>});
  r.Add({"QLinearConvTranspose", "edgepress", DType::kUndefined, Isa::kAvx2,
         "q8_ep_qlinearconvtranspose__avx2", Create<Isa::kAvx2>});
  r.Add({"QLinearConvTranspose", "com.microsoft", DType::kUndefined, Isa::kAvx512,
         "q8_ms_qlinearconvtranspose__avx512", Create<Isa::kAvx512>});
  r.Add({"QLinearConvTranspose", "edgepress", DType::kUndefined, Isa::kAvx512,
         "q8_ep_qlinearconvtranspose__avx512", Create<Isa::kAvx512>});
  r.Add({"QLinearConvTranspose", "com.microsoft", DType::kUndefined, Isa::kAvx512Vnni,
         "q8_ms_qlinearconvtranspose__avx512vnni", Create<Isa::kAvx512Vnni>});
  r.Add({"QLinearConvTranspose", "edgepress", DType::kUndefined, Isa::kAvx512Vnni,
         "q8_ep_qlinearconvtranspose__avx512vnni", Create<Isa::kAvx512Vnni>});
  r.Add({"QLinearConvTranspose", "com.microsoft", DType::kUndefined, Isa::kAmx,
         "q8_ms_qlinearconvtranspose__amx", Create<Isa::kAmx>});
  r.Add({"QLinearConvTranspose", "edgepress", DType::kUndefined, Isa::kAmx,
         "q8_ep_qlinearconvtranspose__amx", Create<Isa::kAmx>});
#endif
}

}  // namespace edgepress::runtime
