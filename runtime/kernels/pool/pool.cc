// Pooling kernels: MaxPool (with the optional Indices output), AveragePool, LpPool and
// their Global* forms, for 1-D, 2-D and 3-D NCHW tensors with ONNX semantics (pads,
// auto_pad, strides, dilations, ceil_mode, count_include_pad, storage_order).
//
// Every spatial case is handled as 3-D (missing leading dims get size 1), so one geometry
// and one loop nest serve all ranks. The reference kernels walk each window with bounds
// checks. The AVX2 kernels first reduce the window's rows into a padded row buffer with
// full-width vector max/add (contiguous, so it vectorises whatever the stride), then reduce
// horizontally (vectorised when the stride is 1). 1-D/2-D MaxPool has its own AVX2 and
// AVX-512 path (MaxPool2D), vectorised horizontally at strides 1 and 2 as well. Work is
// split over N*C planes.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
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

// Window geometry of one pooling node for one input shape, padded to 3 spatial dims.
struct PoolGeom {
  int nd = 0;  // spatial rank of the input (1..3)
  int64_t n = 0, c = 0;
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
  int64_t in_plane() const { return in[0] * in[1] * in[2]; }
  int64_t out_plane() const { return out[0] * out[1] * out[2]; }
};

enum class PoolKind { kMax, kAvg, kLp };

struct PoolAttrs {
  std::vector<int64_t> kernel, strides, dilations, pads;
  std::string auto_pad = "NOTSET";
  bool ceil_mode = false;
  bool count_include_pad = false;
  int64_t storage_order = 0;
  int64_t p = 2;
  bool global = false;
};

PoolAttrs ReadPoolAttrs(const ir::Node& node, PoolKind kind, bool global) {
  PoolAttrs a;
  a.global = global;
  if (kind == PoolKind::kLp) {
    a.p = node.attr_int("p", 2);
    if (a.p < 1 || a.p > 64) Fail(node, "p must be in [1, 64], got " + std::to_string(a.p));
  }
  if (global) return a;
  a.kernel = node.attr_ints("kernel_shape");
  if (a.kernel.empty()) Fail(node, "attribute 'kernel_shape' is required");
  a.strides = node.attr_ints("strides");
  a.dilations = node.attr_ints("dilations");
  a.pads = node.attr_ints("pads");
  a.auto_pad = node.attr_string("auto_pad", "NOTSET");
  if (a.auto_pad != "NOTSET" && a.auto_pad != "VALID" && a.auto_pad != "SAME_UPPER" &&
      a.auto_pad != "SAME_LOWER")
    Fail(node, "unknown auto_pad '" + a.auto_pad + "'");
  const int64_t ceil_mode = node.attr_int("ceil_mode", 0);
  if (ceil_mode != 0 && ceil_mode != 1) Fail(node, "ceil_mode must be 0 or 1");
  a.ceil_mode = ceil_mode == 1;
  const int64_t cip = node.attr_int("count_include_pad", 0);
  if (cip != 0 && cip != 1) Fail(node, "count_include_pad must be 0 or 1");
  a.count_include_pad = cip == 1;
  a.storage_order = node.attr_int("storage_order", 0);
  if (a.storage_order != 0 && a.storage_order != 1) Fail(node, "storage_order must be 0 or 1");
  return a;
}

// Keeps window arithmetic far from int64 overflow.
constexpr int64_t kMaxDim = int64_t{1} << 31;

PoolGeom ComputeGeom(const ir::Node& node, const PoolAttrs& a, const std::vector<int64_t>& x) {
  const int rank = static_cast<int>(x.size());
  if (rank < 3 || rank > 5)
    Fail(node, "input must have rank 3 to 5 (N, C and 1-3 spatial dims), got shape " + Join(x));
  PoolGeom g;
  g.nd = rank - 2;
  g.n = x[0];
  g.c = x[1];
  const int nd = g.nd;
  const int off = 3 - nd;
  for (int i = 0; i < 3; ++i) {
    g.in[i] = g.out[i] = g.k[i] = g.s[i] = g.d[i] = 1;
    g.pb[i] = g.pe[i] = 0;
  }
  for (int64_t v : x)
    if (v < 0 || v > kMaxDim) Fail(node, "input dims out of range: " + Join(x));
  for (int i = 0; i < nd; ++i) g.in[off + i] = x[2 + i];
  if (a.global) {
    for (int i = 0; i < nd; ++i) {
      g.k[off + i] = x[2 + i];
      if (x[2 + i] == 0) Fail(node, "global pooling over an empty spatial dim: " + Join(x));
    }
    return g;
  }
  const auto check_len = [&](const std::vector<int64_t>& v, size_t want, const char* name) {
    if (!v.empty() && v.size() != want)
      Fail(node, std::string("attribute '") + name + "' has " + std::to_string(v.size()) +
                     " values, expected " + std::to_string(want) + " for input " + Join(x));
  };
  if (a.kernel.size() != static_cast<size_t>(nd))
    Fail(node, "kernel_shape " + Join(a.kernel) + " does not match the " + std::to_string(nd) +
                   " spatial dims of input " + Join(x));
  check_len(a.strides, nd, "strides");
  check_len(a.dilations, nd, "dilations");
  check_len(a.pads, 2 * nd, "pads");
  for (int i = 0; i < nd; ++i) {
    const int j = off + i;
    g.k[j] = a.kernel[i];
    g.s[j] = a.strides.empty() ? 1 : a.strides[i];
    g.d[j] = a.dilations.empty() ? 1 : a.dilations[i];
    if (g.k[j] < 1 || g.k[j] > kMaxDim) Fail(node, "kernel_shape must be positive: " + Join(a.kernel));
    if (g.s[j] < 1 || g.s[j] > kMaxDim) Fail(node, "strides must be positive: " + Join(a.strides));
    if (g.d[j] < 1 || g.d[j] > kMaxDim)
      Fail(node, "dilations must be positive: " + Join(a.dilations));
    const int64_t eff = (g.k[j] - 1) * g.d[j] + 1;  // < 2^62
    if (eff > kMaxDim) Fail(node, "dilated kernel too large");
    const int64_t in = g.in[j];
    if (a.auto_pad == "NOTSET") {
      g.pb[j] = a.pads.empty() ? 0 : a.pads[i];
      g.pe[j] = a.pads.empty() ? 0 : a.pads[nd + i];
      if (g.pb[j] < 0 || g.pe[j] < 0 || g.pb[j] > kMaxDim || g.pe[j] > kMaxDim)
        Fail(node, "pads out of range: " + Join(a.pads));
      if (g.pb[j] >= eff || g.pe[j] >= eff)
        Fail(node, "pads " + Join(a.pads) + " must be smaller than the kernel " + Join(a.kernel));
      const int64_t span = in + g.pb[j] + g.pe[j] - eff;
      if (span < 0)
        Fail(node, "kernel " + Join(a.kernel) + " is larger than the padded input " + Join(x));
      int64_t o = (a.ceil_mode ? (span + g.s[j] - 1) / g.s[j] : span / g.s[j]) + 1;
      // As PyTorch and onnxruntime: the last window must start inside the input or the
      // leading padding.
      if (a.ceil_mode && (o - 1) * g.s[j] >= in + g.pb[j]) --o;
      g.out[j] = o;
    } else if (a.auto_pad == "VALID") {
      if (in < eff) Fail(node, "kernel " + Join(a.kernel) + " is larger than input " + Join(x));
      g.out[j] = (in - eff) / g.s[j] + 1;
    } else {
      const int64_t o = (in + g.s[j] - 1) / g.s[j];
      const int64_t total = std::max<int64_t>(0, (o - 1) * g.s[j] + eff - in);
      g.pb[j] = a.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      g.pe[j] = total - g.pb[j];
      g.out[j] = o;
    }
    if (g.out[j] < 1 && in > 0) Fail(node, "pooling produces an empty output for " + Join(x));
  }
  return g;
}

std::vector<int64_t> OutShape(const PoolGeom& g) {
  std::vector<int64_t> s = {g.n, g.c};
  for (int i = 3 - g.nd; i < 3; ++i) s.push_back(g.out[i]);
  return s;
}

// Valid taps [lo, hi) of output position o along one dim (tap j reads o*s - pb + j*d).
inline void TapRange(const PoolGeom& g, int dim, int64_t o, int64_t* lo, int64_t* hi) {
  const int64_t start = o * g.s[dim] - g.pb[dim];
  const int64_t d = g.d[dim];
  int64_t a = 0;
  if (start < 0) a = (-start + d - 1) / d;
  int64_t b = g.k[dim];
  const int64_t last = g.in[dim] - 1 - start;  // highest valid j*d
  if (last < 0) b = 0;
  else b = std::min(b, last / d + 1);
  *lo = a;
  *hi = std::max(a, b);
}

// Taps inside the padded extent [-pb, in + pe): the divisor of count_include_pad.
inline int64_t PaddedTaps(const PoolGeom& g, int dim, int64_t o) {
  const int64_t start = o * g.s[dim] - g.pb[dim];
  const int64_t limit = g.in[dim] + g.pe[dim] - start;  // positions j*d < limit
  const int64_t d = g.d[dim];
  if (limit <= 0) return 0;
  return std::min(g.k[dim], (limit + d - 1) / d);
}

template <typename T> ir::DType DTypeOf();
template <> ir::DType DTypeOf<float>() { return ir::DType::kFloat32; }
template <> ir::DType DTypeOf<uint8_t>() { return ir::DType::kUInt8; }
template <> ir::DType DTypeOf<int8_t>() { return ir::DType::kInt8; }

void CheckF32(const ir::Node& node, const ir::Tensor* x) {
  if (!x) Fail(node, "input X is missing");
  if (x->dtype() != ir::DType::kFloat32)
    Fail(node, std::string("expected f32 input, got ") + ir::DTypeName(x->dtype()));
}

// ---------------------------------------------------------------------------------------
// Reference kernels.

template <typename T>
void MaxPoolRef(const PoolGeom& g, const T* x, T* y, int64_t* idx, bool col_major,
                ThreadPool& pool) {
  const int64_t ip = g.in_plane(), op = g.out_plane();
  pool.ParallelFor(g.n * g.c, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const T* xp = x + nc * ip;
      for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
        for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
          for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
            int64_t l0, h0, l1, h1, l2, h2;
            TapRange(g, 0, o0, &l0, &h0);
            TapRange(g, 1, o1, &l1, &h1);
            TapRange(g, 2, o2, &l2, &h2);
            T best = std::numeric_limits<T>::lowest();
            int64_t best_at = -1;
            for (int64_t j0 = l0; j0 < h0; ++j0) {
              const int64_t i0 = o0 * g.s[0] - g.pb[0] + j0 * g.d[0];
              for (int64_t j1 = l1; j1 < h1; ++j1) {
                const int64_t i1 = o1 * g.s[1] - g.pb[1] + j1 * g.d[1];
                for (int64_t j2 = l2; j2 < h2; ++j2) {
                  const int64_t i2 = o2 * g.s[2] - g.pb[2] + j2 * g.d[2];
                  const int64_t at = (i0 * g.in[1] + i1) * g.in[2] + i2;
                  // The first maximum wins, as in onnxruntime.
                  if (best_at < 0 || xp[at] > best) {
                    best = xp[at];
                    best_at = col_major ? (i2 * g.in[1] + i1) * g.in[0] + i0 : at;
                  }
                }
              }
            }
            const int64_t out_at = (o0 * g.out[1] + o1) * g.out[2] + o2;
            y[nc * op + out_at] = best;
            if (idx) idx[nc * op + out_at] = nc * ip + std::max<int64_t>(best_at, 0);
          }
    }
  });
}

#if defined(__x86_64__)
// 8-bit MaxPool of 1-D/2-D planes without the index output (the integer pipeline's
// MaxPool after fuse-qdq). Values are handled as uint8: int8 values are flipped by 0x80,
// which keeps their order, and padding is 0, the lowest (a padded tap never wins, exactly
// as skipping it). The max is separable and exact in any order: per output row, first the
// max of its in-range input rows (contiguous, 32 bytes a step) into a padded row, then
// the max of the kw taps along that row: stride 1 as 32 shifted loads, stride 2 as
// 16 outputs from the even or odd bytes of 32 (16-bit words masked or shifted). Other
// strides take the scalar loop over the row.
// Planes [b, e) (the lambda of a ParallelFor does not inherit a target attribute).
template <typename T>
__attribute__((target("avx2"))) void MaxPool8BitPlanes(const PoolGeom& g, const T* x, T* y,
                                                      int64_t b, int64_t e) {
  const int64_t ip = g.in_plane(), op = g.out_plane();
  const int64_t wp = (g.out[2] - 1) * g.s[2] + (g.k[2] - 1) * g.d[2] + 1;
  const uint8_t flip = std::is_same<T, int8_t>::value ? 0x80 : 0;
  const int64_t ow_n = g.out[2], sw = g.s[2], dw = g.d[2];
  {
    // vrow holds one output row's max over its kh input rows, at padded columns (the
    // padding columns hold 0, the flipped lowest); 64 bytes of slack after it keep vector
    // loads past the last tap inside.
    std::vector<uint8_t> vrow(static_cast<size_t>(wp + 64), 0);
    std::vector<uint8_t> orow(static_cast<size_t>(ow_n + 32), 0);
    const __m256i vflip = _mm256_set1_epi8(static_cast<char>(flip));
    const __m256i low_bytes = _mm256_set1_epi16(0x00ff);
    const int64_t c0 = std::min<int64_t>(wp, g.pb[2]);
    const int64_t c1 = std::max(c0, std::min<int64_t>(wp, g.in[2] + g.pb[2]));
    const int64_t run = c1 - c0;
    for (int64_t nc = b; nc < e; ++nc) {
      const uint8_t* xp = reinterpret_cast<const uint8_t*>(x + nc * ip);
      for (int64_t oh = 0; oh < g.out[1]; ++oh) {
        uint8_t* v = vrow.data() + c0;
        bool first = true;
        for (int64_t kh = 0; kh < g.k[1]; ++kh) {
          const int64_t ih = oh * g.s[1] + kh * g.d[1] - g.pb[1];
          if (ih < 0 || ih >= g.in[1]) continue;
          const uint8_t* src = xp + ih * g.in[2] + (c0 - g.pb[2]);
          int64_t i = 0;
          for (; i + 32 <= run; i += 32) {
            __m256i m = _mm256_xor_si256(
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)), vflip);
            if (!first)
              m = _mm256_max_epu8(m, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i)));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(v + i), m);
          }
          for (; i < run; ++i) {
            const uint8_t u = src[i] ^ flip;
            v[i] = first ? u : std::max(v[i], u);
          }
          first = false;
        }
        if (first) std::fill(v, v + run, uint8_t{0});  // every row is padding
        uint8_t* o = orow.data();
        if (sw == 1) {
          for (int64_t ow = 0; ow < ow_n; ow += 32) {
            __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vrow.data() + ow));
            for (int64_t kw = 1; kw < g.k[2]; ++kw)
              m = _mm256_max_epu8(m, _mm256_loadu_si256(
                                         reinterpret_cast<const __m256i*>(vrow.data() + ow + kw * dw)));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + ow), _mm256_xor_si256(m, vflip));
          }
        } else if (sw == 2) {
          for (int64_t ow = 0; ow < ow_n; ow += 16) {
            __m256i m = _mm256_setzero_si256();
            for (int64_t kw = 0; kw < g.k[2]; ++kw) {
              const int64_t off = kw * dw;  // output ow reads byte 2*ow + off
              const __m256i v = _mm256_loadu_si256(
                  reinterpret_cast<const __m256i*>(vrow.data() + 2 * ow + (off & ~int64_t{1})));
              m = _mm256_max_epu16(m, (off & 1) ? _mm256_srli_epi16(v, 8) : _mm256_and_si256(v, low_bytes));
            }
            const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(m, m), 0x08);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(o + ow),
                             _mm_xor_si128(_mm256_castsi256_si128(packed), _mm256_castsi256_si128(vflip)));
          }
        } else {
          for (int64_t ow = 0; ow < ow_n; ++ow) {
            uint8_t m = 0;
            for (int64_t kw = 0; kw < g.k[2]; ++kw) m = std::max(m, vrow[static_cast<size_t>(ow * sw + kw * dw)]);
            o[ow] = m ^ flip;
          }
        }
        std::memcpy(y + nc * op + oh * ow_n, o, static_cast<size_t>(ow_n));
      }
    }
  }
}

template <typename T>
void MaxPool8BitPadded(const PoolGeom& g, const T* x, T* y, ThreadPool& pool) {
  pool.ParallelFor(g.n * g.c, 1, [&](int64_t b, int64_t e) { MaxPool8BitPlanes(g, x, y, b, e); });
}
#endif

void AvgLpPoolRef(const PoolGeom& g, PoolKind kind, bool include_pad, int64_t p, const float* x,
                  float* y, ThreadPool& pool) {
  const int64_t ip = g.in_plane(), op = g.out_plane();
  pool.ParallelFor(g.n * g.c, 1, [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const float* xp = x + nc * ip;
      for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
        for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
          for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
            int64_t l0, h0, l1, h1, l2, h2;
            TapRange(g, 0, o0, &l0, &h0);
            TapRange(g, 1, o1, &l1, &h1);
            TapRange(g, 2, o2, &l2, &h2);
            double acc = 0;
            for (int64_t j0 = l0; j0 < h0; ++j0) {
              const int64_t i0 = o0 * g.s[0] - g.pb[0] + j0 * g.d[0];
              for (int64_t j1 = l1; j1 < h1; ++j1) {
                const int64_t i1 = o1 * g.s[1] - g.pb[1] + j1 * g.d[1];
                for (int64_t j2 = l2; j2 < h2; ++j2) {
                  const int64_t i2 = o2 * g.s[2] - g.pb[2] + j2 * g.d[2];
                  const float v = xp[(i0 * g.in[1] + i1) * g.in[2] + i2];
                  if (kind == PoolKind::kAvg) acc += v;
                  else if (p == 1) acc += std::fabs(v);
                  else if (p == 2) acc += static_cast<double>(v) * v;
                  else acc += std::pow(std::fabs(static_cast<double>(v)), static_cast<double>(p));
                }
              }
            }
            float r;
            if (kind == PoolKind::kAvg) {
              const int64_t cnt = include_pad ? PaddedTaps(g, 0, o0) * PaddedTaps(g, 1, o1) *
                                                    PaddedTaps(g, 2, o2)
                                              : (h0 - l0) * (h1 - l1) * (h2 - l2);
              r = cnt > 0 ? static_cast<float>(acc / static_cast<double>(cnt)) : 0.f;
            } else {
              r = static_cast<float>(p == 1 ? acc : p == 2 ? std::sqrt(acc)
                                                           : std::pow(acc, 1.0 / p));
            }
            y[nc * op + (o0 * g.out[1] + o1) * g.out[2] + o2] = r;
          }
    }
  });
}

// ---------------------------------------------------------------------------------------
// AVX2 kernels.

#if defined(__x86_64__)
// Reduces one output row: the window rows go into `buf` (padded row, pad value `init`),
// then each output reads k taps of `buf`.
__attribute__((target("avx2,fma"))) void PoolRowsAvx2(const PoolGeom& g, bool is_max,
                                                      bool include_pad, const float* xp,
                                                      float* yp, float* buf, int64_t wp,
                                                      const float* inv_col) {
  const float init = is_max ? std::numeric_limits<float>::lowest() : 0.f;
  const __m256 vinit = _mm256_set1_ps(init);
  const int64_t W = g.in[2], pbw = g.pb[2];
  for (int64_t o0 = 0; o0 < g.out[0]; ++o0) {
    int64_t l0, h0;
    TapRange(g, 0, o0, &l0, &h0);
    for (int64_t o1 = 0; o1 < g.out[1]; ++o1) {
      int64_t l1, h1;
      TapRange(g, 1, o1, &l1, &h1);
      int64_t w = 0;
      for (; w + 8 <= wp; w += 8) _mm256_storeu_ps(buf + w, vinit);
      for (; w < wp; ++w) buf[w] = init;
      float* row = buf + pbw;
      for (int64_t j0 = l0; j0 < h0; ++j0) {
        const int64_t i0 = o0 * g.s[0] - g.pb[0] + j0 * g.d[0];
        for (int64_t j1 = l1; j1 < h1; ++j1) {
          const int64_t i1 = o1 * g.s[1] - g.pb[1] + j1 * g.d[1];
          const float* src = xp + (i0 * g.in[1] + i1) * W;
          int64_t q = 0;
          if (is_max) {
            for (; q + 8 <= W; q += 8)
              _mm256_storeu_ps(row + q,
                               _mm256_max_ps(_mm256_loadu_ps(row + q), _mm256_loadu_ps(src + q)));
            for (; q < W; ++q) row[q] = std::max(row[q], src[q]);
          } else {
            for (; q + 8 <= W; q += 8)
              _mm256_storeu_ps(row + q,
                               _mm256_add_ps(_mm256_loadu_ps(row + q), _mm256_loadu_ps(src + q)));
            for (; q < W; ++q) row[q] += src[q];
          }
        }
      }
      float* out = yp + (o0 * g.out[1] + o1) * g.out[2];
      const int64_t OW = g.out[2], K = g.k[2], S = g.s[2], D = g.d[2];
      int64_t ow = 0;
      if (S == 1) {
        for (; ow + 8 <= OW; ow += 8) {
          __m256 acc = _mm256_loadu_ps(buf + ow);
          for (int64_t j = 1; j < K; ++j) {
            const __m256 v = _mm256_loadu_ps(buf + ow + j * D);
            acc = is_max ? _mm256_max_ps(acc, v) : _mm256_add_ps(acc, v);
          }
          _mm256_storeu_ps(out + ow, acc);
        }
      }
      for (; ow < OW; ++ow) {
        const float* t = buf + ow * S;
        float acc = t[0];
        for (int64_t j = 1; j < K; ++j) acc = is_max ? std::max(acc, t[j * D]) : acc + t[j * D];
        out[ow] = acc;
      }
      if (!is_max) {
        const float rows = static_cast<float>(include_pad ? PaddedTaps(g, 0, o0) * PaddedTaps(g, 1, o1)
                                                          : (h0 - l0) * (h1 - l1));
        const float inv_rows = rows > 0 ? 1.f / rows : 0.f;
        for (int64_t q = 0; q < OW; ++q) out[q] *= inv_col[q] * inv_rows;
      }
    }
  }
}

// Padded row width: every tap of every output must land inside the buffer.
int64_t PaddedRowWidth(const PoolGeom& g) {
  return std::max(g.pb[2] + g.in[2], (g.out[2] - 1) * g.s[2] + (g.k[2] - 1) * g.d[2] + 1);
}

// The AVX2 path copies each row into a scratch row as wide as the pads and the dilated
// kernel reach. Pads or dilations far beyond the row (a hostile model: found by
// fuzz_epk_run, a 4 GiB scratch row for a tiny output) take the reference path, which
// reads in place.
bool PaddedRowFits(const PoolGeom& g) {
  constexpr double kMaxPaddedRow = 1 << 20;  // floats per thread
  const double reach = static_cast<double>(g.out[2] - 1) * static_cast<double>(g.s[2]) +
                       static_cast<double>(g.k[2] - 1) * static_cast<double>(g.d[2]) + 1;
  return static_cast<double>(g.pb[2]) + static_cast<double>(g.in[2]) <= kMaxPaddedRow &&
         reach <= kMaxPaddedRow;
}

void PoolAvx2(const PoolGeom& g, bool is_max, bool include_pad, const float* x, float* y,
              ThreadPool& pool) {
  const int64_t wp = PaddedRowWidth(g);
  std::vector<float> inv_col(g.out[2]);
  for (int64_t q = 0; q < g.out[2]; ++q) {
    int64_t lo, hi;
    TapRange(g, 2, q, &lo, &hi);
    const int64_t cnt = include_pad ? PaddedTaps(g, 2, q) : hi - lo;
    inv_col[q] = cnt > 0 ? 1.f / static_cast<float>(cnt) : 0.f;
  }
  const int64_t ip = g.in_plane(), op = g.out_plane();
  pool.ParallelFor(g.n * g.c, 1, [&](int64_t b, int64_t e) {
    std::vector<float> buf(wp + 8);
    for (int64_t nc = b; nc < e; ++nc)
      PoolRowsAvx2(g, is_max, include_pad, x + nc * ip, y + nc * op, buf.data(), wp,
                   inv_col.data());
  });
}

__attribute__((target("avx2,fma"))) float GlobalPlaneAvx2(const float* p, int64_t len,
                                                          bool is_max) {
  int64_t i = 0;
  alignas(32) float lanes[8];
  if (is_max) {
    __m256 m = _mm256_set1_ps(std::numeric_limits<float>::lowest());
    for (; i + 8 <= len; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(p + i));
    _mm256_store_ps(lanes, m);
    float r = lanes[0];
    for (int l = 1; l < 8; ++l) r = std::max(r, lanes[l]);
    for (; i < len; ++i) r = std::max(r, p[i]);
    return r;
  }
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  for (; i + 16 <= len; i += 16) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p + i + 8));
  }
  for (; i + 8 <= len; i += 8) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p + i));
  _mm256_store_ps(lanes, _mm256_add_ps(s0, s1));
  double acc = 0;
  for (int l = 0; l < 8; ++l) acc += lanes[l];
  for (; i < len; ++i) acc += p[i];
  return static_cast<float>(acc / static_cast<double>(len));
}

void GlobalPoolAvx2(int64_t planes, int64_t len, bool is_max, const float* x, float* y,
                    ThreadPool& pool) {
  pool.ParallelFor(planes, std::max<int64_t>(1, 16384 / std::max<int64_t>(len, 1)),
                   [&](int64_t b, int64_t e) {
                     for (int64_t nc = b; nc < e; ++nc)
                       y[nc] = GlobalPlaneAvx2(x + nc * len, len, is_max);
                   });
}

// ---------------------------------------------------------------------------------------
// f32 MaxPool of 1-D/2-D planes (no Indices output): the max is separable and exact in
// any order, so per output row the kh window rows are reduced first into a padded row
// (full-width vector max, contiguous whatever the strides), then the kw taps along it:
// stride 1 as shifted loads, stride 2 from two vectors of 2*L padded columns deinterleaved
// into even or odd lanes (AVX-512 vpermt2ps; AVX2 shufps, whose lane order the final
// vpermpd puts right once per output vector). Other strides reduce the row in scalar.
// Padding columns of the row hold the lowest float, so a padded tap never wins, exactly
// as skipping it; they are written once per thread, since only [c0, c1) changes per row.
// Dilations work unchanged (tap offsets along the row, row offsets across rows).

// One ISA's row functions: VMax writes dst[i] = max over rows r[i] for i < n (nrows >= 1);
// HMax writes out[ow] = max over taps kw of row[ow*s + kw*d] for ow < n.
struct MaxRowFns {
  void (*vmax)(const float* const* rows, int64_t nrows, int64_t n, float* dst);
  void (*hmax)(const float* row, int64_t n, int64_t k, int64_t s, int64_t d, float* out);
  int64_t lanes;
};

void HMaxScalarFrom(const float* row, int64_t ow, int64_t n, int64_t k, int64_t s, int64_t d,
                    float* out) {
  for (; ow < n; ++ow) {
    const float* t = row + ow * s;
    float m = t[0];
    for (int64_t j = 1; j < k; ++j) m = std::max(m, t[j * d]);
    out[ow] = m;
  }
}

__attribute__((target("avx2"))) void VMaxAvx2(const float* const* rows, int64_t nrows, int64_t n,
                                              float* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 m = _mm256_loadu_ps(rows[0] + i);
    for (int64_t r = 1; r < nrows; ++r) m = _mm256_max_ps(m, _mm256_loadu_ps(rows[r] + i));
    _mm256_storeu_ps(dst + i, m);
  }
  for (; i < n; ++i) {
    float m = rows[0][i];
    for (int64_t r = 1; r < nrows; ++r) m = std::max(m, rows[r][i]);
    dst[i] = m;
  }
}

__attribute__((target("avx2"))) void HMaxAvx2(const float* row, int64_t n, int64_t k, int64_t s,
                                              int64_t d, float* out) {
  int64_t ow = 0;
  if (s == 1) {
    for (; ow + 8 <= n; ow += 8) {
      __m256 m = _mm256_loadu_ps(row + ow);
      for (int64_t j = 1; j < k; ++j) m = _mm256_max_ps(m, _mm256_loadu_ps(row + ow + j * d));
      _mm256_storeu_ps(out + ow, m);
    }
  } else if (s == 2) {
    for (; ow + 8 <= n; ow += 8) {
      __m256 m = _mm256_set1_ps(std::numeric_limits<float>::lowest());
      for (int64_t j = 0; j < k; ++j) {
        const int64_t t = j * d;  // output ow + l reads column 2*(ow + l) + t
        const float* p = row + 2 * ow + (t & ~int64_t{1});
        const __m256 lo = _mm256_loadu_ps(p), hi = _mm256_loadu_ps(p + 8);
        // Lanes [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6] (even) or the odd ones.
        m = _mm256_max_ps(m, (t & 1) ? _mm256_shuffle_ps(lo, hi, 0xdd)
                                     : _mm256_shuffle_ps(lo, hi, 0x88));
      }
      _mm256_storeu_ps(out + ow,
                       _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m), 0xd8)));
    }
  }
  HMaxScalarFrom(row, ow, n, k, s, d, out);
}

// gcc 12 reports -Wmaybe-uninitialized inside unmasked AVX-512 intrinsics (their merge
// source is _mm512_undefined_ps()): a false positive, silenced for these two functions.
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx512f"))) void VMaxAvx512(const float* const* rows, int64_t nrows,
                                                   int64_t n, float* dst) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
    __m512 m = _mm512_maskz_loadu_ps(mask, rows[0] + i);
    for (int64_t r = 1; r < nrows; ++r)
      m = _mm512_max_ps(m, _mm512_maskz_loadu_ps(mask, rows[r] + i));
    _mm512_mask_storeu_ps(dst + i, mask, m);
  }
}

// Reads up to 2*(n rounded up to 16) + (k-1)*d + 32 columns of `row` (the caller's slack);
// the lanes past n are never stored.
__attribute__((target("avx512f"))) void HMaxAvx512(const float* row, int64_t n, int64_t k,
                                                   int64_t s, int64_t d, float* out) {
  if (s != 1 && s != 2) return HMaxScalarFrom(row, 0, n, k, s, d, out);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int64_t ow = 0; ow < n; ow += 16) {
    const __mmask16 mask = n - ow >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - ow)) - 1);
    __m512 m;
    if (s == 1) {
      m = _mm512_loadu_ps(row + ow);
      for (int64_t j = 1; j < k; ++j) m = _mm512_max_ps(m, _mm512_loadu_ps(row + ow + j * d));
    } else {
      m = _mm512_set1_ps(std::numeric_limits<float>::lowest());
      for (int64_t j = 0; j < k; ++j) {
        const int64_t t = j * d;
        const float* p = row + 2 * ow + (t & ~int64_t{1});
        m = _mm512_max_ps(m, _mm512_permutex2var_ps(_mm512_loadu_ps(p), (t & 1) ? odd : even,
                                                     _mm512_loadu_ps(p + 16)));
      }
    }
    _mm512_mask_storeu_ps(out + ow, mask, m);
  }
}

#pragma GCC diagnostic pop

// Planes [b, e) of a pooling with g.k[0] == g.in[0] == 1.
void MaxPool2DPlanes(const PoolGeom& g, const MaxRowFns& fns, const float* x, float* y, int64_t b,
                     int64_t e) {
  const int64_t ip = g.in_plane(), op = g.out_plane();
  const int64_t W = g.in[2], OW = g.out[2], KH = g.k[1];
  const int64_t wp = PaddedRowWidth(g);
  // Slack for the vector loads of the last (partial) output vector: 2 vectors of 2*lanes.
  const int64_t slack = 4 * fns.lanes + 2 * ((OW + fns.lanes - 1) / fns.lanes * fns.lanes - OW);
  std::vector<float> vrow(static_cast<size_t>(wp + slack), std::numeric_limits<float>::lowest());
  float* row = vrow.data() + g.pb[2];  // input column 0
  std::vector<const float*> rows(static_cast<size_t>(KH));
  for (int64_t nc = b; nc < e; ++nc) {
    const float* xp = x + nc * ip;
    float* yp = y + nc * op;
    for (int64_t oh = 0; oh < g.out[1]; ++oh) {
      int64_t n = 0;
      for (int64_t kh = 0; kh < KH; ++kh) {
        const int64_t ih = oh * g.s[1] + kh * g.d[1] - g.pb[1];
        if (ih >= 0 && ih < g.in[1]) rows[n++] = xp + ih * W;
      }
      if (n > 0) fns.vmax(rows.data(), n, W, row);
      else std::fill(row, row + W, std::numeric_limits<float>::lowest());  // all padding
      fns.hmax(vrow.data(), OW, g.k[2], g.s[2], g.d[2], yp + oh * OW);
    }
  }
}

void MaxPool2D(const PoolGeom& g, const MaxRowFns& fns, const float* x, float* y,
               ThreadPool& pool) {
  pool.ParallelFor(g.n * g.c, 1,
                   [&](int64_t b, int64_t e) { MaxPool2DPlanes(g, fns, x, y, b, e); });
}

constexpr MaxRowFns kMaxRowsAvx2 = {VMaxAvx2, HMaxAvx2, 8};
constexpr MaxRowFns kMaxRowsAvx512 = {VMaxAvx512, HMaxAvx512, 16};
#endif

// ---------------------------------------------------------------------------------------
// Kernel classes.

template <typename T>
class MaxPoolKernel : public Kernel {
 public:
  MaxPoolKernel(const ir::Node& node, bool global, bool simd, bool avx512)
      : attrs_(ReadPoolAttrs(node, PoolKind::kMax, global)), simd_(simd), avx512_(avx512) {}
  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor* x = ctx.input(0);
    if (!x) Fail(node, "input X is missing");
    if (x->dtype() != DTypeOf<T>())
      Fail(node, std::string("unexpected input dtype ") + ir::DTypeName(x->dtype()));
    const PoolGeom g = ComputeGeom(node, attrs_, x->shape());
    ir::Tensor& y = ctx.AllocateOutput(0, x->dtype(), OutShape(g));
    const bool want_idx = !attrs_.global && ctx.num_outputs() > 1 && ctx.output_requested(1);
    int64_t* idx = nullptr;
    if (want_idx) idx = ctx.AllocateOutput(1, ir::DType::kInt64, OutShape(g)).mutable_data<int64_t>();
    if (y.numel() == 0) return;
#if defined(__x86_64__)
    if constexpr (std::is_same_v<T, float>) {
      if (simd_ && !idx && (attrs_.global || PaddedRowFits(g))) {
        if (attrs_.global)
          GlobalPoolAvx2(g.n * g.c, g.in_plane(), true, x->data<float>(), y.mutable_data<float>(),
                         ctx.pool());
        else if (g.in[0] == 1 && g.k[0] == 1)
          MaxPool2D(g, avx512_ ? kMaxRowsAvx512 : kMaxRowsAvx2, x->data<float>(),
                    y.mutable_data<float>(), ctx.pool());
        else
          PoolAvx2(g, true, false, x->data<float>(), y.mutable_data<float>(), ctx.pool());
        return;
      }
    }
#endif
#if defined(__x86_64__)
    if constexpr (!std::is_same_v<T, float>) {
      if (simd_ && !idx && g.in[0] == 1 && g.out[0] == 1 && g.k[0] == 1 && !attrs_.global) {
        MaxPool8BitPadded<T>(g, x->data<T>(), y.mutable_data<T>(), ctx.pool());
        return;
      }
    }
#endif
    MaxPoolRef<T>(g, x->data<T>(), y.mutable_data<T>(), idx, attrs_.storage_order == 1,
                  ctx.pool());
  }

 private:
  PoolAttrs attrs_;
  bool simd_;
  bool avx512_;
};

class AvgLpPoolKernel : public Kernel {
 public:
  AvgLpPoolKernel(const ir::Node& node, PoolKind kind, bool global, bool simd)
      : attrs_(ReadPoolAttrs(node, kind, global)), kind_(kind), simd_(simd) {}
  void Run(KernelContext& ctx) override {
    const ir::Node& node = ctx.node();
    const ir::Tensor* x = ctx.input(0);
    CheckF32(node, x);
    const PoolGeom g = ComputeGeom(node, attrs_, x->shape());
    ir::Tensor& y = ctx.AllocateOutput(0, x->dtype(), OutShape(g));
    if (y.numel() == 0) return;
#if defined(__x86_64__)
    if (simd_ && kind_ == PoolKind::kAvg && (attrs_.global || PaddedRowFits(g))) {
      if (attrs_.global)
        GlobalPoolAvx2(g.n * g.c, g.in_plane(), false, x->data<float>(), y.mutable_data<float>(),
                       ctx.pool());
      else
        PoolAvx2(g, false, attrs_.count_include_pad, x->data<float>(), y.mutable_data<float>(),
                 ctx.pool());
      return;
    }
#endif
    AvgLpPoolRef(g, kind_, attrs_.count_include_pad, attrs_.p, x->data<float>(),
                 y.mutable_data<float>(), ctx.pool());
  }

 private:
  PoolAttrs attrs_;
  PoolKind kind_;
  bool simd_;
};

template <typename T, bool kGlobal, bool kSimd, bool kAvx512 = false>
std::unique_ptr<Kernel> CreateMax(const KernelInit& init) {
  return std::make_unique<MaxPoolKernel<T>>(init.node, kGlobal, kSimd, kAvx512);
}
template <PoolKind kKind, bool kGlobal, bool kSimd>
std::unique_ptr<Kernel> CreateAvgLp(const KernelInit& init) {
  return std::make_unique<AvgLpPoolKernel>(init.node, kKind, kGlobal, kSimd);
}

}  // namespace

void RegisterPoolKernels(KernelRegistry& r) {
  using ir::DType;
  r.Add({"MaxPool", "", DType::kFloat32, Isa::kScalar, "f32_maxpool__ref",
         CreateMax<float, false, false>});
  r.Add({"MaxPool", "", DType::kUInt8, Isa::kScalar, "u8_maxpool__ref",
         CreateMax<uint8_t, false, false>});
  r.Add({"MaxPool", "", DType::kInt8, Isa::kScalar, "s8_maxpool__ref",
         CreateMax<int8_t, false, false>});
  r.Add({"GlobalMaxPool", "", DType::kFloat32, Isa::kScalar, "f32_globalmaxpool__ref",
         CreateMax<float, true, false>});
  r.Add({"AveragePool", "", DType::kFloat32, Isa::kScalar, "f32_avgpool__ref",
         CreateAvgLp<PoolKind::kAvg, false, false>});
  r.Add({"GlobalAveragePool", "", DType::kFloat32, Isa::kScalar, "f32_globalavgpool__ref",
         CreateAvgLp<PoolKind::kAvg, true, false>});
  r.Add({"LpPool", "", DType::kFloat32, Isa::kScalar, "f32_lppool__ref",
         CreateAvgLp<PoolKind::kLp, false, false>});
  r.Add({"GlobalLpPool", "", DType::kFloat32, Isa::kScalar, "f32_globallppool__ref",
         CreateAvgLp<PoolKind::kLp, true, false>});
#if defined(__x86_64__)
  r.Add({"MaxPool", "", DType::kFloat32, Isa::kAvx2, "f32_maxpool__avx2",
         CreateMax<float, false, true>});
  r.Add({"MaxPool", "", DType::kFloat32, Isa::kAvx512, "f32_maxpool__avx512",
         CreateMax<float, false, true, true>});
  r.Add({"GlobalMaxPool", "", DType::kFloat32, Isa::kAvx2, "f32_globalmaxpool__avx2",
         CreateMax<float, true, true>});
  r.Add({"MaxPool", "", DType::kUInt8, Isa::kAvx2, "u8_maxpool__avx2",
         CreateMax<uint8_t, false, true>});
  r.Add({"MaxPool", "", DType::kInt8, Isa::kAvx2, "s8_maxpool__avx2",
         CreateMax<int8_t, false, true>});
  r.Add({"AveragePool", "", DType::kFloat32, Isa::kAvx2, "f32_avgpool__avx2",
         CreateAvgLp<PoolKind::kAvg, false, true>});
  r.Add({"GlobalAveragePool", "", DType::kFloat32, Isa::kAvx2, "f32_globalavgpool__avx2",
         CreateAvgLp<PoolKind::kAvg, true, true>});
#endif
}

}  // namespace edgepress::runtime
