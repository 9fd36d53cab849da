#include "runtime/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace edgepress::runtime {

namespace {

inline void CpuRelax() {
#if defined(__x86_64__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins until done() or kSpinMicros pass; returns done().
template <class Done>
bool SpinUntil(const Done& done) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::microseconds(ThreadPool::kSpinMicros);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      CpuRelax();
    }
    if (Clock::now() >= deadline) return done();
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  int workers = std::max(1, threads) - 1;
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  cv_work_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::RunChunks() {
  for (;;) {
    const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= chunks_) return;
    const int64_t begin = ChunkBegin(i), end = ChunkBegin(i + 1);
    (*fn_)(begin, end);
    done_.fetch_add(end - begin, std::memory_order_acq_rel);
  }
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  for (;;) {
    auto ready = [&] {
      if (stop_.load(std::memory_order_acquire)) return true;
      const uint64_t g = generation_.load(std::memory_order_acquire);
      return (g & 1) != 0 && g != seen;
    };
    if (!SpinUntil(ready)) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_work_.wait(lock, ready);
    }
    if (stop_.load(std::memory_order_acquire)) return;
    const uint64_t g = generation_.load(std::memory_order_seq_cst);
    seen = g;
    if ((g & 1) == 0) continue;
    // Announce, then re-check: the caller closes the loop before waiting for in_loop_ to
    // drain, so either it sees this worker or this worker sees the loop closed (seq_cst on
    // both sides) and never touches a later loop's state.
    in_loop_.fetch_add(1, std::memory_order_seq_cst);
    if (generation_.load(std::memory_order_seq_cst) == g) RunChunks();
    in_loop_.fetch_sub(1, std::memory_order_seq_cst);
    {
      std::lock_guard<std::mutex> lock(mu_);  // the caller may be between check and wait
    }
    cv_done_.notify_all();
  }
}

int64_t ThreadPool::ChunkCount(int threads, int64_t n, int64_t grain) {
  grain = std::max<int64_t>(1, grain);
  if (threads <= 1 || n <= grain) return n > 0 ? 1 : 0;
  // About 4 chunks per thread balances uneven chunks; the atomic claim makes them cheap.
  return std::min<int64_t>(threads * 4, n / grain);
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int threads = num_threads();
  // A nested call from a task (or a second caller) runs inline.
  if (threads == 1 || n <= grain || busy_.exchange(true, std::memory_order_acquire)) {
    fn(0, n);
    return;
  }
  // Chunk sizes differ by at most one index: ceil(n / 4t)-sized chunks left a short last
  // one, so 36 depthwise channel blocks ran as 7 x 5 + 1 and two threads got 20 and 16.
  fn_ = &fn;
  n_ = n;
  chunks_ = ChunkCount(threads, n, grain);
  next_.store(0, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  {
    // Under the mutex so that a worker between its predicate check and its sleep cannot
    // miss the wake-up; the release publishes fn_/n_/chunks_ to spinning workers.
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_seq_cst);  // open (odd)
  }
  cv_work_.notify_all();
  RunChunks();
  auto wait = [&](const auto& cond) {
    if (SpinUntil(cond)) return;
    std::unique_lock<std::mutex> lock(mu_);
    cv_done_.wait(lock, cond);
  };
  wait([&] { return done_.load(std::memory_order_acquire) == n; });
  generation_.fetch_add(1, std::memory_order_seq_cst);  // closed (even)
  wait([&] { return in_loop_.load(std::memory_order_seq_cst) == 0; });
  fn_ = nullptr;
  busy_.store(false, std::memory_order_release);
}

}  // namespace edgepress::runtime
