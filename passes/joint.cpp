#include "passes/joint.h"

#include <algorithm>
#include <cstdio>

#include "ir/layout.h"
#include "passes/budget_search.h"
#include "passes/calibration_input.h"
#include "passes/uniform.h"

namespace kvc::passes {

CandidateSpace joint_candidate_space(const ir::Module& m, const frontend::SearchOptions& options) {
  CandidateSpace space;
  std::vector<ir::PrecisionPair> pairs = {ir::PrecisionPair{}};
  for (const auto& p : precision_candidates(options.precision)) pairs.push_back(p);
  frontend::PrecisionSearch defaults;
  for (const auto& p : precision_candidates(defaults)) pairs.push_back(p);
  for (auto [k, v] : std::initializer_list<std::pair<int, int>>{{8, 8}, {8, 4}, {4, 4}, {4, 2}, {2, 2}})
    pairs.push_back(ir::kivi_pair(k, v));
  for (const auto& p : pairs)
    if (std::find(space.pairs.begin(), space.pairs.end(), p) == space.pairs.end()) space.pairs.push_back(p);
  // CAKE is predicted from the SnapKV column and keeps scores besides, so SnapKV at
  // the same keep has the same error in fewer bytes: CAKE plans are dominated.
  space.policies = {ir::RetentionPolicy::StreamingLLM, ir::RetentionPolicy::H2O, ir::RetentionPolicy::SnapKV};
  // Quantized layers keep whole blocks above their fp16 tail; fp16 layers have no
  // tail and can keep fewer tokens: both sets of levels are candidates.
  if (!m.layers.empty()) {
    space.keeps = keep_levels(m, make_layer_plan(m, 0, LayerChoice{ir::kivi_pair(2, 2)}, options), 32);
    for (std::int64_t k : keep_levels(m, make_layer_plan(m, 0, LayerChoice{}, options), 32))
      space.keeps.push_back(k);
    std::sort(space.keeps.begin(), space.keeps.end());
    space.keeps.erase(std::unique(space.keeps.begin(), space.keeps.end()), space.keeps.end());
  }
  const int d = m.model.head_dim;
  if (d <= 16) {
    for (int r = 1; r < d; ++r) space.ranks.push_back(r);
  } else {
    for (int r = d / 4; r < d; r += std::max(1, d / 4)) space.ranks.push_back(r);
  }
  return space;
}

void JointPass::run(ir::Module& m, PassContext& ctx) {
  const auto& stats = require_calibration_stats(ctx, m, "joint");
  const CandidateSpace space = joint_candidate_space(m, ctx.search);
  const auto tables = build_cost_tables(m, stats, ctx.search, space);
  const BudgetedChoice best = solve_cost_tables(tables, m.budget_bytes);
  if (!best.feasible) {
    ctx.notes.push_back("joint: no setting of bits, tokens and rank fits the budget; left the plan as it was");
    return;
  }
  apply_choices(m, best.choices, ctx.search);
  char buf[160];
  std::snprintf(buf, sizeof buf, "joint: knapsack DP (%s) over %zu candidates per layer: %lld bytes, predicted error %.4g",
                best.exact ? "exact" : "coarse grid", tables.empty() ? std::size_t{0} : tables.front().size(),
                static_cast<long long>(best.bytes), best.error);
  ctx.notes.push_back(buf);
  for (std::size_t l = 0; l < best.choices.size(); ++l)
    ctx.notes.push_back("joint: layer " + std::to_string(l) + ": " + describe(best.choices[l]));
}

}  // namespace kvc::passes
