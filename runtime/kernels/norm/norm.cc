// Normalisation kernels with ONNX semantics: BatchNormalization (inference, and
// training_mode=1 for the running statistics), InstanceNormalization, LayerNormalization
// (any axis, broadcast Scale/B, optional Mean and InvStdDev outputs), GroupNormalization,
// LRN and MeanVarianceNormalization.
//
// The contiguous work (statistics of one row, and the per-row affine y = x*a + b) is done
// by a small table of row primitives with a scalar and an AVX2 variant; kernels pick the
// table once and split rows or N*C planes over the thread pool. LayerNormalization over the
// last axis is the transformer hot path: two passes per row (mean, then centred variance,
// which is more accurate than E[x^2]-E[x]^2 and costs one extra read of a cached row).
#include <cmath>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "ir/error.h"
#include "runtime/kernels/all_kernels.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime {
namespace {

[[noreturn]] void Fail(const ir::Node& n, const std::string& msg) {
  ThrowInvalid(n.describe() + ": " + msg);
}

std::string Join(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

const ir::Tensor& F32Input(KernelContext& ctx, size_t i, const char* what) {
  const ir::Tensor* t = ctx.input(i);
  if (!t) Fail(ctx.node(), std::string("input ") + what + " is missing");
  if (t->dtype() != ir::DType::kFloat32)
    Fail(ctx.node(), std::string("input ") + what + " must be f32, got " +
                         ir::DTypeName(t->dtype()));
  return *t;
}

// A per-channel parameter: any shape with exactly `c` elements (exporters write [C]).
const float* ChannelParam(KernelContext& ctx, size_t i, const char* what, int64_t c) {
  const ir::Tensor& t = F32Input(ctx, i, what);
  if (static_cast<int64_t>(t.numel()) != c || t.rank() != 1)
    Fail(ctx.node(), std::string("input ") + what + " must have shape [" + std::to_string(c) +
                         "], got " + Join(t.shape()));
  return t.data<float>();
}

// Rows big enough that a task is worth a thread hand-off.
int64_t Grain(int64_t row_len) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(row_len, 1)); }

// Row primitives -----------------------------------------------------------------------
struct RowOps {
  // Mean and biased variance of x[0..n).
  void (*stats)(const float* x, int64_t n, float* mean, float* var);
  // y = x * a + b.
  void (*affine)(const float* x, int64_t n, float a, float b, float* y);
  // y = (x - mean) * inv * scale[i] + bias[i] (bias may be null).
  void (*norm)(const float* x, int64_t n, float mean, float inv, const float* scale,
               const float* bias, float* y);
};

void StatsRef(const float* x, int64_t n, float* mean, float* var) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  const double m = n > 0 ? s / static_cast<double>(n) : 0.0;
  double v = 0;
  for (int64_t i = 0; i < n; ++i) v += (x[i] - m) * (x[i] - m);
  *mean = static_cast<float>(m);
  *var = n > 0 ? static_cast<float>(v / static_cast<double>(n)) : 0.f;
}
void AffineRef(const float* x, int64_t n, float a, float b, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * a + b;
}
void NormRef(const float* x, int64_t n, float mean, float inv, const float* scale,
             const float* bias, float* y) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = (x[i] - mean) * inv * scale[i] + (bias ? bias[i] : 0.f);
}
constexpr RowOps kRefOps = {StatsRef, AffineRef, NormRef};

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
__attribute__((target("avx2,fma"))) void StatsAvx2(const float* x, int64_t n, float* mean,
                                                   float* var) {
  if (n <= 0) {
    *mean = *var = 0.f;
    return;
  }
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + i + 8));
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + i));
  float s = HSum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) s += x[i];
  const float m = s / static_cast<float>(n);
  const __m256 vm = _mm256_set1_ps(m);
  s0 = s1 = _mm256_setzero_ps();
  i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
    const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm);
    s0 = _mm256_fmadd_ps(d0, d0, s0);
    s1 = _mm256_fmadd_ps(d1, d1, s1);
  }
  for (; i + 8 <= n; i += 8) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
    s0 = _mm256_fmadd_ps(d0, d0, s0);
  }
  float v = HSum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i) v += (x[i] - m) * (x[i] - m);
  *mean = m;
  *var = v / static_cast<float>(n);
}
__attribute__((target("avx2,fma"))) void AffineAvx2(const float* x, int64_t n, float a, float b,
                                                    float* y) {
  const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_loadu_ps(x + i), va, vb));
  for (; i < n; ++i) y[i] = x[i] * a + b;
}
__attribute__((target("avx2,fma"))) void NormAvx2(const float* x, int64_t n, float mean,
                                                  float inv, const float* scale,
                                                  const float* bias, float* y) {
  const __m256 vm = _mm256_set1_ps(mean), vi = _mm256_set1_ps(inv);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vi);
    const __m256 b = bias ? _mm256_loadu_ps(bias + i) : _mm256_setzero_ps();
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(t, _mm256_loadu_ps(scale + i), b));
  }
  for (; i < n; ++i) y[i] = (x[i] - mean) * inv * scale[i] + (bias ? bias[i] : 0.f);
}
constexpr RowOps kAvx2Ops = {StatsAvx2, AffineAvx2, NormAvx2};
#endif

const RowOps& Ops(bool simd) {
#if defined(__x86_64__)
  if (simd) return kAvx2Ops;
#endif
  return kRefOps;
}

float Epsilon(const ir::Node& node, float def) {
  const float eps = node.attr_float("epsilon", def);
  if (!(eps >= 0.f) || !std::isfinite(eps))
    Fail(node, "epsilon must be a finite non-negative number");
  return eps;
}

// N, C and the spatial size of an (N, C, ...) input.
void SplitNC(const ir::Node& node, const ir::Tensor& x, int min_rank, int64_t* n, int64_t* c,
             int64_t* inner) {
  if (x.rank() < min_rank)
    Fail(node, "input X must have rank >= " + std::to_string(min_rank) + ", got " +
                   Join(x.shape()));
  *n = x.shape()[0];
  *c = x.rank() > 1 ? x.shape()[1] : 1;
  int64_t in = 1;
  for (int i = 2; i < x.rank(); ++i) in *= x.shape()[i];  // numel already fits
  *inner = in;
}

// BatchNormalization ------------------------------------------------------------------
class BatchNormKernel : public Kernel {
 public:
  BatchNormKernel(const ir::Node& node, bool simd)
      : eps_(Epsilon(node, 1e-5f)),
        momentum_(node.attr_float("momentum", 0.9f)),
        training_(node.attr_int("training_mode", 0)),
        ops_(Ops(simd)) {
    if (training_ != 0 && training_ != 1) Fail(node, "training_mode must be 0 or 1");
    if (node.attr_int("spatial", 1) != 1)
      ThrowUnsupported(node.describe() + ": spatial=0 (opset < 9) is not supported");
  }
  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    // Y, plus running_mean/running_var in training mode; nothing else is computed
    // (opset < 14's saved_mean/saved_var, or statistics outside training mode).
    for (size_t o = training_ ? 3 : 1; o < ctx.num_outputs(); ++o)
      if (ctx.output_requested(o))
        ThrowUnsupported(node.describe() + ": output " + std::to_string(o) +
                         (training_ ? " (saved mean/variance) is not supported"
                                    : " (running statistics) needs training_mode=1"));
    const ir::Tensor& x = F32Input(ctx, 0, "X");
    int64_t n, c, inner;
    SplitNC(node, x, 2, &n, &c, &inner);
    const float* scale = ChannelParam(ctx, 1, "scale", c);
    const float* bias = ChannelParam(ctx, 2, "B", c);
    const float* mean = ChannelParam(ctx, 3, "input_mean", c);
    const float* var = ChannelParam(ctx, 4, "input_var", c);
    std::vector<float> a(c), b(c);
    std::vector<float> bmean, bvar;
    const float* px = x.data<float>();
    if (training_) {
      // Batch statistics per channel, over N and the spatial dims.
      bmean.assign(c, 0.f);
      bvar.assign(c, 0.f);
      const double cnt = static_cast<double>(n) * static_cast<double>(inner);
      ctx.pool().ParallelFor(c, 1, [&](int64_t cb, int64_t ce) {
        for (int64_t ch = cb; ch < ce; ++ch) {
          double s = 0;
          for (int64_t i = 0; i < n; ++i)
            for (int64_t k = 0; k < inner; ++k) s += px[(i * c + ch) * inner + k];
          const double m = cnt > 0 ? s / cnt : 0;
          double v = 0;
          for (int64_t i = 0; i < n; ++i)
            for (int64_t k = 0; k < inner; ++k) {
              const double d = px[(i * c + ch) * inner + k] - m;
              v += d * d;
            }
          bmean[ch] = static_cast<float>(m);
          bvar[ch] = cnt > 0 ? static_cast<float>(v / cnt) : 0.f;
        }
      });
      mean = bmean.data();
      var = bvar.data();
    }
    for (int64_t ch = 0; ch < c; ++ch) {
      a[ch] = scale[ch] / std::sqrt(var[ch] + eps_);
      b[ch] = bias[ch] - mean[ch] * a[ch];
    }
    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kFloat32, x.shape());
    float* py = y.mutable_data<float>();
    const RowOps& ops = ops_;
    ctx.pool().ParallelFor(n * c, Grain(inner), [&](int64_t pb, int64_t pe) {
      for (int64_t p = pb; p < pe; ++p)
        ops.affine(px + p * inner, inner, a[p % c], b[p % c], py + p * inner);
    });
    if (training_) {
      const float* in_mean = ChannelParam(ctx, 3, "input_mean", c);
      const float* in_var = ChannelParam(ctx, 4, "input_var", c);
      for (size_t o = 1; o < 3 && o < ctx.num_outputs(); ++o) {
        if (!ctx.output_requested(o)) continue;
        float* out = ctx.AllocateOutput(o, ir::DType::kFloat32, {c}).mutable_data<float>();
        const float* run = o == 1 ? in_mean : in_var;
        const float* cur = o == 1 ? bmean.data() : bvar.data();
        for (int64_t ch = 0; ch < c; ++ch)
          out[ch] = run[ch] * momentum_ + cur[ch] * (1.f - momentum_);
      }
    }
  }

 private:
  float eps_, momentum_;
  int64_t training_;
  const RowOps& ops_;
};

// InstanceNormalization ---------------------------------------------------------------
class InstanceNormKernel : public Kernel {
 public:
  InstanceNormKernel(const ir::Node& node, bool simd)
      : eps_(Epsilon(node, 1e-5f)), ops_(Ops(simd)) {}
  void Run(KernelContext& ctx) override {
    const ir::Tensor& x = F32Input(ctx, 0, "input");
    int64_t n, c, inner;
    SplitNC(ctx.node(), x, 3, &n, &c, &inner);
    const float* scale = ChannelParam(ctx, 1, "scale", c);
    const float* bias = ChannelParam(ctx, 2, "B", c);
    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kFloat32, x.shape());
    const float* px = x.data<float>();
    float* py = y.mutable_data<float>();
    const RowOps& ops = ops_;
    const float eps = eps_;
    ctx.pool().ParallelFor(n * c, Grain(inner), [&](int64_t pb, int64_t pe) {
      for (int64_t p = pb; p < pe; ++p) {
        float m, v;
        ops.stats(px + p * inner, inner, &m, &v);
        const float a = scale[p % c] / std::sqrt(v + eps);
        ops.affine(px + p * inner, inner, a, bias[p % c] - m * a, py + p * inner);
      }
    });
  }

 private:
  float eps_;
  const RowOps& ops_;
};

// GroupNormalization (opset 18 scale/bias per group; opset 21 per channel) ------------
class GroupNormKernel : public Kernel {
 public:
  GroupNormKernel(const ir::Node& node, bool simd)
      : eps_(Epsilon(node, 1e-5f)), groups_(node.attr_int("num_groups", 0)), ops_(Ops(simd)) {
    if (groups_ < 1) Fail(node, "attribute 'num_groups' must be >= 1");
  }
  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = F32Input(ctx, 0, "X");
    int64_t n, c, inner;
    SplitNC(node, x, 2, &n, &c, &inner);
    if (c % groups_ != 0)
      Fail(node, "channels " + std::to_string(c) + " not divisible by num_groups " +
                     std::to_string(groups_));
    const ir::Tensor& ts = F32Input(ctx, 1, "scale");
    const ir::Tensor& tb = F32Input(ctx, 2, "bias");
    const int64_t per = static_cast<int64_t>(ts.numel());
    if ((per != groups_ && per != c) || tb.numel() != ts.numel())
      Fail(node, "scale/bias must have num_groups or C elements, got " + Join(ts.shape()) +
                     " and " + Join(tb.shape()));
    const int64_t cg = c / groups_;
    const float* scale = ts.data<float>();
    const float* bias = tb.data<float>();
    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kFloat32, x.shape());
    const float* px = x.data<float>();
    float* py = y.mutable_data<float>();
    const RowOps& ops = ops_;
    const float eps = eps_;
    const int64_t groups = groups_;
    ctx.pool().ParallelFor(n * groups, Grain(cg * inner), [&](int64_t gb, int64_t ge) {
      for (int64_t gi = gb; gi < ge; ++gi) {
        const int64_t g = gi % groups;
        const float* xs = px + gi * cg * inner;
        float m, v;
        ops.stats(xs, cg * inner, &m, &v);
        const float inv = 1.f / std::sqrt(v + eps);
        for (int64_t k = 0; k < cg; ++k) {
          const int64_t ch = g * cg + k;
          const float s = per == c ? scale[ch] : scale[g];
          const float b = per == c ? bias[ch] : bias[g];
          ops.affine(xs + k * inner, inner, s * inv, b - m * s * inv, py + gi * cg * inner + k * inner);
        }
      }
    });
  }

 private:
  float eps_;
  int64_t groups_;
  const RowOps& ops_;
};

// LayerNormalization ------------------------------------------------------------------
class LayerNormKernel : public Kernel {
 public:
  LayerNormKernel(const ir::Node& node, bool simd)
      : eps_(Epsilon(node, 1e-5f)), axis_(node.attr_int("axis", -1)), ops_(Ops(simd)) {
    const int64_t stash = node.attr_int("stash_type", 1);
    if (stash != 1)
      ThrowUnsupported(node.describe() + ": stash_type " + std::to_string(stash) +
                       " is not supported (only 1 = float)");
  }
  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = F32Input(ctx, 0, "X");
    const int rank = x.rank();
    if (rank < 1) Fail(node, "input X must have rank >= 1");
    if (axis_ < -rank || axis_ >= rank)
      Fail(node, "axis " + std::to_string(axis_) + " out of range for input " + Join(x.shape()));
    const int axis = static_cast<int>(axis_ < 0 ? axis_ + rank : axis_);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= x.shape()[i];
    for (int i = axis; i < rank; ++i) inner *= x.shape()[i];
    const std::vector<int64_t> norm_shape(x.shape().begin() + axis, x.shape().end());
    const ir::Tensor& ts = F32Input(ctx, 1, "Scale");
    std::vector<float> scale_buf, bias_buf;
    const float* scale = Expand(node, ts, norm_shape, inner, &scale_buf, "Scale");
    const float* bias = nullptr;
    if (ctx.input(2)) bias = Expand(node, F32Input(ctx, 2, "B"), norm_shape, inner, &bias_buf, "B");

    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kFloat32, x.shape());
    std::vector<int64_t> stat_shape(x.shape().begin(), x.shape().begin() + axis);
    stat_shape.resize(rank, 1);
    float* mean_out = nullptr;
    float* inv_out = nullptr;
    if (ctx.num_outputs() > 1 && ctx.output_requested(1))
      mean_out = ctx.AllocateOutput(1, ir::DType::kFloat32, stat_shape).mutable_data<float>();
    if (ctx.num_outputs() > 2 && ctx.output_requested(2))
      inv_out = ctx.AllocateOutput(2, ir::DType::kFloat32, stat_shape).mutable_data<float>();
    const float* px = x.data<float>();
    float* py = y.mutable_data<float>();
    const RowOps& ops = ops_;
    const float eps = eps_;
    ctx.pool().ParallelFor(outer, Grain(inner), [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) {
        float m, v;
        ops.stats(px + r * inner, inner, &m, &v);
        const float inv = 1.f / std::sqrt(v + eps);
        ops.norm(px + r * inner, inner, m, inv, scale, bias, py + r * inner);
        if (mean_out) mean_out[r] = m;
        if (inv_out) inv_out[r] = inv;
      }
    });
  }

 private:
  // Scale/B broadcast (numpy rules, right-aligned) to the normalised shape.
  static const float* Expand(const ir::Node& node, const ir::Tensor& t,
                             const std::vector<int64_t>& norm_shape, int64_t inner,
                             std::vector<float>* buf, const char* what) {
    if (t.shape() == norm_shape) return t.data<float>();
    const int nr = static_cast<int>(norm_shape.size());
    if (t.rank() > nr)
      Fail(node, std::string(what) + " shape " + Join(t.shape()) +
                     " does not broadcast to the normalised shape " + Join(norm_shape));
    std::vector<int64_t> strides(nr, 0);
    int64_t st = 1;
    for (int i = t.rank() - 1; i >= 0; --i) {
      const int j = nr - t.rank() + i;
      const int64_t d = t.shape()[i];
      if (d != 1 && d != norm_shape[j])
        Fail(node, std::string(what) + " shape " + Join(t.shape()) +
                       " does not broadcast to the normalised shape " + Join(norm_shape));
      strides[j] = d == 1 ? 0 : st;
      st *= d;
    }
    buf->resize(inner);
    const float* src = t.data<float>();
    std::vector<int64_t> idx(nr, 0);
    for (int64_t e = 0; e < inner; ++e) {
      int64_t off = 0;
      for (int j = 0; j < nr; ++j) off += idx[j] * strides[j];
      (*buf)[e] = src[off];
      for (int j = nr - 1; j >= 0; --j) {
        if (++idx[j] < norm_shape[j]) break;
        idx[j] = 0;
      }
    }
    return buf->data();
  }

  float eps_;
  int64_t axis_;
  const RowOps& ops_;
};

// LRN (across channels) -----------------------------------------------------------------
class LrnKernel : public Kernel {
 public:
  explicit LrnKernel(const ir::Node& node)
      : alpha_(node.attr_float("alpha", 1e-4f)),
        beta_(node.attr_float("beta", 0.75f)),
        bias_(node.attr_float("bias", 1.0f)),
        size_(node.attr_int("size", 0)) {
    if (size_ < 1 || size_ > (int64_t{1} << 30)) Fail(node, "attribute 'size' must be >= 1");
  }
  void Run(KernelContext& ctx) override {
    const ir::Tensor& x = F32Input(ctx, 0, "X");
    int64_t n, c, inner;
    SplitNC(ctx.node(), x, 3, &n, &c, &inner);
    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kFloat32, x.shape());
    const float* px = x.data<float>();
    float* py = y.mutable_data<float>();
    const int64_t lo = (size_ - 1) / 2, hi = size_ - 1 - lo;
    const float k = alpha_ / static_cast<float>(size_);
    ctx.pool().ParallelFor(n * c, Grain(inner * size_), [&](int64_t pb, int64_t pe) {
      for (int64_t p = pb; p < pe; ++p) {
        const int64_t b = p / c, ch = p % c;
        const int64_t c0 = std::max<int64_t>(0, ch - lo), c1 = std::min(c - 1, ch + hi);
        for (int64_t s = 0; s < inner; ++s) {
          float sq = 0;
          for (int64_t j = c0; j <= c1; ++j) {
            const float v = px[(b * c + j) * inner + s];
            sq += v * v;
          }
          py[p * inner + s] = px[p * inner + s] / std::pow(bias_ + k * sq, beta_);
        }
      }
    });
  }

 private:
  float alpha_, beta_, bias_;
  int64_t size_;
};

// MeanVarianceNormalization: (x - mean) / (sqrt(var) + 1e-9) over `axes`, as the ONNX
// function body defines it.
class MvnKernel : public Kernel {
 public:
  explicit MvnKernel(const ir::Node& node) : axes_(node.attr_ints("axes", {0, 2, 3})) {}
  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor& x = F32Input(ctx, 0, "X");
    const int rank = x.rank();
    std::vector<bool> reduce(rank, false);
    for (int64_t a : axes_) {
      if (a < -rank || a >= rank)
        Fail(node, "axis " + std::to_string(a) + " out of range for input " + Join(x.shape()));
      const int ax = static_cast<int>(a < 0 ? a + rank : a);
      if (reduce[ax]) Fail(node, "axis " + std::to_string(a) + " repeated");
      reduce[ax] = true;
    }
    // Map every element to its statistics slot (the product of kept dims).
    const uint64_t total = x.numel();
    std::vector<int64_t> kept_stride(rank, 0);
    int64_t slots = 1;
    for (int i = rank - 1; i >= 0; --i)
      if (!reduce[i]) {
        kept_stride[i] = slots;
        slots *= x.shape()[i];
      }
    std::vector<int64_t> slot(total);
    std::vector<int64_t> idx(rank, 0);
    for (uint64_t e = 0; e < total; ++e) {
      int64_t s = 0;
      for (int j = 0; j < rank; ++j) s += idx[j] * kept_stride[j];
      slot[e] = s;
      for (int j = rank - 1; j >= 0; --j) {
        if (++idx[j] < x.shape()[j]) break;
        idx[j] = 0;
      }
    }
    const float* px = x.data<float>();
    std::vector<double> sum(slots, 0.0), sq(slots, 0.0), cnt(slots, 0.0);
    for (uint64_t e = 0; e < total; ++e) {
      sum[slot[e]] += px[e];
      sq[slot[e]] += static_cast<double>(px[e]) * px[e];
      cnt[slot[e]] += 1;
    }
    std::vector<float> mean(slots), denom(slots);
    for (int64_t s = 0; s < slots; ++s) {
      const double m = cnt[s] > 0 ? sum[s] / cnt[s] : 0;
      const double var = cnt[s] > 0 ? std::max(0.0, sq[s] / cnt[s] - m * m) : 0;
      mean[s] = static_cast<float>(m);
      denom[s] = static_cast<float>(std::sqrt(var) + 1e-9);
    }
    float* py = ctx.AllocateOutput(0, ir::DType::kFloat32, x.shape()).mutable_data<float>();
    for (uint64_t e = 0; e < total; ++e) py[e] = (px[e] - mean[slot[e]]) / denom[slot[e]];
  }

 private:
  std::vector<int64_t> axes_;
};

template <typename K, bool kSimd>
std::unique_ptr<Kernel> CreateSimd(const KernelInit& init) {
  return std::make_unique<K>(init.node, kSimd);
}
template <typename K>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  return std::make_unique<K>(init.node);
}

}  // namespace

void RegisterNormKernels(KernelRegistry& r) {
  using ir::DType;
  r.Add({"BatchNormalization", "", DType::kFloat32, Isa::kScalar, "f32_batchnorm__ref",
         CreateSimd<BatchNormKernel, false>});
  r.Add({"InstanceNormalization", "", DType::kFloat32, Isa::kScalar, "f32_instancenorm__ref",
         CreateSimd<InstanceNormKernel, false>});
  r.Add({"GroupNormalization", "", DType::kFloat32, Isa::kScalar, "f32_groupnorm__ref",
         CreateSimd<GroupNormKernel, false>});
  r.Add({"LayerNormalization", "", DType::kFloat32, Isa::kScalar, "f32_layernorm__ref",
         CreateSimd<LayerNormKernel, false>});
  r.Add({"LRN", "", DType::kFloat32, Isa::kScalar, "f32_lrn__ref", Create<LrnKernel>});
  r.Add({"MeanVarianceNormalization", "", DType::kFloat32, Isa::kScalar, "f32_mvn__ref",
         Create<MvnKernel>});
#if defined(__x86_64__)
  r.Add({"BatchNormalization", "", DType::kFloat32, Isa::kAvx2, "f32_batchnorm__avx2",
         CreateSimd<BatchNormKernel, true>});
  r.Add({"InstanceNormalization", "", DType::kFloat32, Isa::kAvx2, "f32_instancenorm__avx2",
         CreateSimd<InstanceNormKernel, true>});
  r.Add({"GroupNormalization", "", DType::kFloat32, Isa::kAvx2, "f32_groupnorm__avx2",
         CreateSimd<GroupNormKernel, true>});
  r.Add({"LayerNormalization", "", DType::kFloat32, Isa::kAvx2, "f32_layernorm__avx2",
         CreateSimd<LayerNormKernel, true>});
#endif
}

}  // namespace edgepress::runtime
