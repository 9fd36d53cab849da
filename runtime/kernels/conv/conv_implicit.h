// Implicit-GEMM 2-D convolution (no materialised im2col), used by conv.cc for the AVX2 and
// AVX-512 entries:
//   Y_g[Mg, pixels] = W_g[Mg, Cg*KH*KW] x patches[Cg*KH*KW, pixels]  (+ bias, clamp)
// The input of one image and group is first copied once into a zero-padded "source" split
// into stride phases: phase (p, q) of channel c holds padded pixels (s_h*i + p, s_w*j + q).
// In that layout the patch value of tap (c, kh, kw) for output pixel (oh, ow) sits at
//   source[off(c, kh, kw) + oh * Wq + ow]
// with one offset per GEMM row k and a "virtual" pixel index v = oh * Wq + ow that is the
// same for every k (Wq = the phase width). So a GEMM B panel of nr consecutive virtual
// pixels is, for each k, nr contiguous floats at source + off[k] + v0: packing it is one
// vector copy per row, no bounds checks, done per K block right before the micro-kernel
// reads it from L1 (the whole-plane im2col of ResNet-18's layer1 was 7 MiB written and read
// back from memory). Virtual pixels with ow >= OW are computed and dropped (Wq - OW of every
// Wq: 2 of 58 on a 56x56 plane); results go to a per-thread tile and from there, row run by
// row run, into Y. The weights are packed once at load as the GEMM's A panels.
// The (M block x pixel block) tiles of one (image, group) are one thread-pool dispatch, so
// both threads work on a 7x7 plane as long as Cout has several row blocks.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/kernels/conv/conv_activation.h"
#include "runtime/kernels/conv/conv_util.h"
#include "runtime/kernels/gemm/gemm.h"
#include "runtime/thread_pool.h"

namespace edgepress::runtime::conv_implicit {

// The micro-kernel tile: rows (<= ConvMr) x ConvNr columns (always whole: the driver's
// tile buffer is padded) over a K block of a packed A panel (ConvMr floats per k) and a
// packed B panel (ConvNr floats per k). AVX-512 has its own 12 x 32 kernel
// (conv_ukernel_avx512.cc); AVX2 and the portable path use the SGEMM's 6 x 16 kernels.
struct TileStore {
  bool accumulate = false;          // add to C (later K blocks) instead of overwriting it
  const float* row_bias = nullptr;  // bias of the tile's first row (last K block only)
  // FusedConv's sum input Z at the tile's first element, row stride ldz (last K block
  // only): added after the bias, before the clamp.
  const float* z = nullptr;
  int64_t ldz = 0;
  bool clamp = false;
  float lo = 0, hi = 0;
  // HardSigmoid/HardSwish after the clamp, in registers: the AVX-512 12 x 32 tile only (the
  // other tiles leave it to their caller).
  conv_act::PostActivation post;
  // Columns j < 32 of the tile that exist in C (bit j), the AVX-512 12 x 32 tile only:
  // kept columns are stored (and Z / an accumulated C read) at consecutive addresses from
  // the tile's start, so a panel of virtual pixels goes straight into Y, its dropped
  // columns (ow >= OW, past the last pixel) squeezed out.
  uint32_t keep = 0xffffffffu;
  // The AVX-512 12 x 32 tile only: the next A panel at this K block (same layout, 12
  // floats per k), requested into L1 one line per k step while this tile runs. Inside a
  // model the weights come from L3; the driver sets it on a tile's first pass over its
  // A panels. Does not change the result.
  const float* prefetch = nullptr;
  // Floats between B's K rows: 0 for a packed panel (ConvNr floats per k); the channel-
  // major tiles also read X itself, whose channel planes are a 1x1 in-place conv's K rows
  // (all nr columns must exist there). The pixel-major tile takes packed panels only.
  int64_t ldb = 0;
};
using ConvTileFn = void (*)(int rows, int64_t kc, const float* a, const float* b, float* c,
                            int64_t ldc, const TileStore& p);
// Whether the drivers prefetch the next weights while a tile runs (default on;
// EDGEPRESS_CONV_PREFETCH=0 turns it off, for A/B measurements).
bool PrefetchWeights();
// Whether a 1x1 in-place conv copies its whole B panels out of X anyway
// (EDGEPRESS_CONV_PACK_B=1, for A/B measurements; default: the tiles read X directly).
bool PackInPlaceB();
int ConvMr(Isa isa);
int ConvNr(Isa isa);
ConvTileFn ConvTileFor(Isa isa);
// Rows of the last A panel for M rows: ConvMr (zero-padded). On AVX-512 a partial last
// panel runs the SGEMM's 12x32 tile (ConvTailTileFor), which is templated on the rows it
// is given, so M = 16 does not compute 24 rows.
int ConvTailMr(Isa isa, int64_t m);
ConvTileFn ConvTailTileFor(Isa isa);
// The portable reference of any mr x nr tile (for the tests).
void UkernelRef(int mr, int nr, int rows, int64_t kc, const float* a, const float* b, float* c,
                int64_t ldc, const TileStore& p);
#if defined(__x86_64__)
void Ukernel12x32Avx512(int rows, int64_t kc, const float* a, const float* b, float* c,
                        int64_t ldc, const TileStore& p);
#endif

// W (m x k, row-major) packed as A panels of ConvMr(isa) rows (panel p at p * ConvMr * k),
// the last one ConvTailMr(isa, m) rows wide.
PackedMatrix PackWeights(Isa isa, int64_t m, int64_t k, const float* w);
int64_t PackedWeightsSize(Isa isa, int64_t m, int64_t k);

// Whether the implicit path handles this geometry: rank <= 2 (trivial depth).
inline bool Handles(const conv_util::ConvGeometry& g) {
  return g.rank <= 2 && g.k[0] == 1 && g.in[0] == 1 && g.out[0] == 1 && g.pad_b[0] == 0;
}

// The source layout and patch offsets of one convolution geometry (depends only on the
// shapes, so the kernel keeps it between calls).
struct Plan {
  int64_t sh = 1, sw = 1;  // strides: number of row / column phases
  int64_t hq = 0, wq = 0;  // phase plane
  int64_t chan = 0;        // floats per channel (sh * sw * hq * wq)
  int64_t source_size = 0; // floats of the source incl. the slack read by the last panel
  int64_t nv = 0;          // virtual pixels: (OH - 1) * wq + OW
  std::vector<int64_t> off;  // per GEMM row k = (c * KH + kh) * KW + kw
  // Phases some tap reads (p * sw + q); the others are left unwritten, e.g. 3 of the 4 of
  // a 1x1 stride-2 projection.
  std::vector<bool> phase_used;
  // A 1x1 stride-1 unpadded conv reads X itself as the source (no copy): the channel
  // planes are the GEMM's B rows and virtual pixels are Y's pixels.
  bool in_place = false;
};
Plan MakePlan(const conv_util::ConvGeometry& g, int nr);
Plan MakePointwisePlan(const conv_util::ConvGeometry& g);

// The pixel-major layout (conv_pixel_major.cc): tiles of kPmRows pixels of one output row
// x kPmCols output channels, W^T packed as panels of kPmCols channels ([k][kPmCols] each).
// AVX-512 only; chosen per geometry by PreferPixelMajor (fewer padded multiply-adds).
constexpr int kPmRows = 7, kPmCols = 64;
#if defined(__x86_64__)
void Ukernel7x64Avx512(int rows, int64_t kc, const float* a, const float* b, float* c,
                       int64_t ldc, const TileStore& p);
// The tile for the first `cols` (1..64) channels of a weight panel: AVX-512 computes
// ceil(cols / 16) * 16 of them (only those columns of C are written); the portable
// reference computes all 64 (the panel is zero past M).
ConvTileFn Ukernel7xNAvx512(int cols);
#endif
ConvTileFn PixelMajorTileFor(Isa isa, int cols = kPmCols);
PackedMatrix PackWeightsPixelMajor(int64_t m, int64_t k, const float* w);

// Y (Mg x OH*OW for one image and group, row stride out_size) from X (Cg channels of one
// image and group) and the weights packed by PackWeights for `isa`. `source` is caller scratch.
// z (optional, Y's layout; must not alias y): FusedConv's sum, added before the clamp.
// pixel_major_w (optional, PackWeightsPixelMajor): run the pixel-major tiles instead.
// post (optional): HardSigmoid/HardSwish, applied to each finished tile of Y (after z).
void Run(Isa isa, const conv_util::ConvGeometry& g, const Plan& plan, const float* x,
         const PackedMatrix& w, const GemmEpilogue& ep, const float* bias, const float* z,
         float* y, std::vector<float>* source, ThreadPool& pool,
         const PackedMatrix* pixel_major_w = nullptr, const conv_act::PostActivation& post = {});
// What the tile loops of one Run read and write besides the weights (held by the
// channel-major and pixel-major loop objects; the references outlive them).
struct TileIo {
  const float* src;  // the built source, or X for an in-place plan
  const GemmEpilogue& ep;
  const float* bias;
  const float* z;
  float* y;
  const conv_act::PostActivation& post;
};
bool PreferPixelMajor(Isa isa, const conv_util::ConvGeometry& g, const Plan& plan);
// The pixel-major tile loop over a built source (or X for an in-place plan).
// post: applied by the transposed store, after the clamp.
void RunPixelMajor(Isa isa, const conv_util::ConvGeometry& g, const Plan& plan, const float* src,
                   const PackedMatrix& wt, const GemmEpilogue& ep, const float* bias,
                   const float* z, float* y, ThreadPool& pool,
                   const conv_act::PostActivation& post = {});

// The source copy alone (exposed for the tests): Cg channels of sh*sw phase planes.
// `isa`: AVX-512 de-interleaves stride-2 columns 16 at a time (SSE otherwise).
void BuildSource(const conv_util::ConvGeometry& g, const Plan& plan, const float* x,
                 int64_t c0, int64_t c1, float* source, Isa isa = Isa::kScalar);

}  // namespace edgepress::runtime::conv_implicit
