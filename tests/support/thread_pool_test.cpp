#include "support/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

namespace kvc {
namespace {

TEST(ThreadPool, RunsEveryItemOnceAndRethrows) {
  for (int threads : {1, 2, 5}) {
    ThreadPool pool(threads);
    for (int round = 0; round < 50; ++round) {
      std::vector<std::atomic<int>> hits(97);
      pool.parallel_for(97, [&](std::int64_t i) { hits[static_cast<std::size_t>(i)]++; });
      for (auto& h : hits) ASSERT_EQ(h.load(), 1);
    }
    EXPECT_THROW(pool.parallel_for(10, [](std::int64_t i) { if (i == 7) throw std::runtime_error("x"); }),
                 std::runtime_error);
    std::atomic<int> n{0};
    pool.parallel_for(10, [&](std::int64_t) { n++; });  // still usable after an exception
    EXPECT_EQ(n.load(), 10);
  }
}

}  // namespace
}  // namespace kvc
