#pragma once
// A small fixed pool of worker threads: the runtime's attention across KV heads
// and sequences, and a decode step split across cores (backends/llvm/partial_merge).
// Work items write disjoint outputs and each one runs exactly the same arithmetic
// whichever thread runs it, so results do not depend on the number of threads.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kvc {

class ThreadPool {
 public:
  // threads <= 1: no workers, everything runs on the calling thread.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs body(i) for i in [0, n) and returns when all are done. The calling
  // thread takes part. If some bodies throw, the first exception is rethrown
  // after all have finished. Concurrent calls from different threads are
  // serialised (one job at a time).
  void parallel_for(std::int64_t n, const std::function<void(std::int64_t)>& body);

 private:
  void worker_loop();
  // Takes and runs items of the current job until none is left.
  void drain(const std::function<void(std::int64_t)>& body, std::int64_t n);

  std::vector<std::thread> workers_;
  std::mutex job_mutex_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(std::int64_t)>* body_ = nullptr;
  std::int64_t n_ = 0, next_ = 0, finished_ = 0;
  std::uint64_t generation_ = 0;
  int active_workers_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
};

}  // namespace kvc
