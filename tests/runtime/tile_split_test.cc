// SplitTiles (runtime/tile_split.h): one thread keeps the single-thread blocks; several
// threads get blocks no larger than those, whose estimated finishing time is never worse
// (beyond the 1% that buys fewer tiles) than the single-thread blocks'; the cut that left
// MobileNetV3's 7x7 96 -> 576 conv at 8 + 1 channel panels is split evenly. The
// conv tests run the cuts themselves against the naive convolution at 1, 2 and 3 threads.
#include "runtime/tile_split.h"

#include <gtest/gtest.h>

#include <string>

namespace edgepress::runtime {
namespace {

TEST(TileSplitTest, OneThreadKeepsTheSingleThreadBlocks) {
  const TileBlocks b = SplitTiles({576, 64, 8, 16}, {7, 1, 7, 1}, 1);
  EXPECT_EQ(b.rows, 8);
  EXPECT_EQ(b.cols, 7);
}

// Pixel-major 7x7 96 -> 576: 7 pixel panels by 9 channel panels of 64. Tiles of 7 x 8
// panels (the old cut: two tiles, an even count) give one thread 8/9 of the work.
TEST(TileSplitTest, NineChannelPanelsAreNotCutEightPlusOne) {
  const TileAxis pixels{7, 1, 7, 1}, channels{576, 64, 8, 16};
  const TileBlocks b = SplitTiles(pixels, channels, 2);
  const double old_cut = TileMakespan(pixels, channels, {7, 8}, 2);
  const double chosen = TileMakespan(pixels, channels, b, 2);
  EXPECT_LT(chosen, 0.7 * old_cut) << b.rows << " x " << b.cols;
  // The slowest thread has at most 5 of the 9 channel panels' work (plus overheads).
  const double one_thread = TileMakespan(pixels, channels, {7, 8}, 1);
  EXPECT_LT(chosen, 0.6 * one_thread);
}

TEST(TileSplitTest, NeverWorseThanTheSingleThreadBlocksAndWithinThem) {
  for (int threads : {2, 3, 4}) {
    for (int64_t rows : {1, 12, 16, 24, 100, 576, 1280}) {
      for (int64_t cols : {7, 49, 196, 784, 3136}) {
        const TileAxis r{rows, 12, 8, 2}, c{cols, 32, 8, 4};
        const TileBlocks b = SplitTiles(r, c, threads);
        const std::string what =
            std::to_string(rows) + " x " + std::to_string(cols) + " t" + std::to_string(threads);
        EXPECT_GE(b.rows, 1) << what;
        EXPECT_LE(b.rows, 8) << what;
        EXPECT_GE(b.cols, 1) << what;
        EXPECT_LE(b.cols, 8) << what;
        EXPECT_LE(TileMakespan(r, c, b, threads), TileMakespan(r, c, {8, 8}, threads) * 1.01)
            << what;
        // Asked again (now from the cache): the same answer.
        const TileBlocks again = SplitTiles(r, c, threads);
        EXPECT_EQ(again.rows, b.rows) << what;
        EXPECT_EQ(again.cols, b.cols) << what;
      }
    }
  }
}

// Replaying ParallelFor: 3 equal tiles on 2 threads finish after 2 tiles' time; 4 after 2.
TEST(TileSplitTest, MakespanReplaysTheChunks) {
  const TileAxis rows{3, 1, 1, 0}, cols{10, 10, 1, 0};
  EXPECT_DOUBLE_EQ(TileMakespan(rows, cols, {1, 1}, 2), 20.0);
  EXPECT_DOUBLE_EQ(TileMakespan({4, 1, 1, 0}, cols, {1, 1}, 2), 20.0);
  EXPECT_DOUBLE_EQ(TileMakespan(rows, cols, {1, 1}, 1), 30.0);
}

}  // namespace
}  // namespace edgepress::runtime
