#include "passes/budget_search.h"

#include "passes/knapsack.h"

namespace kvc::passes {

std::vector<std::pair<ir::RetentionPolicy, std::int64_t>> uniform_retention_settings(
    const ir::Module& m, const frontend::SearchOptions& options, ir::RetentionPolicy policy) {
  std::vector<std::pair<ir::RetentionPolicy, std::int64_t>> out = {{ir::RetentionPolicy::Full, 0}};
  if (m.layers.empty()) return out;
  const ir::LayerPlan quantized = make_layer_plan(m, 0, LayerChoice{ir::kivi_pair(2, 2)}, options);
  for (std::int64_t keep : keep_levels(m, quantized)) out.emplace_back(policy, keep);
  return out;
}

BudgetedChoice solve_cost_tables(const std::vector<std::vector<CostEntry>>& tables, std::int64_t budget,
                                 std::int64_t max_cells) {
  std::vector<std::vector<CostEntry>> frontiers;
  std::vector<std::vector<KnapsackItem>> groups;
  for (const auto& table : tables) {
    frontiers.push_back(pareto_frontier(table));
    auto& items = groups.emplace_back();
    for (const auto& e : frontiers.back()) items.push_back({e.bytes, e.error});
  }
  BudgetedChoice out;
  const KnapsackSolution solution = solve_multiple_choice_knapsack(groups, budget, max_cells);
  out.exact = solution.exact;
  if (!solution.feasible) return out;
  out.feasible = true;
  out.bytes = solution.bytes;
  out.error = solution.error;
  for (std::size_t l = 0; l < frontiers.size(); ++l) out.choices.push_back(frontiers[l][solution.choice[l]].choice);
  return out;
}

}  // namespace kvc::passes
