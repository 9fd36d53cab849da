// Integer depthwise conv over blocks of 16 channels (qdepthwise.h, "channel blocks"), for
// planes of up to 14x14 outputs, where the per-plane kernels spend most of their time on
// per-plane work (quad rows, epilogue call) rather than on the four vectors of taps.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "runtime/kernels/conv/depthwise/qdepthwise.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::qdw {

namespace {

// Padded plane of the block and the reads the taps make: quads of 4 * groups columns from
// column ow * stride_w, rows from oh * stride_h + i * dil_h.
struct BlockShape {
  int64_t groups, rows, cols;
};

BlockShape ShapeOf(const Geometry& g) {
  BlockShape s;
  s.groups = (g.kw + 3) / 4;
  s.rows = std::max((g.oh - 1) * g.stride_h + (g.kh - 1) * g.dil_h + 1, g.pad_t + g.h);
  s.cols = std::max((g.ow - 1) * g.stride_w + 4 * s.groups, g.pad_l + g.w);
  return s;
}

}  // namespace

bool BlockHandles(Isa isa, const Block& b) {
#if defined(__x86_64__)
  if (isa == Isa::kAvx2) return !ForceScalar() && BlockHandlesAvx2(b);
  if (isa != Isa::kAvx512Vnni && isa != Isa::kAmx) return false;
  if (!GetCpuFeatures().avx512vbmi) return false;
  const Geometry& g = *b.g;
  if (g.oh <= 0 || g.ow <= 0 || g.oh * g.ow > kBlockMaxPixels || g.h * g.w <= 0) return false;
  if (!(g.stride_w == 1 || g.stride_w == 2) || g.stride_h < 1 || g.dil_h < 1 || g.dil_w != 1 ||
      g.pad_t < 0 || g.pad_l < 0 || g.kh < 1 || g.kw < 1)
    return false;
  if (g.kh * ((g.kw + 3) / 4) > QuadRows::kMaxQuads) return false;
  // The padded plane of 16 channels stays in L2 (16 bytes a pixel).
  const BlockShape s = ShapeOf(g);
  if (s.rows * s.cols > kBlockMaxPadded) return false;
  if (b.out->kind != QOutput::Kind::kUInt8 && b.out->kind != QOutput::Kind::kInt8) return false;
  const int64_t ks = g.kh * g.kw;
  if (!b.w_in_int8)
    for (int64_t t = 0; t < b.channels * ks; ++t)
      if (b.w[t] < -128 || b.w[t] > 127) return false;
  return true;
#else
  (void)isa;
  (void)b;
  return false;
#endif
}

#if defined(__x86_64__)

namespace {

// (gcc 12 reports -Wmaybe-uninitialized inside unmasked AVX-512 intrinsics: see
// qdepthwise_avx512.cc.)
#pragma GCC diagnostic push
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define QDWB_TARGET "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi"

// Transposes a 16x16 byte matrix in each 128-bit lane: on entry v[r] byte c of lane L, on
// exit v[c] byte r of lane L (unpack stages of 8, 16, 32, 64 bits; with this pairing the
// results come out in order).
__attribute__((target(QDWB_TARGET), always_inline)) inline void Transpose16(__m512i v[16]) {
  __m512i t[16];
  for (int k = 0; k < 8; ++k) {
    t[k] = _mm512_unpacklo_epi8(v[2 * k], v[2 * k + 1]);
    t[8 + k] = _mm512_unpackhi_epi8(v[2 * k], v[2 * k + 1]);
  }
  for (int h = 0; h < 16; h += 8)
    for (int k = 0; k < 4; ++k) {
      v[h + k] = _mm512_unpacklo_epi16(t[h + 2 * k], t[h + 2 * k + 1]);
      v[h + 4 + k] = _mm512_unpackhi_epi16(t[h + 2 * k], t[h + 2 * k + 1]);
    }
  for (int b = 0; b < 16; b += 4)
    for (int k = 0; k < 2; ++k) {
      t[b + k] = _mm512_unpacklo_epi32(v[b + 2 * k], v[b + 2 * k + 1]);
      t[b + 2 + k] = _mm512_unpackhi_epi32(v[b + 2 * k], v[b + 2 * k + 1]);
    }
  for (int m = 0; m < 8; ++m) {
    v[2 * m] = _mm512_unpacklo_epi64(t[2 * m], t[2 * m + 1]);
    v[2 * m + 1] = _mm512_unpackhi_epi64(t[2 * m], t[2 * m + 1]);
  }
}

// vpermb indices turning 4 pixels x 16 channels (64 bytes, channels-last) into 16 quads:
// dword c = the 4 pixels' bytes of channel c.
const uint8_t* QuadIndex() {
  struct Table {
    alignas(64) uint8_t idx[64];
    Table() {
      for (int c = 0; c < 16; ++c)
        for (int b = 0; b < 4; ++b) idx[4 * c + b] = static_cast<uint8_t>(16 * b + c);
    }
  };
  static const Table table;
  return table.idx;
}

// vpermb indices turning packed bytes (lane c / 4 holds channels 4 (c / 4).. of pixels
// 0..3, 4 bytes a pixel) into 4 pixels of 16 channel bytes: byte 16 L + c = pixel L,
// channel c.
const uint8_t* UnpackIndex() {
  struct Table {
    alignas(64) uint8_t idx[64];
    Table() {
      for (int L = 0; L < 4; ++L)
        for (int c = 0; c < 16; ++c)
          idx[16 * L + c] = static_cast<uint8_t>(c / 4 * 16 + 4 * L + c % 4);
    }
  };
  static const Table table;
  return table.idx;
}

// Where RunBlocks puts the 4-pixel groups of 16 channel bytes each: their place in the
// padded plane xt (kDirect: dof, by group; groups past the plane's hw pixels dropped), or xl.
struct PixelSink {
  int64_t hw;
  uint8_t* xl;
  uint8_t* xt;
  const int32_t* dof;
  // v[j] lane L: pixel p0 + 16 L + j, its 16 channels. A 4x4 transpose of the lanes of
  // v[4m..4m+3] gives pixels 16 L + 4m .. +3 as 64 contiguous bytes (a 4-pixel group):
  // channels-last, pixel-major.
  template <bool kDirect>
  __attribute__((target(QDWB_TARGET))) void PutChunk(int64_t p0, const __m512i* v) const {
    for (int m4 = 0; m4 < 16; m4 += 4) {
      const __m512i t0 = _mm512_shuffle_i64x2(v[m4], v[m4 + 1], 0x44);
      const __m512i t1 = _mm512_shuffle_i64x2(v[m4], v[m4 + 1], 0xEE);
      const __m512i t2 = _mm512_shuffle_i64x2(v[m4 + 2], v[m4 + 3], 0x44);
      const __m512i t3 = _mm512_shuffle_i64x2(v[m4 + 2], v[m4 + 3], 0xEE);
      const int64_t pg = p0 + m4;
      Put<kDirect>(pg, _mm512_shuffle_i64x2(t0, t2, 0x88));
      Put<kDirect>(pg + 16, _mm512_shuffle_i64x2(t0, t2, 0xDD));
      Put<kDirect>(pg + 32, _mm512_shuffle_i64x2(t1, t3, 0x88));
      Put<kDirect>(pg + 48, _mm512_shuffle_i64x2(t1, t3, 0xDD));
    }
  }
  template <bool kDirect>
  __attribute__((target(QDWB_TARGET))) void Put(int64_t pg, __m512i g4) const {
    if (!kDirect)
      _mm512_storeu_si512(xl + pg * 16, g4);
    else if (pg < hw)  // (hw is a multiple of 4 here: a group is wholly in or out)
      _mm512_storeu_si512(xt + dof[pg / 4], g4);
  }
};

// Whether every channel c < nc of a block satisfies |round(acc * scale[c])| < 2^30, acc
// the exact sum of ks taps (x - x_zp) * w, |x - x_zp| <= 255 and |w| <= 128 (int8 weights),
// plus bias[c]: the float-to-int32 conversion then cannot overflow. False for a NaN scale.
bool BlockPackSafe(int64_t ks, int nc, const int32_t* bias, const float* scale) {
  const double taps_max = static_cast<double>(ks) * 255.0 * 128.0;
  for (int c = 0; c < nc; ++c) {
    const double acc = std::min(taps_max + std::abs(static_cast<double>(bias[c])), 2147483648.0);
    if (!(acc * std::abs(static_cast<double>(scale[c])) < 1073741824.0)) return false;
  }
  return true;
}

// Writes the zero point zxu into the padded plane xt (s.rows x s.cols 16-byte pixels,
// xt_size bytes). direct (the pixels go straight to their place): only around them — rows
// above and below, columns left and right, the slack past the plane — and dof[q] gets the
// offset of 4-pixel group q; otherwise the whole plane, one call instead of two a row on
// small planes.
void FillPadding(const Geometry& g, const BlockShape& s, bool direct, uint8_t zxu, uint8_t* xt,
                 size_t xt_size, int32_t* dof) {
  if (!direct) {
    std::memset(xt, zxu, xt_size);
    return;
  }
  const int64_t row_bytes = s.cols * 16;
  std::memset(xt, zxu, static_cast<size_t>(g.pad_t * row_bytes));
  for (int64_t r = g.pad_t; r < g.pad_t + g.h; ++r) {
    uint8_t* row = xt + r * row_bytes;
    std::memset(row, zxu, static_cast<size_t>(g.pad_l * 16));
    std::memset(row + (g.pad_l + g.w) * 16, zxu,
                static_cast<size_t>((s.cols - g.pad_l - g.w) * 16));
  }
  std::memset(xt + (g.pad_t + g.h) * row_bytes, zxu,
              xt_size - static_cast<size_t>((g.pad_t + g.h) * row_bytes));
  for (int64_t ih = 0, q = 0; ih < g.h; ++ih)
    for (int64_t iw = 0; iw < g.w; iw += 4, ++q)
      dof[q] = static_cast<int32_t>(((ih + g.pad_t) * s.cols + g.pad_l + iw) * 16);
}

// kKh/kG > 0 fix the kernel rows and groups (3x3: 3, 1; 5x5: 5, 2); 0 reads them.
template <int kKh, int kG>
__attribute__((target(QDWB_TARGET))) void RunBlocks(const Block& b) {
  const Geometry& g = *b.g;
  const BlockShape s = ShapeOf(g);
  const int64_t kh = kKh > 0 ? kKh : g.kh, groups = kG > 0 ? kG : s.groups;
  const int64_t hw = g.h * g.w, ohw = g.oh * g.ow, ks = g.kh * g.kw;
  const QOutput& o = *b.out;
  const uint8_t flip = b.x_s8 ? 0x80 : 0;
  const int32_t zxu = b.x_zp + (b.x_s8 ? 128 : 0);
  // The padded plane: its padding (the input zero point) is written once per call, each
  // block then overwrites only the pixels. Where the width is a multiple of 4, the 4-pixel
  // groups of the transposes never straddle a row and go straight to their place (dof);
  // otherwise through xl (the block's channels-last pixels) and a copy per row.
  thread_local std::vector<uint8_t> xt_buf;
  thread_local std::vector<uint8_t> xl_buf;
  thread_local std::vector<int32_t> oof_buf;
  thread_local std::vector<int32_t> dof_buf;
  const bool direct = g.w % 4 == 0;
  const size_t xt_size = static_cast<size_t>(s.rows * s.cols * 16 + 64);
  if (xt_buf.size() < xt_size) xt_buf.resize(xt_size);
  const int64_t chunks = (hw + 63) / 64, ochunks = (ohw + 63) / 64;
  if (xl_buf.size() < static_cast<size_t>(chunks * 1024))
    xl_buf.resize(static_cast<size_t>(chunks * 1024));
  if (oof_buf.size() < static_cast<size_t>(ochunks * 64))
    oof_buf.resize(static_cast<size_t>(ochunks * 64));
  if (dof_buf.size() < static_cast<size_t>(chunks * 16))
    dof_buf.resize(static_cast<size_t>(chunks * 16));
  uint8_t* xt = xt_buf.data();
  uint8_t* xl = xl_buf.data();
  int32_t* oof = oof_buf.data();
  int32_t* dof = dof_buf.data();
  FillPadding(g, s, direct, static_cast<uint8_t>(zxu), xt, xt_size, dof);
  // The padded-plane offset of every output pixel's taps (0 past the last: computed, not
  // stored).
  for (int64_t oh = 0, p = 0; oh < g.oh; ++oh)
    for (int64_t ow = 0; ow < g.ow; ++ow, ++p)
      oof[p] = static_cast<int32_t>((oh * g.stride_h * s.cols + ow * g.stride_w) * 16);
  for (int64_t p = ohw; p < ochunks * 64; ++p) oof[p] = 0;

  const __m512i pick = _mm512_load_si512(QuadIndex());
  const __m512i flipv = _mm512_set1_epi8(static_cast<char>(flip));
  const bool u8 = o.kind == QOutput::Kind::kUInt8;
  // The epilogue of QStoreRowsAvx512 (qgemm_vnni.cc) with per-channel lanes: same
  // operations in the same order, so the bytes match.
  const __m512 lo = _mm512_set1_ps(o.ClampLo()), hi = _mm512_set1_ps(o.ClampHi());
  const __m512i zp16 = _mm512_set1_epi16(static_cast<int16_t>(o.zero_point));
  // Where no round(acc * scale) of a block can leave +-2^30 (BlockPackSafe), the float clamp
  // is left out and the bounds are applied to the narrowed bytes instead: the same bytes
  // (integer bounds inside the byte range, monotonic saturation), a quarter of the clamp
  // operations.
  const int32_t qmin = u8 ? 0 : -128, qmax = u8 ? 255 : 127;
  const int32_t blo = std::max(qmin, o.q_lo), bhi = std::min(qmax, o.q_hi);
  const bool byte_clamp = blo != qmin || bhi != qmax;
  const __m512i lo8 = _mm512_set1_epi8(static_cast<char>(blo));
  const __m512i hi8 = _mm512_set1_epi8(static_cast<char>(bhi));
  const __m512i unpack = _mm512_load_si512(UnpackIndex());
  const int64_t row_step = s.cols * 16;
  const int64_t taps = kh * groups;
  __m512i wv[kKh * kG > 0 ? kKh * kG : QuadRows::kMaxQuads];

  for (int64_t c0 = 0; c0 < b.channels; c0 += 16) {
    const int nc = static_cast<int>(std::min<int64_t>(16, b.channels - c0));
    const __mmask16 cmask = static_cast<__mmask16>((1u << nc) - 1);
    // Per-channel constants: weight dwords (4 taps of a kernel row, zero padded), the
    // zero-point correction -zxu * sum(w), bias and multiplier.
    alignas(64) int32_t wtab[QuadRows::kMaxQuads][16];
    alignas(64) int32_t corr[16] = {}, bias[16] = {};
    alignas(64) float scale[16];
    for (int c = 0; c < 16; ++c) {
      const int64_t ch = b.channel0 + c0 + c;
      scale[c] = o.scale[o.per_channel_scale && c < nc ? ch : 0];
      if (c >= nc) {
        for (int64_t t = 0; t < taps; ++t) wtab[t][c] = 0;
        continue;
      }
      const int16_t* w = b.w + (c0 + c) * ks;
      int32_t wsum = 0;
      for (int64_t i = 0; i < kh; ++i)
        for (int64_t k = 0; k < groups; ++k) {
          uint32_t d = 0;
          for (int64_t j = 0; j < 4 && 4 * k + j < g.kw; ++j) {
            const int16_t wt = w[i * g.kw + 4 * k + j];
            wsum += wt;
            d |= static_cast<uint32_t>(static_cast<uint8_t>(static_cast<int8_t>(wt))) << (8 * j);
          }
          wtab[i * groups + k][c] = static_cast<int32_t>(d);
        }
      corr[c] = -zxu * wsum;
      if (o.bias) bias[c] = o.bias[ch];
    }
    const bool pack_safe = BlockPackSafe(ks, nc, bias, scale);
    for (int64_t t = 0; t < taps; ++t) wv[t] = _mm512_load_si512(wtab[t]);
    const __m512i corrv = _mm512_add_epi32(_mm512_load_si512(corr), _mm512_load_si512(bias));
    const __m512 scv = _mm512_load_ps(scale);

    // Transpose the block's input planes, 64 pixels at a time, into the padded plane.
    const uint8_t* x = static_cast<const uint8_t*>(b.x) + c0 * hw;
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t p0 = ch * 64, n = std::min<int64_t>(64, hw - p0);
      const __mmask64 m = n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1;
      __m512i v[16];
      for (int c = 0; c < 16; ++c)
        v[c] = c < nc ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + c * hw + p0), flipv)
                      : _mm512_setzero_si512();
      Transpose16(v);
      // v[j] lane L: pixel p0 + 16 L + j, its 16 channels. A 4x4 transpose of the lanes of
      // v[4m..4m+3] gives pixels 16 L + 4m .. +3 as 64 contiguous bytes (a 4-pixel group):
      // channels-last, pixel-major.
      const PixelSink sink{hw, xl, xt, dof};
      if (direct)
        sink.PutChunk<true>(p0, v);
      else
        sink.PutChunk<false>(p0, v);
    }
    if (!direct)
      for (int64_t ih = 0; ih < g.h; ++ih)
        std::memcpy(xt + ((ih + g.pad_t) * s.cols + g.pad_l) * 16, xl + ih * g.w * 16,
                    static_cast<size_t>(g.w * 16));

    // Taps and requantization, 4 pixels at a time: pixels 64 u + 16 L + j (L = 0..3) of
    // chunk u, whose int32 results pack (saturating packs, exact: the float clamp put them
    // in range) into one vector that a vpermb orders as row j of the back transpose
    // (lane L: pixel 16 L + j, its 16 channel bytes).
    uint8_t* y = static_cast<uint8_t*>(b.y) + c0 * ohw;
    for (int64_t u = 0; u < ochunks; ++u) {
      __m512i v[16];
      for (int j = 0; j < 16; ++j) {
        const uint8_t* src[4];
        for (int L = 0; L < 4; ++L) src[L] = xt + oof[u * 64 + 16 * L + j];
        __m512i a[4] = {corrv, corrv, corrv, corrv};
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t k = 0; k < groups; ++k) {
            const int64_t o = i * g.dil_h * row_step + k * 64;
            for (int L = 0; L < 4; ++L)
              a[L] = _mm512_dpbusd_epi32(
                  a[L], _mm512_permutexvar_epi8(pick, _mm512_loadu_si512(src[L] + o)),
                  wv[i * groups + k]);
          }
        __m512i q[4];
        for (int L = 0; L < 4; ++L) {
          __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(a[L]), scv);
          if (!pack_safe) f = _mm512_min_ps(_mm512_max_ps(f, lo), hi);
          q[L] = _mm512_cvtps_epi32(f);
        }
        const __m512i p01 = _mm512_adds_epi16(_mm512_packs_epi32(q[0], q[1]), zp16);
        const __m512i p23 = _mm512_adds_epi16(_mm512_packs_epi32(q[2], q[3]), zp16);
        __m512i bytes = u8 ? _mm512_packus_epi16(p01, p23) : _mm512_packs_epi16(p01, p23);
        if (pack_safe && byte_clamp)
          bytes = u8 ? _mm512_min_epu8(_mm512_max_epu8(bytes, lo8), hi8)
                     : _mm512_min_epi8(_mm512_max_epi8(bytes, lo8), hi8);
        v[j] = _mm512_permutexvar_epi8(unpack, bytes);
      }
      const int64_t p0 = u * 64, n = std::min<int64_t>(64, ohw - p0);
      const __mmask64 m = n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1;
      Transpose16(v);
      for (int c = 0; c < nc; ++c) _mm512_mask_storeu_epi8(y + c * ohw + p0, m, v[c]);
    }
    (void)cmask;
  }
}

#pragma GCC diagnostic pop

}  // namespace

void RunBlock(Isa isa, const Block& b) {
  if (isa == Isa::kAvx2) return RunBlockAvx2(b);
  const Geometry& g = *b.g;
  const int64_t groups = (g.kw + 3) / 4;
  if (g.kh == 3 && groups == 1)
    RunBlocks<3, 1>(b);
  else if (g.kh == 5 && groups == 2)
    RunBlocks<5, 2>(b);
  else
    RunBlocks<0, 0>(b);
}

#else

void RunBlock(Isa, const Block&) {}

#endif  // __x86_64__

}  // namespace edgepress::runtime::qdw
