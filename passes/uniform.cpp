#include "passes/uniform.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "passes/pass_manager.h"
#include "support/diagnostics.h"
#include "support/text.h"

namespace kvc::passes {

void apply_uniform_precision(ir::Module& m, PrecisionPair pair, const frontend::PrecisionSearch& options) {
  const int d = m.model.head_dim;
  const ir::QuantFormat key = ir::key_format(pair.key, options.group, d, options.seed);
  const ir::QuantFormat value = ir::value_format(pair.value, options.group, d, options.seed);
  for (auto& layer : m.layers) {
    layer.key = key;
    layer.value = value;
    layer.residual = pair.compressed() ? options.residual : 0;
    layer.retention = {};
    layer.lowrank = {};
  }
}

ir::RetentionPolicy spec_retention_policy(const frontend::RetentionSearch& options) {
  if (options.method == "h2o") return ir::RetentionPolicy::H2O;
  if (options.method == "snapkv") return ir::RetentionPolicy::SnapKV;
  if (options.method == "cake") return ir::RetentionPolicy::CAKE;
  return ir::RetentionPolicy::StreamingLLM;
}

ir::Retention retention_for(ir::RetentionPolicy policy, std::int64_t tokens, const frontend::RetentionSearch& options) {
  ir::Retention r;
  if (policy == ir::RetentionPolicy::Full) return r;
  r.policy = policy;
  r.budget = tokens;
  r.window = options.window;
  switch (policy) {
    case ir::RetentionPolicy::StreamingLLM:
    case ir::RetentionPolicy::H2O:
      // Sinks and the recent window come out of the same token budget.
      r.sink = static_cast<int>(std::min<std::int64_t>(options.sink, tokens));
      r.window = static_cast<int>(std::min<std::int64_t>(options.window, tokens - r.sink));
      break;
    case ir::RetentionPolicy::SnapKV: r.pool = options.pool > 0 ? options.pool : kSnapKVPool; break;
    case ir::RetentionPolicy::CAKE:
      r.gamma = options.gamma;
      r.pool = options.pool > 0 ? options.pool : kCakePool;
      break;
    case ir::RetentionPolicy::Full: break;
  }
  return r;
}

void apply_uniform_retention(ir::Module& m, std::int64_t tokens, const frontend::RetentionSearch& options) {
  const ir::RetentionPolicy policy = spec_retention_policy(options);
  for (auto& layer : m.layers) layer.retention = retention_for(policy, tokens, options);
}

std::optional<std::int64_t> largest_fitting_retention(const ir::Module& m, std::int64_t budget_bytes,
                                                       const frontend::RetentionSearch& options) {
  int min_tokens = 1;
  for (const auto& layer : m.layers) min_tokens = std::max(min_tokens, ir::tail_capacity(layer));
  auto bytes_at = [&](std::int64_t tokens) {
    ir::Module trial = m;
    apply_uniform_retention(trial, tokens, options);
    return ir::total_bytes(trial);
  };
  std::int64_t lo = min_tokens, hi = m.workload.context;
  if (lo > hi || bytes_at(lo) > budget_bytes) return std::nullopt;
  // Bytes grow monotonically with kept tokens: binary search the largest that fits.
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo + 1) / 2;
    if (bytes_at(mid) <= budget_bytes) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

namespace {

std::vector<PrecisionPair> candidate_ladder(const frontend::PrecisionSearch& options) {
  std::vector<PrecisionPair> ladder;
  if (options.candidates.empty()) {
    for (auto [k, v] : std::initializer_list<std::pair<int, int>>{{16, 16}, {8, 8}, {8, 4}, {4, 4}, {4, 2}, {2, 2}})
      ladder.push_back(ir::kivi_pair(k, v));
  } else {
    for (const auto& c : options.candidates)
      if (auto p = ir::parse_precision_pair(c)) ladder.push_back(*p);
  }
  return ladder;
}

std::string describe_retention(const ir::Module& m) {
  const auto& r = m.layers.front().retention;
  if (r.policy == ir::RetentionPolicy::Full) return "keeps every token";
  return "keeps " + std::to_string(r.budget) + " tokens per layer (" + ir::to_string(r.policy) + ")";
}

}  // namespace

void UniformPass::run(ir::Module& m, PassContext& ctx) {
  const auto& precision = ctx.search.precision;
  if (!argument_.empty()) {
    std::string problem;
    auto pair = ir::parse_precision_pair(argument_, &problem);
    if (!pair) throw Error({}, "pipeline", "uniform<" + argument_ + ">: " + problem + " (a precision pair such as K4V2, K4V2cr or fp16)");
    if (const std::string why = ir::side_problem(pair->key, m.model.head_dim); !why.empty())
      throw Error({}, "pipeline", "uniform<" + argument_ + ">: " + why);
    if (const std::string why = ir::side_problem(pair->value, m.model.head_dim); !why.empty())
      throw Error({}, "pipeline", "uniform<" + argument_ + ">: " + why);
    apply_uniform_precision(m, *pair, precision);
    ctx.notes.push_back("uniform: every layer " + pair->name());
    return;
  }

  if (const std::string asked = calibrated_search_pass(ctx); asked != "uniform" && !ctx.stats &&
      ctx.calibration_stats.empty())
    ctx.notes.push_back("uniform: the spec asks for `" + asked +
                        "`, which plans from calibration statistics; none were given (calibration.stats), so the "
                        "uniform ladder planned instead. Run `kvc calibrate` to search.");
  // Most precise first: sort the ladder by the bytes each format takes.
  std::vector<std::pair<std::int64_t, PrecisionPair>> by_bytes;
  for (const auto& pair : candidate_ladder(precision)) {
    ir::Module trial = m;
    apply_uniform_precision(trial, pair, precision);
    by_bytes.emplace_back(ir::total_bytes(trial), pair);
  }
  std::stable_sort(by_bytes.begin(), by_bytes.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [bytes, pair] : by_bytes) {
    if (bytes <= m.budget_bytes) {
      apply_uniform_precision(m, pair, precision);
      ctx.notes.push_back("uniform: " + pair.name() + " on every layer, the most precise uniform format that fits");
      return;
    }
  }
  const PrecisionPair smallest = by_bytes.back().second;
  apply_uniform_precision(m, smallest, precision);
  if (auto tokens = largest_fitting_retention(m, m.budget_bytes, ctx.search.retention)) {
    apply_uniform_retention(m, *tokens, ctx.search.retention);
    ctx.notes.push_back("uniform: " + smallest.name() + " on every layer, which " + describe_retention(m) +
                        " to fit the budget");
    return;
  }
  // Leave the smallest format in place: `legalize` reports by how much it misses.
  ir::Module smallest_plan = m;
  apply_uniform_retention(smallest_plan, 1, ctx.search.retention);
  ctx.notes.push_back("uniform: no uniform plan fits the budget");
  m = smallest_plan;
  for (auto& layer : m.layers) {
    layer.retention.budget = std::max<std::int64_t>(ir::tail_capacity(layer), 1);
    layer.retention.sink = std::min<int>(layer.retention.sink, static_cast<int>(layer.retention.budget));
    layer.retention.window = 0;
  }
}

}  // namespace kvc::passes
