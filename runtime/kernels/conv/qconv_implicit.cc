// Implicit-GEMM int8 convolution (layout and exactness in qconv_implicit.h).
#include "runtime/kernels/conv/qconv_implicit.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/kernels/qgemm/qgemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime::qimplicit {

namespace {

using conv_util::ConvGeometry;

constexpr int kRows = 8;        // output channels a wide tile
constexpr int kPixels = 32;     // wide pixels a wide tile
constexpr int kPanelRows = 32;  // output channels a weight panel (and a pixel tile)
constexpr int kTilePixels = 8;  // most pixels a pixel tile

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Where the wide pixels live: the padded channel-quad plane of one image.
struct Plane {
  int64_t h = 0, w = 0, p = 0, wp = 0;    // input rows, columns, pad, row pitch (w + p)
  int64_t wide = 0, panels = 0, len = 0;  // wide pixels, 32-pixel panels, plane length
  explicit Plane(const ConvGeometry& g) {
    h = g.in[1];
    w = g.in[2];
    p = (g.k[2] - 1) / 2;
    wp = w + p;
    wide = h * wp;
    panels = CeilDiv(wide, kPixels);
    // Tap (kh, kw) of wide pixel P reads position P + kh * wp + kw: the last panel's last
    // tap reads up to `reads`; below the bottom pad rows that is padding too.
    const int64_t reads = panels * kPixels + (g.k[2] - 1) * wp + g.k[2];
    len = CeilDiv(std::max(reads, Origin() + (h + p) * wp + p), 16) * 16;
  }
  // Position of input pixel (0, 0): p pad rows and the first row's p left pads precede it.
  int64_t Origin() const { return p * wp + p; }
};

// Stride 1 with "same" output, or stride 2 (pixel tiles only, see Run).
bool Qualifies(const ConvGeometry& g) {
  const int64_t k = g.k[2], p = (k - 1) / 2, s = g.stride[2];
  return g.group == 1 && g.c % 4 == 0 && g.in[0] == 1 && g.k[0] == 1 && g.k[1] == k && k % 2 == 1 &&
         k >= 3 && (s == 1 || s == 2) && g.stride[1] == s && g.dil[1] == 1 && g.dil[2] == 1 &&
         g.pad_b[1] == p && g.pad_b[2] == p && g.out[1] == (g.in[1] + 2 * p - k) / s + 1 &&
         g.out[2] == (g.in[2] + 2 * p - k) / s + 1 && g.in[2] >= 6;
}

// The store's bound (QImplicitTile): |sum((x - zx) w) + bias| * scale < 2^30 per channel,
// with |x - zx| <= 255 and |w| <= 128. Written so that a NaN scale fails.
bool StoreSafe(int64_t m, int64_t kdim, const QOutput& out) {
  if (out.kind != QOutput::Kind::kUInt8 && out.kind != QOutput::Kind::kInt8) return false;
  if (!out.per_row) return false;
  for (int64_t i = 0; i < m; ++i) {
    double acc = static_cast<double>(kdim) * 255.0 * 128.0;
    if (out.bias) acc += std::abs(static_cast<double>(out.bias[i]));
    const double scale = out.scale[out.per_channel_scale ? i : 0];
    if (!(acc * std::abs(scale) < 1073741824.0)) return false;
  }
  return true;
}

#if defined(__x86_64__)
// Channel rows c..c+3 of one input row (w bytes each, `in_size` apart) -> w lanes of 4
// bytes at dst, xor `flip` (int8 x is stored as uint8 x + 128).
void InterleaveQuad(const uint8_t* x, int64_t in_size, int64_t w, uint8_t flip, uint8_t* dst) {
  const __m128i vf = _mm_set1_epi8(static_cast<char>(flip));
  int64_t i = 0;
  for (; i + 16 <= w; i += 16) {
    __m128i r[4];
    for (int j = 0; j < 4; ++j)
      r[j] =
          _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + j * in_size + i)), vf);
    const __m128i t0 = _mm_unpacklo_epi8(r[0], r[1]), t1 = _mm_unpackhi_epi8(r[0], r[1]);
    const __m128i t2 = _mm_unpacklo_epi8(r[2], r[3]), t3 = _mm_unpackhi_epi8(r[2], r[3]);
    __m128i* d = reinterpret_cast<__m128i*>(dst + 4 * i);
    _mm_storeu_si128(d, _mm_unpacklo_epi16(t0, t2));
    _mm_storeu_si128(d + 1, _mm_unpackhi_epi16(t0, t2));
    _mm_storeu_si128(d + 2, _mm_unpacklo_epi16(t1, t3));
    _mm_storeu_si128(d + 3, _mm_unpackhi_epi16(t1, t3));
  }
  for (; i < w; ++i)
    for (int j = 0; j < 4; ++j) dst[4 * i + j] = x[j * in_size + i] ^ flip;
}

// Writes channel quads [q0, q1) of one image into x4 (plane.len * 4 bytes a quad).
void BuildQuads(const ConvGeometry& g, const Plane& pl, const uint8_t* x, uint8_t zx, uint8_t flip,
                int64_t q0, int64_t q1, uint8_t* x4) {
  const int64_t in_size = g.in_size();
  for (int64_t q = q0; q < q1; ++q) {
    uint8_t* d = x4 + q * pl.len * 4;
    const uint8_t* xq = x + 4 * q * in_size;
    // Pads: the rows above, then each row's right pads (the next row's left ones), the rest.
    std::memset(d, zx, static_cast<size_t>(pl.Origin() * 4));
    for (int64_t r = 0; r < pl.h; ++r) {
      uint8_t* row = d + (pl.Origin() + r * pl.wp) * 4;
      InterleaveQuad(xq + r * pl.w, in_size, pl.w, flip, row);
      std::memset(row + pl.w * 4, zx, static_cast<size_t>(pl.p * 4));
    }
    const int64_t end = pl.Origin() + pl.h * pl.wp;
    std::memset(d + end * 4, zx, static_cast<size_t>((pl.len - end) * 4));
  }
}

// The store segments of panel q: for each output row the panel touches, its lanes with
// ow < w, each stored at y + lane - shift (shift = oh * p - panel start).
void Segments(const Plane& pl, int64_t q, qgemm_detail::QImplicitTile* t) {
  const int64_t p0 = q * kPixels;
  const int64_t end = std::min(pl.wide, p0 + kPixels);
  t->nseg = 0;
  uint32_t all = 0;
  for (int64_t oh = p0 / pl.wp; oh * pl.wp < end; ++oh) {
    const int64_t lo = std::max(p0, oh * pl.wp), hi = std::min(end, oh * pl.wp + pl.w);
    if (hi <= lo) continue;
    const int64_t n = hi - lo, first = lo - p0;
    const uint32_t mask =
        static_cast<uint32_t>(((n >= 32 ? ~uint64_t{0} : (uint64_t{1} << n) - 1)) << first);
    t->seg_mask[t->nseg] = mask;
    t->seg_shift[t->nseg] = oh * pl.p - p0;
    ++t->nseg;
    all |= mask;
  }
  t->half = (all >> 16) == 0;
}

struct Operands {
  const PackedWeights* pw;
  const uint8_t* x4;
  const int64_t* boff;
  const int32_t* row_const;
};

// fn(lo, hi) over contiguous shares of [0, n), one a thread.
template <class Fn>
void Shares(ThreadPool& pool, int64_t n, const Fn& fn) {
  const int64_t threads = std::min<int64_t>(pool.num_threads(), n);
  if (threads <= 1) return fn(0, n);
  pool.ParallelFor(threads, 1,
                   [&](int64_t s0, int64_t s1) { fn(s0 * n / threads, s1 * n / threads); });
}

// 8 output channels x 32 wide pixels a tile, panel-major: a thread's input panel stays in
// its L1 while the weight panels stream.
void RunWideTiles(ThreadPool& pool, const ConvGeometry& g, const Plane& pl, const Operands& ops,
                  const QOutput& o) {
  const int64_t mtiles = CeilDiv(g.m, kRows), k4 = ops.pw->k4;
  Shares(pool, pl.panels * mtiles, [&](int64_t lo, int64_t hi) {
    qgemm_detail::QImplicitTile t;
    t.k4 = k4;
    t.boff = ops.boff;
    t.ld = o.ld;
    int64_t seg_q = -1;
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t q = i / mtiles, mi = i % mtiles;
      if (q != seg_q) {
        Segments(pl, q, &t);
        seg_q = q;
      }
      t.x = ops.x4 + q * kPixels * 4;
      t.row0 = mi * kRows;
      t.rows = static_cast<int>(std::min<int64_t>(kRows, g.m - t.row0));
      // Rows [row0, row0 + 8) of their 32-row panel.
      t.w =
          ops.pw->w.data() + (t.row0 / kPanelRows) * k4 * kPanelRows * 4 + t.row0 % kPanelRows * 4;
      t.row_const = ops.row_const + t.row0;
      qgemm_detail::QImplicitTileAvx512Vnni(t, o);
    }
  });
}

// Up to 8 pixels of one output row x 32 output channels a tile (no pad columns), the
// tiles of one weight panel together: each row of ow pixels as ceil(ow / 8) tiles of equal
// size (7 + 7 at 14). Output pixel (oh, ow) of a stride-s conv reads its taps from plane
// position s * (oh * wp + ow) on: a tile's pixels are 4 * s bytes apart.
void RunPixelTiles(ThreadPool& pool, const ConvGeometry& g, const Plane& pl, const Operands& ops,
                   const QOutput& o) {
  const int64_t oh_n = g.out[1], ow_n = g.out[2], s = g.stride[2];
  const int64_t per_row = CeilDiv(ow_n, kTilePixels), row_tiles = oh_n * per_row;
  const int64_t k4 = ops.pw->k4;
  Shares(pool, g.m / kPanelRows * row_tiles, [&](int64_t lo, int64_t hi) {
    qgemm_detail::QImplicitPixelTile t;
    t.k4 = k4;
    t.boff = ops.boff;
    t.ld = o.ld;
    t.per_channel_scale = o.per_channel_scale;
    t.stride2 = s == 2;
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t panel = i / row_tiles, oh = i % row_tiles / per_row, j = i % per_row;
      const int64_t ow0 = j * ow_n / per_row, ow1 = (j + 1) * ow_n / per_row;
      const int64_t ch0 = panel * kPanelRows;
      t.pixels = static_cast<int>(ow1 - ow0);
      t.x = ops.x4 + s * (oh * pl.wp + ow0) * 4;
      t.w = ops.pw->w.data() + panel * k4 * kPanelRows * 4;
      t.row_const = ops.row_const + ch0;
      t.scale = o.scale + (o.per_channel_scale ? ch0 : 0);
      t.y = static_cast<uint8_t*>(o.data) + ch0 * o.ld + oh * ow_n + ow0;
      qgemm_detail::QImplicitPixelTileAvx512Vnni(t, o);
    }
  });
}
#endif

}  // namespace

bool PackWeights(Isa isa, const ir::Tensor& w, const std::vector<int32_t>& w_zp, int64_t group,
                 PackedWeights* out) {
#if defined(__x86_64__)
  if (isa != Isa::kAvx512Vnni || group != 1 || w.dtype() != ir::DType::kInt8 || w.rank() != 4)
    return false;
  for (int32_t z : w_zp)
    if (z != 0) return false;
  const int64_t m = w.shape()[0], c = w.shape()[1], k = w.shape()[2];
  if (w.shape()[3] != k || k < 3 || k % 2 == 0 || c % 4 != 0 || m < 1) return false;
  const int64_t taps = k * k, k4 = c / 4 * taps, panels = CeilDiv(m, kPanelRows);
  const int8_t* src = w.data<int8_t>();
  PackedWeights pw;
  pw.m = m;
  pw.c = c;
  pw.k = k;
  pw.k4 = k4;
  pw.w.assign(static_cast<size_t>(panels * k4 * kPanelRows * 4), 0);
  pw.wsum.assign(static_cast<size_t>(m), 0);
  // Group gi = quad * taps + tap, so that consecutive groups read one quad's plane.
  for (int64_t row = 0; row < m; ++row) {
    int8_t* panel = pw.w.data() + (row / kPanelRows) * k4 * kPanelRows * 4 + (row % kPanelRows) * 4;
    const int8_t* wr = src + row * c * taps;
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t tap = 0; tap < taps; ++tap) {
        const int8_t v = wr[ch * taps + tap];
        panel[((ch / 4) * taps + tap) * kPanelRows * 4 + ch % 4] = v;
        pw.wsum[static_cast<size_t>(row)] += v;
      }
  }
  *out = std::move(pw);
  return true;
#else
  (void)isa, (void)w, (void)w_zp, (void)group, (void)out;
  return false;
#endif
}

bool Run(ThreadPool& pool, const ConvGeometry& g, const ir::Tensor& x, int32_t x_zp,
         const PackedWeights& pw, const QOutput& out, ir::Tensor& y) {
#if defined(__x86_64__)
  if (!Qualifies(g) || pw.m != g.m || pw.c != g.c || pw.k != g.k[2]) return false;
  const int64_t kdim = g.c * g.k[1] * g.k[2];
  if (!StoreSafe(g.m, kdim, out)) return false;
  const Plane pl(g);
  // Operand set-up: the zero point in x4's uint8 domain, the per-channel constants, and
  // the offsets of each group's 32 pixels from the tile's first pixel.
  const bool s8 = x.dtype() == ir::DType::kInt8;
  const uint8_t zx = static_cast<uint8_t>(s8 ? x_zp + 128 : x_zp);
  const uint8_t flip = s8 ? 0x80 : 0;
  std::vector<int32_t> row_const(static_cast<size_t>(g.m));
  for (int64_t i = 0; i < g.m; ++i) {
    const uint32_t b = out.bias ? static_cast<uint32_t>(out.bias[i]) : 0u;
    row_const[static_cast<size_t>(i)] = static_cast<int32_t>(
        b - static_cast<uint32_t>(zx) * static_cast<uint32_t>(pw.wsum[static_cast<size_t>(i)]));
  }
  const int64_t taps = g.k[1] * g.k[2], quads = g.c / 4;
  std::vector<int64_t> boff(static_cast<size_t>(pw.k4));
  for (int64_t q = 0; q < quads; ++q)
    for (int64_t t = 0; t < taps; ++t)
      boff[static_cast<size_t>(q * taps + t)] =
          (q * pl.len + (t / g.k[2]) * pl.wp + t % g.k[2]) * 4;
  thread_local std::vector<uint8_t> x4;
  if (x4.size() < static_cast<size_t>(quads * pl.len * 4))
    x4.resize(static_cast<size_t>(quads * pl.len * 4));
  // Pixel tiles skip the wide tile's pad columns (9/7 of the work at 7x7, 15/14 at 14x14,
  // 29/28 at 28x28) and are the only ones that stride; even at 56x56 (57/56) their byte
  // transpose costs less than the pad column (qab: 528 vs 533-537 us). The wide tile
  // remains for the convs whose channels do not fill 32-row panels.
  const bool pixel_major = g.m % kPanelRows == 0;
  if (!pixel_major && g.stride[2] != 1) return false;
  for (int64_t n = 0; n < g.n; ++n) {
    const uint8_t* xn = static_cast<const uint8_t*>(x.raw()) + n * g.c * g.in_size();
    uint8_t* x4d = x4.data();
    Shares(pool, quads,
           [&](int64_t q0, int64_t q1) { BuildQuads(g, pl, xn, zx, flip, q0, q1, x4d); });
    QOutput o = out;
    o.data = static_cast<uint8_t*>(y.mutable_raw()) + n * g.m * g.out_size();
    o.ld = g.out_size();
    const Operands ops{&pw, x4d, boff.data(), row_const.data()};
    if (pixel_major)
      RunPixelTiles(pool, g, pl, ops, o);
    else
      RunWideTiles(pool, g, pl, ops, o);
  }
  return true;
#else
  (void)pool, (void)g, (void)x, (void)x_zp, (void)pw, (void)out, (void)y;
  return false;
#endif
}

}  // namespace edgepress::runtime::qimplicit
