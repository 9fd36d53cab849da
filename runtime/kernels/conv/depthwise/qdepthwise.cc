// Integer depthwise conv: the scalar reference, the quad plane the SIMD kernels read, and
// the ISA dispatch (qdepthwise.h).
#include "runtime/kernels/conv/depthwise/qdepthwise.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace edgepress::runtime::qdw {

namespace {

template <typename T>
int32_t Acc(const Plane& p, const T* x, int64_t oh, int64_t ow) {
  const Geometry& g = *p.g;
  int32_t s = 0;
  for (int64_t i = 0; i < g.kh; ++i) {
    const int64_t ih = oh * g.stride_h + i * g.dil_h - g.pad_t;
    if (ih < 0 || ih >= g.h) continue;
    for (int64_t j = 0; j < g.kw; ++j) {
      const int64_t iw = ow * g.stride_w + j * g.dil_w - g.pad_l;
      if (iw < 0 || iw >= g.w) continue;
      s += (static_cast<int32_t>(x[ih * g.w + iw]) - p.x_zp) * p.w[i * g.kw + j];
    }
  }
  return s;
}

template <typename T>
void PlaneRefT(const Plane& p) {
  const Geometry& g = *p.g;
  const T* x = static_cast<const T*>(p.x);
  thread_local std::vector<int32_t> acc;
  acc.resize(static_cast<size_t>(g.oh * g.ow));
  for (int64_t oh = 0; oh < g.oh; ++oh)
    for (int64_t ow = 0; ow < g.ow; ++ow) acc[static_cast<size_t>(oh * g.ow + ow)] = Acc(p, x, oh, ow);
  StorePlane(Isa::kScalar, p, acc.data());
}

// n quads of dilation d and stride s from the padded byte row.
void BuildQuadsScalar(const uint8_t* src, int64_t n, int64_t s, int64_t d, uint32_t* dst) {
  for (int64_t j = 0; j < n; ++j) {
    const uint8_t* b = src + s * j;
    dst[j] = static_cast<uint32_t>(b[0]) | static_cast<uint32_t>(b[d]) << 8 |
             static_cast<uint32_t>(b[2 * d]) << 16 | static_cast<uint32_t>(b[3 * d]) << 24;
  }
}

}  // namespace

void PlaneRef(const Plane& p) { p.x_s8 ? PlaneRefT<int8_t>(p) : PlaneRefT<uint8_t>(p); }

bool SimdHandles(const Plane& p) {
  const Geometry& g = *p.g;
  if (!(g.stride_w == 1 || g.stride_w == 2) || g.stride_h < 1 || g.dil_h < 1 || g.dil_w < 1 ||
      g.pad_t < 0 || g.pad_l < 0 || g.kh < 1 || g.kw < 1 || g.oh <= 0 || g.ow <= 0)
    return false;
  if (g.kh * ((g.kw + 3) / 4) > QuadRows::kMaxQuads) return false;
  for (int64_t t = 0; t < g.kh * g.kw; ++t)
    if (p.w[t] < -128 || p.w[t] > 127) return false;
  return true;
}

bool QuadRows::Init(const Plane& p, int vec, BuildQuadsFn build, BuildQuadsDirectFn direct,
                    int64_t whole_max_bytes) {
  if (!SimdHandles(p)) return false;
  const Geometry& g = *p.g;
  p_ = &p;
  const int64_t s = g.stride_w, d = g.dil_w;
  build_ = d == 1 ? build : nullptr;
  direct_ = d == 1 ? direct : nullptr;
  groups_ = (g.kw + 3) / 4;
  group_step_ = s == 1 ? 4 * d : 2 * d;  // 4 * d / s (no division: small planes feel it)
  const int64_t ow_v = (g.ow + vec - 1) & -static_cast<int64_t>(vec);  // vec: a power of 2
  cols_ = ow_v + (groups_ - 1) * group_step_;
  pitch_ = (cols_ + 15) / 16 * 16;  // the SIMD builders write whole blocks of 16
  rows_ = (g.oh - 1) * g.stride_h + (g.kh - 1) * g.dil_h + 1;
  whole_ = direct_ && rows_ * pitch_ * 4 <= whole_max_bytes;
  // A whole plane at stride 1 whose rows are one group: rows ow apart, so output pixel
  // p = oh * ow + c reads quad p + i * ow for kernel row i (narrow planes fill vectors).
  linear_ = whole_ && groups_ == 1 && g.stride_h == 1 && s == 1 && g.dil_h == 1;
  if (linear_) pitch_ = cols_ = g.ow;
  // Two output rows at a time read rows up to stride_h below the highest one built. A
  // whole plane's ring holds every row (Row never wraps).
  const int64_t need = whole_ ? rows_ : (g.kh - 1) * g.dil_h + 1 + g.stride_h;
  ring_ = 1;
  while (ring_ < need) ring_ *= 2;
  next_ = 0;
  // int8 x is read as x ^ 0x80 = x + 128 (uint8 for vpdpbusd), its zero point with it.
  flip_ = p.x_s8 ? 0x80 : 0;
  const int32_t zxu = p.x_zp + (p.x_s8 ? 128 : 0);
  pad_ = static_cast<uint8_t>(zxu);
  int32_t wsum = 0;
  std::memset(w8_, 0, static_cast<size_t>(g.kh * groups_ * 4));
  for (int64_t i = 0; i < g.kh; ++i) {
    int8_t* row = w8_ + i * groups_ * 4;  // taps j at byte j of the row's groups
    for (int64_t j = 0; j < g.kw; ++j) {
      const int16_t w = p.w[i * g.kw + j];
      wsum += w;
      row[j] = static_cast<int8_t>(w);
    }
  }
  corr_ = -zxu * wsum;
  // The padded byte row covers every byte a quad or a SIMD builder's block reads; its
  // padding is written once per plane, rows then copy only their pixels.
  xlen_ = s * pitch_ + 3 * d + 64;
  thread_local std::vector<uint8_t> xrow;
  thread_local std::vector<uint32_t> ring;
  if (xrow.size() < static_cast<size_t>(xlen_)) xrow.resize(static_cast<size_t>(xlen_));
  // (+16: a linear plane's builders and loads run up to 15 dwords past its last row)
  const size_t ring_size = static_cast<size_t>(ring_ * pitch_ + 16);
  if (ring.size() < ring_size) ring.resize(ring_size);
  xrow_ = xrow.data();
  data_ = ring.data();
  if (!direct_) std::memset(xrow_, pad_, static_cast<size_t>(xlen_));
  return true;
}

void QuadRows::BuildRow(int64_t r) {
  const Geometry& g = *p_->g;
  uint32_t* dst = data_ + (r & (ring_ - 1)) * pitch_;
  const int64_t ih = r - g.pad_t;
  if (ih < 0 || ih >= g.h) {
    std::fill(dst, dst + pitch_, 0x01010101u * pad_);
    return;
  }
  const uint8_t* src = static_cast<const uint8_t*>(p_->x) + ih * g.w;
  if (direct_) return direct_(DirectRow{src, g.w, g.pad_l, pad_, flip_}, cols_, g.stride_w, dst);
  const int64_t c0 = std::min(xlen_, g.pad_l), c1 = std::min(xlen_, g.pad_l + g.w);
  if (flip_)
    for (int64_t c = c0; c < c1; ++c) xrow_[c] = src[c - g.pad_l] ^ flip_;
  else
    std::memcpy(xrow_ + c0, src, static_cast<size_t>(c1 - c0));
  if (build_)
    build_(xrow_, cols_, g.stride_w, dst);
  else
    BuildQuadsScalar(xrow_, cols_, g.stride_w, g.dil_w, dst);
}

void StorePlane(Isa isa, const Plane& p, const int32_t* acc) {
  // One epilogue call for the plane: its output rows are contiguous and the channel
  // (scale, bias) is the same for all of them. QStoreRowIsa's row is the channel, so the
  // output is a matrix whose rows are 0 bytes apart, starting at the plane.
  QOutput o = *p.out;
  o.data = p.y;
  o.ld = 0;
  QStoreRowIsa(isa, acc, static_cast<int>(p.g->oh * p.g->ow), p.channel, 0, o);
}

void RunPlane(Isa isa, const Plane& p) {
#if defined(__x86_64__)
  switch (isa) {
    case Isa::kAvx512Vnni:
    case Isa::kAmx:
      return PlaneAvx512Vnni(p);
    case Isa::kAvx512:
      return PlaneAvx512(p);
    case Isa::kAvx2:
      return PlaneAvx2(p);
    default:
      break;
  }
#endif
  PlaneRef(p);
}

const char* PlaneKernelName(Isa isa, const Plane& p) {
  if (!SimdHandles(p)) return "ref";
  switch (isa) {
    case Isa::kAvx512Vnni:
    case Isa::kAmx:
      return "avx512vnni_quad";
    case Isa::kAvx512:
      return "avx512bw_quad";
    case Isa::kAvx2:
      return "avx2_quad";
    default:
      return "ref";
  }
}

}  // namespace edgepress::runtime::qdw
