// How a 2-D grid of GEMM panels is cut into tiles for ThreadPool::ParallelFor, by the
// threads' estimated finishing times rather than by the number of tiles.
//
// Why: the convolution drivers shrank their tiles until the tile count was "even" (a
// multiple of the threads), but equal counts are not equal work when blocks do not divide
// the panels: MobileNetV3's 7x7 96 -> 576 pointwise conv has 9 channel panels of 64, cut
// 8 + 1, so at 2 threads one thread ran 8/9 of the conv (68 -> 63 us, conv_bench). Here
// the blocks are as even as the panel counts allow, and each candidate cut is scored by
// replaying ParallelFor's chunks (ThreadPool::ChunkCount, claimed in order by whichever
// thread is free) over the tiles' estimated costs.
#pragma once

#include <cstdint>

namespace edgepress::runtime {

// One axis of the grid: `units` of work (rows, pixels, channels) in panels of
// `panel_units` (the last one may be partial), at most `max_block` panels per tile (the
// single-thread choice, tuned for cache reuse). `repack_units` is the work a tile repeats
// per unit of the other axis because it is split along this one, in this axis's units:
// a channel-major conv tile packs its B panels itself, which costs about what 2 more
// weight rows would.
struct TileAxis {
  int64_t units = 0;
  int64_t panel_units = 1;
  int64_t max_block = 1;
  int64_t repack_units = 0;
};

struct TileBlocks {
  int64_t rows = 1;  // panels per tile along the row axis (tile t is row block t / col_tiles)
  int64_t cols = 1;  // panels per tile along the column axis
};

// The blocks whose tiles `threads` threads finish earliest; ties (within 1%) go to fewer,
// larger tiles. One thread gets the axes' max_block unchanged. A tile's cost is
// (rows + rows' repack) x (cols + cols' repack) in units. Results are cached per thread
// for the shapes seen, so calling it for every Run is cheap.
TileBlocks SplitTiles(const TileAxis& rows, const TileAxis& cols, int threads);

// The estimated finishing time of the slowest thread for the given blocks (cost units as
// above); exposed for tests.
double TileMakespan(const TileAxis& rows, const TileAxis& cols, TileBlocks blocks, int threads);

}  // namespace edgepress::runtime
