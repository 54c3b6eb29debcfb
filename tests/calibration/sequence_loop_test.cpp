#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "calibration/sequence_loop.h"

namespace kvc::calibration {
namespace {

TEST(SequenceLoop, RunsEverySequenceOnceAndCountsThemInOrder) {
  for (int threads : {1, 3, 0}) {
    std::vector<std::atomic<int>> runs(17);
    std::vector<int> counts;
    for_each_sequence(17, threads, [&](int i) { ++runs[static_cast<std::size_t>(i)]; },
                      [&](int count) { counts.push_back(count); });
    for (const auto& r : runs) EXPECT_EQ(r.load(), 1) << threads << " threads";
    ASSERT_EQ(counts.size(), 17u);
    for (int k = 0; k < 17; ++k) EXPECT_EQ(counts[static_cast<std::size_t>(k)], k + 1);
  }
  for_each_sequence(0, 2, [](int) { FAIL() << "no sequence to run"; }, nullptr);
}

TEST(SequenceLoop, AFailureStopsLaterSequencesAndIsRethrown) {
  std::atomic<int> started{0};
  EXPECT_THROW(for_each_sequence(
                   100, 1,
                   [&](int i) {
                     ++started;
                     if (i == 3) throw std::runtime_error("sequence 3 failed");
                   },
                   nullptr),
               std::runtime_error);
  EXPECT_EQ(started.load(), 4);  // one worker: 0, 1, 2, then 3 throws and nothing starts after it
}

}  // namespace
}  // namespace kvc::calibration
