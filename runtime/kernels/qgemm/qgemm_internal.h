// Between the files of the integer GEMM: qgemm.cc (int16 driver, packing, scalar kernel),
// qgemm_avx2.cc (int16 x86 micro-kernels, vectorised epilogue), qgemm_pack_avx2.cc (AVX2
// packing of A), qgemm_bytes.cc (uint8 x int8 packing and driver), qgemm_vnni.cc (vpdpbusd
// micro-kernels), qgemm_amx.cc (tdpbusd).
// Not for operator kernels: they use qgemm.h.
#pragma once

#include <cstdint>

#include "runtime/kernels/qgemm/qgemm.h"

namespace edgepress::runtime::qgemm_detail {

// One mr x nr tile over all K2 pairs: acc[r * nr + j] (int32), rows < mr of A valid.
using QTileFn = void (*)(int rows, int64_t k2, const int16_t* a, const int16_t* b,
                         int32_t* acc);
// The epilogue of one row segment (QStoreRow's contract).
using QStoreFn = void (*)(const int32_t* acc, int cols, int64_t row, int64_t col0,
                          const QOutput& out);
// The epilogue of one tile: rows x cols values of acc (row stride nr) to rows row0.. and
// columns col0.. of `out`, each row as the kernel's QStoreFn stores it.
using QStoreTileFn = void (*)(const int32_t* acc, int rows, int cols, int64_t row0, int64_t col0,
                              const QOutput& out);

struct QMicroKernel {
  int mr, nr;
  QTileFn tile;
  QStoreTileFn store;
  const char* name;
  // Optional: the first nr / 2 columns only (acc rows still nr apart), for a last column
  // panel of at most nr / 2 (7x7 convs: 49 = 3 x 16 + 1).
  QTileFn tile_narrow = nullptr;
  // Optional: tile + store fused for whole-width tiles of per-row quantized outputs.
  void (*tile_quant)(int rows, int64_t k2, const int16_t* a, const int16_t* b, int64_t row0,
                     int64_t col0, const QOutput& o) = nullptr;
};

// ---- uint8 x int8 byte layouts ----------------------------------------------------------

// Zero-point correction of one tile: za/sa per row of A (from the tile's first row),
// zb/sb per column of B (nr values); acc = dot - za*sb - zb*(sa - k*za), wrapping.
struct QCorr {
  const int32_t* za;
  const int32_t* sa;
  const int32_t* zb;
  const int32_t* sb;
  int32_t k;
  // For QStoreTileAvx512's requantization, set up once per product by the driver: za is
  // one value for all rows / zb for all columns, and per row the int32 constant
  // (bias when per row) - (zb_one ? zb * (sa - k*za) : 0).
  bool za_one = false, zb_one = false;
  const int32_t* row_const = nullptr;
  // Set by the driver when every row's requantized value round(acc * scale) provably stays
  // within +-2^30 (PackedStoreSafe): the store may then skip the float clamp and narrow
  // with saturating packs, which give the same bytes (QStoreQuantTileAvx512).
  bool pack_store = false;
};

// One mr x nr tile over k4 groups of 4 k: writes rows x nr int32 values to acc (row
// stride nr), corrected unless the kernel's `corrects` is false. `a` is the tile's A panel, `b` its B panel.
using QByteTileFn = void (*)(int rows, int64_t k4, const uint8_t* a, const int8_t* b,
                             const QCorr& corr, int32_t* acc);

struct QByteKernel {
  int mr, nr;
  QByteTileFn tile;
  const char* name;
  int64_t a_panel_bytes_per_group;  // A panel bytes = this * k4
  // Called by each thread around its share of one product of depth k (AMX: load the tile
  // configuration for k, release the tiles); nullptr when not needed.
  void (*begin)(int64_t k) = nullptr;
  void (*end)() = nullptr;
  // False for the AVX-512 tiles: they store raw dots and QStoreTileAvx512 corrects them.
  bool corrects = true;
};

// Groups of 4 k per panel (K4, rounded up to 16 under kAmx).
int64_t ByteK4(Isa isa, int64_t k);
// The packing geometry of `isa` (mr, nr; A rows of 16 and row-major 64-k blocks under kAmx).
int ByteMr(Isa isa);
int ByteNr(Isa isa);
bool ByteAmxLayout(Isa isa);
// The kernel a product of m rows runs.
const QByteKernel& ByteKernelFor(Isa isa, int64_t m);
int64_t BytePackedSize(Isa isa, bool is_a, int64_t dim, int64_t k);  // in int16 units
void BytePackPanels(Isa isa, bool is_a, int64_t dim, int64_t k, const QSource& s, int64_t p0,
                    int64_t p1, int16_t* dst);
void QGemmBytesRun(Isa isa, int64_t m, int64_t n, int64_t k, const int16_t* a,
                   const int16_t* b, const QOutput& out, ThreadPool* pool, int part = 0,
                   int parts = 1);

#if defined(__x86_64__)
// qgemm_vnni.cc
void QByteTileAvx512Vnni(int rows, int64_t k4, const uint8_t* a, const int8_t* b,
                         const QCorr& corr, int32_t* acc);  // 8x32, VNNI A layout
// QByteTileAvx512Vnni with the requantizing store fused (uint8/int8 output, corr.pack_store,
// za_one and zb_one), over the 8-row tiles p0..p1-1 of one column panel (rows below m):
// writes their rows x cols bytes of `out` at column col0. Their A panels lie tile_a_bytes
// apart from `a` (tile p0's); corr's za and row_const start at tile p0's first row. The
// store's settings are made once a panel, not once a tile (at mobilenet's K = 16..32 they
// cost a tenth of a tile).
void QByteTilesQuantAvx512Vnni(int64_t p0, int64_t p1, int64_t m, int64_t k4, const uint8_t* a,
                               int64_t tile_a_bytes, const int8_t* b, const QCorr& corr,
                               int64_t col0, int cols, const QOutput& out);
// One tile of the implicit-GEMM int8 conv (conv/qconv_implicit.h): rows x 32 wide pixels,
// y[row][pixel] = requant(row_const[row] + sum_g dot4(x[boff[g] + 4 * lane], w[g][row])),
// x the uint8 channel-quad input at the tile's first pixel, w the tile's 8 rows in an int8
// weight panel of k4 groups of 32 rows x 4 bytes. Lanes are stored by segment (the valid
// pixels of one output row): lanes in seg_mask[s] go to y + row * ld + lane - seg_shift[s].
// `half`: only lanes 0-15 are valid. Needs out.kind uint8/int8 whose requantized values
// provably stay within +-2^30 (the packed store's saturating narrowing).
struct QImplicitTile {
  static constexpr int kMaxSeg = 8;
  int rows = 8;
  bool half = false;
  int64_t k4 = 0;
  const uint8_t* x = nullptr;
  const int64_t* boff = nullptr;
  const int8_t* w = nullptr;
  const int32_t* row_const = nullptr;
  int64_t row0 = 0, ld = 0;
  int nseg = 0;
  uint32_t seg_mask[kMaxSeg] = {};
  int64_t seg_shift[kMaxSeg] = {};
};
void QImplicitTileAvx512Vnni(const QImplicitTile& t, const QOutput& out);
// The pixel-major implicit tile: `pixels` (1-8) consecutive pixels of one output row x 32
// output channels, y[ch][pixel] = requant(row_const[ch] + sum_g dot4(x[boff[g] + 4 * s *
// pixel], w[g][ch])) (s: the conv's stride, 1 or 2), w a whole 32-row weight panel, the scale
// per channel when per_channel_scale; written at y + ch * ld + pixel. Same output
// conditions as QImplicitTile.
struct QImplicitPixelTile {
  int pixels = 8;
  int64_t k4 = 0;
  const uint8_t* x = nullptr;
  const int64_t* boff = nullptr;
  const int8_t* w = nullptr;
  const int32_t* row_const = nullptr;
  const float* scale = nullptr;
  bool per_channel_scale = false;
  bool stride2 = false;  // pixel r at x + 8 * r instead of x + 4 * r (stride-2 convs)
  uint8_t* y = nullptr;
  int64_t ld = 0;
};
void QImplicitPixelTileAvx512Vnni(const QImplicitPixelTile& t, const QOutput& out);
// QByteTileAvx512Vnni with the float store fused (kFloat output per column, !out.per_row):
// writes rows x cols floats of `out` at (row0, col0).
void QByteTileFloatAvx512Vnni(int rows, int64_t k4, const uint8_t* a, const int8_t* b,
                              const QCorr& corr, int64_t row0, int64_t col0, int cols,
                              const QOutput& out);
void QByteTileAvx512VnniAmxA(int rows, int64_t k4, const uint8_t* a, const int8_t* b,
                             const QCorr& corr, int32_t* acc);  // 16x32, AMX A layout
void QByteTileAvxVnni(int rows, int64_t k4, const uint8_t* a, const int8_t* b,
                      const QCorr& corr, int32_t* acc);  // 6x16
// QPackBPanelFromRows for nr = 32 (AVX2): 4 rows of 32 bytes (`stride` apart, xor `flip`)
// -> 32 lanes of 4 bytes, for k4 groups, with the column sums.
void InterleaveRows32(int64_t k, int64_t k4, const int8_t* rows, int64_t stride, uint8_t flip,
                      int8_t* panel, int32_t* sums);
// One 8-row A panel of the AVX-512 VNNI layout (K4 groups of 8 rows x 4 bytes) from
// `rows` <= 8 rows of bytes `ld` apart, xored with `flip`; rows past `rows` and k past K
// are 0. sums[0..8) gets each row's sum of its (flipped) uint8 bytes.
void PackAPanelVnni(int rows, int64_t k, const uint8_t* src, int64_t ld, uint8_t flip,
                    uint8_t* panel, int32_t* sums);
// The same from float rows, each value quantized to uint8 as DynamicQuantizeLinear does:
// saturate(round_half_even(x / scale) + zp), NaN -> zp.
void QuantizePackAPanelVnni(int rows, int64_t k, const float* src, int64_t ld, float scale,
                            int32_t zp, uint8_t* panel, int32_t* sums);
// QStoreRow for AVX-512 (quantized and float outputs; int32 goes to QStoreRowAvx2).
void QStoreRowAvx512(const int32_t* acc, int cols, int64_t row, int64_t col0, const QOutput& out);
// The same for `rows` rows of a tile (row r's values at acc + r * acc_stride).
void QStoreRowsAvx512(const int32_t* acc, int acc_stride, int rows, int cols, int64_t row0,
                      int64_t col0, const QOutput& out);
// The epilogue of one AVX-512 byte tile whose kernel left the correction to the store:
// acc holds rows x 32 raw dots (modified in place for int32/float outputs), cols <= 32.
void QStoreTileAvx512(int32_t* acc, int rows, int cols, int64_t row0, int64_t col0,
                      const QOutput& out, const QCorr& corr);
// Applies QCorr to rows x nr (nr a multiple of 16) accumulators in place.
void QByteCorrectAvx512(int rows, int nr, const QCorr& corr, int32_t* acc);
// qgemm_amx.cc: true once the OS granted the tile data state (asked once per process).
bool AmxUsable();
void AmxBegin(int64_t k);
void AmxEnd();
void QByteTileAmx(int rows, int64_t k4, const uint8_t* a, const int8_t* b, const QCorr& corr,
                  int32_t* acc);  // 32x32 from two 16-row AMX A panels
#endif

#if defined(__x86_64__)
void QTileAvx2(int rows, int64_t k2, const int16_t* a, const int16_t* b, int32_t* acc);
// QTileAvx2 for columns 0-7 of the panel only (rows 16 apart in acc).
void QTileNarrowAvx2(int rows, int64_t k2, const int16_t* a, const int16_t* b, int32_t* acc);
// QTileAvx2 with QStoreRowAvx2's requantization fused, for whole 16-column tiles of a
// per-row (channel = row) uint8/int8 output: rows [row0, row0 + rows), columns col0 + 16.
void QTileQuantAvx2(int rows, int64_t k2, const int16_t* a, const int16_t* b, int64_t row0,
                    int64_t col0, const QOutput& o);
void QTileAvx512(int rows, int64_t k2, const int16_t* a, const int16_t* b, int32_t* acc);
void QStoreRowAvx2(const int32_t* acc, int cols, int64_t row, int64_t col0, const QOutput& out);
// QStoreRowAvx2 for the rows of one 6x16 tile (row stride 16), with the per-column float
// output (DynamicQuantizeMatMul's) set up once per tile instead of once per row.
void QStoreTileAvx2(const int32_t* acc, int rows, int cols, int64_t row0, int64_t col0,
                    const QOutput& out);
// One 6-row int16-pair A panel (PackPanel's layout) from `rows` <= 6 rows of uint8
// (is_signed: int8) bytes `ld` apart, row r's zero point zp[r] subtracted; rows past
// `rows` and the pad of an odd k are 0.
void PackAPanelBytesAvx2(int rows, int64_t k, const uint8_t* src, int64_t ld, bool is_signed,
                         const int32_t* zp, int16_t* panel);
// One 6-row int16-pair A panel from `rows` <= 6 float rows `ld` apart, each value
// quantized as DynamicQuantizeLinear does and its zero point subtracted:
// clamp(round_half_even(x / scale), -zp, 255 - zp), NaN -> 0; rows past `rows` are 0.
void QuantizePackAPanelAvx2(int rows, int64_t k, const float* src, int64_t ld, float scale,
                            int32_t zp, int16_t* panel);
#endif

}  // namespace edgepress::runtime::qgemm_detail
