#include "passes/prefixkv.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "ir/layout.h"
#include "ir/verifier.h"
#include "passes/calibration_input.h"
#include "passes/cost_model.h"
#include "passes/uniform.h"
#include "support/diagnostics.h"
#include "support/text.h"

namespace kvc::passes {
namespace {

std::string pair_name(const PrecisionPair& p) { return p.name(); }

// A layer plan at `keep` tokens, Full when that is the whole context.
ir::LayerPlan plan_with_keep(const ir::Module& m, int layer, PrecisionPair precision,
                             ir::RetentionPolicy policy, std::int64_t keep, const frontend::SearchOptions& options) {
  LayerChoice choice{precision, ir::RetentionPolicy::Full, 0, 0};
  if (keep < m.workload.context) {
    choice.policy = policy;
    choice.keep = keep;
  }
  return make_layer_plan(m, layer, choice, options);
}

// F(tokens / context): the share of attention mass the top `tokens` hold.
double share_held(const std::vector<double>& curve, std::int64_t tokens, std::int64_t context) {
  if (tokens <= 0 || curve.empty()) return 0;
  const double x = std::min(1.0, static_cast<double>(tokens) / static_cast<double>(context)) * curve.size();
  const std::size_t i = static_cast<std::size_t>(std::floor(x));
  if (i >= curve.size()) return curve.back();
  const double below = i == 0 ? 0.0 : curve[i - 1];
  return below + (curve[i] - below) * (x - std::floor(x));
}

}  // namespace

std::vector<std::vector<double>> prefix_importance_curves(const calibration::CalibrationStats& stats) {
  const std::int64_t L = stats.meta.model.layers, F = stats.meta.prefix_points;
  const auto& t = stats.tensor("prefix_curve_mean", {L, F});
  std::vector<std::vector<double>> curves(static_cast<std::size_t>(L));
  for (std::int64_t l = 0; l < L; ++l) {
    auto& c = curves[static_cast<std::size_t>(l)];
    double running = 0;
    for (std::int64_t i = 0; i < F; ++i) {
      const double v = t.data[static_cast<std::size_t>(l * F + i)];
      if (!std::isfinite(v) || v < -1e-6 || v > 1 + 1e-6)
        throw Error({}, "prefix_curve_mean",
                    "layer " + std::to_string(l) + " point " + std::to_string(i) + " is " + std::to_string(v) +
                        ": a prefix importance curve is a share of attention mass in [0, 1]");
      // Averaged curves may wobble by rounding; the search needs them non-decreasing.
      running = std::max(running, std::clamp(v, 0.0, 1.0));
      c.push_back(running);
    }
  }
  return curves;
}

std::int64_t tokens_for_level(const std::vector<double>& curve, double level, std::int64_t context) {
  if (level <= 0 || curve.empty()) return 0;
  const double F = static_cast<double>(curve.size());
  double prev = 0;
  for (std::size_t i = 0; i < curve.size(); ++i) {
    if (curve[i] >= level) {
      const double step = curve[i] - prev;
      const double within = step > 0 ? (level - prev) / step : 1.0;
      const double fraction = (static_cast<double>(i) + std::clamp(within, 0.0, 1.0)) / F;
      return std::min<std::int64_t>(context, static_cast<std::int64_t>(std::ceil(fraction * context - 1e-9)));
    }
    prev = curve[i];
  }
  return context;
}

PrefixKVOptions parse_prefixkv_argument(const std::string& argument) {
  PrefixKVOptions out;
  for (const std::string& item : split_list(argument)) {
    if (auto pair = parse_precision_pair(item)) {
      out.precision = *pair;
    } else if (item == "h2o") {
      out.policy = ir::RetentionPolicy::H2O;
    } else if (item == "snapkv") {
      out.policy = ir::RetentionPolicy::SnapKV;
    } else if (item == "streamingllm") {
      out.policy = ir::RetentionPolicy::StreamingLLM;
    } else if (item == "cake") {
      out.policy = ir::RetentionPolicy::CAKE;
    } else {
      throw Error({}, "pipeline",
                  "prefixkv<" + argument + ">: '" + item +
                      "' is neither a precision pair (K4V2, fp16) nor a policy (h2o, snapkv, streamingllm, cake)");
    }
  }
  return out;
}

std::optional<PrefixKVAllocation> allocate_prefix_retention(ir::Module& m, const std::vector<std::vector<double>>& curves,
                                                            PrecisionPair precision, ir::RetentionPolicy policy,
                                                            const frontend::SearchOptions& options) {
  const int L = m.model.layers;
  const std::int64_t context = m.workload.context;
  if (static_cast<int>(curves.size()) != L)
    throw Error({}, "prefix_curve_mean", "prefix curves cover " + std::to_string(curves.size()) + " layers, model has " +
                                             std::to_string(L));
  ir::Module trial = m;
  // Per layer: the smallest legal budget, and the token block above the tail.
  std::vector<std::int64_t> floor(static_cast<std::size_t>(L)), tail(floor.size()), block(floor.size());
  for (int l = 0; l < L; ++l) {
    const ir::LayerPlan probe = plan_with_keep(m, l, precision, ir::RetentionPolicy::Full, context, options);
    tail[l] = ir::tail_capacity(probe);
    block[l] = ir::token_block(probe);
    floor[l] = std::min<std::int64_t>(context, std::max<std::int64_t>(1, tail[l]));
  }
  // Bytes change only per whole block, so round a budget up to the block it opens.
  auto aligned = [&](int l, std::int64_t tokens) {
    tokens = std::max(tokens, floor[l]);
    if (tokens > tail[l]) tokens = tail[l] + (tokens - tail[l] + block[l] - 1) / block[l] * block[l];
    return std::min(tokens, context);
  };
  auto plan_at = [&](double level, std::vector<std::int64_t>* tokens) {
    std::int64_t bytes = 0;
    for (int l = 0; l < L; ++l) {
      const std::int64_t keep = aligned(l, tokens_for_level(curves[l], level, context));
      trial.layers[l] = plan_with_keep(m, l, precision, policy, keep, options);
      bytes += ir::layer_bytes(trial, l).total();
      if (tokens) (*tokens)[l] = keep;
    }
    return bytes;
  };
  PrefixKVAllocation out;
  out.tokens.resize(static_cast<std::size_t>(L));
  if (plan_at(0.0, nullptr) > m.budget_bytes) return std::nullopt;
  double lo = 0, hi = 1;
  if (plan_at(1.0, nullptr) <= m.budget_bytes) {
    lo = 1;
  } else {
    // Kept tokens (and bytes) never fall as the level rises: bisect the highest that fits.
    for (int iteration = 0; iteration < 60 && hi - lo > 1e-12; ++iteration) {
      const double mid = 0.5 * (lo + hi);
      if (plan_at(mid, nullptr) <= m.budget_bytes) lo = mid;
      else hi = mid;
    }
  }
  out.level = lo;
  out.bytes = plan_at(lo, &out.tokens);
  // The bisection raises every layer at once; bytes its last step could not spend
  // still fit single layers. Keep raising the level layer by layer: the next block
  // goes to the layer whose kept tokens hold the least of its attention mass.
  for (;;) {
    int next = -1;
    double lowest = 2;
    for (int l = 0; l < L; ++l) {
      if (out.tokens[l] >= context) continue;
      const double held = share_held(curves[l], out.tokens[l], context);
      if (held < lowest) lowest = held, next = l;
    }
    if (next < 0) break;
    const std::int64_t before = ir::layer_bytes(trial, next).total();
    const std::int64_t keep = aligned(next, out.tokens[next] + 1);
    trial.layers[next] = plan_with_keep(m, next, precision, policy, keep, options);
    const std::int64_t after = ir::layer_bytes(trial, next).total();
    if (out.bytes - before + after > m.budget_bytes) {
      trial.layers[next] = plan_with_keep(m, next, precision, policy, out.tokens[next], options);
      break;
    }
    out.bytes += after - before;
    out.tokens[next] = keep;
  }
  m.layers = trial.layers;
  return out;
}

void PrefixKVPass::run(ir::Module& m, PassContext& ctx) {
  const auto& stats = require_calibration_stats(ctx, m, "prefixkv");
  const auto curves = prefix_importance_curves(stats);
  const std::vector<PrecisionPair> pairs = uniform_precisions_to_try(options_.precision, ctx.search.precision);

  struct Best {
    ir::Module plan;
    PrefixKVAllocation allocation;
    PrecisionPair precision;
    double error = 0;
  };
  std::optional<Best> best;
  std::int64_t smallest = -1;
  for (auto pair : pairs) {
    ir::Module trial = m;
    auto allocation = allocate_prefix_retention(trial, curves, pair, options_.policy, ctx.search);
    if (!allocation) {
      ir::Module floor_plan = m;
      for (int l = 0; l < m.model.layers; ++l)
        floor_plan.layers[l] = plan_with_keep(m, l, pair, options_.policy, 1, ctx.search);
      const std::int64_t b = ir::total_bytes(floor_plan);
      if (smallest < 0 || b < smallest) smallest = b;
      continue;
    }
    const double error = predict_plan_error(trial, stats).total;
    // Ties (e.g. all plans exact) go to the earlier, more precise candidate.
    if (!best || error < best->error) best = Best{std::move(trial), *allocation, pair, error};
  }
  if (!best)
    throw Error({}, "budget",
                "prefixkv: no plan fits the budget of " + std::to_string(m.budget_bytes) + " bytes (" +
                    format_bytes(m.budget_bytes) + "); the smallest it can reach, every layer at its minimum "
                    "token budget, needs " + std::to_string(smallest) + " bytes (" + format_bytes(smallest) + ")");
  ir::verify_or_throw(best->plan);
  m = std::move(best->plan);

  std::ostringstream note;
  note << "prefixkv: " << pair_name(best->precision) << " on every layer, " << ir::to_string(options_.policy)
       << " keeping each layer's top " << best->allocation.level * 100 << "% of its prefill attention mass; tokens";
  for (std::int64_t t : best->allocation.tokens) note << " " << t;
  note << "; predicted error " << best->error << ", " << best->allocation.bytes << " bytes";
  ctx.notes.push_back(note.str());
}

}  // namespace kvc::passes
