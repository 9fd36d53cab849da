#include "runtime/tile_split.h"

#include <algorithm>
#include <array>
#include <map>
#include <vector>

#include "runtime/thread_pool.h"

namespace edgepress::runtime {

namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t Panels(const TileAxis& a) { return CeilDiv(a.units, std::max<int64_t>(1, a.panel_units)); }

// Units covered by block b of `block` panels (the last block and panel may be short).
int64_t BlockUnits(const TileAxis& a, int64_t block, int64_t b) {
  const int64_t lo = b * block * a.panel_units;
  return std::min(a.units, lo + block * a.panel_units) - lo;
}

// Block sizes worth trying along one axis: the single-thread size, then for each block
// count from the single-thread one up to max(4 x threads, that count) (more blocks than
// ParallelFor has chunks only regroup) the most even size; each size once.
std::vector<int64_t> BlockCandidates(const TileAxis& a, int threads) {
  const int64_t panels = Panels(a), max_block = std::max<int64_t>(1, a.max_block);
  const int64_t first = CeilDiv(panels, max_block);
  const int64_t last = std::min(panels, std::max<int64_t>(4 * threads, first));
  std::vector<int64_t> sizes = {std::min(panels, max_block)};
  for (int64_t count = first; count <= last; ++count) {
    const int64_t size = CeilDiv(panels, count);
    if (std::find(sizes.begin(), sizes.end(), size) == sizes.end()) sizes.push_back(size);
  }
  return sizes;
}

// Replays ParallelFor(tiles, 1): chunks of consecutive tiles, each claimed by the thread
// that is free first (equal speeds, all starting together).
double Replay(const std::vector<double>& tile_cost, int threads) {
  const int64_t n = static_cast<int64_t>(tile_cost.size());
  const int64_t chunks = ThreadPool::ChunkCount(threads, n, 1);
  std::vector<double> busy(static_cast<size_t>(std::max(1, threads)), 0.0);
  for (int64_t c = 0; c < chunks; ++c) {
    double cost = 0;
    for (int64_t t = c * n / chunks; t < (c + 1) * n / chunks; ++t) cost += tile_cost[t];
    *std::min_element(busy.begin(), busy.end()) += cost;
  }
  return *std::max_element(busy.begin(), busy.end());
}

double Makespan(const TileAxis& rows, const TileAxis& cols, TileBlocks blocks, int threads,
                std::vector<double>* scratch) {
  const int64_t row_tiles = CeilDiv(Panels(rows), blocks.rows);
  const int64_t col_tiles = CeilDiv(Panels(cols), blocks.cols);
  scratch->clear();
  for (int64_t i = 0; i < row_tiles; ++i) {
    const double r = static_cast<double>(BlockUnits(rows, blocks.rows, i) + rows.repack_units);
    for (int64_t j = 0; j < col_tiles; ++j)
      scratch->push_back(r *
                         static_cast<double>(BlockUnits(cols, blocks.cols, j) + cols.repack_units));
  }
  return Replay(*scratch, threads);
}

TileBlocks Search(const TileAxis& rows, const TileAxis& cols, int threads) {
  struct Candidate {
    TileBlocks blocks;
    double time;
    int64_t tiles;
  };
  std::vector<Candidate> candidates;
  std::vector<double> scratch;
  double fastest = -1;
  for (int64_t rb : BlockCandidates(rows, threads)) {
    for (int64_t cb : BlockCandidates(cols, threads)) {
      const double time = Makespan(rows, cols, {rb, cb}, threads, &scratch);
      candidates.push_back({{rb, cb}, time, static_cast<int64_t>(scratch.size())});
      if (fastest < 0 || time < fastest) fastest = time;
    }
  }
  // Within 1% of the fastest, fewer tiles: each tile repeats packing and weight reads
  // that the estimate only approximates.
  const Candidate* best = nullptr;
  for (const Candidate& c : candidates)
    if (c.time <= 1.01 * fastest && (!best || c.tiles < best->tiles)) best = &c;
  return best->blocks;
}

}  // namespace

double TileMakespan(const TileAxis& rows, const TileAxis& cols, TileBlocks blocks, int threads) {
  std::vector<double> scratch;
  return Makespan(rows, cols, blocks, threads, &scratch);
}

TileBlocks SplitTiles(const TileAxis& rows, const TileAxis& cols, int threads) {
  if (threads <= 1 || rows.units <= 0 || cols.units <= 0)
    return {std::max<int64_t>(1, rows.max_block), std::max<int64_t>(1, cols.max_block)};
  // The search replays up to (4 threads)^2 cuts: cached, since a model repeats its shapes
  // every run. Per thread, so no lock; bounded, in case shapes keep changing.
  using Key = std::array<int64_t, 9>;
  thread_local std::map<Key, TileBlocks> cache;
  const Key key{rows.units,        rows.panel_units,  rows.max_block,
                rows.repack_units, cols.units,        cols.panel_units,
                cols.max_block,    cols.repack_units, threads};
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  if (cache.size() >= 1024) cache.clear();
  const TileBlocks blocks = Search(rows, cols, threads);
  cache.emplace(key, blocks);
  return blocks;
}

}  // namespace edgepress::runtime
