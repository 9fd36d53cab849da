// AMX-INT8 micro-kernel of the integer GEMM (kAmx, byte layout in qgemm.h):
//   qu8s8_gemm__amx_32x32   2 A tiles (16 rows x 64 k) x 2 B tiles (16 groups x 16 columns
//                           x 4 k) -> 4 int32 accumulator tiles, tdpbusd (uint8 x int8)
// Tiles: tmm0..3 accumulators (rows 0-15/16-31 x columns 0-15/16-31), tmm4/5 the two A
// panels (row-major, 64 bytes a row), tmm6/7 the two 16-column halves of the B panel
// (its 128-byte group rows read with stride 128). tdpbusd sums 4 uint8 x int8 products
// per lane without saturation, so the dot is exact; the zero-point correction and the
// epilogue run on the stored accumulators, in one pass (QStoreTileAvx512).
//
// Linux gives a process the AMX tile data state only on request (arch_prctl
// ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); without it the first tile instruction raises
// SIGILL. It is asked once; if refused, a one-line note goes to stderr and kAmx runs the
// AVX-512 VNNI kernel on the same layout. Compiled with __attribute__((target)) so that
// one binary runs anywhere. The tile configuration is per thread and other code in the
// process (LibTorch's oneDNN) may change or release it, so each thread loads it before
// its share of a product and releases the tiles afterwards (AmxBegin/AmxEnd).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "runtime/kernels/qgemm/qgemm_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace edgepress::runtime::qgemm_detail {

namespace {

constexpr int kArchReqXcompPerm = 0x1023;
constexpr int kXfeatureXtiledata = 18;

bool RequestAmx() {
  const CpuFeatures& cpu = GetCpuFeatures();
  if (!cpu.amx_int8 || !cpu.amx_tile || ForceScalar()) return false;
#if defined(__linux__)
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0) return true;
  std::fprintf(stderr,
               "edgepress: the OS refused the AMX tile state (arch_prctl "
               "ARCH_REQ_XCOMP_PERM); int8 GEMM uses AVX-512 VNNI instead\n");
#endif
  return false;
}

struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// `groups` (1..16) groups of 4 k per tdpbusd: 16 for K >= 64. Below, the A tiles read
// only the first 4 * groups bytes of their 64-byte rows and the B tiles only the first
// `groups` rows, so a K = 16 product does a quarter of the loads and multiplies of the
// padded 64 (the layouts stay the same).
TileConfig MakeConfig(int groups) {
  TileConfig c;
  for (int t = 0; t < 8; ++t) {
    c.rows[t] = 16;
    c.colsb[t] = 64;  // 16 int32 accumulators, 64 A bytes, 16 B columns x 4 bytes
  }
  for (int t : {4, 5}) c.colsb[t] = static_cast<uint16_t>(4 * groups);
  for (int t : {6, 7}) c.rows[t] = static_cast<uint8_t>(groups);
  return c;
}


// rows <= 16 uses one A panel (tiles 0, 1 only).
template <bool kTwo>
__attribute__((target("amx-tile,amx-int8"))) void Tile(int64_t k4, const uint8_t* a,
                                                      const int8_t* b, int32_t* acc) {
  const int64_t a_panel = k4 * 64;  // one 16-row panel
  _tile_zero(0);
  _tile_zero(1);
  if (kTwo) {
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t blk = 0; blk < k4 / 16; ++blk) {
    const uint8_t* ab = a + blk * 1024;
    const int8_t* bb = b + blk * 16 * 128;
    _tile_loadd(4, ab, 64);
    _tile_loadd(6, bb, 128);
    _tile_loadd(7, bb + 64, 128);
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    if (kTwo) {
      _tile_loadd(5, ab + a_panel, 64);
      _tile_dpbusd(2, 5, 6);
      _tile_dpbusd(3, 5, 7);
    }
  }
  _tile_stored(0, acc, 128);
  _tile_stored(1, acc + 16, 128);
  if (kTwo) {
    _tile_stored(2, acc + 16 * 32, 128);
    _tile_stored(3, acc + 16 * 32 + 16, 128);
  }
}

}  // namespace

__attribute__((target("amx-tile,amx-int8"))) void AmxBegin(int64_t k) {
  static const struct Configs {
    TileConfig c[17];
    Configs() {
      for (int g = 1; g <= 16; ++g) c[g] = MakeConfig(g);
    }
  } cfgs;
  const int64_t groups = k >= 64 ? 16 : std::max<int64_t>(1, (k + 3) / 4);
  _tile_loadconfig(&cfgs.c[groups]);
}

__attribute__((target("amx-tile,amx-int8"))) void AmxEnd() { _tile_release(); }

bool AmxUsable() {
  static const bool ok = RequestAmx();
  return ok;
}

void QByteTileAmx(int rows, int64_t k4, const uint8_t* a, const int8_t* b, const QCorr& corr,
                  int32_t* acc) {
  if (rows > 16)
    Tile<true>(k4, a, b, acc);
  else
    Tile<false>(k4, a, b, acc);
  (void)corr;  // applied by QStoreTileAvx512
}

}  // namespace edgepress::runtime::qgemm_detail

#endif  // __x86_64__
