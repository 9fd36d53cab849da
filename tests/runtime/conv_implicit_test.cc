// The pieces of the implicit-GEMM convolution (runtime/kernels/conv/conv_implicit.h) on
// their own: the micro-kernel tile of every ISA this CPU has against the portable
// reference at every row count of a tile, K depths 1..301, accumulate/bias/clamp, the
// FusedConv sum Z (its own row stride), kept-column masks (AVX-512: dropped columns
// squeezed out of C and Z) and a row stride wider than the tile (nothing written outside
// the tile's rows); and the phase-split source (scalar and AVX-512 copies), whose offset
// table must address, for every tap and output pixel, exactly the input value (or the
// zero of a pad) that the convolution formula names.
// End-to-end convolutions are in conv_test.cc.
#include "runtime/kernels/conv/conv_implicit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace edgepress::runtime::conv_implicit {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// with_epilogue = false: the tile only stores or accumulates (the pixel-major tile, whose
// caller applies bias, Z and the clamp while transposing). tile_cols > 0: the tile
// computes only the first tile_cols of the nr-wide B panel (the narrower pixel-major
// tiles) and must write nothing past them.
void CheckTile(ConvTileFn fn, int mr, int nr, const char* name, bool with_epilogue = true,
               int tile_cols = 0) {
  const int64_t ldc = nr + 7;
  // B row strides: a packed panel (0: nr floats per k) and, for the channel-major tiles,
  // X's channel planes read in place (TileStore::ldb; the floats between rows unused).
  std::vector<int64_t> ldbs = {0};
  if (with_epilogue) ldbs.push_back(nr + 5);
  for (int64_t ldb : ldbs) {
    for (int64_t kc : {1, 2, 5, 128, 301}) {
      const std::vector<float> a = Random(kc * mr, 1 + kc),
                               b = Random(kc * (ldb > 0 ? ldb : nr), 2 + kc);
      const std::vector<float> bias = Random(mr, 3), c0 = Random(mr * ldc, 4);
      const int64_t ldz = nr + 3;
      const std::vector<float> z = Random(mr * ldz, 5);
      // Kept-column masks (TileStore::keep, the 32-wide AVX-512 tile only): all, a row end
      // dropped, gaps in either half and across the halves, one half, single columns.
      std::vector<uint32_t> keeps = {0xffffffffu};
      if (nr == 32 && with_epilogue)
        keeps.insert(keeps.end(), {0x3fffffffu, 0xfffffff3u, 0xfffe3fffu, 0x0000ffffu, 0xffff0000u,
                                   0x00000001u, 0x80000000u, 0x7ffffffeu});
      for (int rows = 1; rows <= mr; ++rows) {
        for (size_t v = 0; v < (with_epilogue ? 8 : 2) * keeps.size(); ++v) {
          const int variant = static_cast<int>(v % 8);
          TileStore p;
          p.ldb = ldb;
          p.keep = keeps[v / 8];
          const int written = p.keep != 0xffffffffu ? __builtin_popcount(p.keep)
                              : tile_cols > 0       ? tile_cols
                                                    : nr;
          p.accumulate = variant & 1;
          // A prefetch of the A panel (TileStore::prefetch) must not change the result.
          p.prefetch = (variant & 1) ? a.data() : nullptr;
          if (variant & 2) {
            p.row_bias = bias.data();
            p.clamp = true;
            p.lo = -0.5f;
            p.hi = 0.7f;
          }
          if (variant & 4) {
            p.z = z.data();
            p.ldz = ldz;
          }
          std::vector<float> want = c0, got = c0;
          UkernelRef(mr, nr, rows, kc, a.data(), b.data(), want.data(), ldc, p);
          fn(rows, kc, a.data(), b.data(), got.data(), ldc, p);
          const std::string what = std::string(name) + " rows " + std::to_string(rows) + " kc " +
                                   std::to_string(kc) + " variant " + std::to_string(variant) +
                                   " keep " + std::to_string(p.keep) + " ldb " +
                                   std::to_string(ldb);
          for (int64_t i = 0; i < mr * ldc; ++i) {
            const int64_t r = i / ldc, j = i % ldc;
            if (r < rows && j < written)
              ASSERT_NEAR(want[i], got[i], 1e-5 * (kc + 2)) << what << " @" << r << "," << j;
            else
              ASSERT_EQ(got[i], c0[i]) << what << ": wrote outside the tile at " << r << "," << j;
          }
        }
      }
    }
  }
}

void CheckTile(Isa isa, const char* name) {
  CheckTile(ConvTileFor(isa), ConvMr(isa), ConvNr(isa), name);
}

TEST(ConvImplicitTest, PortableTileMatchesReference) { CheckTile(Isa::kScalar, "scalar"); }

TEST(ConvImplicitTest, Avx2TileMatchesReference) {
  if (!GetCpuFeatures().Has(Isa::kAvx2)) GTEST_SKIP() << "CPU lacks AVX2+FMA";
  EXPECT_EQ(ConvMr(Isa::kAvx2), 6);
  CheckTile(Isa::kAvx2, "avx2");
}

TEST(ConvImplicitTest, Avx512TileMatchesReference) {
  if (!GetCpuFeatures().Has(Isa::kAvx512)) GTEST_SKIP() << "CPU lacks AVX-512F";
  EXPECT_EQ(ConvMr(Isa::kAvx512), 12);
  CheckTile(Isa::kAvx512, "avx512");
  ASSERT_EQ(ConvTailMr(Isa::kAvx512, 16), 12);
  ASSERT_EQ(ConvTailMr(Isa::kAvx512, 19), 12);
  CheckTile(ConvTailTileFor(Isa::kAvx512), 12, 32, "avx512 tail");
}

TEST(ConvImplicitTest, PixelMajorTileMatchesReference) {
  CheckTile(PixelMajorTileFor(Isa::kScalar), kPmRows, kPmCols, "pixel-major portable", false);
  if (!GetCpuFeatures().Has(Isa::kAvx512)) GTEST_SKIP() << "CPU lacks AVX-512F";
  CheckTile(PixelMajorTileFor(Isa::kAvx512), kPmRows, kPmCols, "pixel-major avx512", false);
  // A last channel panel of 1..64 channels: ceil(cols / 16) * 16 columns computed.
  for (int cols : {1, 15, 16, 17, 32, 33, 48, 49, 63, 64}) {
    const std::string name = "pixel-major avx512 cols " + std::to_string(cols);
    CheckTile(PixelMajorTileFor(Isa::kAvx512, cols), kPmRows, kPmCols, name.c_str(), false,
              (cols + 15) / 16 * 16);
  }
}

// W^T in panels of kPmCols channels, [k][kPmCols] each, zero past M.
TEST(ConvImplicitTest, PackWeightsPixelMajorTransposesIntoChannelPanels) {
  const int64_t m = kPmCols + 5, k = 9;
  const std::vector<float> w = Random(m * k, 12);
  const PackedMatrix p = PackWeightsPixelMajor(m, k, w.data());
  ASSERT_EQ(p.data.size(), static_cast<size_t>(2 * kPmCols * k));
  for (int64_t co = 0; co < 2 * kPmCols; ++co)
    for (int64_t kk = 0; kk < k; ++kk)
      ASSERT_EQ(p.data[(co / kPmCols) * kPmCols * k + kk * kPmCols + co % kPmCols],
                co < m ? w[co * k + kk] : 0.f)
          << "channel " << co << " k " << kk;
}

// Panels of mr rows (the SGEMM's A layout), zero past M.
TEST(ConvImplicitTest, PackWeightsPanelsRowsAndZeroPadsTheLast) {
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
    const int mr = ConvMr(isa);
    for (int extra : {3, mr - 1}) {
      const int64_t m = 2 * mr + extra, k = 7;
      const int tail = ConvTailMr(isa, m);
      EXPECT_EQ(tail, mr);
      const std::vector<float> w = Random(m * k, 9);
      const PackedMatrix p = PackWeights(isa, m, k, w.data());
      ASSERT_EQ(p.data.size(), static_cast<size_t>((2 * mr + tail) * k));
      ASSERT_EQ(PackedWeightsSize(isa, m, k), static_cast<int64_t>(p.data.size()));
      for (int64_t i = 0; i < 2 * mr + tail; ++i) {
        const int64_t width = i < 2 * mr ? mr : tail;
        for (int64_t kk = 0; kk < k; ++kk)
          ASSERT_EQ(p.data[(i / mr) * mr * k + kk * width + i % mr], i < m ? w[i * k + kk] : 0.f)
              << "row " << i << " k " << kk;
      }
    }
  }
}

// Every tap of every valid output pixel: source[off[k] + oh * wq + ow] is
// x[c][oh*sh + kh*dh - pt][ow*sw + kw*dw - pl], or 0 outside the input.
TEST(ConvImplicitTest, SourceOffsetsAddressEveryTap) {
  struct Case {
    int64_t c, h, w, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
  };
  const Case cases[] = {
      {2, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},   {3, 9, 11, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
      {1, 8, 8, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0},   {2, 13, 10, 5, 3, 3, 2, 2, 1, 2, 0, 3, 1},
      {2, 12, 9, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3},  {1, 5, 6, 3, 3, 1, 1, 1, 1, 4, 3, 2, 5},
      {2, 1, 30, 1, 5, 1, 2, 1, 2, 0, 2, 0, 2},
      // Stride-2 rows around the AVX-512 de-interleave's 16 outputs (31-34 input columns
      // hold 15-17 even ones), 1x1 projections and a padded 3x3 at 56 columns.
      {1, 3, 31, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0},  {1, 3, 32, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0},
      {2, 3, 33, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0},  {1, 4, 34, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},
      {2, 5, 56, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},  {1, 2, 65, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0},
  };
  std::vector<Isa> isas = {Isa::kScalar};
  if (GetCpuFeatures().Has(Isa::kAvx512)) isas.push_back(Isa::kAvx512);
  for (Isa isa : isas) {
    for (const Case& cs : cases) {
      conv_util::ConvGeometry g;
      g.rank = 2;
      g.n = 1;
      g.c = g.cg = cs.c;
      g.m = g.mg = 1;
      g.in[1] = cs.h;
      g.in[2] = cs.w;
      g.k[1] = cs.kh;
      g.k[2] = cs.kw;
      g.stride[1] = cs.sh;
      g.stride[2] = cs.sw;
      g.dil[1] = cs.dh;
      g.dil[2] = cs.dw;
      g.pad_b[1] = cs.pt;
      g.pad_b[2] = cs.pl;
      g.out[1] = (cs.h + cs.pt + cs.pb - (cs.kh - 1) * cs.dh - 1) / cs.sh + 1;
      g.out[2] = (cs.w + cs.pl + cs.pr - (cs.kw - 1) * cs.dw - 1) / cs.sw + 1;
      ASSERT_TRUE(Handles(g));
      const Plan plan = MakePlan(g, 32);
      const std::vector<float> x = Random(cs.c * cs.h * cs.w, 11);
      std::vector<float> source(plan.source_size, NAN);
      BuildSource(g, plan, x.data(), 0, cs.c, source.data(), isa);
      ASSERT_EQ(plan.nv, (g.out[1] - 1) * plan.wq + g.out[2]);
      size_t k = 0;
      for (int64_t c = 0; c < cs.c; ++c)
        for (int64_t kh = 0; kh < cs.kh; ++kh)
          for (int64_t kw = 0; kw < cs.kw; ++kw, ++k)
            for (int64_t oh = 0; oh < g.out[1]; ++oh)
              for (int64_t ow = 0; ow < g.out[2]; ++ow) {
                const int64_t ih = oh * cs.sh + kh * cs.dh - cs.pt;
                const int64_t iw = ow * cs.sw + kw * cs.dw - cs.pl;
                const bool inside = ih >= 0 && ih < cs.h && iw >= 0 && iw < cs.w;
                const float want = inside ? x[(c * cs.h + ih) * cs.w + iw] : 0.f;
                const int64_t at = plan.off[k] + oh * plan.wq + ow;
                ASSERT_LT(at, plan.source_size);
                ASSERT_EQ(source[at], want)
                    << IsaName(isa) << " case c" << cs.c << " " << cs.h << "x" << cs.w << " tap "
                    << c << "," << kh << "," << kw << " out " << oh << "," << ow;
              }
    }
  }
}

}  // namespace
}  // namespace edgepress::runtime::conv_implicit
