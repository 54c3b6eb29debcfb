#include "passes/legalize.h"

#include <algorithm>

#include "ir/verifier.h"
#include "passes/estimate.h"
#include "support/diagnostics.h"
#include "support/text.h"

namespace kvc::passes {

void LegalizePass::run(ir::Module& m, PassContext& ctx) {
  ir::verify_or_throw(m);
  ctx.estimate = estimate_module(m);
  const std::int64_t total = ctx.estimate.total;
  if (total <= m.budget_bytes) return;

  const std::int64_t layers = static_cast<std::int64_t>(m.layers.size());
  const std::int64_t share = layers ? m.budget_bytes / layers : 0;
  std::vector<std::pair<std::int64_t, int>> over;  // (bytes over share, layer)
  for (int i = 0; i < layers; ++i) {
    const std::int64_t b = ctx.estimate.layers[static_cast<std::size_t>(i)].total();
    if (b > share) over.emplace_back(b - share, i);
  }
  std::sort(over.begin(), over.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  std::string msg = "the plan needs " + std::to_string(total) + " bytes (" + format_bytes(total) + ") but the budget is " +
                    std::to_string(m.budget_bytes) + " bytes (" + format_bytes(m.budget_bytes) + "): over by " +
                    std::to_string(total - m.budget_bytes) + " bytes. Layers over their even share of " +
                    std::to_string(share) + " bytes:";
  const std::size_t shown = std::min<std::size_t>(over.size(), 8);
  for (std::size_t i = 0; i < shown; ++i)
    msg += (i ? ", " : " ") + std::string("layer ") + std::to_string(over[i].second) + " by " +
           std::to_string(over[i].first);
  if (over.size() > shown) msg += ", and " + std::to_string(over.size() - shown) + " more";
  throw Error({}, "budget", msg);
}

}  // namespace kvc::passes
