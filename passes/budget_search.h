#pragma once
// Cost tables -> the least-error choice per layer that fits a byte budget: Pareto
// pruning of each layer's table, then the exact multiple-choice knapsack
// (knapsack.h). Shared by `kvtuner` and `joint`.
#include <cstdint>
#include <vector>

#include "passes/cost_model.h"

namespace kvc::passes {

struct BudgetedChoice {
  bool feasible = false;
  std::vector<LayerChoice> choices;  // one per layer
  std::int64_t bytes = 0;
  double error = 0;
  bool exact = true;  // the knapsack's grid was exact (see knapsack.h)
};

// The uniform retention settings a pass that does not tune retention scans: keep
// everything, then `policy` at every keep level (cost_model.h keep_levels) of a
// quantized layer of `m`.
std::vector<std::pair<ir::RetentionPolicy, std::int64_t>> uniform_retention_settings(
    const ir::Module& m, const frontend::SearchOptions& options, ir::RetentionPolicy policy);

BudgetedChoice solve_cost_tables(const std::vector<std::vector<CostEntry>>& tables, std::int64_t budget,
                                 std::int64_t max_cells = 1 << 16);

}  // namespace kvc::passes
