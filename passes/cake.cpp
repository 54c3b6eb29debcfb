#include "passes/cake.h"

#include <algorithm>
#include <cmath>
#include <numeric>
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

constexpr double kCakeDefaultGamma = 200.0;  // the CAKE code's default variance weight

std::optional<double> parse_number(const std::string& text) {
  std::size_t used = 0;
  try {
    const double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

ir::LayerPlan cake_layer(const ir::Module& m, int layer, PrecisionPair precision, std::int64_t keep,
                         double gamma, const frontend::SearchOptions& options) {
  LayerChoice choice{precision, ir::RetentionPolicy::Full, 0, 0};
  if (keep < m.workload.context) {
    choice.policy = ir::RetentionPolicy::CAKE;
    choice.keep = keep;
  }
  ir::LayerPlan p = make_layer_plan(m, layer, choice, options);
  if (p.retention.policy == ir::RetentionPolicy::CAKE) {
    p.retention.gamma = gamma;
    p.retention.window = std::max(1, p.retention.window);
  }
  return p;
}

}  // namespace

CakeOptions parse_cake_argument(const std::string& argument) {
  CakeOptions out;
  auto fail = [&](const std::string& why) { throw Error({}, "pipeline", "cake<" + argument + ">: " + why); };
  for (const std::string& item : split_list(argument)) {
    if (auto pair = parse_precision_pair(item)) {
      out.precision = *pair;
      continue;
    }
    const auto eq = item.find('=');
    if (eq == std::string::npos)
      fail("'" + item + "' is neither a precision pair (K4V2, fp16) nor tau1=, tau2=, gamma=");
    const std::string key = item.substr(0, eq);
    const auto value = parse_number(item.substr(eq + 1));
    if (!value) fail("'" + item + "': expected a number after '='");
    if (key == "tau1" || key == "tau2") {
      if (*value <= 0) fail(key + " must be > 0");
      (key == "tau1" ? out.tau1 : out.tau2) = *value;
    } else if (key == "gamma") {
      if (*value < 0) fail("gamma must be >= 0");
      out.gamma = *value;
    } else {
      fail("unknown option '" + key + "' (tau1, tau2, gamma)");
    }
  }
  return out;
}

std::vector<double> cake_layer_preferences(const calibration::CalibrationStats& stats, double tau1, double tau2) {
  if (!(tau1 > 0) || !(tau2 > 0)) throw Error({}, "cake", "tau1 and tau2 must be > 0");
  const std::int64_t L = stats.meta.model.layers, H = stats.meta.model.kv_heads;
  const auto& entropy = stats.tensor("cake_entropy_mean", {L, H});
  const auto& variance = stats.tensor("cake_variance_mean", {L, H});
  std::vector<double> out;
  for (std::int64_t l = 0; l < L; ++l) {
    double h = 0, v = 0;
    for (std::int64_t k = 0; k < H; ++k) {
      h += entropy.data[static_cast<std::size_t>(l * H + k)];
      v += variance.data[static_cast<std::size_t>(l * H + k)];
    }
    if (!std::isfinite(h) || !std::isfinite(v) || h < 0 || v < 0)
      throw Error({}, "cake_entropy_mean",
                  "layer " + std::to_string(l) + ": attention entropy " + std::to_string(h) + " and variance " +
                      std::to_string(v) + " must be finite and >= 0");
    out.push_back(std::pow(h, 1.0 / tau1) * std::pow(v, 1.0 / tau2));
  }
  return out;
}

std::optional<CakeAllocation> allocate_cake_retention(ir::Module& m, const std::vector<double>& preferences,
                                                      PrecisionPair precision, double gamma,
                                                      const frontend::SearchOptions& options) {
  const int L = m.model.layers;
  const std::int64_t context = m.workload.context;
  if (static_cast<int>(preferences.size()) != L)
    throw Error({}, "cake", "preferences cover " + std::to_string(preferences.size()) + " layers, model has " +
                                std::to_string(L));
  // All-zero preferences carry no information: split evenly.
  const bool informative = std::any_of(preferences.begin(), preferences.end(), [](double p) { return p > 0; });
  std::vector<double> weight(preferences);
  if (!informative) std::fill(weight.begin(), weight.end(), 1.0);

  ir::Module trial = m;
  std::vector<std::int64_t> floor(static_cast<std::size_t>(L)), tail(floor.size()), block(floor.size());
  for (int l = 0; l < L; ++l) {
    const ir::LayerPlan probe = cake_layer(m, l, precision, context, gamma, options);
    tail[l] = ir::tail_capacity(probe);
    block[l] = std::max(1, ir::token_block(probe));
    floor[l] = std::min<std::int64_t>(context, std::max<std::int64_t>(1, tail[l]));
  }
  auto aligned = [&](int l, std::int64_t tokens) {
    tokens = std::max(tokens, floor[l]);
    if (tokens > tail[l]) tokens = tail[l] + (tokens - tail[l] + block[l] - 1) / block[l] * block[l];
    return std::min(tokens, context);
  };
  std::vector<std::int64_t> keep(static_cast<std::size_t>(L));
  auto set_layer = [&](int l, std::int64_t tokens) {
    keep[l] = tokens;
    trial.layers[l] = cake_layer(m, l, precision, tokens, gamma, options);
  };
  // Layer l keeps its floor plus lambda * P_l tokens, capped at the context.
  auto plan_at = [&](double lambda) {
    std::int64_t bytes = 0;
    for (int l = 0; l < L; ++l) {
      // Whole blocks only: rounding a share up would hand every layer, however
      // little it prefers, a block it did not earn.
      const double blocks = std::floor(std::min(lambda * weight[l], static_cast<double>(context)) / block[l]);
      set_layer(l, aligned(l, floor[l] + static_cast<std::int64_t>(blocks) * block[l]));
      bytes += ir::layer_bytes(trial, l).total();
    }
    return bytes;
  };
  if (plan_at(0.0) > m.budget_bytes) return std::nullopt;
  const double max_weight = *std::max_element(weight.begin(), weight.end());
  double hi = 1.0;
  for (int l = 0; l < L; ++l)
    if (weight[l] > 0) hi = std::max(hi, static_cast<double>(context) / weight[l]);
  double lo = 0;
  if (plan_at(hi) <= m.budget_bytes) {
    lo = hi;
  } else {
    for (int iteration = 0; iteration < 100 && (hi - lo) * max_weight > 0.01; ++iteration) {
      const double mid = 0.5 * (lo + hi);
      if (plan_at(mid) <= m.budget_bytes) lo = mid;
      else hi = mid;
    }
  }
  CakeAllocation out;
  out.bytes = plan_at(lo);
  // Spend what rounding left, one block each, highest preference first (ties: lower
  // layer), so a layer never ends up with more tokens than a more preferred one.
  std::vector<int> order(static_cast<std::size_t>(L));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return weight[a] > weight[b]; });
  for (int l : order) {
    if (keep[l] >= context) continue;
    const std::int64_t before_tokens = keep[l];
    const std::int64_t before_bytes = ir::layer_bytes(trial, l).total();
    set_layer(l, aligned(l, keep[l] + 1));
    const std::int64_t after_bytes = ir::layer_bytes(trial, l).total();
    if (out.bytes - before_bytes + after_bytes <= m.budget_bytes) {
      out.bytes += after_bytes - before_bytes;
    } else {
      set_layer(l, before_tokens);
      break;
    }
  }
  out.tokens = keep;
  m.layers = trial.layers;
  return out;
}

void CakePass::run(ir::Module& m, PassContext& ctx) {
  const auto& stats = require_calibration_stats(ctx, m, "cake");
  const double gamma =
      options_.gamma ? *options_.gamma : (ctx.search.retention.gamma > 0 ? ctx.search.retention.gamma : kCakeDefaultGamma);
  const std::vector<PrecisionPair> pairs = uniform_precisions_to_try(options_.precision, ctx.search.precision);

  auto temperatures = [](std::optional<double> fixed) {
    return fixed ? std::vector<double>{*fixed} : std::vector<double>(std::begin(kTauGrid), std::end(kTauGrid));
  };
  struct Candidate {
    PrecisionPair precision;
    double tau1, tau2;
  };
  std::vector<Candidate> candidates;
  for (auto pair : pairs)
    for (double t1 : temperatures(options_.tau1))
      for (double t2 : temperatures(options_.tau2)) candidates.push_back({pair, t1, t2});

  struct Best {
    ir::Module plan;
    CakeAllocation allocation;
    Candidate candidate;
    std::vector<double> preferences;
    double error = 0;
  };
  std::optional<Best> best;
  std::int64_t smallest = -1;
  for (const Candidate& c : candidates) {
    const auto pair = c.precision;
    const auto preferences = cake_layer_preferences(stats, c.tau1, c.tau2);
    ir::Module trial = m;
    auto allocation = allocate_cake_retention(trial, preferences, pair, gamma, ctx.search);
    if (!allocation) {
      ir::Module floor_plan = m;
      for (int l = 0; l < m.model.layers; ++l) floor_plan.layers[l] = cake_layer(m, l, pair, 1, gamma, ctx.search);
      const std::int64_t b = ir::total_bytes(floor_plan);
      if (smallest < 0 || b < smallest) smallest = b;
      continue;
    }
    const double error = predict_plan_error(trial, stats).total;
    // Ties go to the earlier candidate: the more precise pair, then the lower taus.
    if (!best || error < best->error) best = Best{std::move(trial), *allocation, c, preferences, error};
  }
  if (!best)
    throw Error({}, "budget",
                "cake: no plan fits the budget of " + std::to_string(m.budget_bytes) + " bytes (" +
                    format_bytes(m.budget_bytes) + "); the smallest it can reach, every layer at its minimum "
                    "token budget, needs " + std::to_string(smallest) + " bytes (" + format_bytes(smallest) + ")");
  ir::verify_or_throw(best->plan);
  m = std::move(best->plan);

  std::ostringstream note;
  const Candidate& chosen = best->candidate;
  note << "cake: " << chosen.precision.name()
       << " on every layer, CAKE eviction (gamma " << gamma << ", tau1 " << chosen.tau1
       << (options_.tau1 ? "" : " tuned") << ", tau2 " << chosen.tau2 << (options_.tau2 ? "" : " tuned")
       << "); preference";
  for (double p : best->preferences) note << " " << p;
  note << "; tokens";
  for (std::int64_t t : best->allocation.tokens) note << " " << t;
  note << "; predicted error " << best->error << ", " << best->allocation.bytes << " bytes";
  ctx.notes.push_back(note.str());
}

}  // namespace kvc::passes
