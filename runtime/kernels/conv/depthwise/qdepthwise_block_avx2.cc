// Integer depthwise conv over blocks of 16 channels for AVX2 (qdepthwise.h, "channel
// blocks"), for planes of up to 28x28 outputs, where the plane kernel of
// qdepthwise_avx2.cc spends most of its time on per-plane work (quad rows, epilogue call):
// at 7x7 it ran 5x onnxruntime's time. The block's planes are transposed once into a
// padded int16 plane of (x - zp) with the 16 channels of a pixel in one vector (padding 0);
// two taps of 16 channels are interleaved into int16 pairs (channels 0-3 and 8-11 in one
// vector, 4-7 and 12-15 in the other) for two vpmaddwd against the taps' weights laid out
// the same way (exact: |x - zp| <= 255, weights in int8 range). The accumulators are
// requantized with per-channel vectors in that order, which vpackssdw puts back in channel
// order, and the bytes are transposed back to the NCHW planes. Both transposes go 16
// pixels at a time through a 16x16 byte transpose.
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "runtime/kernels/conv/depthwise/qdepthwise.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::qdw {

namespace {

constexpr int kC = 16;                       // channels a block
constexpr int64_t kMaxOutPixels = 28 * 28;   // 56x56 ran 7% slower than the plane kernel
constexpr int64_t kMaxPadded = 60 * 60;       // padded pixels (32 bytes each: 113 KiB)
constexpr int64_t kMaxTaps = 49;

// The padded plane the taps read: rows from oh * stride_h + i * dil_h, columns from
// ow * stride_w + j * dil_w; input pixel (r - pad_t, c - pad_l).
struct PaddedShape {
  int64_t rows, cols;
  explicit PaddedShape(const Geometry& g)
      : rows((g.oh - 1) * g.stride_h + (g.kh - 1) * g.dil_h + 1),
        cols((g.ow - 1) * g.stride_w + (g.kw - 1) * g.dil_w + 1) {}
};

// A 16x16 byte transpose: out[j] byte i = in[i] byte j (its own inverse), in four rounds
// of unpacks (bytes, words, dwords, qwords) that merge pairs, quads, octets of rows.
__attribute__((target("avx2"))) inline void Transpose16x16(const __m128i in[16], __m128i out[16]) {
  __m128i a[16], b[16], c[16];
  for (int i = 0; i < 8; ++i) {  // a[2i + h]: columns 8h.. of rows 2i, 2i+1 as byte pairs
    a[2 * i] = _mm_unpacklo_epi8(in[2 * i], in[2 * i + 1]);
    a[2 * i + 1] = _mm_unpackhi_epi8(in[2 * i], in[2 * i + 1]);
  }
  for (int q = 0; q < 4; ++q)  // b[4q + m]: columns 4m.. of rows 4q.. as dwords
    for (int h = 0; h < 2; ++h) {
      b[4 * q + 2 * h] = _mm_unpacklo_epi16(a[4 * q + h], a[4 * q + 2 + h]);
      b[4 * q + 2 * h + 1] = _mm_unpackhi_epi16(a[4 * q + h], a[4 * q + 2 + h]);
    }
  for (int o = 0; o < 2; ++o)  // c[8o + j]: columns 2j, 2j+1 of rows 8o.. as qwords
    for (int m = 0; m < 4; ++m) {
      c[8 * o + 2 * m] = _mm_unpacklo_epi32(b[8 * o + m], b[8 * o + 4 + m]);
      c[8 * o + 2 * m + 1] = _mm_unpackhi_epi32(b[8 * o + m], b[8 * o + 4 + m]);
    }
  for (int j = 0; j < 8; ++j) {
    out[2 * j] = _mm_unpacklo_epi64(c[j], c[8 + j]);
    out[2 * j + 1] = _mm_unpackhi_epi64(c[j], c[8 + j]);
  }
}

// P[r][c][ch] = x[ch][r - pad_t][c - pad_l] - zp inside the input, 0 outside; channels
// past `channels` hold -zp (their weights are 0). 16 columns at a time through
// Transpose16x16, the row's last columns one by one.
template <typename T>
__attribute__((target("avx2"))) void Transpose(const Geometry& g, const PaddedShape& s,
                                               const T* x, int64_t channels, int32_t zp,
                                               int16_t* p) {
  std::fill(p, p + s.rows * s.cols * kC, int16_t{0});
  const int64_t r0 = g.pad_t, r1 = std::min(s.rows, g.pad_t + g.h);
  const int64_t c0 = g.pad_l, c1 = std::min(s.cols, g.pad_l + g.w);
  const __m256i vzp = _mm256_set1_epi16(static_cast<int16_t>(zp));
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + (r - g.pad_t) * g.w - g.pad_l;  // column c of row r at xr[c]
    int16_t* pr = p + r * s.cols * kC;
    int64_t c = c0;
    for (; c + kC <= c1; c += kC) {
      __m128i rows[kC], px[kC];
      for (int ch = 0; ch < kC; ++ch)
        rows[ch] = ch < channels ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(
                                       xr + ch * g.h * g.w + c))
                                 : _mm_setzero_si128();
      Transpose16x16(rows, px);
      for (int j = 0; j < kC; ++j) {
        const __m256i v = std::is_same<T, int8_t>::value ? _mm256_cvtepi8_epi16(px[j])
                                                          : _mm256_cvtepu8_epi16(px[j]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(pr + (c + j) * kC),
                            _mm256_sub_epi16(v, vzp));
      }
    }
    for (; c < c1; ++c)
      for (int64_t ch = 0; ch < channels; ++ch)
        pr[c * kC + ch] = static_cast<int16_t>(static_cast<int32_t>(xr[ch * g.h * g.w + c]) - zp);
  }
}

// Lanes (channels 0-3, 8-11) and (4-7, 12-15) of two 16-lane vectors interleaved, as the
// int16 pairs vpmaddwd multiplies.
__attribute__((target("avx2"))) inline void Interleave(__m256i a, __m256i b, __m256i* lo,
                                                       __m256i* hi) {
  *lo = _mm256_unpacklo_epi16(a, b);
  *hi = _mm256_unpackhi_epi16(a, b);
}

// Per-channel requantization constants in the accumulators' lane order.
struct Requant {
  __m256i bias[2];
  __m256 scale[2], lo, hi;
  __m256i zp;
  bool u8;
};

__attribute__((target("avx2"))) Requant MakeRequant(const QOutput& o, int64_t channel0,
                                                  int64_t channels) {
  alignas(32) int32_t bias[2][8] = {};
  alignas(32) float scale[2][8] = {};
  for (int half = 0; half < 2; ++half)
    for (int i = 0; i < 8; ++i) {
      // lane i of half h holds channel (i < 4 ? i : i + 4) + 4 h
      const int ch = (i < 4 ? i : i + 4) + 4 * half;
      if (ch >= channels) continue;
      const int64_t m = channel0 + ch;
      bias[half][i] = o.bias ? o.bias[m] : 0;
      scale[half][i] = o.scale[o.per_channel_scale ? m : 0];
    }
  Requant r;
  for (int half = 0; half < 2; ++half) {
    r.bias[half] = _mm256_load_si256(reinterpret_cast<const __m256i*>(bias[half]));
    r.scale[half] = _mm256_load_ps(scale[half]);
  }
  r.lo = _mm256_set1_ps(o.ClampLo());
  r.hi = _mm256_set1_ps(o.ClampHi());
  r.zp = _mm256_set1_epi32(o.zero_point);
  r.u8 = o.kind == QOutput::Kind::kUInt8;
  return r;
}

// As QStoreRow: float(acc + bias) * scale, clamped, rounded half to even, + zero point;
// 16 bytes in channel order.
__attribute__((target("avx2"))) inline void StorePixel(__m256i acc_lo, __m256i acc_hi,
                                                       const Requant& r, uint8_t* dst) {
  __m256 v0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc_lo, r.bias[0])), r.scale[0]);
  __m256 v1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(acc_hi, r.bias[1])), r.scale[1]);
  v0 = _mm256_min_ps(_mm256_max_ps(v0, r.lo), r.hi);
  v1 = _mm256_min_ps(_mm256_max_ps(v1, r.lo), r.hi);
  const __m256i q0 = _mm256_add_epi32(_mm256_cvtps_epi32(v0), r.zp);
  const __m256i q1 = _mm256_add_epi32(_mm256_cvtps_epi32(v1), r.zp);
  // Per 128-bit lane: q0's channels 0-3 (8-11), then q1's 4-7 (12-15): channel order.
  const __m256i w = _mm256_packs_epi32(q0, q1);
  const __m256i bytes = r.u8 ? _mm256_packus_epi16(w, w) : _mm256_packs_epi16(w, w);
  const __m256i both = _mm256_permute4x64_epi64(bytes, 0x08);  // qwords 0, 2
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm256_castsi256_si128(both));
}

// One block of up to 16 channels: the padded plane p (Transpose), weights w (ks int16 a
// channel), output bytes to y (channel planes of oh * ow).
__attribute__((target("avx2"))) void ComputeBlock(const Geometry& g, const PaddedShape& s,
                                                  const int16_t* p, const int16_t* w,
                                                  int64_t channels, const Requant& rq,
                                                  uint8_t* pix, uint8_t* y) {
  const int64_t ks = g.kh * g.kw, pairs = (ks + 1) / 2;
  int64_t off[kMaxTaps + 1];
  for (int64_t i = 0; i < g.kh; ++i)
    for (int64_t j = 0; j < g.kw; ++j) off[i * g.kw + j] = (i * g.dil_h * s.cols + j * g.dil_w) * kC;
  off[ks] = off[0];  // the odd tap's partner: any in-plane read, its weights are 0
  __m256i wlo[(kMaxTaps + 1) / 2], whi[(kMaxTaps + 1) / 2];
  for (int64_t t = 0; t < pairs; ++t) {
    alignas(32) int16_t wa[kC] = {}, wb[kC] = {};
    for (int64_t ch = 0; ch < channels; ++ch) {
      wa[ch] = w[ch * ks + 2 * t];
      if (2 * t + 1 < ks) wb[ch] = w[ch * ks + 2 * t + 1];
    }
    Interleave(_mm256_load_si256(reinterpret_cast<const __m256i*>(wa)),
               _mm256_load_si256(reinterpret_cast<const __m256i*>(wb)), &wlo[t], &whi[t]);
  }
  for (int64_t oh = 0; oh < g.oh; ++oh)
    for (int64_t ow = 0; ow < g.ow; ++ow) {
      const int16_t* base = p + (oh * g.stride_h * s.cols + ow * g.stride_w) * kC;
      __m256i acc_lo = _mm256_setzero_si256(), acc_hi = acc_lo;
      for (int64_t t = 0; t < pairs; ++t) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + off[2 * t]));
        const __m256i b =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + off[2 * t + 1]));
        __m256i lo, hi;
        Interleave(a, b, &lo, &hi);
        acc_lo = _mm256_add_epi32(acc_lo, _mm256_madd_epi16(lo, wlo[t]));
        acc_hi = _mm256_add_epi32(acc_hi, _mm256_madd_epi16(hi, whi[t]));
      }
      StorePixel(acc_lo, acc_hi, rq, pix + (oh * g.ow + ow) * kC);
    }
  // Back to channel planes, 16 pixels at a time.
  const int64_t out_size = g.oh * g.ow;
  int64_t i = 0;
  for (; i + kC <= out_size; i += kC) {
    __m128i px[kC], rows[kC];
    for (int j = 0; j < kC; ++j)
      px[j] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(pix + (i + j) * kC));
    Transpose16x16(px, rows);
    for (int64_t ch = 0; ch < channels; ++ch)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y + ch * out_size + i), rows[ch]);
  }
  for (; i < out_size; ++i)
    for (int64_t ch = 0; ch < channels; ++ch) y[ch * out_size + i] = pix[i * kC + ch];
}

}  // namespace

bool BlockHandlesAvx2(const Block& b) {
  const Geometry& g = *b.g;
  if (g.oh <= 0 || g.ow <= 0 || g.oh * g.ow > kMaxOutPixels || g.h * g.w <= 0) return false;
  if (g.stride_h < 1 || g.stride_w < 1 || g.dil_h < 1 || g.dil_w < 1 || g.pad_t < 0 ||
      g.pad_l < 0 || g.kh < 1 || g.kw < 1 || g.kh * g.kw > kMaxTaps)
    return false;
  const PaddedShape s(g);
  if (s.rows * s.cols > kMaxPadded) return false;
  if (b.out->kind != QOutput::Kind::kUInt8 && b.out->kind != QOutput::Kind::kInt8) return false;
  if (!b.w_in_int8)
    for (int64_t t = 0; t < b.channels * g.kh * g.kw; ++t)
      if (b.w[t] < -128 || b.w[t] > 127) return false;
  return true;
}

__attribute__((target("avx2"))) void RunBlockAvx2(const Block& b) {
  const Geometry& g = *b.g;
  const PaddedShape s(g);
  const int64_t in_size = g.h * g.w, out_size = g.oh * g.ow, ks = g.kh * g.kw;
  thread_local std::vector<int16_t> plane;
  thread_local std::vector<uint8_t> pix;
  plane.resize(static_cast<size_t>(s.rows * s.cols * kC));
  pix.resize(static_cast<size_t>(out_size * kC));
  for (int64_t c0 = 0; c0 < b.channels; c0 += kC) {
    const int64_t n = std::min<int64_t>(kC, b.channels - c0);
    if (b.x_s8)
      Transpose(g, s, static_cast<const int8_t*>(b.x) + c0 * in_size, n, b.x_zp, plane.data());
    else
      Transpose(g, s, static_cast<const uint8_t*>(b.x) + c0 * in_size, n, b.x_zp, plane.data());
    const Requant rq = MakeRequant(*b.out, b.channel0 + c0, n);
    ComputeBlock(g, s, plane.data(), b.w + c0 * ks, n, rq, pix.data(),
                 static_cast<uint8_t*>(b.y) + c0 * out_size);
  }
}

}  // namespace edgepress::runtime::qdw

#endif  // __x86_64__
