// edgepress::TernaryMatMul (docs/ops.md): Y[..., N] = A[..., K] x W^T (+ bias) with
// W[n][k] = scales[n] * t[n][k], t in {-1, 0, +1} stored as packed 2-bit codes
// (ir::DType::kTernary, [N, TernaryPaddedK(K)], layout in ternary_matmul.h).
// Inputs: A float [..., K]; B ternary [N, Kp]; scales float [N]; bias optional float [N].
// Attributes K, N. Written by the pack-ternary pass (passes/quant/pack_ternary.cc).
//
// Every input is validated before use, with messages naming the node and input. The
// packed codes are used in place (no unpacked copy of the weights is kept).
// Entries: ternary_matmul__ref (the scalar reference), ternary_matmul__avx2,
// ternary_matmul__avx512 (the tiles of their ISA at every M).
#include "runtime/kernels/lowbit/ternary_matmul.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/kernels/gemm/gemm_op_util.h"

namespace edgepress::runtime {

namespace {

using gemm_util::DimsToString;

constexpr int64_t kMaxDim = int64_t{1} << 40;
// Columns per task: their codes (K/4 bytes each) stay in L1/L2 while every tile of rows of
// A passes over them.
constexpr int64_t kGemvChunkCols = 64;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

void ParallelOrInline(ThreadPool* pool, int64_t n, int64_t grain,
                      const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (!pool || pool->num_threads() <= 1 || n <= grain) {
    fn(0, n);
    return;
  }
  pool->ParallelFor(n, grain, fn);
}

void TernaryRef(const float* a, int64_t m, const TernaryWeights& w, const float* bias, float* y,
                ThreadPool* pool) {
  const int64_t k = w.k, n = w.n;
  ParallelOrInline(pool, n, 8, [&](int64_t n0, int64_t n1) {
    for (int64_t c = n0; c < n1; ++c)
      for (int64_t i = 0; i < m; ++i) {
        const float* ar = a + i * k;
        float acc = 0.f;
        for (int64_t kk = 0; kk < k; ++kk) {
          const int t = TernaryAt(w, c, kk);
          if (t > 0) acc += ar[kk];
          if (t < 0) acc -= ar[kk];
        }
        y[i * n + c] = w.scales[c] * acc + (bias ? bias[c] : 0.f);
      }
  });
}

void TernaryGemv(Isa isa, const float* a, int64_t m, const TernaryWeights& w, const float* bias,
                 float* y, ThreadPool* pool) {
  const auto tile = isa == Isa::kAvx512 ? ternary_detail::GemvAvx512 : ternary_detail::GemvAvx2;
  const int64_t rows =
      isa == Isa::kAvx512 ? ternary_detail::kAvx512Rows : ternary_detail::kAvx2Rows;
  const int64_t chunks = CeilDiv(w.n, kGemvChunkCols);
  ParallelOrInline(pool, chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t ch = lo; ch < hi; ++ch) {
      const int64_t c0 = ch * kGemvChunkCols, c1 = std::min(w.n, c0 + kGemvChunkCols);
      for (int64_t i = 0; i < m; i += rows)
        tile(a + i * w.k, std::min<int64_t>(rows, m - i), w, c0, c1, bias, y + i * w.n, w.n);
    }
  });
}

// ---- the operator ----

std::string InputName(size_t i) {
  static const char* const kNames[] = {"A", "B", "scales", "bias"};
  return std::to_string(i) + " (" + kNames[i] + ")";
}

template <Isa kIsa>
class TernaryMatMulKernel : public Kernel {
 public:
  explicit TernaryMatMulKernel(const KernelInit& init) {
    const ir::Node& node = init.node;
    if (!node.has_attr("K") || !node.has_attr("N"))
      ThrowInvalid(node.describe() + ": TernaryMatMul needs the attributes K and N");
    k_ = node.attr_int("K", 0);
    n_ = node.attr_int("N", 0);
    if (k_ <= 0 || k_ > kMaxDim || n_ <= 0 || n_ > kMaxDim)
      ThrowInvalid(node.describe() + ": attributes K=" + std::to_string(k_) +
                   " and N=" + std::to_string(n_) + " must be in [1, 2^40]");
  }

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor& a = gemm_util::FloatInput(ctx, 0, "A");
    const ir::Tensor* b = ctx.input(1);
    if (!b || b->empty()) ThrowInvalid(node.describe() + ": missing input " + InputName(1));
    if (b->dtype() != ir::DType::kTernary)
      ThrowUnsupported(node.describe() + ": input " + InputName(1) + " has dtype " +
                       ir::DTypeName(b->dtype()) + ", expected ternary");
    const std::vector<int64_t> want_b = {n_, TernaryPaddedK(k_)};
    if (b->shape() != want_b)
      ThrowInvalid(node.describe() + ": input " + InputName(1) + " has shape " +
                   DimsToString(b->shape()) + ", expected " + DimsToString(want_b) +
                   " (K=" + std::to_string(k_) + " padded to a multiple of " +
                   std::to_string(kTernaryRowAlign) + ")");
    const ir::Tensor& scales = gemm_util::FloatInput(ctx, 2, "scales");
    if (scales.numel() != static_cast<uint64_t>(n_))
      ThrowInvalid(node.describe() + ": input " + InputName(2) + " has shape " +
                   DimsToString(scales.shape()) + ", expected [" + std::to_string(n_) + "]");
    const ir::Tensor* bias = gemm_util::OptionalFloatInput(ctx, 3, "bias");
    if (bias && bias->numel() != static_cast<uint64_t>(n_))
      ThrowInvalid(node.describe() + ": input " + InputName(3) + " has shape " +
                   DimsToString(bias->shape()) + ", expected [" + std::to_string(n_) + "]");
    if (a.rank() < 1 || a.shape().back() != k_)
      ThrowInvalid(node.describe() + ": input " + InputName(0) + " has shape " +
                   DimsToString(a.shape()) +
                   ", its last dimension must be K=" + std::to_string(k_));
    std::vector<int64_t> out_shape = a.shape();
    out_shape.back() = n_;
    const int64_t m = static_cast<int64_t>(a.numel()) / k_;
    if (m > 0 && n_ > kMaxDim / m)
      ThrowInvalid(node.describe() + ": output " + DimsToString(out_shape) +
                   " exceeds 2^40 elements");
    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kFloat32, out_shape);
    if (y.numel() == 0) return;
    TernaryWeights w;
    w.n = n_;
    w.k = k_;
    w.kp = TernaryPaddedK(k_);
    w.codes = static_cast<const uint8_t*>(b->raw());
    w.scales = scales.data<float>();
    TernaryMatMul(kIsa, a.data<float>(), m, w, bias ? bias->data<float>() : nullptr,
                  y.mutable_data<float>(), &ctx.pool());
  }

 private:
  int64_t k_ = 0, n_ = 0;
};

template <Isa kIsa>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  return std::make_unique<TernaryMatMulKernel<kIsa>>(init);
}

}  // namespace

ir::Tensor PackTernary(const int8_t* t, int64_t n, int64_t k) {
  const int64_t kp = TernaryPaddedK(k);
  ir::Tensor out(ir::DType::kTernary, {n, kp});
  uint8_t* dst = static_cast<uint8_t*>(out.mutable_raw());
  std::fill(dst, dst + out.nbytes(), uint8_t{0});
  for (int64_t r = 0; r < n; ++r)
    for (int64_t kk = 0; kk < k; ++kk) {
      const int8_t v = t[r * k + kk];
      if (v != 0 && v != 1 && v != -1)
        throw Error(ErrorCode::kInternal,
                    "PackTernary: value " + std::to_string(v) + " is not -1, 0 or +1");
      const uint8_t code = v == 0 ? 0 : v > 0 ? 1 : 3;
      const int64_t e = r * kp + kk;
      dst[e / 4] = static_cast<uint8_t>(dst[e / 4] | (code << (2 * (e % 4))));
    }
  return out;
}

void TernaryMatMul(Isa isa, const float* a, int64_t m, const TernaryWeights& w, const float* bias,
                   float* y, ThreadPool* pool) {
  if (m <= 0 || w.n <= 0) return;
#if defined(__x86_64__)
  if (isa == Isa::kAvx2 || isa == Isa::kAvx512) {
    TernaryGemv(isa, a, m, w, bias, y, pool);
    return;
  }
#endif
  TernaryRef(a, m, w, bias, y, pool);
}

void RegisterTernaryMatMulKernels(KernelRegistry& r) {
  r.Add({"TernaryMatMul", "edgepress", ir::DType::kFloat32, Isa::kScalar, "ternary_matmul__ref",
         Create<Isa::kScalar>});
#if defined(__x86_64__)
  r.Add({"TernaryMatMul", "edgepress", ir::DType::kFloat32, Isa::kAvx2, "ternary_matmul__avx2",
         Create<Isa::kAvx2>});
  r.Add({"TernaryMatMul", "edgepress", ir::DType::kFloat32, Isa::kAvx512, "ternary_matmul__avx512",
         Create<Isa::kAvx512>});
#endif
}

}  // namespace edgepress::runtime
