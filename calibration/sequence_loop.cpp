#include "calibration/sequence_loop.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "model/sampler.h"
#include "support/thread_pool.h"

namespace kvc::calibration {

std::vector<int> sequence_tokens(const model::Model& model, const std::vector<std::vector<int>>& from_file,
                                 std::uint64_t seed, int i, int length) {
  if (!from_file.empty()) return from_file.at(static_cast<std::size_t>(i));
  return model::generate_sequence(model, seed + static_cast<std::uint64_t>(i), length, 1.0f);
}

void for_each_sequence(int n, int threads, const std::function<void(int i)>& body,
                       const std::function<void(int count)>& finished) {
  if (n <= 0) return;
  if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
  ThreadPool pool(std::clamp(threads, 1, n));
  std::atomic<bool> failed{false};
  std::mutex finished_mutex;
  int count = 0;
  pool.parallel_for(n, [&](std::int64_t i) {
    if (failed) return;
    try {
      body(static_cast<int>(i));
    } catch (...) {
      failed = true;
      throw;  // the pool rethrows the first one once every worker is done
    }
    std::lock_guard lock(finished_mutex);
    if (finished) finished(++count);
  });
}

}  // namespace kvc::calibration
