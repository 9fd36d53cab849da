// AVX2 im2col of (x - zp) into the int16-pair B panels of qs16_gemm__avx2_6x16 (nr = 16):
// the panels QIm2ColPanels (qconv_im2col.h) writes, built a k pair at a time. Each im2col
// row of a panel is one 16-lane int16 vector: where the panel's 16 pixels lie on one output
// row and every tap is inside the input row (most panels of a wide conv), a 16-byte load
// (stride 1) or a 32-byte load keeping every other byte (stride 2), widened; otherwise one
// such load per row segment (pixels on one output row), blended in under the mask of its
// in-range taps. Strides above 2 gather into a zeroed 16-lane buffer. Two rows
// are then interleaved into the pair layout with unpack/permute and stored as one 64-byte
// line. A pointwise conv (rows = nullptr) reads X's channel rows directly.
// Header-only, included by qconv.cc alone (see qconv_im2col.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "runtime/kernels/conv/conv_util.h"
#include "runtime/kernels/conv/qconv_im2col.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::qim2col {

#if defined(__x86_64__)

namespace avx2_detail {

constexpr int kNr = 16;

// The panel's pixels split into runs on one output row (up to one a pixel).
struct PanelSegments {
  int n = 0;
  int t0[kNr], len[kNr];
  int64_t bd[kNr], bh[kNr], bw[kNr];

  PanelSegments(const conv_util::ConvGeometry& g, int64_t p0, int cnt) {
    int64_t ow = p0 % g.out[2], oh = (p0 / g.out[2]) % g.out[1], od = p0 / (g.out[2] * g.out[1]);
    for (int t = 0; t < cnt; ++n) {
      const int l = static_cast<int>(std::min<int64_t>(cnt - t, g.out[2] - ow));
      t0[n] = t;
      len[n] = l;
      bd[n] = od * g.stride[0] - g.pad_b[0];
      bh[n] = oh * g.stride[1] - g.pad_b[1];
      bw[n] = ow * g.stride[2] - g.pad_b[2];
      t += l;
      ow += l;
      if (ow == g.out[2]) {
        ow = 0;
        if (++oh == g.out[1]) {
          oh = 0;
          ++od;
        }
      }
    }
  }
};

// The taps [*lo, *hi) of a segment of n pixels whose input run starts at column w0 with
// stride sw that lie inside the input row: 0 <= w0 + t * sw < in_w.
inline void InRowTaps(int64_t w0, int64_t n, int64_t in_w, int64_t sw, int64_t* lo,
                      int64_t* hi) {
  *lo = std::min<int64_t>(n, w0 >= 0 ? 0 : (-w0 + sw - 1) / sw);
  const int64_t lim = in_w - 1 - w0;
  *hi = std::max(*lo, lim < 0 ? 0 : std::min<int64_t>(n, lim / sw + 1));
}

// 16 bytes widened to int16.
template <typename T>
__attribute__((target("avx2"))) inline __m256i Widen(const T* p) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return std::is_same<T, int8_t>::value ? _mm256_cvtepi8_epi16(b) : _mm256_cvtepu8_epi16(b);
}

// The even (odd = false) or odd bytes of 32, widened to int16.
template <typename T>
__attribute__((target("avx2"))) inline __m256i EveryOther(const T* p, bool odd) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if (std::is_same<T, int8_t>::value)
    return odd ? _mm256_srai_epi16(v, 8) : _mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8);
  return odd ? _mm256_srli_epi16(v, 8) : _mm256_and_si256(v, _mm256_set1_epi16(0xff));
}

// Row kk of the panel, one tap at a time into a zeroed buffer: (x - zp) for the in-range
// taps, 0 for padding and pixels >= cnt (strides above 2, loads that would leave the input).
template <typename T>
__attribute__((target("avx2"))) inline __m256i ScalarRow(const conv_util::ConvGeometry& g,
                                                         const Im2ColRows& rows,
                                                         const PanelSegments& s, const T* x,
                                                         int64_t kk, int32_t zp) {
  const uint64_t in_d = g.in[0], in_h = g.in[1];
  const int64_t in_w = g.in[2], sw = g.stride[2];
  alignas(32) int16_t buf[kNr] = {};
  for (int si = 0; si < s.n; ++si) {
    const int64_t id = s.bd[si] + rows.d_off[kk], ih = s.bh[si] + rows.h_off[kk];
    if (static_cast<uint64_t>(id) >= in_d || static_cast<uint64_t>(ih) >= in_h) continue;
    const int64_t w0 = s.bw[si] + rows.w_off[kk];
    int64_t t_lo, t_hi;
    InRowTaps(w0, s.len[si], in_w, sw, &t_lo, &t_hi);
    const T* xr = x + rows.c_off[kk] + (id * g.in[1] + ih) * in_w + w0;
    int16_t* d = buf + s.t0[si];
    for (int64_t t = t_lo; t < t_hi; ++t)
      d[t] = static_cast<int16_t>(static_cast<int32_t>(xr[t * sw]) - zp);
  }
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
}

// How one kernel tap reads a panel, the same in every input channel (offsets from the
// channel plane's start): nothing (padding); one vector load (the panel on one output row,
// every tap inside the input row: 16 bytes for stride 1, 32 keeping the even bytes for
// stride 2, or the odd ones from one byte earlier when the even load would leave the row);
// one load per row segment, blended in under the lanes [lo, hi) of its in-range taps; or
// ScalarRow.
struct TapRead {
  enum Kind : uint8_t { kZero, kLoad, kEven, kOdd, kSegments, kScalar };
  Kind kind = kZero;
  int nseg = 0;
  int64_t off[kNr];
  int16_t lo[kNr], hi[kNr];
  int64_t first = 0, end = 0;  // kSegments: the bytes its loads touch
};

// The TapRead of tap t (< taps: channel 0's im2col row t).
inline void PlanTap(const conv_util::ConvGeometry& g, const Im2ColRows& rows,
                    const PanelSegments& s, int64_t t, TapRead& r) {
  const uint64_t in_d = g.in[0], in_h = g.in[1];
  const int64_t in_w = g.in[2], sw = g.stride[2];
  r.kind = TapRead::kZero;
  r.nseg = 0;
  if (sw > 2) {
    r.kind = TapRead::kScalar;
    return;
  }
  if (s.n == 1 && s.len[0] == kNr) {  // one output row, 16 pixels
    const int64_t id = s.bd[0] + rows.d_off[t], ih = s.bh[0] + rows.h_off[t];
    if (static_cast<uint64_t>(id) >= in_d || static_cast<uint64_t>(ih) >= in_h) return;
    const int64_t w0 = s.bw[0] + rows.w_off[t], last = w0 + (kNr - 1) * sw;
    r.off[0] = (id * g.in[1] + ih) * in_w + w0;
    // Loads stay inside the input row.
    if (w0 >= 0 && last < in_w) {
      if (sw == 1) {
        r.kind = TapRead::kLoad;
        return;
      }
      if (last + 1 < in_w) {
        r.kind = TapRead::kEven;
        return;
      }
      if (w0 >= 1) {
        r.kind = TapRead::kOdd;
        r.off[0] -= 1;
        return;
      }
    }
  }
  r.first = std::numeric_limits<int64_t>::max();
  r.end = std::numeric_limits<int64_t>::min();
  for (int si = 0; si < s.n; ++si) {
    const int64_t id = s.bd[si] + rows.d_off[t], ih = s.bh[si] + rows.h_off[t];
    if (static_cast<uint64_t>(id) >= in_d || static_cast<uint64_t>(ih) >= in_h) continue;
    const int64_t w0 = s.bw[si] + rows.w_off[t];
    int64_t t_lo, t_hi;
    InRowTaps(w0, s.len[si], in_w, sw, &t_lo, &t_hi);
    if (t_hi == t_lo) continue;
    // Lane L of the segment's load reads plane[off + L * sw]: lanes t0 + i hold tap i.
    const int k = r.nseg++;
    r.off[k] = (id * g.in[1] + ih) * in_w + w0 - s.t0[si] * sw;
    r.lo[k] = static_cast<int16_t>(s.t0[si] + t_lo);
    r.hi[k] = static_cast<int16_t>(s.t0[si] + t_hi);
    r.first = std::min(r.first, r.off[k]);
    r.end = std::max(r.end, r.off[k] + kNr * sw);
  }
  if (r.nseg > 0) r.kind = TapRead::kSegments;
}

// A row of the panel read as r says from channel plane p: (x - zp) for the in-range taps,
// 0 for padding and pixels >= cnt.
template <typename T>
__attribute__((target("avx2"))) inline __m256i TapRow(const TapRead& r, const T* p, int64_t sw,
                                                      __m256i vzp) {
  switch (r.kind) {
    case TapRead::kZero: return _mm256_setzero_si256();
    case TapRead::kLoad: return _mm256_sub_epi16(Widen(p + r.off[0]), vzp);
    case TapRead::kEven: return _mm256_sub_epi16(EveryOther(p + r.off[0], false), vzp);
    case TapRead::kOdd: return _mm256_sub_epi16(EveryOther(p + r.off[0], true), vzp);
    default: break;
  }
  const __m256i iota = _mm256_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m256i acc = _mm256_setzero_si256();
  for (int k = 0; k < r.nseg; ++k) {
    const T* q = p + r.off[k];
    const __m256i v = _mm256_sub_epi16(sw == 1 ? Widen(q) : EveryOther(q, false), vzp);
    const __m256i lo = _mm256_set1_epi16(static_cast<int16_t>(r.lo[k] - 1));
    const __m256i hi = _mm256_set1_epi16(r.hi[k]);
    const __m256i in = _mm256_and_si256(_mm256_cmpgt_epi16(iota, lo), _mm256_cmpgt_epi16(hi, iota));
    acc = _mm256_blendv_epi8(acc, v, in);
  }
  return acc;
}

// Row kk = c * taps + t of the panel (r: tap t's TapRead); segment loads that would leave
// the group's input [x, x + cg * in_size) go scalar.
template <typename T>
__attribute__((target("avx2"))) inline __m256i PanelRow(const conv_util::ConvGeometry& g,
                                                        const Im2ColRows& rows,
                                                        const PanelSegments& s, const TapRead& r,
                                                        const T* x, int64_t kk, int64_t c,
                                                        int32_t zp, __m256i vzp) {
  const int64_t plane = c * g.in_size();
  if (r.kind == TapRead::kScalar ||
      (r.kind == TapRead::kSegments && (plane + r.first < 0 || plane + r.end > g.cg * g.in_size())))
    return ScalarRow(g, rows, s, x, kk, zp);
  return TapRow(r, x + plane, g.stride[2], vzp);
}

// Channel row kk of a pointwise conv's panel at pixel p0 (cnt pixels).
template <typename T>
__attribute__((target("avx2"))) inline __m256i PointwiseRow(const T* xr, int cnt, int32_t zp,
                                                            __m256i vzp) {
  if (cnt == kNr) return _mm256_sub_epi16(Widen(xr), vzp);
  alignas(32) int16_t buf[kNr] = {};
  for (int t = 0; t < cnt; ++t) buf[t] = static_cast<int16_t>(static_cast<int32_t>(xr[t]) - zp);
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
}

// Rows a (k even) and b (k odd) as 16 (a, b) pairs: 64 bytes at d.
__attribute__((target("avx2"))) inline void StorePair(int16_t* d, __m256i a, __m256i b) {
  const __m256i lo = _mm256_unpacklo_epi16(a, b), hi = _mm256_unpackhi_epi16(a, b);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), _mm256_permute2x128_si256(lo, hi, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + kNr), _mm256_permute2x128_si256(lo, hi, 0x31));
}

}  // namespace avx2_detail

// im2col panels [q0, q1) of 16 pixels, written from dst on as panels q - q_base.
template <typename T>
__attribute__((target("avx2"))) void QIm2ColPanelsAvx2(const conv_util::ConvGeometry& g,
                                                       const Im2ColRows* rows, const T* x,
                                                       int32_t zp, int64_t q0, int64_t q1,
                                                       int16_t* dst, int64_t q_base) {
  using namespace avx2_detail;
  const int64_t out_size = g.out_size();
  const int64_t kdim = rows ? static_cast<int64_t>(rows->c_off.size()) : g.cg;
  const int64_t k2 = (kdim + 1) / 2;
  const __m256i vzp = _mm256_set1_epi16(static_cast<int16_t>(zp));
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t p0 = q * kNr;
    const int cnt = static_cast<int>(std::min<int64_t>(kNr, out_size - p0));
    int16_t* panel = dst + (q - q_base) * k2 * 2 * kNr;
    if (!rows) {  // pointwise: op(B)[c][pixel] = X[c][pixel]
      const T* xp = x + p0;
      for (int64_t kp = 0; kp < k2; ++kp) {
        const int64_t kk = 2 * kp;
        const __m256i a = PointwiseRow(xp + kk * out_size, cnt, zp, vzp);
        const __m256i b = kk + 1 < kdim ? PointwiseRow(xp + (kk + 1) * out_size, cnt, zp, vzp) : zero;
        StorePair(panel + kp * 2 * kNr, a, b);
      }
      continue;
    }
    const PanelSegments s(g, p0, cnt);
    const int64_t taps = g.k_size();
    thread_local std::vector<TapRead> reads;
    if (reads.size() < static_cast<size_t>(taps)) reads.resize(static_cast<size_t>(taps));
    for (int64_t t = 0; t < taps; ++t) PlanTap(g, *rows, s, t, reads[static_cast<size_t>(t)]);
    int64_t c = 0, t = 0;  // of row kk
    for (int64_t kp = 0; kp < k2; ++kp) {
      const int64_t kk = 2 * kp;
      const __m256i a = PanelRow(g, *rows, s, reads[static_cast<size_t>(t)], x, kk, c, zp, vzp);
      if (++t == taps) t = 0, ++c;
      const __m256i b =
          kk + 1 < kdim ? PanelRow(g, *rows, s, reads[static_cast<size_t>(t)], x, kk + 1, c, zp, vzp)
                        : zero;
      if (++t == taps) t = 0, ++c;
      StorePair(panel + kp * 2 * kNr, a, b);
    }
  }
}

#endif  // __x86_64__

}  // namespace edgepress::runtime::qim2col
