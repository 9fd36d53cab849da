// Resize (opset 10, 11 and 13+) and Upsample (opset 7/9) for f32 tensors of any rank:
// nearest (all nearest_mode values), N-linear and cubic interpolation with every ONNX
// coordinate_transformation_mode (half_pixel, pytorch_half_pixel, align_corners,
// asymmetric, tf_half_pixel_for_nn, tf_crop_and_resize with extrapolation_value),
// exclude_outside and cubic_coeff_a; output size from `scales` or `sizes`.
//
// All three modes are separable, so each resized axis becomes one 1-D pass with a
// precomputed tap table (index + weight per output position: 1 tap for nearest, 2 for
// linear, 4 for cubic). Axes whose table is the identity are skipped, so an NCHW image
// resize is two passes; axes are processed shrinking ones first to keep intermediates
// small. A pass over an inner (non-last) axis blends whole contiguous rows, which the AVX2
// variant vectorises; work is split over (outer x output position) rows. The AVX2 entry
// resizes nearest over the last two axes only (FPN upsampling) in one fused pass instead
// (NearestPlaneAvx2); the reference entry keeps the separable passes the tests compare with.
//
// Opset 10 Resize (two inputs: X, scales) and Upsample have no coordinate attributes;
// they follow onnxruntime's legacy rules: asymmetric coordinates, and nearest rounding that
// truncates when upsampling and rounds up when downsampling.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
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

enum class Mode { kNearest, kLinear, kCubic };
enum class Coord {
  kHalfPixel, kPytorchHalfPixel, kAlignCorners, kAsymmetric, kTfHalfPixelForNn, kTfCropAndResize
};
enum class Nearest { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kLegacy };

struct ResizeAttrs {
  Mode mode = Mode::kNearest;
  Coord coord = Coord::kHalfPixel;
  Nearest nearest = Nearest::kRoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  float extrapolation = 0.f;
  bool legacy = false;           // Upsample or opset-10 Resize
  std::vector<float> attr_scales;  // Upsample opset 7
};

ResizeAttrs ReadAttrs(const ir::Node& node) {
  ResizeAttrs a;
  a.legacy = node.op_type() == "Upsample" || node.num_inputs() <= 2;
  const std::string mode = node.attr_string("mode", "nearest");
  if (mode == "nearest") a.mode = Mode::kNearest;
  else if (mode == "linear" || mode == "bilinear" || mode == "trilinear") a.mode = Mode::kLinear;
  else if (mode == "cubic" && !a.legacy) a.mode = Mode::kCubic;
  else Fail(node, "unknown mode '" + mode + "'");
  if (node.attr_int("antialias", 0) != 0)
    ThrowUnsupported(node.describe() + ": antialias (opset 18) is not supported");
  if (node.has_attr("axes"))
    ThrowUnsupported(node.describe() + ": the 'axes' attribute (opset 18) is not supported");
  if (node.attr_string("keep_aspect_ratio_policy", "stretch") != "stretch")
    ThrowUnsupported(node.describe() + ": keep_aspect_ratio_policy (opset 18) is not supported");
  if (a.legacy) {
    a.coord = Coord::kAsymmetric;
    a.nearest = Nearest::kLegacy;
    if (node.op_type() == "Upsample" && node.num_inputs() < 2) {
      a.attr_scales = node.attr_floats("scales");
      if (a.attr_scales.empty()) Fail(node, "needs a 'scales' attribute or input");
    }
    return a;
  }
  const std::string ct = node.attr_string("coordinate_transformation_mode", "half_pixel");
  if (ct == "half_pixel") a.coord = Coord::kHalfPixel;
  else if (ct == "pytorch_half_pixel") a.coord = Coord::kPytorchHalfPixel;
  else if (ct == "align_corners") a.coord = Coord::kAlignCorners;
  else if (ct == "asymmetric") a.coord = Coord::kAsymmetric;
  else if (ct == "tf_half_pixel_for_nn") a.coord = Coord::kTfHalfPixelForNn;
  else if (ct == "tf_crop_and_resize") a.coord = Coord::kTfCropAndResize;
  else if (ct == "half_pixel_symmetric")
    ThrowUnsupported(node.describe() + ": coordinate_transformation_mode half_pixel_symmetric "
                                       "(opset 19) is not supported");
  else Fail(node, "unknown coordinate_transformation_mode '" + ct + "'");
  const std::string nm = node.attr_string("nearest_mode", "round_prefer_floor");
  if (nm == "round_prefer_floor") a.nearest = Nearest::kRoundPreferFloor;
  else if (nm == "round_prefer_ceil") a.nearest = Nearest::kRoundPreferCeil;
  else if (nm == "floor") a.nearest = Nearest::kFloor;
  else if (nm == "ceil") a.nearest = Nearest::kCeil;
  else Fail(node, "unknown nearest_mode '" + nm + "'");
  a.cubic_a = node.attr_float("cubic_coeff_a", -0.75f);
  const int64_t ex = node.attr_int("exclude_outside", 0);
  if (ex != 0 && ex != 1) Fail(node, "exclude_outside must be 0 or 1");
  a.exclude_outside = ex == 1;
  a.extrapolation = node.attr_float("extrapolation_value", 0.f);
  return a;
}

// The taps of one axis: out * taps (index, weight) pairs; `outside` marks positions that
// take extrapolation_value (tf_crop_and_resize).
struct AxisPlan {
  int axis = 0;
  int64_t in = 0, out = 0;
  int taps = 1;
  std::vector<int64_t> idx;
  std::vector<float> w;
  std::vector<uint8_t> outside;
  bool any_outside = false;
  bool Identity() const {
    if (in != out || taps != 1 || any_outside) return false;
    for (int64_t o = 0; o < out; ++o)
      if (idx[o] != o) return false;
    return true;
  }
};

// `out` is the unfloored resized length in * scale, as the ONNX reference uses it (it
// differs from the output dim when scales do not divide evenly).
double SourceCoord(const ResizeAttrs& a, int64_t o, double scale, int64_t in, double out,
                   double roi_start, double roi_end) {
  const double x = static_cast<double>(o);
  switch (a.coord) {
    case Coord::kHalfPixel: return (x + 0.5) / scale - 0.5;
    case Coord::kPytorchHalfPixel: return out > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    case Coord::kAlignCorners:
      return out <= 1 ? 0.0 : x * static_cast<double>(in - 1) / (out - 1);
    case Coord::kAsymmetric: return x / scale;
    case Coord::kTfHalfPixelForNn: return (x + 0.5) / scale;
    case Coord::kTfCropAndResize:
      return out > 1 ? roi_start * (in - 1) +
                           x * (roi_end - roi_start) * (in - 1) / (out - 1)
                     : 0.5 * (roi_start + roi_end) * (in - 1);
  }
  return x;
}

int64_t NearestIndex(Nearest m, double x, double scale) {
  switch (m) {
    case Nearest::kRoundPreferFloor: {
      const double f = std::floor(x);
      return static_cast<int64_t>(x - f == 0.5 ? f : std::round(x));
    }
    case Nearest::kRoundPreferCeil: return static_cast<int64_t>(std::floor(x + 0.5));
    case Nearest::kFloor: return static_cast<int64_t>(std::floor(x));
    case Nearest::kCeil: return static_cast<int64_t>(std::ceil(x));
    case Nearest::kLegacy:
      return static_cast<int64_t>(scale < 1.0 ? std::ceil(x) : std::trunc(x));
  }
  return 0;
}

AxisPlan PlanAxis(const ResizeAttrs& a, int axis, int64_t in, int64_t out, double scale,
                  double roi_start, double roi_end) {
  AxisPlan p;
  p.axis = axis;
  p.in = in;
  p.out = out;
  p.taps = a.mode == Mode::kNearest ? 1 : a.mode == Mode::kLinear ? 2 : 4;
  p.idx.assign(out * p.taps, 0);
  p.w.assign(out * p.taps, 0.f);
  p.outside.assign(out, 0);
  // With `sizes`, scale = out / in and this is `out` up to rounding.
  const double out_len = a.coord == Coord::kTfCropAndResize || scale == 0
                             ? static_cast<double>(out)
                             : std::fabs(static_cast<double>(in) * scale - out) < 1e-6
                                   ? static_cast<double>(out)
                                   : static_cast<double>(in) * scale;
  const auto clampi = [in](int64_t i) { return std::min<int64_t>(std::max<int64_t>(i, 0), in - 1); };
  for (int64_t o = 0; o < out; ++o) {
    double x = SourceCoord(a, o, scale, in, out_len, roi_start, roi_end);
    if (!std::isfinite(x)) x = 0;
    x = std::max(-1e9, std::min(1e9, x));  // keeps the integer casts defined
    int64_t* ti = &p.idx[o * p.taps];
    float* tw = &p.w[o * p.taps];
    if (a.coord == Coord::kTfCropAndResize && (x < 0 || x > static_cast<double>(in - 1))) {
      p.outside[o] = 1;
      p.any_outside = true;
      continue;
    }
    if (a.mode == Mode::kNearest) {
      ti[0] = clampi(NearestIndex(a.nearest, x, scale));
      tw[0] = 1.f;
    } else if (a.mode == Mode::kLinear) {
      x = std::max(0.0, std::min(x, static_cast<double>(in - 1)));
      const int64_t i0 = static_cast<int64_t>(std::floor(x));
      const double t = x - static_cast<double>(i0);
      ti[0] = clampi(i0);
      ti[1] = clampi(i0 + 1);
      tw[0] = static_cast<float>(1.0 - t);
      tw[1] = static_cast<float>(t);
    } else {
      const int64_t i0 = static_cast<int64_t>(std::floor(x));
      const double t = x - static_cast<double>(i0);
      const double A = a.cubic_a;
      const double c[4] = {
          ((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A,
          ((A + 2) * t - (A + 3)) * t * t + 1,
          ((A + 2) * (1 - t) - (A + 3)) * (1 - t) * (1 - t) + 1,
          ((A * (2 - t) - 5 * A) * (2 - t) + 8 * A) * (2 - t) - 4 * A,
      };
      double sum = 0;
      double cw[4];
      for (int k = 0; k < 4; ++k) {
        const int64_t i = i0 - 1 + k;
        const bool in_range = i >= 0 && i < in;
        cw[k] = (a.exclude_outside && !in_range) ? 0.0 : c[k];
        sum += cw[k];
        ti[k] = clampi(i);
      }
      for (int k = 0; k < 4; ++k)
        tw[k] = static_cast<float>(a.exclude_outside && sum != 0 ? cw[k] / sum : cw[k]);
    }
  }
  // Linear/cubic taps that land exactly on one input (weights 1, 0, ...) collapse to a copy,
  // so unscaled axes (N and C of an image resize) are recognised as identities and skipped.
  if (p.taps > 1) {
    std::vector<int64_t> one(out);
    bool all = true;
    for (int64_t o = 0; o < out && all; ++o) {
      if (p.outside[o]) {
        one[o] = 0;
        continue;
      }
      int hit = -1;
      for (int k = 0; k < p.taps && all; ++k) {
        const float w = p.w[o * p.taps + k];
        if (w == 1.f && hit < 0) hit = k;
        else if (w != 0.f) all = false;
      }
      if (hit < 0) all = false;
      else one[o] = p.idx[o * p.taps + hit];
    }
    if (all) {
      p.taps = 1;
      p.idx = std::move(one);
      p.w.assign(out, 1.f);
    }
  }
  return p;
}

// One 1-D pass: src viewed as [outer, in, inner] -> dst [outer, out, inner].
void PassRef(const AxisPlan& p, int64_t outer, int64_t inner, float extrap, const float* src,
             float* dst, ThreadPool& pool) {
  const int64_t rows = outer * p.out;
  pool.ParallelFor(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(inner, 1)),
                   [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t ob = r / p.out, o = r % p.out;
      float* d = dst + r * inner;
      if (p.outside[o]) {
        std::fill(d, d + inner, extrap);
        continue;
      }
      const float* s = src + ob * p.in * inner;
      const int64_t* ti = &p.idx[o * p.taps];
      const float* tw = &p.w[o * p.taps];
      for (int64_t q = 0; q < inner; ++q) {
        float acc = 0;
        for (int k = 0; k < p.taps; ++k) acc += tw[k] * s[ti[k] * inner + q];
        d[q] = acc;
      }
    }
  });
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) void RowAvx2(const AxisPlan& p, int64_t o, int64_t inner,
                                                 const float* s, float* d) {
  const int64_t* ti = &p.idx[o * p.taps];
  const float* tw = &p.w[o * p.taps];
  if (inner == 1) {
    float acc = 0;
    for (int k = 0; k < p.taps; ++k) acc += tw[k] * s[ti[k]];
    d[0] = acc;
    return;
  }
  if (p.taps == 1) {
    std::memcpy(d, s + ti[0] * inner, sizeof(float) * inner);
    return;
  }
  int64_t q = 0;
  for (; q + 8 <= inner; q += 8) {
    __m256 acc = _mm256_mul_ps(_mm256_set1_ps(tw[0]), _mm256_loadu_ps(s + ti[0] * inner + q));
    for (int k = 1; k < p.taps; ++k)
      acc = _mm256_fmadd_ps(_mm256_set1_ps(tw[k]), _mm256_loadu_ps(s + ti[k] * inner + q), acc);
    _mm256_storeu_ps(d + q, acc);
  }
  for (; q < inner; ++q) {
    float acc = 0;
    for (int k = 0; k < p.taps; ++k) acc += tw[k] * s[ti[k] * inner + q];
    d[q] = acc;
  }
}

__attribute__((target("avx2,fma"))) void LastAxisRowAvx2(const AxisPlan& p, const float* s,
                                                         float* d, float extrap) {
  // Resizing the contiguous axis: each output gathers its taps from one input row.
  if (p.taps == 1) {
    for (int64_t o = 0; o < p.out; ++o) d[o] = p.outside[o] ? extrap : s[p.idx[o]];
    return;
  }
  for (int64_t o = 0; o < p.out; ++o) {
    if (p.outside[o]) {
      d[o] = extrap;
      continue;
    }
    const int64_t* ti = &p.idx[o * p.taps];
    const float* tw = &p.w[o * p.taps];
    float acc = 0;
    for (int k = 0; k < p.taps; ++k) acc += tw[k] * s[ti[k]];
    d[o] = acc;
  }
}

void PassAvx2(const AxisPlan& p, int64_t outer, int64_t inner, float extrap, const float* src,
              float* dst, ThreadPool& pool) {
  if (inner == 1) {
    pool.ParallelFor(outer, std::max<int64_t>(1, 4096 / std::max<int64_t>(p.out, 1)),
                     [&](int64_t b, int64_t e) {
                       for (int64_t r = b; r < e; ++r)
                         LastAxisRowAvx2(p, src + r * p.in, dst + r * p.out, extrap);
                     });
    return;
  }
  const int64_t rows = outer * p.out;
  pool.ParallelFor(rows, std::max<int64_t>(1, 4096 / inner), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t ob = r / p.out, o = r % p.out;
      float* d = dst + r * inner;
      if (p.outside[o]) {
        std::fill(d, d + inner, extrap);
        continue;
      }
      RowAvx2(p, o, inner, src + ob * p.in * inner, d);
    }
  });
}
#endif

#if defined(__x86_64__)
// Nearest resize of the last two axes (FPN upsampling, the detector's 2x/4x/8x): one pass
// instead of two, no intermediate tensor. Output row (plane, oh) is input row h_idx[oh]
// gathered by w_idx; when h_idx repeats, the previous output row (still in L1) is copied.
// The gather: 8 outputs whose source columns span fewer than 8 inputs (any upsampling) are
// one masked load from the block's first source column and one vpermps. The separable
// passes it replaces cost 5x onnxruntime's Upsample (96x40x40 -> 80x80: 0.72 vs 0.12 ms):
// a 1.2 MiB intermediate freshly allocated per call and a scalar gather per element.
struct NearestPlane {
  int64_t planes = 0, h = 0, w = 0, oh = 0, ow = 0;
  const int64_t* h_idx = nullptr;  // oh entries
  const int64_t* w_idx = nullptr;  // ow entries
  // Per full block of 8 outputs: vectorised (first source column; lane offsets) or not.
  std::vector<int32_t> block_base, block_perm;
  std::vector<uint8_t> block_vec;
};

void PlanNearestBlocks(NearestPlane* np) {
  const int64_t blocks = np->ow / 8;
  np->block_base.assign(blocks, 0);
  np->block_perm.assign(blocks * 8, 0);
  np->block_vec.assign(blocks, 0);
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t* idx = np->w_idx + b * 8;
    const int64_t base = *std::min_element(idx, idx + 8), top = *std::max_element(idx, idx + 8);
    if (top - base >= 8) continue;  // downsampling: the scalar gather
    np->block_vec[b] = 1;
    np->block_base[b] = static_cast<int32_t>(base);
    for (int l = 0; l < 8; ++l) np->block_perm[b * 8 + l] = static_cast<int32_t>(idx[l] - base);
  }
}

__attribute__((target("avx2,fma"))) void NearestRowAvx2(const NearestPlane& np, const float* s,
                                                        float* d) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int64_t blocks = np.ow / 8;
  for (int64_t b = 0; b < blocks; ++b) {
    float* db = d + b * 8;
    if (!np.block_vec[b]) {
      for (int l = 0; l < 8; ++l) db[l] = s[np.w_idx[b * 8 + l]];
      continue;
    }
    const int32_t base = np.block_base[b];
    // Lanes past the row's end are not read (they are never selected).
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(np.w - base)), lanes);
    const __m256 v = _mm256_maskload_ps(s + base, mask);
    const __m256i perm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&np.block_perm[b * 8]));
    _mm256_storeu_ps(db, _mm256_permutevar8x32_ps(v, perm));
  }
  for (int64_t o = blocks * 8; o < np.ow; ++o) d[o] = s[np.w_idx[o]];
}

void NearestPlaneAvx2(const NearestPlane& np, const float* src, float* dst, ThreadPool& pool) {
  const int64_t rows = np.planes * np.oh;
  pool.ParallelFor(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(np.ow, 1)),
                   [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t plane = r / np.oh, o = r % np.oh;
      float* d = dst + r * np.ow;
      if (r > b && o > 0 && np.h_idx[o] == np.h_idx[o - 1]) {
        std::memcpy(d, d - np.ow, sizeof(float) * np.ow);
        continue;
      }
      NearestRowAvx2(np, src + (plane * np.h + np.h_idx[o]) * np.w, d);
    }
  });
}
#endif

class ResizeKernel : public Kernel {
 public:
  ResizeKernel(const ir::Node& node, bool simd) : attrs_(ReadAttrs(node)), simd_(simd) {}

  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor* x = ctx.input(0);
    if (!x) Fail(node, "input X is missing");
    if (x->dtype() != ir::DType::kFloat32)
      Fail(node, std::string("expected f32 input, got ") + ir::DTypeName(x->dtype()));
    const int rank = x->rank();
    if (rank < 1) Fail(node, "input X must have rank >= 1");
    const std::vector<int64_t>& in = x->shape();

    const Target t = ResolveTarget(ctx, in);
    const std::vector<double> roi = ReadRoi(ctx, rank);
    ir::Tensor& y = ctx.AllocateOutput(0, ir::DType::kFloat32, t.out);
    if (y.numel() == 0) return;
    for (int i = 0; i < rank; ++i)
      if (in[i] == 0) Fail(node, "cannot resize an empty dim to a non-empty one: " + Join(in));

    std::vector<AxisPlan> plans;
    std::vector<AxisPlan> last_two;  // planned H and W (identity or not), for the nearest path
    bool only_last_two = rank >= 2 && attrs_.mode == Mode::kNearest;
    for (int i = 0; i < rank; ++i) {
      AxisPlan p = PlanAxis(attrs_, i, in[i], t.out[i], t.scales[i], roi[i], roi[rank + i]);
      if (p.any_outside) only_last_two = false;
      if (i >= rank - 2) last_two.push_back(p);
      if (!p.Identity()) {
        if (i < rank - 2) only_last_two = false;
        plans.push_back(std::move(p));
      }
    }
#if defined(__x86_64__)
    if (simd_ && only_last_two && !plans.empty()) {
      RunNearestPlanes(ctx, last_two, *x, y);
      return;
    }
#endif
    RunAxisPasses(ctx, std::move(plans), *x, y);
  }

 private:
  struct Target {
    std::vector<int64_t> out;
    std::vector<double> scales;  // out / in per axis
  };

  // The output shape and the per-axis scales, from 'scales' (an input, or the attribute of the
  // legacy Upsample/Resize-10) or from 'sizes'; exactly one of them must be given.
  Target ResolveTarget(KernelContext& ctx, const std::vector<int64_t>& in) const {
    const ir::Node& node = ctx.node();
    const int rank = static_cast<int>(in.size());
    const ir::Tensor* scales_t = ctx.input(attrs_.legacy ? 1 : 2);
    const ir::Tensor* sizes_t = attrs_.legacy ? nullptr : ctx.input(3);
    if (!attrs_.legacy && scales_t && scales_t->numel() == 0) scales_t = nullptr;
    if (sizes_t && sizes_t->numel() == 0) sizes_t = nullptr;
    Target t;
    t.out.resize(rank);
    if (scales_t) {
      if (scales_t->dtype() != ir::DType::kFloat32)
        Fail(node, std::string("scales must be f32, got ") + ir::DTypeName(scales_t->dtype()));
      t.scales = scales_t->ToDouble();
    } else if (!attrs_.attr_scales.empty()) {
      t.scales.assign(attrs_.attr_scales.begin(), attrs_.attr_scales.end());
    }
    if (sizes_t && scales_t) Fail(node, "only one of 'scales' and 'sizes' may be given");
    if (!t.scales.empty()) {
      if (static_cast<int>(t.scales.size()) != rank)
        Fail(node, "scales has " + std::to_string(t.scales.size()) + " values for rank-" +
                       std::to_string(rank) + " input " + Join(in));
      for (int i = 0; i < rank; ++i) {
        if (!(t.scales[i] > 0) || !std::isfinite(t.scales[i]))
          Fail(node, "scales must be positive and finite, got " + std::to_string(t.scales[i]));
        const double o = std::floor(static_cast<double>(in[i]) * t.scales[i]);
        if (o > static_cast<double>(int64_t{1} << 40))
          Fail(node, "output dim too large for scale " + std::to_string(t.scales[i]));
        t.out[i] = static_cast<int64_t>(o);
      }
    } else if (sizes_t) {
      if (sizes_t->dtype() != ir::DType::kInt64)
        Fail(node, std::string("sizes must be i64, got ") + ir::DTypeName(sizes_t->dtype()));
      t.out = sizes_t->ToInt64();
      if (static_cast<int>(t.out.size()) != rank)
        Fail(node, "sizes " + Join(t.out) + " does not match the rank of input " + Join(in));
      t.scales.resize(rank);
      for (int i = 0; i < rank; ++i) {
        if (t.out[i] < 0 || t.out[i] > (int64_t{1} << 40)) Fail(node, "bad sizes " + Join(t.out));
        t.scales[i] =
            in[i] > 0 ? static_cast<double>(t.out[i]) / static_cast<double>(in[i]) : 1.0;
      }
    } else {
      Fail(node, "needs 'scales' or 'sizes'");
    }
    ir::ElementCount(t.out);  // throws on overflow
    return t;
  }

  // Region of interest as [starts..., ends...]; the whole input unless tf_crop_and_resize.
  std::vector<double> ReadRoi(KernelContext& ctx, int rank) const {
    std::vector<double> roi(2 * rank, 0.0);
    for (int i = 0; i < rank; ++i) roi[rank + i] = 1.0;
    if (attrs_.coord != Coord::kTfCropAndResize) return roi;
    const ir::Node& node = ctx.node();
    const ir::Tensor* roi_t = attrs_.legacy ? nullptr : ctx.input(1);
    if (!roi_t || roi_t->numel() == 0) Fail(node, "tf_crop_and_resize needs the 'roi' input");
    if (roi_t->dtype() != ir::DType::kFloat32 && roi_t->dtype() != ir::DType::kFloat64 &&
        roi_t->dtype() != ir::DType::kFloat16)
      Fail(node, "roi must be a float tensor");
    roi = roi_t->ToDouble();
    if (static_cast<int>(roi.size()) != 2 * rank)
      Fail(node, "roi has " + std::to_string(roi.size()) + " values, expected " +
                     std::to_string(2 * rank));
    return roi;
  }

#if defined(__x86_64__)
  // Nearest resize of the last two axes only: one gather per output row of every plane.
  void RunNearestPlanes(KernelContext& ctx, const std::vector<AxisPlan>& last_two,
                        const ir::Tensor& x, ir::Tensor& y) const {
    const std::vector<int64_t>& in = x.shape();
    const std::vector<int64_t>& out = y.shape();
    const size_t rank = in.size();
    NearestPlane np;
    np.planes =
        static_cast<int64_t>(ir::ElementCount(std::vector<int64_t>(in.begin(), in.end() - 2)));
    np.h = in[rank - 2];
    np.w = in[rank - 1];
    np.oh = out[rank - 2];
    np.ow = out[rank - 1];
    np.h_idx = last_two[0].idx.data();
    np.w_idx = last_two[1].idx.data();
    PlanNearestBlocks(&np);
    NearestPlaneAvx2(np, x.data<float>(), y.mutable_data<float>(), ctx.pool());
  }
#endif

  // One pass per resized axis, shrinking axes first (smallest out/in ratio) so that the
  // intermediate buffers stay small; the last pass writes y.
  void RunAxisPasses(KernelContext& ctx, std::vector<AxisPlan> plans, const ir::Tensor& x,
                     ir::Tensor& y) const {
    std::stable_sort(plans.begin(), plans.end(), [](const AxisPlan& a, const AxisPlan& b) {
      return static_cast<double>(a.out) / a.in < static_cast<double>(b.out) / b.in;
    });
    float* dst_final = y.mutable_data<float>();
    if (plans.empty()) {
      std::memcpy(dst_final, x.data<float>(), y.nbytes());
      return;
    }
    const int rank = x.rank();
    std::vector<int64_t> cur = x.shape();
    std::vector<float> bufs[2];
    const float* src = x.data<float>();
    for (size_t k = 0; k < plans.size(); ++k) {
      const AxisPlan& p = plans[k];
      int64_t outer = 1, inner = 1;
      for (int i = 0; i < p.axis; ++i) outer *= cur[i];
      for (int i = p.axis + 1; i < rank; ++i) inner *= cur[i];
      cur[p.axis] = p.out;
      float* dst;
      if (k + 1 == plans.size()) {
        dst = dst_final;
      } else {
        bufs[k % 2].resize(ir::ElementCount(cur));
        dst = bufs[k % 2].data();
      }
#if defined(__x86_64__)
      if (simd_) PassAvx2(p, outer, inner, attrs_.extrapolation, src, dst, ctx.pool());
      else
#endif
        PassRef(p, outer, inner, attrs_.extrapolation, src, dst, ctx.pool());
      src = dst;
    }
  }

  ResizeAttrs attrs_;
  bool simd_;
};

template <bool kSimd>
std::unique_ptr<Kernel> Create(const KernelInit& init) {
  return std::make_unique<ResizeKernel>(init.node, kSimd);
}

}  // namespace

void RegisterResizeKernels(KernelRegistry& r) {
  using ir::DType;
  r.Add({"Resize", "", DType::kFloat32, Isa::kScalar, "f32_resize__ref", Create<false>});
  r.Add({"Upsample", "", DType::kFloat32, Isa::kScalar, "f32_upsample__ref", Create<false>});
#if defined(__x86_64__)
  r.Add({"Resize", "", DType::kFloat32, Isa::kAvx2, "f32_resize__avx2", Create<true>});
  r.Add({"Upsample", "", DType::kFloat32, Isa::kAvx2, "f32_upsample__avx2", Create<true>});
#endif
}

}  // namespace edgepress::runtime
