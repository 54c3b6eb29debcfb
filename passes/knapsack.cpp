#include "passes/knapsack.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <string>

#include "support/diagnostics.h"

namespace kvc::passes {

KnapsackSolution solve_multiple_choice_knapsack(const std::vector<std::vector<KnapsackItem>>& groups,
                                                std::int64_t budget, std::int64_t max_cells) {
  KnapsackSolution out;
  const std::size_t n = groups.size();
  std::int64_t base = 0;
  std::vector<std::int64_t> cheapest(n, 0);
  for (std::size_t g = 0; g < n; ++g) {
    if (groups[g].empty()) throw Error("knapsack: group " + std::to_string(g) + " has no item");
    std::int64_t lo = std::numeric_limits<std::int64_t>::max();
    for (const auto& it : groups[g]) {
      if (it.bytes < 0) throw Error("knapsack: negative bytes in group " + std::to_string(g));
      lo = std::min(lo, it.bytes);
    }
    cheapest[g] = lo;
    base += lo;
  }
  out.choice.assign(n, 0);
  if (base > budget) return out;  // not even the cheapest items fit

  std::int64_t unit = 0;
  for (std::size_t g = 0; g < n; ++g)
    for (const auto& it : groups[g]) unit = std::gcd(unit, it.bytes - cheapest[g]);
  const std::int64_t spare = budget - base;
  if (unit == 0) unit = 1;  // every group's items cost the same
  max_cells = std::max<std::int64_t>(1, max_cells);
  if (spare / unit > max_cells) {
    unit = (spare + max_cells - 1) / max_cells;
    out.exact = false;
  }
  out.unit = unit;
  const std::int64_t cells = spare / unit;
  auto weight = [&](std::size_t g, const KnapsackItem& it) {
    const std::int64_t extra = it.bytes - cheapest[g];
    return (extra + unit - 1) / unit;  // exact when unit divides extra
  };

  // best[c]: least error of the groups so far within c cells; pick[g][c] the item.
  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> best(cells + 1, 0.0), next(cells + 1);
  std::vector<std::vector<int>> pick(n, std::vector<int>(cells + 1, -1));
  for (std::size_t g = 0; g < n; ++g) {
    std::fill(next.begin(), next.end(), kInf);
    for (std::size_t i = 0; i < groups[g].size(); ++i) {
      const std::int64_t w = weight(g, groups[g][i]);
      const double e = groups[g][i].error;
      for (std::int64_t c = w; c <= cells; ++c) {
        const double v = best[c - w] + e;
        if (v < next[c]) {
          next[c] = v;
          pick[g][c] = static_cast<int>(i);
        }
      }
    }
    best.swap(next);
  }
  if (!(best[cells] < kInf)) return out;
  std::int64_t c = cells;
  for (std::size_t g = n; g-- > 0;) {
    const int i = pick[g][c];
    out.choice[g] = i;
    out.bytes += groups[g][i].bytes;
    out.error += groups[g][i].error;
    c -= weight(g, groups[g][i]);
  }
  out.feasible = true;
  return out;
}

}  // namespace kvc::passes
