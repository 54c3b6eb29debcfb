#pragma once
// The multiple-choice knapsack every budgeted search reduces to: pick exactly one
// item from each group (one setting per layer) so that the bytes fit the budget and
// the summed error is least. Solved exactly by dynamic programming over bytes.
//
// Bytes are counted on a grid: each group's cheapest item is paid up front and the
// rest measured in units of the gcd of every item's extra bytes, which is exact. Only
// when that grid would exceed `max_cells` cells is the unit coarsened, and then every
// item's extra is rounded UP, so a solution always fits the real budget (exact on
// that coarser grid; `exact` says which happened).
#include <cstdint>
#include <vector>

namespace kvc::passes {

struct KnapsackItem {
  std::int64_t bytes = 0;
  double error = 0;
};

struct KnapsackSolution {
  bool feasible = false;
  std::vector<int> choice;  // item index per group
  std::int64_t bytes = 0;   // exact bytes of the choice
  double error = 0;
  std::int64_t unit = 1;    // bytes per grid cell
  bool exact = true;        // false when the grid was coarsened
};

// Throws kvc::Error for an empty group or negative bytes.
KnapsackSolution solve_multiple_choice_knapsack(const std::vector<std::vector<KnapsackItem>>& groups,
                                                std::int64_t budget, std::int64_t max_cells = 1 << 16);

}  // namespace kvc::passes
