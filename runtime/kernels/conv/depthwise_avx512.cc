// Depthwise plane kernel for AVX-512F: 16 output columns per vector over the zero-bordered
// plane copy (depthwise.h), all taps accumulated in one register, the last vector of a row
// masked. Stride 2 gathers the even columns of two loads with one vpermt2ps.
#include "runtime/kernels/conv/depthwise.h"

#if defined(__x86_64__)
#include <immintrin.h>

namespace edgepress::runtime::depthwise {

namespace {

constexpr int kVec = 16;

// kKh/kKw > 0 fix the kernel size at compile time (weights held in registers), 0 reads it.
template <int kS, int kKh, int kKw>
__attribute__((target("avx512f"))) void PlaneT(const DwGeometry& g, const float* xp,
                                               int64_t pitch, const float* w,
                                               const DwEpilogue& ep, float* y) {
  const int64_t kh = kKh > 0 ? kKh : g.kh, kw = kKw > 0 ? kKw : g.kw;
  const int64_t dh = g.dil_h * pitch, dw = g.dil_w;
  constexpr int kTaps = kKh * kKw > 0 ? kKh * kKw : 1;
  __m512 wv[kTaps];
  if (kKh * kKw > 0)
    for (int t = 0; t < kTaps; ++t) wv[t] = _mm512_set1_ps(w[t]);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                         28, 30);
  const __m512 vbias = _mm512_set1_ps(ep.bias), lo = _mm512_set1_ps(ep.lo),
               hi = _mm512_set1_ps(ep.hi);
  for (int64_t oh = 0; oh < g.oh; ++oh) {
    const float* x0 = xp + oh * g.stride_h * pitch;
    float* yr = y + oh * g.ow;
    for (int64_t ow = 0; ow < g.ow; ow += kVec) {
      const int64_t left = g.ow - ow;
      const __mmask16 mask =
          left >= kVec ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
      __m512 acc = vbias;
      for (int64_t i = 0; i < kh; ++i) {
        const float* xr = x0 + i * dh + ow * kS;
        for (int64_t j = 0; j < kw; ++j) {
          const float* src = xr + j * dw;
          __m512 v;
          if (kS == 1)
            v = _mm512_loadu_ps(src);
          else
            v = _mm512_permutex2var_ps(_mm512_loadu_ps(src), even, _mm512_loadu_ps(src + kVec));
          const __m512 wt = kKh * kKw > 0 ? wv[i * kw + j] : _mm512_set1_ps(w[i * kw + j]);
          acc = _mm512_fmadd_ps(wt, v, acc);
        }
      }
      if (ep.clamp) acc = _mm512_min_ps(_mm512_max_ps(acc, lo), hi);
      _mm512_mask_storeu_ps(yr + ow, mask, acc);
    }
  }
}

// Fast path (FastPathHandles): kR output rows per pass. Their taps read kR * kS + kK - kS
// distinct input rows, so the fully unrolled loops let the compiler load each input vector
// once for all rows that use it (5x5 stride 1, 4 rows: 40 loads for 100 FMAs), and the kR
// accumulators are independent chains: a 7x7 plane's rows were one vector each with a
// single 25-FMA dependency chain. Stride 2 reads the even/odd split rows (PadPlaneSplit).
template <int kS, int kK, int kR>
__attribute__((target("avx512f"), always_inline)) inline void RowsFast(
    const float* x0, int64_t pitch, int64_t half, const __m512* wv, __m512 vbias, bool clamp,
    __m512 lo, __m512 hi, int64_t ow_n, float* y) {
  for (int64_t ow = 0; ow < ow_n; ow += kVec) {
    const int64_t left = ow_n - ow;
    const __mmask16 mask =
        left >= kVec ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    __m512 acc[kR];
    for (int r = 0; r < kR; ++r) acc[r] = vbias;
    // Taps outer, rows inner: consecutive FMAs go to different accumulators.
    for (int i = 0; i < kK; ++i) {
      for (int j = 0; j < kK; ++j) {
        const int64_t col = kS == 1 ? j : (j & 1) * half + (j >> 1);
        for (int r = 0; r < kR; ++r)
          acc[r] = _mm512_fmadd_ps(wv[i * kK + j],
                                _mm512_loadu_ps(x0 + (r * kS + i) * pitch + ow + col), acc[r]);
      }
    }
    for (int r = 0; r < kR; ++r) {
      if (clamp) acc[r] = _mm512_min_ps(_mm512_max_ps(acc[r], lo), hi);
      _mm512_mask_storeu_ps(y + r * ow_n + ow, mask, acc[r]);
    }
  }
}

__attribute__((target("avx512f"))) void SplitAvx512(const float* src, int64_t n, float* even,
                                                   float* odd) {
  const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  int64_t c = 0;
  for (; c + kVec <= n; c += kVec) {
    const __m512 a = _mm512_loadu_ps(src + 2 * c), b = _mm512_loadu_ps(src + 2 * c + kVec);
    _mm512_storeu_ps(even + c, _mm512_permutex2var_ps(a, ev, b));
    _mm512_storeu_ps(odd + c, _mm512_permutex2var_ps(a, od, b));
  }
  for (; c < n; ++c) {
    even[c] = src[2 * c];
    odd[c] = src[2 * c + 1];
  }
}

// PadPlane / PadPlaneSplit for planes at most one vector wide (MobileNet's 7x7 and 14x14):
// per row a few zero stores and one masked load instead of three libc calls, which cost
// more than the FMAs of a 7x7 plane. Same layout as the shared versions (depthwise.h).
__attribute__((target("avx512f"))) int64_t PadNarrow(const DwGeometry& g, const float* x,
                                                    std::vector<float>* buf, int64_t* half) {
  const int64_t ow_vec = (g.ow + kVec - 1) / kVec * kVec;
  const int64_t rows = (g.oh - 1) * g.stride_h + (g.kh - 1) * g.dil_h + 1;
  const bool split = g.stride_w == 2;
  const int64_t hw = ow_vec + (g.kw - 1) * g.dil_w / 2;
  const int64_t pitch =
      split ? 2 * hw : (ow_vec - kVec) + (g.kw - 1) * g.dil_w + kVec;
  const int64_t zero_vecs = (pitch + kVec - 1) / kVec;
  // Room for the whole-vector stores past the last row's pitch.
  const size_t need = static_cast<size_t>(rows * pitch + zero_vecs * kVec + 2 * kVec);
  if (buf->size() < need) buf->resize(need);
  float* d = buf->data();
  const __mmask16 in_mask = static_cast<__mmask16>((1u << g.w) - 1);
  const __m512 zero = _mm512_setzero_ps();
  // Split: even[c] = row[2c - pad_l], odd[c] = row[2c + 1 - pad_l], lanes outside zeroed.
  alignas(64) int32_t ie[kVec] = {}, io[kVec] = {};
  __mmask16 me = 0, mo = 0;
  for (int c = 0; c < kVec && split; ++c) {
    const int64_t e = 2 * c - g.pad_l, o = e + 1;
    ie[c] = static_cast<int32_t>(e >= 0 && e < g.w ? e : 0);
    io[c] = static_cast<int32_t>(o >= 0 && o < g.w ? o : 0);
    if (e >= 0 && e < g.w) me = static_cast<__mmask16>(me | (1u << c));
    if (o >= 0 && o < g.w) mo = static_cast<__mmask16>(mo | (1u << c));
  }
  const __m512i vie = _mm512_load_si512(ie), vio = _mm512_load_si512(io);
  for (int64_t r = 0; r < rows; ++r) {
    float* dr = d + r * pitch;
    for (int64_t v = 0; v < zero_vecs; ++v) _mm512_storeu_ps(dr + v * kVec, zero);
    const int64_t ih = r - g.pad_t;
    if (ih < 0 || ih >= g.h) continue;
    const __m512 row = _mm512_maskz_loadu_ps(in_mask, x + ih * g.w);
    if (split) {
      _mm512_storeu_ps(dr, _mm512_maskz_permutexvar_ps(me, vie, row));
      _mm512_storeu_ps(dr + hw, _mm512_maskz_permutexvar_ps(mo, vio, row));
    } else {
      // Spills past the row's pitch into the next row, whose zero stores come later.
      _mm512_storeu_ps(dr + g.pad_l, row);
    }
  }
  *half = hw;
  return pitch;
}

// Whether PadNarrow applies: the row fits one vector and, split, its even/odd halves too.
bool Narrow(const DwGeometry& g) {
  return g.w <= kVec && g.pad_l <= kVec && (g.stride_w == 1 || g.w + g.pad_l <= 2 * kVec);
}

template <int kS, int kK>
__attribute__((target("avx512f"))) void PlaneFast(const DwGeometry& g, const float* xp,
                                                  int64_t pitch, int64_t half, const float* w,
                                                  const DwEpilogue& ep, float* y) {
  constexpr int kR = 4;
  __m512 wv[kK * kK];
  for (int t = 0; t < kK * kK; ++t) wv[t] = _mm512_set1_ps(w[t]);
  const __m512 vbias = _mm512_set1_ps(ep.bias), lo = _mm512_set1_ps(ep.lo),
               hi = _mm512_set1_ps(ep.hi);
  int64_t oh = 0;
  for (; oh + kR <= g.oh; oh += kR)
    RowsFast<kS, kK, kR>(xp + oh * kS * pitch, pitch, half, wv, vbias, ep.clamp, lo, hi, g.ow,
                         y + oh * g.ow);
  // The last 1..kR-1 rows in one pass too (a 7-row plane is 4 + 3, not 4 + 1 + 1 + 1).
  const float* xl = xp + oh * kS * pitch;
  float* yl = y + oh * g.ow;
  switch (g.oh - oh) {
    case 3:
      if (kR > 3) RowsFast<kS, kK, 3>(xl, pitch, half, wv, vbias, ep.clamp, lo, hi, g.ow, yl);
      break;
    case 2:
      if (kR > 2) RowsFast<kS, kK, 2>(xl, pitch, half, wv, vbias, ep.clamp, lo, hi, g.ow, yl);
      break;
    case 1:
      RowsFast<kS, kK, 1>(xl, pitch, half, wv, vbias, ep.clamp, lo, hi, g.ow, yl);
      break;
    default:
      break;
  }
}

template <int kS>
void Dispatch(const DwGeometry& g, const float* xp, int64_t pitch, const float* w,
              const DwEpilogue& ep, float* y) {
  if (g.kh == 3 && g.kw == 3) return PlaneT<kS, 3, 3>(g, xp, pitch, w, ep, y);
  if (g.kh == 5 && g.kw == 5) return PlaneT<kS, 5, 5>(g, xp, pitch, w, ep, y);
  PlaneT<kS, 0, 0>(g, xp, pitch, w, ep, y);
}

}  // namespace

void PlaneAvx512(const DwGeometry& g, const float* x, const float* w, const DwEpilogue& ep,
                 float* y) {
  if (!SimdHandles(g)) return PlaneRef(g, x, w, ep, y);
  thread_local std::vector<float> buf;
  if (FastPathHandles(g)) {
    int64_t half = 0;
    if (Narrow(g)) {
      const int64_t pitch = PadNarrow(g, x, &buf, &half);
      if (g.stride_w == 1)
        return g.kh == 3 ? PlaneFast<1, 3>(g, buf.data(), pitch, 0, w, ep, y)
                         : PlaneFast<1, 5>(g, buf.data(), pitch, 0, w, ep, y);
      return g.kh == 3 ? PlaneFast<2, 3>(g, buf.data(), pitch, half, w, ep, y)
                       : PlaneFast<2, 5>(g, buf.data(), pitch, half, w, ep, y);
    }
    if (g.stride_w == 1) {
      const int64_t pitch = PadPlane(g, x, kVec, &buf);
      return g.kh == 3 ? PlaneFast<1, 3>(g, buf.data(), pitch, 0, w, ep, y)
                       : PlaneFast<1, 5>(g, buf.data(), pitch, 0, w, ep, y);
    }
    const int64_t pitch = PadPlaneSplit(g, x, kVec, &buf, &half, SplitAvx512);
    return g.kh == 3 ? PlaneFast<2, 3>(g, buf.data(), pitch, half, w, ep, y)
                     : PlaneFast<2, 5>(g, buf.data(), pitch, half, w, ep, y);
  }
  const int64_t pitch = PadPlane(g, x, kVec, &buf);
  if (g.stride_w == 1)
    Dispatch<1>(g, buf.data(), pitch, w, ep, y);
  else
    Dispatch<2>(g, buf.data(), pitch, w, ep, y);
}

}  // namespace edgepress::runtime::depthwise
#endif  // __x86_64__
