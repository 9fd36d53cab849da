// Integer convolutions on the int8 GEMM (qgemm.h), NCHW, 1-D/2-D/3-D, groups, strides,
// dilations, pads/auto_pad, as conv.cc does for float:
//   ConvInteger            x, w, x_zero_point?, w_zero_point? -> int32
//   QLinearConv            x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B? -> y
//   edgepress QLinearConv  QLinearConv plus `activation` = "Relu", and float output when
//                          y_scale/y_zp are omitted (fuse-qdq's target; docs/ops.md)
// Per image and group, Y_g[Mg, pixels] = W_g[Mg, Cg*kprod] x col[Cg*kprod, pixels]: the
// weights (constant in real models) are packed once as the GEMM's A operand with their
// zero points subtracted; im2col writes (x - x_zp) as int16 pairs straight into B panels,
// with 0 for padding (the padded value *is* the zero point). On VNNI/AMX CPUs (QGemmBytes)
// the panels hold bytes instead (x as int8, padding = x_zp) with per-pixel column sums. A 1x1 stride-1 unpadded conv
// packs X directly. Depthwise convs (one input and one output channel per group) take the
// integer plane kernels of qdepthwise.h instead.
// Requantization: y = saturate(round(acc * (x_scale * w_scale[m] / y_scale)) + y_zp), the
// multiplier computed in float32 as onnxruntime does.
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
#include "runtime/kernels/gemm/gemm_op_util.h"
#include "runtime/kernels/qgemm/qgemm.h"
#include "runtime/kernels/quant/quantize_util.h"
#include "runtime/thread_pool.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime {

namespace {

using conv_util::ConvAttrs;
using conv_util::ConvGeometry;
using gemm_util::DimsToString;

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

// Offsets of each im2col row kk = ((c * KD + kd) * KH + kh) * KW + kw.
struct Im2ColRows {
  std::vector<int64_t> c_off, d_off, h_off, w_off;
  explicit Im2ColRows(const ConvGeometry& g) {
    const int64_t kdim = g.cg * g.k_size();
    c_off.resize(kdim);
    d_off.resize(kdim);
    h_off.resize(kdim);
    w_off.resize(kdim);
    for (int64_t kk = 0; kk < kdim; ++kk) {
      int64_t rem = kk;
      w_off[kk] = (rem % g.k[2]) * g.dil[2];
      rem /= g.k[2];
      h_off[kk] = (rem % g.k[1]) * g.dil[1];
      rem /= g.k[1];
      d_off[kk] = (rem % g.k[0]) * g.dil[0];
      c_off[kk] = (rem / g.k[0]) * g.in_size();
    }
  }
};

// im2col of (x - zp) for one image and group into int16-pair B panels [q0, q1) of width
// nr: panel q holds pixels [q*nr, q*nr+nr) as K2 groups of nr pairs (k even, k odd).
template <typename T>
void QIm2ColPanels(const ConvGeometry& g, const Im2ColRows& rows, const T* x, int32_t zp,
                   int64_t q0, int64_t q1, int nr, int16_t* dst) {
  constexpr int kMaxNr = 64;
  const int64_t kdim = static_cast<int64_t>(rows.c_off.size());
  const int64_t k2 = (kdim + 1) / 2;
  const int64_t out_size = g.out_size();
  const uint64_t in_d = g.in[0], in_h = g.in[1], in_w = g.in[2];
  int64_t bd[kMaxNr], bh[kMaxNr], bw[kMaxNr];
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t p0 = q * nr;
    const int cnt = static_cast<int>(std::min<int64_t>(nr, out_size - p0));
    int64_t ow = p0 % g.out[2], oh = (p0 / g.out[2]) % g.out[1], od = p0 / (g.out[2] * g.out[1]);
    for (int t = 0; t < cnt; ++t) {
      bd[t] = od * g.stride[0] - g.pad_b[0];
      bh[t] = oh * g.stride[1] - g.pad_b[1];
      bw[t] = ow * g.stride[2] - g.pad_b[2];
      if (++ow == g.out[2]) {
        ow = 0;
        if (++oh == g.out[1]) {
          oh = 0;
          ++od;
        }
      }
    }
    // All pixels of the panel on one output row: each tap reads a strided run of one input
    // row, so only the run's ends need bounds checks. The pair block of a k pair (2 * nr
    // int16, one cache line for nr = 16) is zeroed, then the in-range taps are written.
    const int64_t sw = g.stride[2];
    const bool one_row = cnt > 0 && bh[cnt - 1] == bh[0] && bd[cnt - 1] == bd[0] &&
                         bw[cnt - 1] - bw[0] == (cnt - 1) * sw;
    int16_t* panel = dst + q * k2 * 2 * nr;
    if (one_row) {
      std::fill(panel, panel + k2 * 2 * nr, int16_t{0});
      for (int64_t kk = 0; kk < kdim; ++kk) {
        int16_t* d = panel + (kk >> 1) * 2 * nr + (kk & 1);
        const int64_t id = bd[0] + rows.d_off[kk], ih = bh[0] + rows.h_off[kk];
        if (static_cast<uint64_t>(id) >= in_d || static_cast<uint64_t>(ih) >= in_h) continue;
        const T* xr = x + rows.c_off[kk] + (id * g.in[1] + ih) * g.in[2];
        const int64_t w0 = bw[0] + rows.w_off[kk];
        // Taps t with 0 <= w0 + t * sw < in_w.
        const int64_t t_lo = w0 >= 0 ? 0 : (-w0 + sw - 1) / sw;
        const int64_t lim = static_cast<int64_t>(in_w) - 1 - w0;
        const int64_t t_hi = lim < 0 ? 0 : std::min<int64_t>(cnt, lim / sw + 1);
        if (sw == 1) {
          for (int64_t t = t_lo; t < t_hi; ++t)
            d[2 * t] = static_cast<int16_t>(static_cast<int32_t>(xr[w0 + t]) - zp);
        } else {
          for (int64_t t = t_lo; t < t_hi; ++t)
            d[2 * t] = static_cast<int16_t>(static_cast<int32_t>(xr[w0 + t * sw]) - zp);
        }
      }
      continue;
    }
    for (int64_t kk = 0; kk < kdim; ++kk) {
      int16_t* d = panel + (kk >> 1) * 2 * nr + (kk & 1);
      const T* xc = x + rows.c_off[kk];
      const int64_t dk = rows.d_off[kk], hk = rows.h_off[kk], wk = rows.w_off[kk];
      for (int t = 0; t < cnt; ++t) {
        const int64_t id = bd[t] + dk, ih = bh[t] + hk, iw = bw[t] + wk;
        const bool inside = static_cast<uint64_t>(id) < in_d &&
                            static_cast<uint64_t>(ih) < in_h && static_cast<uint64_t>(iw) < in_w;
        d[2 * t] = inside ? static_cast<int16_t>(static_cast<int32_t>(
                                xc[(id * g.in[1] + ih) * g.in[2] + iw]) - zp)
                          : int16_t{0};
      }
      for (int t = cnt; t < nr; ++t) d[2 * t] = 0;
    }
    if (kdim & 1) {
      int16_t* d = panel + (kdim >> 1) * 2 * nr + 1;
      for (int t = 0; t < nr; ++t) d[2 * t] = 0;
    }
  }
}

#if defined(__x86_64__)
// The in-range runs of one kernel tap in a 32-pixel panel, the same for every input
// channel: per segment of the panel (pixels on one output row), the lanes whose input
// pixel is inside the plane (`lanes`, in pixel positions; stride 2 as the even bytes of
// 64, `bytes`) and the offset of lane 0's byte from the channel plane's start (may point
// before the plane: only in-range bytes are loaded).
struct TapRuns {
  static constexpr int kMaxSeg = 12;
  int nseg = 0;
  uint32_t any = 0;  // union of the segments' lanes
  uint32_t lanes[kMaxSeg];
  uint64_t bytes[kMaxSeg];
  int64_t off[kMaxSeg];
};

// Writes im2col rows kk = c * taps + t of one 32-pixel panel (row-major, 32 bytes a row)
// for every channel c < cg: each row is 1-2 masked loads from the channel plane, flipped,
// blended over the padding value (0 for pixels >= cnt). Masked-out bytes are neither read
// nor faulted on. All bounds arithmetic was done once per tap (TapRuns), not per row.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // gcc 12, unmasked AVX-512 intrinsics
__attribute__((target("avx512f,avx512bw,avx512vl"))) void Im2ColPanel32Avx512(
    const uint8_t* x, int64_t in_size, int64_t cg, const TapRuns* runs, int64_t taps,
    int64_t stride, int8_t pad, uint8_t flip, int cnt, int8_t* rows) {
  const __mmask32 valid = cnt >= 32 ? ~__mmask32(0) : (__mmask32(1) << cnt) - 1;
  const __m256i vpad = _mm256_maskz_set1_epi8(valid, static_cast<char>(pad));
  const __m256i vflip = _mm256_set1_epi8(static_cast<char>(flip));
  for (int64_t c = 0; c < cg; ++c) {
    const uintptr_t plane = reinterpret_cast<uintptr_t>(x + c * in_size);
    for (int64_t t = 0; t < taps; ++t) {
      const TapRuns& r = runs[t];
      __m256i v = _mm256_setzero_si256();
      if (stride == 1) {
        for (int s = 0; s < r.nseg; ++s)
          v = _mm256_or_si256(v, _mm256_maskz_loadu_epi8(
                                     r.lanes[s], reinterpret_cast<const void*>(plane + r.off[s])));
      } else {
        __m512i w = _mm512_setzero_si512();
        for (int s = 0; s < r.nseg; ++s)
          w = _mm512_or_si512(w, _mm512_maskz_loadu_epi8(
                                     r.bytes[s], reinterpret_cast<const void*>(plane + r.off[s])));
        v = _mm512_cvtepi16_epi8(w);
      }
      const __m256i out = _mm256_mask_blend_epi8(r.any, vpad, _mm256_xor_si256(v, vflip));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(rows + (c * taps + t) * 32), out);
    }
  }
}
#pragma GCC diagnostic pop
#endif

// im2col for the byte layouts (QGemmBytes, qgemm.h): B is int8, so uint8 x is stored as
// x ^ 0x80 (x - 128) and the zero point moves with it; padding stores that zero point
// (its (x - zp) is 0). Each panel of nr pixels is first written row-major ([kk][nr]
// bytes: contiguous runs, copied) and then interleaved into groups of 4 k with the
// column sums by QPackBPanelFromRows. A pointwise conv (rows = nullptr) copies X's rows.
template <typename T>
void QIm2ColBytes(Isa isa, const ConvGeometry& g, const Im2ColRows* rows, const T* x,
                  int8_t pad, int64_t kdim, int64_t q0, int64_t q1, int nr, int16_t* dst,
                  int64_t q_base, int64_t n_pack) {
  constexpr int kMaxNr = 64;
  constexpr uint8_t kFlip = std::is_same<T, uint8_t>::value ? 0x80 : 0;
  const int64_t out_size = g.out_size();
  const uint64_t in_d = g.in[0], in_h = g.in[1], in_w = g.in[2];
  thread_local std::vector<int8_t> tmp;
  if (tmp.size() < static_cast<size_t>(kdim * nr)) tmp.resize(static_cast<size_t>(kdim * nr));
  int64_t bd[kMaxNr], bh[kMaxNr], bw[kMaxNr];
  int seg_t[kMaxNr], seg_n[kMaxNr];
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t p0 = q * nr;
    const int cnt = static_cast<int>(std::min<int64_t>(nr, out_size - p0));
    if (!rows) {  // pointwise: op(B)[c][pixel] = X[c][pixel]
      if (cnt == nr) {  // whole panel: interleaved straight from X's rows, flipped on the way
        QPackBPanelFromRows(isa, kdim, n_pack, pad, q - q_base,
                            reinterpret_cast<const int8_t*>(x + p0), dst, out_size, kFlip);
        continue;
      }
      for (int64_t kk = 0; kk < kdim; ++kk) {
        int8_t* d = tmp.data() + kk * nr;
        const T* xr = x + kk * out_size + p0;
        for (int t = 0; t < cnt; ++t) d[t] = static_cast<int8_t>(static_cast<uint8_t>(xr[t]) ^ kFlip);
        for (int t = cnt; t < nr; ++t) d[t] = 0;
      }
      QPackBPanelFromRows(isa, kdim, n_pack, pad, q - q_base, tmp.data(), dst);
      continue;
    }
    // Split the panel's pixels into runs on one output row: within a run each tap reads a
    // strided run of one input row, so only the run's ends need bounds checks.
    int nseg = 0;
    {
      int64_t ow = p0 % g.out[2], oh = (p0 / g.out[2]) % g.out[1], od = p0 / (g.out[2] * g.out[1]);
      for (int t = 0; t < cnt; ++nseg) {
        const int len = static_cast<int>(std::min<int64_t>(cnt - t, g.out[2] - ow));
        seg_t[nseg] = t;
        seg_n[nseg] = len;
        bd[nseg] = od * g.stride[0] - g.pad_b[0];
        bh[nseg] = oh * g.stride[1] - g.pad_b[1];
        bw[nseg] = ow * g.stride[2] - g.pad_b[2];
        t += len;
        ow += len;
        if (ow == g.out[2]) {
          ow = 0;
          if (++oh == g.out[1]) {
            oh = 0;
            ++od;
          }
        }
      }
    }
    const int64_t sw = g.stride[2];
#if defined(__x86_64__)
    if ((sw == 1 || sw == 2) && nr == 32 && isa != Isa::kAvx2 && nseg <= TapRuns::kMaxSeg) {
      // (the others have AVX-512BW) Rows kk < taps are channel 0's taps; channel c's rows
      // read the same offsets in plane c.
      const int64_t taps = g.k_size();
      thread_local std::vector<TapRuns> runs;
      if (runs.size() < static_cast<size_t>(taps)) runs.resize(static_cast<size_t>(taps));
      const int sh = sw == 2 ? 1 : 0;
      for (int64_t t = 0; t < taps; ++t) {
        TapRuns& r = runs[static_cast<size_t>(t)];
        r.nseg = 0;
        r.any = 0;
        for (int sgi = 0; sgi < nseg; ++sgi) {
          const int64_t id = bd[sgi] + rows->d_off[t], ih = bh[sgi] + rows->h_off[t];
          if (static_cast<uint64_t>(id) >= in_d || static_cast<uint64_t>(ih) >= in_h) continue;
          const int64_t w0 = bw[sgi] + rows->w_off[t];
          // Taps i with 0 <= w0 + i * sw < in_w (sw is 1 or 2: shifts, no division).
          const int64_t lo = std::min<int64_t>(seg_n[sgi], w0 >= 0 ? 0 : (-w0 + sw - 1) >> sh);
          const int64_t lim = static_cast<int64_t>(in_w) - 1 - w0;
          const int64_t hi = std::max(lo, lim < 0 ? 0 : std::min<int64_t>(seg_n[sgi], (lim >> sh) + 1));
          const int64_t n = hi - lo;
          if (n <= 0) continue;
          const int64_t first = seg_t[sgi] + lo;
          const uint32_t lanes = static_cast<uint32_t>(((n >= 32 ? ~uint64_t{0} : (uint64_t{1} << n) - 1)) << first);
          const uint64_t span = n >= 32 ? ~uint64_t{0} : (uint64_t{1} << (2 * n)) - 1;
          const int k = r.nseg++;
          r.lanes[k] = lanes;
          r.bytes[k] = 0x5555555555555555ull & (span << (2 * first));
          r.off[k] = ((id * g.in[1] + ih) * g.in[2] + w0 - seg_t[sgi] * sw) *
                     static_cast<int64_t>(sizeof(T));
          r.any |= lanes;
        }
      }
      Im2ColPanel32Avx512(reinterpret_cast<const uint8_t*>(x), g.in_size() * static_cast<int64_t>(sizeof(T)),
                          g.cg, runs.data(), taps, sw, pad, kFlip, cnt, tmp.data());
      QPackBPanelFromRows(isa, kdim, n_pack, pad, q - q_base, tmp.data(), dst);
      continue;
    }
#endif
    for (int64_t kk = 0; kk < kdim; ++kk) {
      int8_t* row = tmp.data() + kk * nr;
      for (int sgi = 0; sgi < nseg; ++sgi) {
        int8_t* d = row + seg_t[sgi];
        const int64_t n_t = seg_n[sgi];
        int64_t t_lo = n_t, t_hi = n_t;
        const int64_t id = bd[sgi] + rows->d_off[kk], ih = bh[sgi] + rows->h_off[kk];
        const int64_t w0 = bw[sgi] + rows->w_off[kk];
        if (static_cast<uint64_t>(id) < in_d && static_cast<uint64_t>(ih) < in_h) {
          // Taps t with 0 <= w0 + t * sw < in_w (no division in the common stride 1).
          const int64_t lim = static_cast<int64_t>(in_w) - 1 - w0;
          if (sw == 1) {
            t_lo = std::min<int64_t>(n_t, std::max<int64_t>(0, -w0));
            t_hi = std::max(t_lo, std::min<int64_t>(n_t, lim + 1));
          } else {
            t_lo = std::min<int64_t>(n_t, w0 >= 0 ? 0 : (-w0 + sw - 1) / sw);
            t_hi = std::max(t_lo, lim < 0 ? 0 : std::min<int64_t>(n_t, lim / sw + 1));
          }
        }
        for (int64_t t = 0; t < t_lo; ++t) d[t] = pad;
        if (t_hi > t_lo) {
          const T* xr = x + rows->c_off[kk] + (id * g.in[1] + ih) * g.in[2] + w0;
          if (sw == 1)
            for (int64_t t = t_lo; t < t_hi; ++t)
              d[t] = static_cast<int8_t>(static_cast<uint8_t>(xr[t]) ^ kFlip);
          else
            for (int64_t t = t_lo; t < t_hi; ++t)
              d[t] = static_cast<int8_t>(static_cast<uint8_t>(xr[t * sw]) ^ kFlip);
        }
        for (int64_t t = t_hi; t < n_t; ++t) d[t] = pad;
      }
      for (int t = cnt; t < nr; ++t) row[t] = 0;
    }
    QPackBPanelFromRows(isa, kdim, n_pack, pad, q - q_base, tmp.data(), dst);
  }
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

enum class Mode { kConvInteger, kQLinearConv };

template <Isa kIsa, Mode kMode>
class QConvKernel : public Kernel {
 public:
  explicit QConvKernel(const KernelInit& init) : attrs_(ConvAttrs::Read(init.node)) {
    const ir::Node& node = init.node;
    act_ = qutil::ReadActivation(node);
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
    if (wz && (wz->dtype() != w->dtype() || (wz->numel() != 1 && static_cast<int64_t>(wz->numel()) != m)))
      return;
    w_zp_ = wz ? qutil::ZeroPoints(node, wz, wz->numel()) : std::vector<int32_t>{0};
    const int64_t mg = m / attrs_.group, kdim = static_cast<int64_t>(w->numel()) / m;
    if (w->shape()[1] == 1 && mg == 1 && w->rank() <= 4) {
      dw_w_.resize(w->numel());
      for (int64_t o = 0; o < m; ++o)
        for (int64_t i = 0; i < kdim; ++i) {
          const int32_t z = w_zp_[w_zp_.size() > 1 ? o : 0];
          const int32_t v = w->dtype() == ir::DType::kInt8 ? w->data<int8_t>()[o * kdim + i]
                                                          : w->data<uint8_t>()[o * kdim + i];
          dw_w_[static_cast<size_t>(o * kdim + i)] = static_cast<int16_t>(v - z);
        }
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
      variant_ = blocks ? "depthwise avx512vnni_block16 (padded plane <= 128x128, else " + name + ")"
                        : "depthwise " + name;
    } else {
      for (int64_t gi = 0; gi < attrs_.group; ++gi) {
        QSource src{static_cast<const uint8_t*>(w->raw()) + gi * mg * kdim, w->dtype(), kdim, false,
                    w_zp_.data() + (w_zp_.size() > 1 ? gi * mg : 0), w_zp_.size() > 1};
        packed_w_.push_back(QPackA(kIsa, mg, kdim, src));
      }
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
    const int32_t x_zp = qutil::OneZeroPoint(node, Opt(ctx, 2), x.dtype(), "x_zero_point");
    const ir::Tensor* wz = Opt(ctx, WZpIndex());
    if (wz && wz->dtype() != w.dtype())
      ThrowInvalid(node.describe() + ": w_zero_point dtype differs from w");
    if (wz && wz->numel() != 1 && static_cast<int64_t>(wz->numel()) != g.m)
      ThrowInvalid(node.describe() + ": w_zero_point has " + std::to_string(wz->numel()) +
                   " values, expected 1 or " + std::to_string(g.m));
    const std::vector<int32_t> w_zp = wz ? qutil::ZeroPoints(node, wz, wz->numel())
                                         : std::vector<int32_t>{0};

    QOutput out;
    out.per_row = true;
    ir::DType out_dtype = ir::DType::kInt32;
    std::vector<float> multiplier;
    if (kMode == Mode::kQLinearConv) {
      const std::vector<float> xs = qutil::ScalesOf(node, Opt(ctx, 1), 1, "x_scale");
      const std::vector<float> ws = qutil::ScalesOf(node, Opt(ctx, 4), g.m, "w_scale");
      const ir::Tensor* ys_t = Opt(ctx, 6);
      const ir::Tensor* yz = Opt(ctx, 7);
      const ir::Tensor* b = Opt(ctx, 8);
      const float ys = ys_t ? qutil::ScalesOf(node, ys_t, 1, "y_scale")[0] : 1.f;
      multiplier.resize(ws.size());
      for (size_t i = 0; i < ws.size(); ++i)
        multiplier[i] = ys_t ? xs[0] * ws[i] / ys : xs[0] * ws[i];
      out.scale = multiplier.data();
      out.per_channel_scale = multiplier.size() > 1;
      out.lo = act_.lo;
      out.hi = act_.hi;
      if (ys_t) {
        out_dtype = yz ? yz->dtype() : ir::DType::kUInt8;
        if (out_dtype != ir::DType::kUInt8 && out_dtype != ir::DType::kInt8)
          ThrowUnsupported(node.describe() + ": y_zero_point dtype " + ir::DTypeName(out_dtype) +
                           " is not supported");
        if (yz && yz->numel() != 1)
          ThrowUnsupported(node.describe() + ": y_zero_point must be per-tensor");
        out.kind = out_dtype == ir::DType::kInt8 ? QOutput::Kind::kInt8 : QOutput::Kind::kUInt8;
        out.zero_point = qutil::ZeroPoints(node, yz, 1)[0];
        out.q_lo = qutil::QuantizeBound(act_.lo, ys, out.zero_point);
        out.q_hi = qutil::QuantizeBound(act_.hi, ys, out.zero_point);
      } else {
        if (node.domain() != "edgepress")
          ThrowInvalid(node.describe() + ": missing y_scale");
        out_dtype = ir::DType::kFloat32;
        out.kind = QOutput::Kind::kFloat;
      }
      if (b) {
        if (b->dtype() != ir::DType::kInt32 || b->rank() != 1 || b->shape()[0] != g.m)
          ThrowInvalid(node.describe() + ": bias B must be int32 of shape [" +
                       std::to_string(g.m) + "], got " + ir::DTypeName(b->dtype()) +
                       DimsToString(b->shape()));
        out.bias = b->data<int32_t>();
      }
    }
    ir::Tensor& y = ctx.AllocateOutput(0, out_dtype, g.OutputShape());
    if (y.numel() == 0) return;
    const int64_t elem = out_dtype == ir::DType::kUInt8 || out_dtype == ir::DType::kInt8 ? 1 : 4;
    const bool use_packed =
        !packed_shape_.empty() && w.shape() == packed_shape_ && w.dtype() == packed_dtype_ && w_zp == w_zp_;
    const int64_t in_size = g.in_size(), out_size = g.out_size();
    ThreadPool& pool = ctx.pool();

    if (g.cg == 1 && g.mg == 1 && g.rank <= 2) {
      std::vector<int16_t> local_w;
      const int16_t* wd = use_packed && !dw_w_.empty() ? dw_w_.data() : nullptr;
      const int64_t ks = g.k_size();
      if (!wd) {
        local_w.resize(w.numel());
        for (int64_t o = 0; o < g.m; ++o)
          for (int64_t i = 0; i < ks; ++i) {
            const int32_t z = w_zp[w_zp.size() > 1 ? o : 0];
            const int32_t v = w.dtype() == ir::DType::kInt8 ? w.data<int8_t>()[o * ks + i]
                                                           : w.data<uint8_t>()[o * ks + i];
            local_w[static_cast<size_t>(o * ks + i)] = static_cast<int16_t>(v - z);
          }
        wd = local_w.data();
      }
      const qdw::Geometry dg = DwGeometry(g);
      const bool s8 = x.dtype() == ir::DType::kInt8;
      // Small planes: blocks of 16 channels a call (qdepthwise.h, channel blocks), each
      // thread's run of blocks within one image as one call (its padded plane set up once).
      qdw::Block blk{&dg, x.raw(), s8, x_zp, wd, &out, 0, g.m, y.mutable_raw()};
      if (qdw::BlockHandles(kIsa, blk)) {
        const int64_t nb = (g.m + 15) / 16;
        pool.ParallelFor(g.n * nb, 1, [&](int64_t lo, int64_t hi) {
          for (int64_t t = lo; t < hi;) {
            const int64_t n = t / nb, b0 = t % nb, b1 = std::min(nb, b0 + (hi - t));
            qdw::Block b = blk;
            b.x = static_cast<const uint8_t*>(x.raw()) + (n * g.c + b0 * 16) * in_size;
            b.w = wd + b0 * 16 * ks;
            b.channel0 = b0 * 16;
            b.channels = std::min(g.m, b1 * 16) - b0 * 16;
            b.y = static_cast<uint8_t*>(y.mutable_raw()) + (n * g.m + b0 * 16) * out_size * elem;
            qdw::RunBlock(kIsa, b);
            t += b1 - b0;
          }
        });
        return;
      }
      pool.ParallelFor(g.n * g.m, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t t = lo; t < hi; ++t) {
          const int64_t m = t % g.m;
          qdw::Plane p{&dg, static_cast<const uint8_t*>(x.raw()) + (t / g.m * g.c + m) * in_size,
                       s8, x_zp, wd + m * ks, &out, m,
                       static_cast<uint8_t*>(y.mutable_raw()) + t * out_size * elem};
          qdw::RunPlane(kIsa, p);
        }
      });
      return;
    }

    const int64_t kdim = g.cg * g.k_size();
    const bool pointwise = g.k_size() == 1 && g.stride[0] == 1 && g.stride[1] == 1 &&
                           g.stride[2] == 1 && g.pad_b[0] == 0 && g.pad_b[1] == 0 &&
                           g.pad_b[2] == 0 && out_size == in_size;
    const int nr = QGemmNr(kIsa);
    const bool bytes = QGemmBytes(kIsa);
    const Im2ColRows rows(pointwise ? ConvGeometry{} : g);
    const int64_t panels = (out_size + nr - 1) / nr;
    // Byte layouts: chunks of panels whose packed columns stay in L2 (~256 KiB), each
    // written and multiplied by the same thread right away, instead of the whole column
    // matrix (5.5 MB for a 96-channel 3x3 conv on 80x80) going through memory between the
    // two. Used when the chunks alone keep every thread busy. With several threads there
    // are also at least 4 chunks a thread (as panels allow): mobilenet's 112x112 and 56x56
    // convs fit one or two L2 chunks, and unfused they wrote and re-read the whole column
    // matrix and paid a second pool dispatch. Chunk c is then panels [c P / C,
    // (c + 1) P / C): sizes differ by at most one panel, so two threads get equal shares
    // (one thread keeps whole L2 chunks and a short last one).
    const int threads = pool.num_threads();
    const int64_t l2_chunk = std::max<int64_t>(1, (256 << 10) / std::max<int64_t>(1, kdim * nr));
    int64_t nchunks = (panels + l2_chunk - 1) / l2_chunk;
    if (threads > 1) nchunks = std::max(nchunks, std::min<int64_t>(4 * threads, panels));
    const bool fused = bytes && (threads == 1 || nchunks >= 2 * threads);
    // Few panels (14x14: 7 of 32 pixels) do not divide among the threads (4 + 3 at two),
    // and at 20-40 us a conv each chunk claimed costs: then the rows are split instead,
    // one part a thread, each packing all the columns itself. Only with at least 4
    // 32-row tiles (AMX's) a thread: the expand convs (64->384, 96->576) gained 12-16%
    // at 2 threads, the projections (384->64) lost 25%, their repacked K = 384 columns
    // costing as much as the 2 row tiles' GEMM, and 96 rows would split 1 + 2 tiles.
    const int64_t row_tiles = (g.mg + 31) / 32;
    const int64_t mparts = fused && threads > 1 && nchunks < 4 * threads &&
                                   nchunks % threads != 0 && row_tiles >= 4 * threads
                               ? threads
                               : 1;
    if (mparts > 1) nchunks = 1;
    const int64_t chunk = threads > 1 ? (panels + nchunks - 1) / nchunks : l2_chunk;  // largest
    auto chunk_begin = [&](int64_t c) {
      return threads > 1 ? c * panels / nchunks : std::min(panels, c * l2_chunk);
    };
    thread_local std::vector<int16_t> col;
    const int64_t need = fused ? 0 : QPackedBSize(kIsa, kdim, out_size);
    if (col.size() < static_cast<size_t>(need)) col.resize(static_cast<size_t>(need));
    std::vector<QPacked> local_w;
    if (!use_packed) {
      for (int64_t gi = 0; gi < g.group; ++gi) {
        QSource src{static_cast<const uint8_t*>(w.raw()) + gi * g.mg * kdim, w.dtype(), kdim,
                    false, w_zp.data() + (w_zp.size() > 1 ? gi * g.mg : 0), w_zp.size() > 1};
        local_w.push_back(QPackA(kIsa, g.mg, kdim, src));
      }
    }
    const std::vector<QPacked>& pw = use_packed ? packed_w_ : local_w;
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
        if (bytes) {
          const bool s8 = x.dtype() == ir::DType::kInt8;
          const int32_t zp8 = s8 ? x_zp : x_zp - 128;  // B is int8: uint8 x is stored x - 128
          const Im2ColRows* r = pointwise ? nullptr : &rows;
          auto im2col = [&](int64_t lo, int64_t hi, int16_t* d, int64_t q_base, int64_t n_pack) {
            if (s8)
              QIm2ColBytes(kIsa, g, r, reinterpret_cast<const int8_t*>(xg),
                           static_cast<int8_t>(zp8), kdim, lo, hi, nr, d, q_base, n_pack);
            else
              QIm2ColBytes(kIsa, g, r, xg, static_cast<int8_t>(zp8), kdim, lo, hi, nr, d, q_base,
                           n_pack);
          };
          if (fused) {
            pool.ParallelFor(nchunks * mparts, 1, [&](int64_t t0, int64_t t1) {
              thread_local std::vector<int16_t> buf;
              const int64_t bneed = QPackedBSize(kIsa, kdim, chunk * nr);
              if (buf.size() < static_cast<size_t>(bneed)) buf.resize(static_cast<size_t>(bneed));
              for (int64_t t = t0; t < t1; ++t) {
                const int64_t c = t / mparts;
                const int64_t q0 = chunk_begin(c), q1 = chunk_begin(c + 1);
                const int64_t n0 = q0 * nr, nc = std::min(out_size, q1 * nr) - n0;
                im2col(q0, q1, buf.data(), q0, nc);
                QOutput oc = o;
                oc.data = static_cast<uint8_t*>(o.data) + n0 * elem;
                QGemm(kIsa, g.mg, nc, kdim, QOperand::Of(wg), QOperand{buf.data(), kIsa, nc, kdim},
                      oc, nullptr, static_cast<int>(t % mparts), static_cast<int>(mparts));
              }
            });
            continue;
          }
          pool.ParallelFor(panels, grain, [&](int64_t lo, int64_t hi) {
            im2col(lo, hi, dst, 0, out_size);
          });
        } else if (pointwise) {
          QSource src{xg, x.dtype(), in_size, false, &x_zp, false};
          // op(B)[k][j] = X[c=k][pixel j]: B is X itself, row-major [C, pixels].
          pool.ParallelFor(panels, grain, [&](int64_t lo, int64_t hi) {
            QPackBPanels(kIsa, kdim, out_size, src, lo, hi, dst);
          });
        } else {
          pool.ParallelFor(panels, grain, [&](int64_t lo, int64_t hi) {
            if (x.dtype() == ir::DType::kInt8)
              QIm2ColPanels(g, rows, reinterpret_cast<const int8_t*>(xg), x_zp, lo, hi, nr, dst);
            else
              QIm2ColPanels(g, rows, xg, x_zp, lo, hi, nr, dst);
          });
        }
        QGemm(kIsa, g.mg, out_size, kdim, QOperand::Of(wg), QOperand{dst, kIsa, out_size, kdim}, o,
              &pool);
      }
    }
  }

 private:
  ConvAttrs attrs_;
  qutil::Activation act_;
  std::vector<QPacked> packed_w_;
  std::vector<int16_t> dw_w_;
  std::string variant_;
  std::vector<int64_t> packed_shape_;
  ir::DType packed_dtype_ = ir::DType::kUndefined;
  std::vector<int32_t> w_zp_;
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
  r.Add({"QLinearConv", "edgepress", DType::kUndefined, Isa::kAvx2,
         "q8_ep_qlinearconv__avx2_6x16", Create<Isa::kAvx2, Mode::kQLinearConv>});
  r.Add({"ConvInteger", "", DType::kUndefined, Isa::kAvx512, "q8_convinteger__avx512_6x32",
         Create<Isa::kAvx512, Mode::kConvInteger>});
  r.Add({"QLinearConv", "", DType::kUndefined, Isa::kAvx512, "q8_qlinearconv__avx512_6x32",
         Create<Isa::kAvx512, Mode::kQLinearConv>});
  r.Add({"QLinearConv", "edgepress", DType::kUndefined, Isa::kAvx512,
         "q8_ep_qlinearconv__avx512_6x32", Create<Isa::kAvx512, Mode::kQLinearConv>});
  r.Add({"ConvInteger", "", DType::kUndefined, Isa::kAvx512Vnni,
         "q8_convinteger__avx512vnni_8x32", Create<Isa::kAvx512Vnni, Mode::kConvInteger>});
  r.Add({"QLinearConv", "", DType::kUndefined, Isa::kAvx512Vnni,
         "q8_qlinearconv__avx512vnni_8x32", Create<Isa::kAvx512Vnni, Mode::kQLinearConv>});
  r.Add({"QLinearConv", "edgepress", DType::kUndefined, Isa::kAvx512Vnni,
         "q8_ep_qlinearconv__avx512vnni_8x32", Create<Isa::kAvx512Vnni, Mode::kQLinearConv>});
  r.Add({"ConvInteger", "", DType::kUndefined, Isa::kAmx, "q8_convinteger__amx_32x32",
         Create<Isa::kAmx, Mode::kConvInteger>});
  r.Add({"QLinearConv", "", DType::kUndefined, Isa::kAmx, "q8_qlinearconv__amx_32x32",
         Create<Isa::kAmx, Mode::kQLinearConv>});
  r.Add({"QLinearConv", "edgepress", DType::kUndefined, Isa::kAmx,
         "q8_ep_qlinearconv__amx_32x32", Create<Isa::kAmx, Mode::kQLinearConv>});
#endif
}

}  // namespace edgepress::runtime
