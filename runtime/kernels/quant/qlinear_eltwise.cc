// Quantized element-wise and pooling ops that fuse-qdq emits (onnxruntime contrib ops):
//   com.microsoft QLinearAdd  A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp -> C
//       c = saturate(round((a - za) * (sa / sc) + (b - zb) * (sb / sc)) + zc), numpy
//       broadcasting; edgepress QLinearAdd adds `activation` (Relu/Clip, docs/ops.md).
//   com.microsoft QLinearMul  (same inputs)
//       c = saturate(round((a - za) * (b - zb) * (sa * sb / sc)) + zc); a squeeze-excite
//       gate (one value per trailing block) has its own loop without an index array.
//   com.microsoft QLinearGlobalAveragePool  X, x_scale, x_zp, y_scale, y_zp (NCHW,
//       channels_last = 0): y = saturate(round(sum(x - zx) * x_scale / (y_scale * HW)) + zy)
// Per-tensor parameters only. The scalar loops here are the reference; same-shape Adds and
// Muls and the squeeze-excite gate run the AVX2 / AVX-512 loops of qlinear_eltwise_simd.h.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "ir/error.h"
#include "runtime/kernel.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/gemm/gemm_op_util.h"
#include "runtime/kernels/quant/qlinear_eltwise_simd.h"
#include "runtime/kernels/quant/quantize_util.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {

namespace {

using gemm_util::DimsToString;

const ir::Tensor& Need(KernelContext& ctx, size_t i, const char* what) {
  const ir::Tensor* t = ctx.input(i);
  if (!t || t->empty())
    ThrowInvalid(ctx.node().describe() + ": missing input " + std::to_string(i) + " (" + what +
                 ")");
  return *t;
}

float OneScale(KernelContext& ctx, size_t i, const char* what) {
  const ir::Tensor& t = Need(ctx, i, what);
  if (t.numel() != 1)
    ThrowUnsupported(ctx.node().describe() + ": " + what + " must be per-tensor");
  return qutil::Scales(ctx.node(), t)[0];
}

int32_t OneZp(KernelContext& ctx, size_t i, ir::DType want, const char* what) {
  const ir::Tensor* t = ctx.input(i);
  if (!t || t->empty()) return 0;
  if (t->numel() != 1 || t->dtype() != want)
    ThrowInvalid(ctx.node().describe() + ": " + what + " must be one " + ir::DTypeName(want) +
                 " value");
  return qutil::ZeroPoints(ctx.node(), t, 1)[0];
}

const ir::Tensor& Q8(KernelContext& ctx, size_t i, const char* what) {
  const ir::Tensor& t = Need(ctx, i, what);
  if (t.dtype() != ir::DType::kUInt8 && t.dtype() != ir::DType::kInt8)
    ThrowUnsupported(ctx.node().describe() + ": " + what + " has dtype " +
                     ir::DTypeName(t.dtype()) + ", expected uint8 or int8");
  return t;
}

// Round half to even of a value the caller clamps to the int32 result range anyway: the
// 1.5 * 2^23 trick (exact for |v| < 2^22 under the default rounding mode). std::nearbyint
// is a libm call on baseline x86-64 (no SSE4.1 roundss), which cost more than the loop.
inline float RoundEven(float v) {
  v = std::min(std::max(v, -4194304.f), 4194304.f);
  return (v + 12582912.f) - 12582912.f;
}

// c = saturate(round(f(a, b)) + zc) clamped to [lo, hi], where f is the real-valued Add
// ((a - za) * ra + (b - zb) * rb, ra = sa / sc, rb = sb / sc) or Mul ((a - za) * (b - zb)
// * ra, ra = sa * sb / sc). An operand is read through `ai`/`bi` (broadcast indices), or
// element i directly when those are empty.
template <bool kMul, typename T>
void BinaryLoop(const T* a, const T* b, T* c, int64_t n, const int64_t* ai, const int64_t* bi,
                float ra, float rb, int32_t za, int32_t zb, int32_t zc, int32_t lo, int32_t hi) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t qa = static_cast<int32_t>(a[ai ? ai[i] : i]) - za;
    const int32_t qb = static_cast<int32_t>(b[bi ? bi[i] : i]) - zb;
    const float v = kMul ? static_cast<float>(qa * qb) * ra
                         : static_cast<float>(qa) * ra + static_cast<float>(qb) * rb;
    int32_t q = static_cast<int32_t>(RoundEven(v)) + zc;
    c[i] = static_cast<T>(std::min(std::max(q, lo), hi));
  }
}

// Mul where `b` is one value per block of `inner` consecutive outputs (a squeeze-excite
// gate [N, C, 1, 1] times [N, C, H, W]): no index array, the gate is read once per block.
template <typename T>
void MulBlocks(const T* a, const T* b, T* c, int64_t first_block, int64_t blocks, int64_t inner,
               float r, int32_t za, int32_t zb, int32_t zc, int32_t lo, int32_t hi) {
  for (int64_t blk = first_block; blk < first_block + blocks; ++blk) {
    const float rg = static_cast<float>(static_cast<int32_t>(b[blk]) - zb) * r;
    const T* ap = a + blk * inner;
    T* cp = c + blk * inner;
    for (int64_t i = 0; i < inner; ++i) {
      const float v = static_cast<float>(static_cast<int32_t>(ap[i]) - za) * rg;
      const int32_t q = static_cast<int32_t>(RoundEven(v)) + zc;
      cp[i] = static_cast<T>(std::min(std::max(q, lo), hi));
    }
  }
}

// When `in` (right-aligned against `out`) equals out on its leading dims and is 1 on all
// the others, the size of the trailing block one element of `in` covers; else 0.
int64_t BlockBroadcast(const std::vector<int64_t>& in, const std::vector<int64_t>& out) {
  std::vector<int64_t> p(out.size() - in.size(), 1);  // `in` padded to out's rank
  p.insert(p.end(), in.begin(), in.end());
  size_t k = 0;
  while (k < out.size() && p[k] == out[k]) ++k;
  int64_t inner = 1;
  for (size_t i = k; i < out.size(); ++i) {
    if (p[i] != 1) return 0;
    inner *= out[i];
  }
  return inner;
}

// Flat source index of every output element under numpy broadcasting (empty: identity).
std::vector<int64_t> BroadcastIndex(const std::vector<int64_t>& in, const std::vector<int64_t>& out) {
  if (in == out) return {};
  return gemm_util::BatchIndices(in, out);
}

// com.microsoft QLinearAdd / QLinearMul (and edgepress QLinearAdd with an activation).
template <bool kMul>
class QLinearBinaryKernel : public Kernel {
 public:
  QLinearBinaryKernel(const KernelInit& init, Isa isa)
      : act_(qutil::ReadActivation(init.node)), isa_(isa) {}

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor& a = Q8(ctx, 0, "A");
    const ir::Tensor& b = Q8(ctx, 3, "B");
    if (a.dtype() != b.dtype())
      ThrowInvalid(node.describe() + ": A and B have different dtypes");
    const float sa = OneScale(ctx, 1, "A_scale"), sb = OneScale(ctx, 4, "B_scale");
    const float sc = OneScale(ctx, 6, "C_scale");
    const int32_t za = OneZp(ctx, 2, a.dtype(), "A_zero_point");
    const int32_t zb = OneZp(ctx, 5, b.dtype(), "B_zero_point");
    const int32_t zc = OneZp(ctx, 7, a.dtype(), "C_zero_point");
    const std::vector<int64_t>& as = a.shape();
    const std::vector<int64_t>& bs = b.shape();
    const std::vector<int64_t> out = gemm_util::BroadcastBatch(node, as, bs, "shapes");
    ir::Tensor& c = ctx.AllocateOutput(0, a.dtype(), out);
    const int64_t n = static_cast<int64_t>(c.numel());
    if (n == 0) return;
    const bool u8 = a.dtype() == ir::DType::kUInt8;
    const int32_t qmin = u8 ? 0 : -128, qmax = u8 ? 255 : 127;
    const int32_t lo = std::max(qmin, qutil::QuantizeBound(act_.lo, sc, zc));
    const int32_t hi = std::min(qmax, qutil::QuantizeBound(act_.hi, sc, zc));
    const float ra = kMul ? sa * sb / sc : sa / sc, rb = sb / sc;
    if (u8)
      Compute(ctx, a.data<uint8_t>(), b.data<uint8_t>(), c.mutable_data<uint8_t>(), as, bs, out,
              n, ra, rb, za, zb, zc, lo, hi);
    else
      Compute(ctx, a.data<int8_t>(), b.data<int8_t>(), c.mutable_data<int8_t>(), as, bs, out, n,
              ra, rb, za, zb, zc, lo, hi);
  }

 private:
  template <typename T>
  void Compute(KernelContext& ctx, const T* ap, const T* bp, T* cp, const std::vector<int64_t>& as,
               const std::vector<int64_t>& bs, const std::vector<int64_t>& out, int64_t n,
               float ra, float rb, int32_t za, int32_t zb, int32_t zc, int32_t lo, int32_t hi) {
    const qeltwise::Loops<T> simd = qeltwise::LoopsFor<T>(isa_);
    const bool same = as == out && bs == out;
    if (kMul) {
      // The gate of a squeeze-excite block: one operand full, the other one value per block.
      const bool a_full = as == out, b_full = bs == out;
      const int64_t b_inner = a_full && !b_full ? BlockBroadcast(bs, out) : 0;
      const int64_t a_inner = b_full && !a_full ? BlockBroadcast(as, out) : 0;
      if (b_inner > 0 || a_inner > 0) {
        const T* full = b_inner > 0 ? ap : bp;
        const T* gate = b_inner > 0 ? bp : ap;
        const int32_t zf = b_inner > 0 ? za : zb, zg = b_inner > 0 ? zb : za;
        const int64_t inner = b_inner > 0 ? b_inner : a_inner, blocks = n / inner;
        ctx.pool().ParallelFor(blocks, std::max<int64_t>(1, 16384 / inner), [&](int64_t s, int64_t e) {
          if (!simd.mul) return MulBlocks(full, gate, cp, s, e - s, inner, ra, zf, zg, zc, lo, hi);
          for (int64_t blk = s; blk < e; ++blk)
            simd.mul(full + blk * inner, static_cast<const T*>(nullptr),
                     static_cast<float>(static_cast<int32_t>(gate[blk]) - zg) * ra, ra,
                     cp + blk * inner, inner, zf, 0, zc, lo, hi);
        });
        return;
      }
      if (simd.mul && same) {
        ctx.pool().ParallelFor(n, 16384, [&](int64_t s, int64_t e) {
          simd.mul(ap + s, bp + s, 0.f, ra, cp + s, e - s, za, zb, zc, lo, hi);
        });
        return;
      }
    }
    if (!kMul && simd.add && same) {  // same shapes: residual Adds
      ctx.pool().ParallelFor(n, 16384, [&](int64_t s, int64_t e) {
        simd.add(ap + s, bp + s, cp + s, e - s, ra, rb, za, zb, zc, lo, hi);
      });
      return;
    }
    const std::vector<int64_t> ai = BroadcastIndex(as, out), bi = BroadcastIndex(bs, out);
    ctx.pool().ParallelFor(n, 16384, [&](int64_t s, int64_t e) {
      BinaryLoop<kMul>(ai.empty() ? ap + s : ap, bi.empty() ? bp + s : bp, cp + s, e - s,
                       ai.empty() ? nullptr : ai.data() + s, bi.empty() ? nullptr : bi.data() + s,
                       ra, rb, za, zb, zc, lo, hi);
    });
  }

  qutil::Activation act_;
  Isa isa_;
};

class QLinearGapKernel : public Kernel {
 public:
  QLinearGapKernel(const KernelInit& init, Isa isa) : isa_(isa) {
    if (init.node.attr_int("channels_last", 0) != 0)
      ThrowUnsupported(init.node.describe() + ": channels_last=1 is not supported");
  }

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = Q8(ctx, 0, "X");
    if (x.rank() < 3)
      ThrowInvalid(node.describe() + ": X of shape " + DimsToString(x.shape()) +
                   " is not N x C x spatial");
    const float xs = OneScale(ctx, 1, "x_scale"), ys = OneScale(ctx, 3, "y_scale");
    const int32_t zx = OneZp(ctx, 2, x.dtype(), "x_zero_point");
    const int32_t zy = OneZp(ctx, 4, x.dtype(), "y_zero_point");
    std::vector<int64_t> out = {x.shape()[0], x.shape()[1]};
    int64_t hw = 1;
    for (int i = 2; i < x.rank(); ++i) {
      out.push_back(1);
      hw *= x.shape()[static_cast<size_t>(i)];
    }
    ir::Tensor& y = ctx.AllocateOutput(0, x.dtype(), out);
    const int64_t planes = out[0] * out[1];
    if (planes == 0 || hw == 0) return;
    const float mult = xs / (ys * static_cast<float>(hw));
    const bool u8 = x.dtype() == ir::DType::kUInt8;
    // A plane's sum, exact on every path.
    auto plane_sum = [&](int64_t p) -> int64_t {
      const uint8_t* xp = static_cast<const uint8_t*>(x.raw()) + p * hw;
#if defined(__x86_64__)
      if (isa_ == Isa::kAvx2) return qeltwise::SumAvx2(xp, hw, !u8);
#endif
      int64_t s = 0;
      if (u8)
        for (int64_t i = 0; i < hw; ++i) s += xp[i];
      else
        for (int64_t i = 0; i < hw; ++i) s += static_cast<int8_t>(xp[i]);
      return s;
    };
    auto planes_range = [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t s = plane_sum(p);
        const float v = static_cast<float>(s - static_cast<int64_t>(zx) * hw) * mult;
        if (u8)
          y.mutable_data<uint8_t>()[p] = qutil::Saturate<uint8_t>(v, zy);
        else
          y.mutable_data<int8_t>()[p] = qutil::Saturate<int8_t>(v, zy);
      }
    };
    // One contiguous share of planes a thread once there are 16 KiB of input: mobilenet_v2's
    // 1280 planes of 7x7 took 14 us on one thread while the other waited.
    const int64_t threads =
        std::min<int64_t>(ctx.pool().num_threads(), std::max<int64_t>(1, planes * hw / 16384));
    if (threads <= 1 || planes < threads) return planes_range(0, planes);
    ctx.pool().ParallelFor(threads, 1, [&](int64_t t0, int64_t t1) {
      planes_range(t0 * planes / threads, t1 * planes / threads);
    });
  }

 private:
  Isa isa_;
};

template <Isa kIsa>
std::unique_ptr<Kernel> CreateGap(const KernelInit& init) {
  return std::make_unique<QLinearGapKernel>(init, kIsa);
}

template <bool kMul, Isa kIsa>
std::unique_ptr<Kernel> CreateBinary(const KernelInit& init) {
  return std::make_unique<QLinearBinaryKernel<kMul>>(init, kIsa);
}

}  // namespace

// The binary ops' table: one row per (op, domain, ISA), each running that ISA's loops of
// qlinear_eltwise_simd.h (none for the reference).
void RegisterQLinearEltwiseKernels(KernelRegistry& r) {
  using ir::DType;
  static const KernelDef kBinary[] = {
      {"QLinearAdd", "com.microsoft", DType::kUndefined, Isa::kScalar, "q8_ms_qlinearadd__ref",
       CreateBinary<false, Isa::kScalar>},
      {"QLinearAdd", "edgepress", DType::kUndefined, Isa::kScalar, "q8_qlinearadd__ref",
       CreateBinary<false, Isa::kScalar>},
      {"QLinearMul", "com.microsoft", DType::kUndefined, Isa::kScalar, "q8_ms_qlinearmul__ref",
       CreateBinary<true, Isa::kScalar>},
#if defined(__x86_64__)
      {"QLinearAdd", "com.microsoft", DType::kUndefined, Isa::kAvx2, "q8_ms_qlinearadd__avx2",
       CreateBinary<false, Isa::kAvx2>},
      {"QLinearAdd", "edgepress", DType::kUndefined, Isa::kAvx2, "q8_qlinearadd__avx2",
       CreateBinary<false, Isa::kAvx2>},
      {"QLinearMul", "com.microsoft", DType::kUndefined, Isa::kAvx2, "q8_ms_qlinearmul__avx2",
       CreateBinary<true, Isa::kAvx2>},
      {"QLinearAdd", "com.microsoft", DType::kUndefined, Isa::kAvx512,
       "q8_ms_qlinearadd__avx512", CreateBinary<false, Isa::kAvx512>},
      {"QLinearAdd", "edgepress", DType::kUndefined, Isa::kAvx512, "q8_qlinearadd__avx512",
       CreateBinary<false, Isa::kAvx512>},
      {"QLinearMul", "com.microsoft", DType::kUndefined, Isa::kAvx512,
       "q8_ms_qlinearmul__avx512", CreateBinary<true, Isa::kAvx512>},
#endif
  };
  for (const KernelDef& d : kBinary) r.Add(d);
  r.Add({"QLinearGlobalAveragePool", "com.microsoft", DType::kUndefined, Isa::kScalar,
         "q8_ms_qlinearglobalavgpool__ref", CreateGap<Isa::kScalar>});
#if defined(__x86_64__)
  r.Add({"QLinearGlobalAveragePool", "com.microsoft", DType::kUndefined, Isa::kAvx2,
         "q8_ms_qlinearglobalavgpool__avx2", CreateGap<Isa::kAvx2>});
#endif
}

}  // namespace edgepress::runtime
