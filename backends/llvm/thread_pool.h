#pragma once
// A tiny fixed-size thread pool for splitting one decode step across cores (the
// runtime will bring its own). The calling thread takes part in the work.
#include <atomic>
#include <cstdint>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kvc::llvm_backend {

class ThreadPool {
 public:
  // `threads` workers in all, counting the caller (1 = run everything inline).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  // Calls task(i) for i in [0, n) across the threads; returns when all are done.
  // One run at a time.
  void run(int n, const std::function<void(int)>& task);

 private:
  void work();
  void drain();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int)>* task_ = nullptr;
  int n_ = 0;
  std::atomic<int> next_{0};
  int busy_ = 0;
  std::uint64_t generation_ = 0;
  bool stop_ = false;
};

}  // namespace kvc::llvm_backend
