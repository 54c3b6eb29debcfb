#include "passes/kvtuner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "ir/layout.h"
#include "passes/budget_search.h"
#include "passes/calibration_input.h"
#include "passes/cost_model.h"
#include "passes/uniform.h"

namespace kvc::passes {

namespace {

// Layers whose sensitivity differs by more than this factor from their sorted
// neighbour start a new cluster (KVTuner leaves the clustering rule open; a ratio
// threshold on e_o is its faithful stand-in, docs/algorithms.md §3.2).
constexpr double kClusterJump = 1.5;

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string pair_name(const LayerChoice& c) { return c.pair.name(); }

struct ClusterResult {
  bool feasible = false;
  std::vector<LayerChoice> choices;
  std::int64_t bytes = 0;
  double error = 0;
  int clusters = 0;
};

// Steps 2-4: Pareto pruning, clustering, greedy search over clusters. `tables[l]`
// holds one entry per precision pair (same retention for all).
ClusterResult clustered_search(const std::vector<std::vector<CostEntry>>& tables, const std::vector<double>& sensitivity,
                               std::int64_t budget) {
  const std::size_t L = tables.size();
  std::vector<std::vector<CostEntry>> pruned(L);
  std::map<std::vector<std::string>, std::vector<int>> by_set;
  for (std::size_t l = 0; l < L; ++l) {
    pruned[l] = pareto_frontier(tables[l]);
    std::vector<std::string> names;
    for (const auto& e : pruned[l]) names.push_back(pair_name(e.choice));
    std::sort(names.begin(), names.end());
    by_set[names].push_back(static_cast<int>(l));
  }
  // Clusters: per identical pruned set, layers sorted by sensitivity, split at jumps.
  struct Cluster {
    std::vector<int> layers;
    std::vector<std::pair<std::int64_t, double>> options;  // (bytes, error) per candidate, most bytes first
    std::vector<LayerChoice> candidates;                   // pair of each option (retention from the table)
    std::size_t at = 0;
  };
  std::vector<Cluster> clusters;
  for (auto& [names, layers] : by_set) {
    std::stable_sort(layers.begin(), layers.end(), [&](int a, int b) { return sensitivity[a] < sensitivity[b]; });
    std::vector<std::vector<int>> split = {{layers.front()}};
    for (std::size_t i = 1; i < layers.size(); ++i) {
      const double prev = std::max(sensitivity[layers[i - 1]], 1e-12);
      if (sensitivity[layers[i]] / prev > kClusterJump) split.emplace_back();
      split.back().push_back(layers[i]);
    }
    for (auto& members : split) {
      Cluster c;
      c.layers = members;
      std::sort(c.layers.begin(), c.layers.end());
      for (const auto& e : pruned[c.layers.front()]) {
        std::int64_t bytes = 0;
        double error = 0;
        for (int l : c.layers)
          for (const auto& f : pruned[l])
            if (pair_name(f.choice) == pair_name(e.choice)) {
              bytes += f.bytes;
              error += f.error;
            }
        c.options.emplace_back(bytes, error);
        c.candidates.push_back(e.choice);
      }
      // Most bytes (most precise) first.
      std::vector<std::size_t> order(c.options.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(),
                       [&](std::size_t a, std::size_t b) { return c.options[a].first > c.options[b].first; });
      Cluster sorted = c;
      for (std::size_t i = 0; i < order.size(); ++i) {
        sorted.options[i] = c.options[order[i]];
        sorted.candidates[i] = c.candidates[order[i]];
      }
      clusters.push_back(std::move(sorted));
    }
  }
  std::sort(clusters.begin(), clusters.end(),
            [](const Cluster& a, const Cluster& b) { return a.layers.front() < b.layers.front(); });

  auto total_bytes = [&] {
    std::int64_t b = 0;
    for (const auto& c : clusters) b += c.options[c.at].first;
    return b;
  };
  // Downgrade the cluster losing least error per byte saved until the plan fits.
  while (total_bytes() > budget) {
    int best = -1;
    double best_rate = 0;
    for (std::size_t i = 0; i < clusters.size(); ++i) {
      const auto& c = clusters[i];
      if (c.at + 1 >= c.options.size()) continue;
      const double saved = static_cast<double>(c.options[c.at].first - c.options[c.at + 1].first);
      const double rate = (c.options[c.at + 1].second - c.options[c.at].second) / std::max(saved, 1.0);
      if (best < 0 || rate < best_rate) {
        best = static_cast<int>(i);
        best_rate = rate;
      }
    }
    if (best < 0) break;
    ++clusters[best].at;
  }
  ClusterResult out;
  out.clusters = static_cast<int>(clusters.size());
  if (total_bytes() > budget) return out;
  // Spend what is left: the upgrade that removes most error per byte and still fits.
  for (bool improved = true; improved;) {
    improved = false;
    int best = -1;
    std::size_t best_to = 0;
    double best_gain = 0;
    const std::int64_t used = total_bytes();
    for (std::size_t i = 0; i < clusters.size(); ++i) {
      const auto& c = clusters[i];
      for (std::size_t to = 0; to < c.at; ++to) {
        const std::int64_t extra = c.options[to].first - c.options[c.at].first;
        const double gain = c.options[c.at].second - c.options[to].second;
        if (used + extra > budget || gain <= 0) continue;
        const double rate = gain / std::max<double>(1.0, static_cast<double>(extra));
        if (best < 0 || rate > best_gain) {
          best = static_cast<int>(i);
          best_to = to;
          best_gain = rate;
        }
      }
    }
    if (best >= 0) {
      clusters[best].at = best_to;
      improved = true;
    }
  }
  out.feasible = true;
  out.choices.assign(L, LayerChoice{});
  for (const auto& c : clusters) {
    out.bytes += c.options[c.at].first;
    out.error += c.options[c.at].second;
    for (int l : c.layers) out.choices[l] = c.candidates[c.at];
  }
  return out;
}

std::string summarize(const std::vector<LayerChoice>& choices) {
  std::string s;
  for (std::size_t l = 0; l < choices.size(); ++l) {
    if (l) s += ' ';
    s += pair_name(choices[l]);
  }
  return s;
}

}  // namespace

void KVTunerPass::run(ir::Module& m, PassContext& ctx) {
  const auto& stats = require_calibration_stats(ctx, m, "kvtuner");
  CandidateSpace space;
  space.pairs = precision_candidates(ctx.search.precision);
  if (space.pairs.empty()) throw Error({}, "search.precision.candidates", "kvtuner: no precision pair to choose from");
  const ir::RetentionPolicy policy = spec_retention_policy(ctx.search.retention);
  // Dominated pairs stay dominated at every retention setting: prune them once.
  space.layer_pairs = prune_pairs(m, stats, ctx.search, space);

  // Scan the uniform retention settings on a coarse grid, then solve the chosen one exactly.
  std::vector<std::vector<CostEntry>> chosen_tables;
  BudgetedChoice best;
  std::pair<ir::RetentionPolicy, std::int64_t> chosen{ir::RetentionPolicy::Full, 0};
  for (const auto& setting : uniform_retention_settings(m, ctx.search, policy)) {
    CandidateSpace one = space;
    one.policies = {setting.first};
    one.keeps = {setting.second};
    auto tables = build_cost_tables(m, stats, ctx.search, one);
    if (setting.first != ir::RetentionPolicy::Full)
      for (auto& t : tables)
        std::erase_if(t, [](const CostEntry& e) { return e.choice.policy == ir::RetentionPolicy::Full; });
    BudgetedChoice trial = solve_cost_tables(tables, m.budget_bytes, 4096);
    if (trial.feasible && (!best.feasible || trial.error < best.error)) {
      best = trial;
      chosen = setting;
      chosen_tables = std::move(tables);
    }
  }
  if (!best.feasible) {
    ctx.notes.push_back("kvtuner: no per-layer precision assignment fits the budget even at the smallest uniform "
                        "retention; left the plan as it was");
    return;
  }
  const BudgetedChoice exact = solve_cost_tables(chosen_tables, m.budget_bytes);
  std::vector<double> sensitivity;
  for (std::size_t l = 0; l < m.layers.size(); ++l) sensitivity.push_back(layer_sensitivity(stats, static_cast<int>(l)));
  const ClusterResult clustered = clustered_search(chosen_tables, sensitivity, m.budget_bytes);

  const std::string retention = chosen.first == ir::RetentionPolicy::Full
                                    ? std::string("every layer keeps every token")
                                    : std::string("every layer keeps ") + std::to_string(chosen.second) + " tokens (" +
                                          ir::to_string(chosen.first) + ")";
  ctx.notes.push_back("kvtuner: " + retention);
  if (clustered.feasible)
    ctx.notes.push_back("kvtuner: clustered search (" + std::to_string(clustered.clusters) + " clusters): " +
                        summarize(clustered.choices) + ", " + std::to_string(clustered.bytes) +
                        " bytes, predicted error " + fmt(clustered.error));
  else
    ctx.notes.push_back("kvtuner: clustered search found no assignment that fits");
  if (exact.feasible)
    ctx.notes.push_back(std::string("kvtuner: knapsack DP (") + (exact.exact ? "exact" : "coarse grid") +
                        "): " + summarize(exact.choices) + ", " + std::to_string(exact.bytes) +
                        " bytes, predicted error " + fmt(exact.error));
  const bool use_dp = exact.feasible && (!clustered.feasible || exact.error <= clustered.error);
  const auto& choices = use_dp ? exact.choices : clustered.choices;
  apply_choices(m, choices, ctx.search);
  ctx.notes.push_back(std::string("kvtuner: applied the ") + (use_dp ? "knapsack DP" : "clustered search") +
                      " assignment");
}

}  // namespace kvc::passes
