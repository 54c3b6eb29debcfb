// The multiple-choice knapsack is exact: on small random tables its least error
// equals brute force over every combination, and its choice fits the budget.
#include <gtest/gtest.h>

#include <random>

#include "passes/knapsack.h"
#include "support/diagnostics.h"

namespace kvc::passes {
namespace {

double brute_force(const std::vector<std::vector<KnapsackItem>>& groups, std::int64_t budget, bool* feasible) {
  double best = 0;
  *feasible = false;
  std::vector<std::size_t> at(groups.size(), 0);
  while (true) {
    std::int64_t bytes = 0;
    double error = 0;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      bytes += groups[g][at[g]].bytes;
      error += groups[g][at[g]].error;
    }
    if (bytes <= budget && (!*feasible || error < best)) {
      best = error;
      *feasible = true;
    }
    std::size_t g = 0;
    while (g < groups.size() && ++at[g] == groups[g].size()) at[g++] = 0;
    if (g == groups.size()) break;
  }
  return best;
}

TEST(Knapsack, MatchesBruteForceOnRandomTables) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const int groups_n = 1 + static_cast<int>(rng() % 4);
    std::vector<std::vector<KnapsackItem>> groups(groups_n);
    std::int64_t max_total = 0;
    for (auto& g : groups) {
      const int items = 1 + static_cast<int>(rng() % 5);
      std::int64_t most = 0;
      for (int i = 0; i < items; ++i) {
        KnapsackItem it{static_cast<std::int64_t>(rng() % 97) * 4, static_cast<double>(rng() % 1000) / 100.0};
        most = std::max(most, it.bytes);
        g.push_back(it);
      }
      max_total += most;
    }
    const std::int64_t budget = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(max_total + 2));
    bool feasible = false;
    const double expected = brute_force(groups, budget, &feasible);
    const KnapsackSolution s = solve_multiple_choice_knapsack(groups, budget);
    ASSERT_EQ(s.feasible, feasible) << "trial " << trial;
    if (!feasible) continue;
    EXPECT_TRUE(s.exact);
    EXPECT_NEAR(s.error, expected, 1e-9) << "trial " << trial;
    EXPECT_LE(s.bytes, budget);
    std::int64_t bytes = 0;
    double error = 0;
    for (std::size_t g = 0; g < groups.size(); ++g) {
      bytes += groups[g][s.choice[g]].bytes;
      error += groups[g][s.choice[g]].error;
    }
    EXPECT_EQ(bytes, s.bytes);
    EXPECT_NEAR(error, s.error, 1e-9);
  }
}

TEST(Knapsack, CoarseGridStillFitsTheBudget) {
  std::vector<std::vector<KnapsackItem>> groups = {{{1001, 5}, {2, 9}}, {{2003, 1}, {7, 8}}, {{999, 2}, {1, 6}}};
  const KnapsackSolution s = solve_multiple_choice_knapsack(groups, 3011, /*max_cells=*/16);
  ASSERT_TRUE(s.feasible);
  EXPECT_FALSE(s.exact);
  EXPECT_LE(s.bytes, 3011);
}

TEST(Knapsack, RejectsEmptyGroupsAndNegativeBytes) {
  EXPECT_THROW(solve_multiple_choice_knapsack({{}}, 10), Error);
  EXPECT_THROW(solve_multiple_choice_knapsack({{{-1, 0.0}}}, 10), Error);
  EXPECT_FALSE(solve_multiple_choice_knapsack({{{11, 0.0}}}, 10).feasible);
}

}  // namespace
}  // namespace kvc::passes
