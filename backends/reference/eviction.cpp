#include "backends/reference/eviction.h"

namespace kvc::reference {

std::size_t choose_eviction_victim(const EvictionContext& ctx, std::size_t n_held,
                                   const std::function<std::int64_t(std::size_t)>& first_pos,
                                   const std::function<double(std::size_t)>& decode_score) {
  const std::size_t n = n_held;  // candidate n is the incoming block
  auto holds_sink = [&](std::size_t i) { return first_pos(i) < ctx.sink; };
  auto oldest_without_sink = [&]() {
    for (std::size_t i = 0; i <= n; ++i)
      if (!holds_sink(i)) return i;
    return n;
  };
  const bool by_score =
      ctx.selecting || ctx.policy == ir::RetentionPolicy::H2O || ctx.policy == ir::RetentionPolicy::CAKE;
  if (!by_score) return oldest_without_sink();

  // Blocks reaching the protected region (the newest `window` tokens at decode, the
  // observation window during prefill selection) stay.
  const std::int64_t boundary = ctx.selecting ? ctx.protect_from : ctx.seen - ctx.window;
  auto score_of = [&](std::size_t i) {
    if (!ctx.selecting) return decode_score(i);
    double s = 0.0;
    for (std::int64_t p = first_pos(i); p < first_pos(i) + ctx.block; ++p)
      s += ctx.prefill_scores[static_cast<std::size_t>(p)];
    return s;
  };
  std::size_t best = n + 1;
  double best_score = 0.0;
  for (std::size_t i = 0; i <= n; ++i) {
    if (holds_sink(i) || first_pos(i) + ctx.block > boundary) continue;
    const double s = score_of(i);
    if (best == n + 1 || s < best_score) {  // ties: the older block goes first
      best = i;
      best_score = s;
    }
  }
  return best == n + 1 ? oldest_without_sink() : best;
}

}  // namespace kvc::reference
