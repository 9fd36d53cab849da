// A fixed-size pool for data-parallel loops. The calling thread takes part, so a pool
// of N threads starts N-1 workers. ParallelFor is not reentrant from inside a task
// (nested calls run inline on the calling thread). Tasks must not throw: validate
// before the loop.
//
// Between loops a worker spins (with `pause`) for up to kSpinMicros before sleeping on a
// condition variable, and the caller spins the same way for the last chunks to finish:
// an inference runs one loop per op with gaps of microseconds, and a futex sleep/wake per
// loop cost more than the ops of a small model (the 2-thread runs of the fp32 fixtures were
// slower than 1 thread). Chunks are claimed with an atomic counter, not a lock, and the
// caller waits for the chunks, not for every worker: a worker the OS has not scheduled yet
// (a machine shared with other processes, or more threads than cores) joins late or not at
// all instead of stalling the loop until its next time slice.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace edgepress::runtime {

class ThreadPool {
 public:
  explicit ThreadPool(int threads = 1);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Calls fn(begin, end) over disjoint chunks covering [0, n), each at least `grain`
  // long, and returns when all are done. Chunk i is [i * n / c, (i + 1) * n / c) for
  // c = min(4 * threads, n / grain) chunks: sizes differ by at most one.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
  // The number of chunks ParallelFor cuts [0, n) into at `grain` on `threads` threads (1
  // when it runs the loop inline), for callers that plan their work around the chunks.
  static int64_t ChunkCount(int threads, int64_t n, int64_t grain);

  // How long an idle worker (or the caller waiting for workers) spins before sleeping.
  static constexpr int kSpinMicros = 100;

 private:
  void WorkerLoop();
  void RunChunks();
  int64_t ChunkBegin(int64_t i) const { return i * n_ / chunks_; }  // n < 2^63 / (4 * threads)

  std::vector<std::thread> workers_;
  std::mutex mu_;  // guards the sleeps; the loop state below is published via generation_
  std::condition_variable cv_work_, cv_done_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0, chunks_ = 0;
  std::atomic<int64_t> next_{0};   // next chunk to claim
  std::atomic<int64_t> done_{0};   // indices finished
  std::atomic<int> in_loop_{0};    // workers that may still read fn_/n_/chunks_
  // Odd while a loop is open for workers to join, even when closed.
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> busy_{false};
};

}  // namespace edgepress::runtime
