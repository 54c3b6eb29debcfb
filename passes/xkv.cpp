#include "passes/xkv.h"

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

constexpr int kXKVDefaultGroup = 4;  // xKV's G_x

// The uniform setting of the knobs xkv does not tune.
struct UniformSetting {
  PrecisionPair precision;
  ir::RetentionPolicy policy = ir::RetentionPolicy::Full;
  std::int64_t keep = 0;
};

std::string describe_setting(const UniformSetting& s) {
  std::string out = s.precision.name();
  if (s.policy == ir::RetentionPolicy::Full) return out + ", every token kept";
  return out + ", " + ir::to_string(s.policy) + " keeping " + std::to_string(s.keep) + " tokens per layer";
}

// One setting's layer plans and bytes by rank (all layers alike but their index).
class SettingPlans {
 public:
  SettingPlans(const ir::Module& m, const UniformSetting& s, const frontend::SearchOptions& options)
      : head_dim_(m.model.head_dim) {
    full_ = make_layer_plan(m, 0, {s.precision, s.policy, s.keep, 0}, options);
    low_ = make_layer_plan(m, 0, {s.precision, s.policy, s.keep, 1}, options);
    low_.lowrank.sharing = ir::BasisSharing::CrossLayer;
    low_.lowrank.basis_group = 0;
    ir::Module one = m;
    one.model.layers = 1;
    first_.assign(static_cast<std::size_t>(head_dim_ + 1), 0);
    member_.assign(first_.size(), 0);
    for (int r = 1; r <= head_dim_; ++r) {
      one.layers = {plan(0, r, 0)};
      const ir::LayerBytes b = ir::layer_bytes(one, 0);
      first_[r] = b.total();
      member_[r] = b.total() - b.basis;
    }
    legal_ = s.policy == ir::RetentionPolicy::Full || s.keep >= std::max(1, ir::tail_capacity(low_));
  }

  // Layer `layer` at per-head rank `rank` (head_dim = full keys) in basis group `group`.
  ir::LayerPlan plan(int layer, int rank, int group) const {
    ir::LayerPlan p = rank >= head_dim_ ? full_ : low_;
    p.index = layer;
    if (rank < head_dim_) {
      p.lowrank.rank = rank;
      p.lowrank.basis_group = group;
    }
    return p;
  }
  std::int64_t group_bytes(const XKVGroup& g, int rank) const {
    return first_[rank] + static_cast<std::int64_t>(g.size - 1) * member_[rank];
  }
  bool legal() const { return legal_; }

 private:
  int head_dim_;
  ir::LayerPlan full_, low_;
  std::vector<std::int64_t> first_, member_;
  bool legal_ = true;
};

std::int64_t total_bytes_at(const SettingPlans& plans, const std::vector<XKVGroup>& groups) {
  std::int64_t bytes = 0;
  for (const auto& g : groups) bytes += plans.group_bytes(g, g.rank);
  return bytes;
}

ir::Module build_module(const ir::Module& m, const SettingPlans& plans, const std::vector<XKVGroup>& groups) {
  ir::Module out = m;
  for (int gi = 0; gi < static_cast<int>(groups.size()); ++gi)
    for (int l = groups[gi].first; l < groups[gi].first + groups[gi].size; ++l)
      out.layers[l] = plans.plan(l, groups[gi].rank, gi);
  return out;
}

}  // namespace

XKVOptions parse_xkv_argument(const std::string& argument) {
  XKVOptions out;
  auto fail = [&](const std::string& why) { throw Error({}, "pipeline", "xkv<" + argument + ">: " + why); };
  for (const std::string& item : split_list(argument)) {
    if (auto pair = parse_precision_pair(item)) {
      out.precision = *pair;
      continue;
    }
    const auto eq = item.find('=');
    if (eq == std::string::npos) fail("'" + item + "' is neither a precision pair nor group=N or energy=X");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !std::isfinite(v)) fail("'" + item + "': expected a number after '='");
    if (key == "group") {
      if (v < 1 || v != std::floor(v) || v > 64) fail("group must be a whole number of layers in 1..64");
      out.group = static_cast<int>(v);
    } else if (key == "energy") {
      if (!(v > 0 && v <= 1)) fail("energy must be in (0, 1]");
      out.energy = v;
    } else {
      fail("unknown option '" + key + "' (group, energy)");
    }
  }
  return out;
}

std::vector<XKVGroup> adjacent_groups(int layers, int size) {
  std::vector<XKVGroup> out;
  for (int first = 0; first < layers; first += size) out.push_back({first, std::min(size, layers - first), 0});
  return out;
}

double group_key_energy(const calibration::CalibrationStats& stats, const XKVGroup& g, int rank) {
  const auto& model = stats.meta.model;
  if (rank >= model.head_dim) return 1.0;
  if (g.size < 1 || g.size > stats.meta.max_group || g.first < 0 || g.first + g.size > model.layers)
    throw Error({}, "xkv",
                "layers " + std::to_string(g.first) + ".." + std::to_string(g.first + g.size - 1) +
                    " are not a group the stats measured (groups of 1.." + std::to_string(stats.meta.max_group) +
                    " adjacent layers)");
  const std::int64_t width = static_cast<std::int64_t>(g.size) * model.kv_heads * model.head_dim;
  const auto& error = stats.tensor("key_rank_error_g" + std::to_string(g.size),
                                   {model.layers - g.size + 1, width + 1});
  const std::int64_t r = std::min<std::int64_t>(width, static_cast<std::int64_t>(g.size) * model.kv_heads * rank);
  const double e = error.data[static_cast<std::size_t>(g.first * (width + 1) + r)];
  if (!std::isfinite(e) || e < 0) throw Error({}, "key_rank_error_g" + std::to_string(g.size), "is not finite and >= 0");
  return std::clamp(1.0 - e * e, 0.0, 1.0);
}

int rank_for_energy(const calibration::CalibrationStats& stats, const XKVGroup& g, double energy) {
  const int d = stats.meta.model.head_dim;
  for (int r = 1; r < d; ++r)
    if (group_key_energy(stats, g, r) >= energy) return r;
  return d;
}

void XKVPass::run(ir::Module& m, PassContext& ctx) {
  const auto& stats = require_calibration_stats(ctx, m, "xkv");
  const int L = m.model.layers, d = m.model.head_dim;
  int size = options_.group ? *options_.group
                            : (ctx.search.lowrank.group_layers > 1 ? ctx.search.lowrank.group_layers
                                                                    : std::min(kXKVDefaultGroup, stats.meta.max_group));
  size = std::min(size, L);
  if (size > stats.meta.max_group)
    throw Error({}, "search.lowrank.group_layers",
                "xkv: groups of " + std::to_string(size) + " layers, but the calibration stats measured groups of at "
                "most " + std::to_string(stats.meta.max_group) + " (kvc calibrate's max_group)");
  std::vector<XKVGroup> groups = adjacent_groups(L, size);
  const double target = options_.energy ? *options_.energy : ctx.search.lowrank.energy;

  // Energy of every group at every rank, once (ranks only rise with energy).
  std::vector<std::vector<double>> energy(groups.size());
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (int r = 0; r <= d; ++r) energy[g].push_back(r == 0 ? 0.0 : group_key_energy(stats, groups[g], r));
  auto rank_at = [&](std::size_t g, double level) {
    for (int r = 1; r < d; ++r)
      if (energy[g][r] >= level) return r;
    return d;
  };

  // The uniform settings of precision and retention to try.
  const std::vector<PrecisionPair> pairs = uniform_precisions_to_try(options_.precision, ctx.search.precision);
  std::vector<ir::RetentionPolicy> policies;
  const std::string& method = ctx.search.retention.method;
  if (method == "streamingllm") policies = {ir::RetentionPolicy::StreamingLLM};
  else if (method == "h2o") policies = {ir::RetentionPolicy::H2O};
  else if (method == "snapkv") policies = {ir::RetentionPolicy::SnapKV};
  else if (method == "cake") policies = {ir::RetentionPolicy::CAKE};
  else policies = {ir::RetentionPolicy::StreamingLLM, ir::RetentionPolicy::H2O, ir::RetentionPolicy::SnapKV};

  struct Best {
    ir::Module plan;
    UniformSetting setting;
    std::vector<XKVGroup> groups;
    double level = 0;
    double error = 0;
  };
  std::optional<Best> best;
  std::int64_t smallest = -1;

  auto consider = [&](const UniformSetting& setting) {
    const SettingPlans plans(m, setting, ctx.search);
    if (!plans.legal()) return;
    std::vector<XKVGroup> chosen = groups;
    double level = target;
    for (auto& g : chosen) g.rank = 1;
    const std::int64_t floor_bytes = total_bytes_at(plans, chosen);
    if (smallest < 0 || floor_bytes < smallest) smallest = floor_bytes;
    if (target > 0) {
      for (std::size_t g = 0; g < chosen.size(); ++g) chosen[g].rank = rank_at(g, target);
      if (total_bytes_at(plans, chosen) > m.budget_bytes) return;
    } else {
      if (floor_bytes > m.budget_bytes) return;
      auto fits_at = [&](double e) {
        for (std::size_t g = 0; g < chosen.size(); ++g) chosen[g].rank = rank_at(g, e);
        return total_bytes_at(plans, chosen) <= m.budget_bytes;
      };
      double lo = 0, hi = 1;
      if (fits_at(1.0)) {
        lo = 1;
      } else {
        for (int iteration = 0; iteration < 50; ++iteration) {
          const double mid = 0.5 * (lo + hi);
          (fits_at(mid) ? lo : hi) = mid;
        }
      }
      fits_at(lo);
      level = lo;
      // Raise single groups, the one holding the least energy first, while bytes remain.
      std::int64_t bytes = total_bytes_at(plans, chosen);
      for (bool raised = true; raised;) {
        raised = false;
        std::vector<std::size_t> order;
        for (std::size_t g = 0; g < chosen.size(); ++g)
          if (chosen[g].rank < d) order.push_back(g);
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
          return energy[a][chosen[a].rank] < energy[b][chosen[b].rank];
        });
        for (std::size_t g : order) {
          const std::int64_t more = plans.group_bytes(chosen[g], chosen[g].rank + 1) -
                                    plans.group_bytes(chosen[g], chosen[g].rank);
          if (bytes + more <= m.budget_bytes) {
            bytes += more;
            ++chosen[g].rank;
            raised = true;
            break;
          }
        }
      }
    }
    ir::Module plan = build_module(m, plans, chosen);
    const double error = predict_plan_error(plan, stats).total;
    if (!best || error < best->error) best = Best{std::move(plan), setting, chosen, level, error};
  };

  for (auto pair : pairs) {
    consider({pair, ir::RetentionPolicy::Full, 0});
    const SettingPlans probe(m, {pair, ir::RetentionPolicy::Full, 0}, ctx.search);
    const ir::LayerPlan low = probe.plan(0, 1, 0);
    for (auto policy : policies)
      for (std::int64_t keep : keep_levels(m, low, 16)) consider({pair, policy, keep});
  }
  if (!best)
    throw Error({}, "budget",
                "xkv: no plan fits the budget of " + std::to_string(m.budget_bytes) + " bytes (" +
                    format_bytes(m.budget_bytes) + ")" +
                    (target > 0 ? " at key energy " + std::to_string(target) : std::string()) +
                    "; the smallest it can reach (rank 1, fewest tokens, smallest precision) needs " +
                    std::to_string(smallest) + " bytes (" + format_bytes(smallest) + ")");
  ir::verify_or_throw(best->plan);
  m = std::move(best->plan);

  std::ostringstream note;
  note << "xkv: groups of " << size << " adjacent layers sharing a key basis; ";
  if (target > 0) note << "ranks for key energy " << target;
  else note << "ranks under the budget (common key energy " << best->level << ", then single groups raised)";
  note << "; per group (first layer:rank)";
  for (const auto& g : best->groups)
    note << " " << g.first << ":" << (g.rank >= d ? std::string("full") : std::to_string(g.rank));
  note << "; uniform " << describe_setting(best->setting) << " (the fitting setting with the least predicted error"
       << ", " << best->error << ")";
  ctx.notes.push_back(note.str());
}

}  // namespace kvc::passes
