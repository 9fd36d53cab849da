// ThreadPool: every index of a loop runs exactly once, for sizes and grains around the
// chunking, over many back-to-back loops (the spinning hand-off between loops) and after
// idle gaps longer than the spin (the sleeping hand-off); nested and concurrent callers
// run inline; the destructor joins sleeping workers.
#include "runtime/thread_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace edgepress::runtime {
namespace {

// Runs one loop and checks that each index was visited exactly once, in chunks of at
// least `grain` (unless the whole loop is shorter) whose sizes differ by at most one:
// min(4 * threads, n / grain) of them when the loop is split at all.
void ExpectEachIndexOnce(ThreadPool& pool, int64_t n, int64_t grain, const std::string& what) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  for (auto& h : hits) h.store(0);
  std::atomic<bool> short_chunk{false};
  std::atomic<int64_t> chunks{0}, smallest{n}, largest{0};
  pool.ParallelFor(n, grain, [&](int64_t lo, int64_t hi) {
    if (hi - lo < grain && !(lo == 0 && hi == n)) short_chunk = true;
    chunks.fetch_add(1);
    for (int64_t v = smallest.load(); hi - lo < v && !smallest.compare_exchange_weak(v, hi - lo);) {
    }
    for (int64_t v = largest.load(); hi - lo > v && !largest.compare_exchange_weak(v, hi - lo);) {
    }
    for (int64_t i = lo; i < hi; ++i) hits[i].fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << what << " index " << i;
  EXPECT_FALSE(short_chunk.load()) << what;
  EXPECT_LE(largest.load() - smallest.load(), 1) << what;
  const int64_t want = pool.num_threads() == 1 || n <= grain
                           ? 1
                           : std::min<int64_t>(4 * pool.num_threads(), n / grain);
  EXPECT_EQ(chunks.load(), want) << what;
  // What callers that plan around the chunks (runtime/tile_split.h) are told.
  EXPECT_EQ(ThreadPool::ChunkCount(pool.num_threads(), n, grain), want) << what;
}

TEST(ThreadPoolTest, EveryIndexOnceAcrossSizesAndGrains) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int64_t n : {1, 2, 7, 8, 9, 36, 63, 64, 65, 1000, 4001})
      for (int64_t grain : {1, 3, 16, 2000})
        ExpectEachIndexOnce(pool, n, grain,
                            "threads " + std::to_string(threads) + " n " + std::to_string(n) +
                                " grain " + std::to_string(grain));
  }
}

TEST(ThreadPoolTest, ManyBackToBackLoopsWithWorkersSpinning) {
  ThreadPool pool(3);
  std::atomic<int64_t> sum{0};
  for (int loop = 0; loop < 20000; ++loop) {
    pool.ParallelFor(16, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) sum.fetch_add(i + 1);
    });
  }
  EXPECT_EQ(sum.load(), 20000 * (16 * 17 / 2));
}

TEST(ThreadPoolTest, LoopsAfterIdleGapsLongerThanTheSpin) {
  ThreadPool pool(2);
  for (int loop = 0; loop < 5; ++loop) {
    std::this_thread::sleep_for(std::chrono::microseconds(ThreadPool::kSpinMicros * 20));
    ExpectEachIndexOnce(pool, 100, 1, "after idle gap " + std::to_string(loop));
  }
}

TEST(ThreadPoolTest, WorkersTakePartInALongLoop) {
  ThreadPool pool(2);
  std::atomic<int> caller_chunks{0}, other_chunks{0};
  const std::thread::id caller = std::this_thread::get_id();
  pool.ParallelFor(64, 1, [&](int64_t, int64_t) {
    (std::this_thread::get_id() == caller ? caller_chunks : other_chunks).fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  });
  EXPECT_GT(other_chunks.load(), 0) << "the worker never ran a chunk";
  EXPECT_GT(caller_chunks.load(), 0) << "the caller never ran a chunk";
}

TEST(ThreadPoolTest, NestedCallsRunInline) {
  ThreadPool pool(2);
  std::vector<std::atomic<int>> hits(40 * 10);
  for (auto& h : hits) h.store(0);
  pool.ParallelFor(40, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const std::thread::id self = std::this_thread::get_id();
      pool.ParallelFor(10, 1, [&](int64_t l2, int64_t h2) {
        EXPECT_EQ(std::this_thread::get_id(), self) << "nested loop left its thread";
        for (int64_t j = l2; j < h2; ++j) hits[i * 10 + j].fetch_add(1);
      });
    }
  });
  for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i].load(), 1) << i;
}

TEST(ThreadPoolTest, TwoCallersShareOnePool) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  auto caller = [&] {
    for (int loop = 0; loop < 2000; ++loop)
      pool.ParallelFor(32, 1, [&](int64_t lo, int64_t hi) { sum.fetch_add(hi - lo); });
  };
  std::thread other(caller);
  caller();
  other.join();
  EXPECT_EQ(sum.load(), 2 * 2000 * 32);
}

}  // namespace
}  // namespace edgepress::runtime
