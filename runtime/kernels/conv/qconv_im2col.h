// im2col for the integer convolutions (qconv.cc): one image and group of NCHW uint8/int8
// input written as the int8 GEMM's B panels (qgemm.h), in the int16-pair layout
// (QIm2ColPanels) or the byte layouts of VNNI/AMX CPUs (QIm2ColBytes, with an AVX-512
// path for 32-pixel panels). Padding stores the zero point, so (x - x_zp) is 0 there.
// Header-only and included by qconv.cc alone: compiled in a TU of their own, the calls
// were not specialised for the caller and int8 ResNet-18 ran 3% slower.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/kernels/conv/conv_util.h"
#include "runtime/kernels/qgemm/qgemm.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::qim2col {

// Offsets of each im2col row kk = ((c * KD + kd) * KH + kh) * KW + kw.
struct Im2ColRows {
  std::vector<int64_t> c_off, d_off, h_off, w_off;
  explicit Im2ColRows(const conv_util::ConvGeometry& g);
};

// im2col of (x - zp) for one image and group into int16-pair B panels [q0, q1) of width
// nr: panel q holds pixels [q*nr, q*nr+nr) as K2 groups of nr pairs (k even, k odd).
template <typename T>
void QIm2ColPanels(const conv_util::ConvGeometry& g, const Im2ColRows& rows, const T* x, int32_t zp,
                   int64_t q0, int64_t q1, int nr, int16_t* dst);

// im2col for the byte layouts (QGemmBytes, qgemm.h): B is int8, so uint8 x is stored as
// x ^ 0x80 (x - 128) and the zero point moves with it; padding stores that zero point
// (its (x - zp) is 0). Each panel of nr pixels is first written row-major ([kk][nr]
// bytes: contiguous runs, copied) and then interleaved into groups of 4 k with the
// column sums by QPackBPanelFromRows. A pointwise conv (rows = nullptr) copies X's rows.
// Panels [q0, q1) are written from dst on as panels q - q_base of an n_pack-column B.
template <typename T>
void QIm2ColBytes(Isa isa, const conv_util::ConvGeometry& g, const Im2ColRows* rows, const T* x,
                  int8_t pad, int64_t kdim, int64_t q0, int64_t q1, int nr, int16_t* dst,
                  int64_t q_base, int64_t n_pack);

// ---- definitions ----

using conv_util::ConvGeometry;

inline Im2ColRows::Im2ColRows(const ConvGeometry& g) {
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
        const bool inside = static_cast<uint64_t>(id) < in_d && static_cast<uint64_t>(ih) < in_h &&
                            static_cast<uint64_t>(iw) < in_w;
        d[2 * t] = inside ? static_cast<int16_t>(
                                static_cast<int32_t>(xc[(id * g.in[1] + ih) * g.in[2] + iw]) - zp)
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

namespace detail {

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
#if !defined(__clang__)  // clang has no -Wmaybe-uninitialized
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // gcc 12, unmasked AVX-512 intrinsics
#endif
__attribute__((target("avx512f,avx512bw,avx512vl"))) inline void Im2ColPanel32Avx512(
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

}  // namespace detail

template <typename T>
void QIm2ColBytes(Isa isa, const ConvGeometry& g, const Im2ColRows* rows, const T* x, int8_t pad,
                  int64_t kdim, int64_t q0, int64_t q1, int nr, int16_t* dst, int64_t q_base,
                  int64_t n_pack) {
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
    if (!rows) {        // pointwise: op(B)[c][pixel] = X[c][pixel]
      if (cnt == nr) {  // whole panel: interleaved straight from X's rows, flipped on the way
        QPackBPanelFromRows(isa, kdim, n_pack, pad, q - q_base,
                            reinterpret_cast<const int8_t*>(x + p0), dst, out_size, kFlip);
        continue;
      }
      for (int64_t kk = 0; kk < kdim; ++kk) {
        int8_t* d = tmp.data() + kk * nr;
        const T* xr = x + kk * out_size + p0;
        for (int t = 0; t < cnt; ++t)
          d[t] = static_cast<int8_t>(static_cast<uint8_t>(xr[t]) ^ kFlip);
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
    if ((sw == 1 || sw == 2) && nr == 32 && isa != Isa::kAvx2 && nseg <= detail::TapRuns::kMaxSeg) {
      // (the others have AVX-512BW) Rows kk < taps are channel 0's taps; channel c's rows
      // read the same offsets in plane c.
      const int64_t taps = g.k_size();
      thread_local std::vector<detail::TapRuns> runs;
      if (runs.size() < static_cast<size_t>(taps)) runs.resize(static_cast<size_t>(taps));
      const int sh = sw == 2 ? 1 : 0;
      for (int64_t t = 0; t < taps; ++t) {
        detail::TapRuns& r = runs[static_cast<size_t>(t)];
        r.nseg = 0;
        r.any = 0;
        for (int sgi = 0; sgi < nseg; ++sgi) {
          const int64_t id = bd[sgi] + rows->d_off[t], ih = bh[sgi] + rows->h_off[t];
          if (static_cast<uint64_t>(id) >= in_d || static_cast<uint64_t>(ih) >= in_h) continue;
          const int64_t w0 = bw[sgi] + rows->w_off[t];
          // Taps i with 0 <= w0 + i * sw < in_w (sw is 1 or 2: shifts, no division).
          const int64_t lo = std::min<int64_t>(seg_n[sgi], w0 >= 0 ? 0 : (-w0 + sw - 1) >> sh);
          const int64_t lim = static_cast<int64_t>(in_w) - 1 - w0;
          const int64_t hi =
              std::max(lo, lim < 0 ? 0 : std::min<int64_t>(seg_n[sgi], (lim >> sh) + 1));
          const int64_t n = hi - lo;
          if (n <= 0) continue;
          const int64_t first = seg_t[sgi] + lo;
          const uint32_t lanes =
              static_cast<uint32_t>(((n >= 32 ? ~uint64_t{0} : (uint64_t{1} << n) - 1)) << first);
          const uint64_t span = n >= 32 ? ~uint64_t{0} : (uint64_t{1} << (2 * n)) - 1;
          const int k = r.nseg++;
          r.lanes[k] = lanes;
          r.bytes[k] = 0x5555555555555555ull & (span << (2 * first));
          r.off[k] = ((id * g.in[1] + ih) * g.in[2] + w0 - seg_t[sgi] * sw) *
                     static_cast<int64_t>(sizeof(T));
          r.any |= lanes;
        }
      }
      detail::Im2ColPanel32Avx512(reinterpret_cast<const uint8_t*>(x),
                                  g.in_size() * static_cast<int64_t>(sizeof(T)), g.cg, runs.data(),
                                  taps, sw, pad, kFlip, cnt, tmp.data());
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

}  // namespace edgepress::runtime::qim2col
