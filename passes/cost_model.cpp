#include "passes/cost_model.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

#include "ir/layout.h"
#include "passes/uniform.h"
#include "support/diagnostics.h"

namespace kvc::passes {

namespace {

constexpr int kPolicies = 3;  // retention_output_error columns: StreamingLLM, H2O, SnapKV

int layers_of(const calibration::CalibrationStats& s) { return s.meta.model.layers; }

const calibration::StatsTensor* find_tensor(const calibration::CalibrationStats& s, const std::string& name);
int heads_of(const calibration::CalibrationStats& s) { return s.meta.model.kv_heads; }

void check_layer(const calibration::CalibrationStats& s, int layer) {
  if (layer < 0 || layer >= layers_of(s))
    throw Error("cost model: layer " + std::to_string(layer) + " is not in the stats' " +
                std::to_string(layers_of(s)) + " layers");
}

// Index of `side` in the stats' measured key (or value) formats; fp16 reads as the
// most precise measured KIVI format (the closest measured stand-in for "nothing lost").
int format_index(const calibration::CalibrationStats& s, const ir::SideFormat& side, bool key) {
  const auto& measured = key ? s.meta.key_formats : s.meta.value_formats;
  if (measured.empty()) throw Error("calibration stats measured no quantization formats");
  int best = -1;
  for (std::size_t i = 0; i < measured.size(); ++i) {
    if (side.bits < 16 && measured[i] == side) return static_cast<int>(i);
    const bool kivi = measured[i].quantizer == ir::Quantizer::Kivi && !measured[i].rotated;
    if (side.bits >= 16 && kivi && (best < 0 || measured[i].bits > measured[static_cast<std::size_t>(best)].bits))
      best = static_cast<int>(i);
  }
  if (best >= 0) return best;
  std::string all;
  for (const auto& f : measured) all += (all.empty() ? "" : ", ") + f.name();
  throw Error("cost model: " + std::string(key ? "key" : "value") + " format " + side.name() +
              " was not measured by `kvc calibrate` (" + (key ? "key" : "value") + " formats: " + all + ")");
}

std::int64_t key_formats_of(const calibration::CalibrationStats& s) {
  return static_cast<std::int64_t>(s.meta.key_formats.size());
}
std::int64_t value_formats_of(const calibration::CalibrationStats& s) {
  return static_cast<std::int64_t>(s.meta.value_formats.size());
}

int policy_column(ir::RetentionPolicy p) {
  switch (p) {
    case ir::RetentionPolicy::StreamingLLM: return 0;
    case ir::RetentionPolicy::H2O: return 1;
    case ir::RetentionPolicy::SnapKV:
    case ir::RetentionPolicy::CAKE: return 2;
    case ir::RetentionPolicy::Full: break;
  }
  return -1;
}

double head_mean(const calibration::StatsTensor& t, std::size_t layer_offset, std::size_t head_stride, int heads) {
  double sum = 0;
  for (int h = 0; h < heads; ++h) sum += t.data[layer_offset + h * head_stride];
  return heads > 0 ? sum / heads : 0.0;
}

}  // namespace

double predicted_quant_error(const calibration::CalibrationStats& s, int layer, const ir::PrecisionPair& pair) {
  check_layer(s, layer);
  if (!pair.compressed()) return 0.0;
  const std::int64_t L = layers_of(s), H = heads_of(s), FK = key_formats_of(s), FV = value_formats_of(s);
  const auto& t = s.tensor("quant_output_error_mean", {L, H, FK, FV});
  const int k = format_index(s, pair.key, true), v = format_index(s, pair.value, false);
  return head_mean(t, static_cast<std::size_t>(((layer * H) * FK + k) * FV + v), static_cast<std::size_t>(FK * FV), H);
}

double predicted_retention_error(const calibration::CalibrationStats& s, int layer, ir::RetentionPolicy policy,
                                 double keep_ratio) {
  check_layer(s, layer);
  const int column = policy_column(policy);
  if (column < 0 || keep_ratio >= 1.0) return 0.0;
  const auto& ratios = s.meta.keep_ratios;
  const std::int64_t L = layers_of(s), H = heads_of(s), R = static_cast<std::int64_t>(ratios.size());
  if (R == 0) throw Error("calibration stats measured no retention keep ratios");
  const auto& t = s.tensor("retention_output_error_mean", {L, H, kPolicies, R});
  auto at = [&](std::int64_t r) {
    return head_mean(t, static_cast<std::size_t>(((layer * H) * kPolicies + column) * R + r),
                     static_cast<std::size_t>(kPolicies * R), static_cast<int>(H));
  };
  if (keep_ratio <= ratios.front()) return at(0);
  for (std::int64_t r = 0; r + 1 < R; ++r) {
    if (keep_ratio <= ratios[r + 1]) {
      const double f = (keep_ratio - ratios[r]) / (ratios[r + 1] - ratios[r]);
      return (1 - f) * at(r) + f * at(r + 1);
    }
  }
  // Above the largest measured ratio the error falls linearly to 0 at keep-all.
  const double last = ratios.back();
  return last >= 1.0 ? 0.0 : at(R - 1) * (1.0 - keep_ratio) / (1.0 - last);
}

namespace {

// How much relative output error one unit of relative key error makes in `layer`:
// measured on quantized keys with the most precise values, so V adds ~nothing.
double key_to_output_gain(const calibration::CalibrationStats& s, int layer) {
  const std::int64_t L = layers_of(s), H = heads_of(s), FK = key_formats_of(s), FV = value_formats_of(s);
  const auto& out = s.tensor("quant_output_error_mean", {L, H, FK, FV});
  const auto& key = s.tensor("quant_key_error", {L, H, FK});
  const int v = format_index(s, ir::SideFormat{}, false);
  double sum = 0;
  int n = 0;
  for (std::int64_t k = 0; k < FK; ++k) {
    for (std::int64_t h = 0; h < H; ++h) {
      const double ke = key.data[(layer * H + h) * FK + k];
      if (ke <= 1e-9) continue;
      sum += out.data[((layer * H + h) * FK + k) * FV + v] / ke;
      ++n;
    }
  }
  return n > 0 ? sum / n : 1.0;
}

}  // namespace

double predicted_rank_error(const calibration::CalibrationStats& s, int layer, int rank) {
  check_layer(s, layer);
  const int head_dim = s.meta.model.head_dim;
  if (rank <= 0 || rank >= head_dim) return 0.0;
  const std::int64_t L = layers_of(s), H = heads_of(s), D = H * head_dim;
  const auto& t = s.tensor("key_rank_error_g1", {L, D + 1});
  const double key_error = t.data[layer * (D + 1) + std::min<std::int64_t>(D, rank * H)];
  return key_to_output_gain(s, layer) * key_error;
}

bool has_end_to_end_calibration(const calibration::CalibrationStats& s) {
  const std::int64_t P = kPolicies;
  const auto* quant = find_tensor(s, "e2e_quant_kl");
  const auto* retention = find_tensor(s, "e2e_retention_kl");
  const auto* ratios = find_tensor(s, "e2e_keep_ratios");
  const auto* rank = find_tensor(s, "e2e_rank_kl");
  const auto* q_retention = find_tensor(s, "e2e_retention_quantized_kl");
  const auto* q_ratios = find_tensor(s, "e2e_keep_ratios_quantized");
  if (!quant || !retention || !ratios || !rank || !q_retention || !q_ratios) return false;
  if (q_ratios->shape.size() != 1 || q_ratios->shape[0] < 1 || quant->shape.size() != 2 ||
      q_retention->shape != std::vector<std::int64_t>{quant->shape[0], P, q_ratios->shape[0]})
    throw Error("calibration stats: the e2e_* tensors (end-to-end error probes) have the wrong shapes; re-run kvc calibrate");
  auto shaped = [](const calibration::StatsTensor& t, std::size_t dims, std::int64_t last) {
    return t.shape.size() == dims && t.shape.back() == last && t.shape.front() > 0;
  };
  if (!shaped(*quant, 2, 3) || !shaped(*rank, 2, 2) || ratios->shape.size() != 1 || ratios->shape[0] < 1 ||
      retention->shape != std::vector<std::int64_t>{P, ratios->shape[0]})
    throw Error("calibration stats: the e2e_* tensors (end-to-end error probes) have the wrong shapes; re-run kvc calibrate");
  for (std::size_t i = 1; i < ratios->data.size(); ++i)
    if (!(ratios->data[i] > ratios->data[i - 1])) throw Error("calibration stats: e2e_keep_ratios are not ascending");
  // Optional (older stats lack them): the per-layer retention probes.
  const auto* layer_retention = find_tensor(s, "e2e_layer_retention_kl");
  const auto* layer_ratios = find_tensor(s, "e2e_layer_keep_ratios");
  if ((layer_retention == nullptr) != (layer_ratios == nullptr))
    throw Error("calibration stats: e2e_layer_retention_kl and e2e_layer_keep_ratios come together; re-run kvc calibrate");
  if (layer_retention) {
    if (layer_ratios->shape.size() != 1 || layer_ratios->shape[0] < 1 ||
        layer_retention->shape != std::vector<std::int64_t>{layers_of(s), P, layer_ratios->shape[0]})
      throw Error("calibration stats: e2e_layer_retention_kl has the wrong shape; re-run kvc calibrate");
    for (std::size_t i = 1; i < layer_ratios->data.size(); ++i)
      if (!(layer_ratios->data[i] > layer_ratios->data[i - 1]))
        throw Error("calibration stats: e2e_layer_keep_ratios are not ascending");
  }
  return true;
}

double layer_sensitivity(const calibration::CalibrationStats& s, int layer) {
  double sum = 0;
  int n = 0;
  for (const ir::SideFormat& k : s.meta.key_formats)
    for (const ir::SideFormat& v : s.meta.value_formats) {
      sum += predicted_quant_error(s, layer, ir::PrecisionPair{k, v});
      ++n;
    }
  return n > 0 ? sum / n : 0.0;
}

namespace {

// The stats' keep ratio whose share of dropped tokens equals the plan's. The stats
// drop (1 - r) of the `prompt` tokens and keep every `decode` token, so they drop
// (1 - r) * prompt / (prompt + decode) of what the last decode query sees; a plan
// keeping `kept` of `context` tokens drops (context - kept) / context of them.
double stats_keep_ratio(const calibration::CalibrationStats& s, std::int64_t kept, std::int64_t context) {
  const double dropped = static_cast<double>(context - kept) / static_cast<double>(context);
  const double prompt = s.meta.prompt, seen = s.meta.prompt + s.meta.decode;
  if (prompt <= 0) return 1.0 - dropped;
  return std::max(0.0, 1.0 - dropped * seen / prompt);
}

// ---------------------------------------------------------------------------
// End-to-end calibration (the e2e_* tensors, see cost_model.h).

const calibration::StatsTensor* find_tensor(const calibration::CalibrationStats& s, const std::string& name) {
  auto it = s.tensors.find(name);
  return it == s.tensors.end() ? nullptr : &it->second;
}

// Linear interpolation of ys over ascending xs; 0 at x >= 1 (nothing dropped) and,
// below the smallest x, the first segment's line continued (more dropped, more error).
double interpolate_drop_curve(const std::vector<double>& xs, const std::vector<double>& ys, double x) {
  if (x >= 1.0 || xs.empty()) return 0.0;
  std::vector<double> px = xs, py = ys;
  if (px.back() < 1.0) {
    px.push_back(1.0);
    py.push_back(0.0);
  }
  if (px.size() == 1) return py.front();
  auto line = [&](std::size_t i, double at) {
    const double f = (at - px[i]) / (px[i + 1] - px[i]);
    return (1 - f) * py[i] + f * py[i + 1];
  };
  // Below the smallest probe nothing was measured: grow as 1/x (keeping a handful of
  // tokens is far worse than a straight line says), so no search trusts that region.
  if (x <= px.front()) return x > 0 ? py.front() * px.front() / x : py.front() * 1e6;
  for (std::size_t i = 0; i + 1 < px.size(); ++i)
    if (x <= px[i + 1]) return line(i, x);
  return 0.0;
}

// The pair of row `r` of e2e_quant_kl (sides as ir::side_code numbers).
std::optional<ir::PrecisionPair> probe_pair(const calibration::StatsTensor& t, std::int64_t r) {
  const auto k = ir::side_from_code(static_cast<int>(t.data[r * 3]));
  const auto v = ir::side_from_code(static_cast<int>(t.data[r * 3 + 1]));
  if (!k || !v) return std::nullopt;
  return ir::PrecisionPair{*k, *v};
}

double e2e_quant_kl(const calibration::CalibrationStats& s, const calibration::StatsTensor& t,
                    const ir::PrecisionPair& pair) {
  const std::int64_t rows = t.shape.at(0);
  double log_ratio = 0;
  int n = 0;
  auto proxy_sum = [&](const ir::PrecisionPair& q) {
    double sum = 0;
    for (int l = 0; l < layers_of(s); ++l) sum += std::pow(predicted_quant_error(s, l, q), 2);
    return sum;
  };
  for (std::int64_t r = 0; r < rows; ++r) {
    const auto probed = probe_pair(t, r);
    if (!probed) continue;
    if (*probed == pair) return t.data[r * 3 + 2];
    const double p = proxy_sum(*probed);
    if (p > 0 && t.data[r * 3 + 2] > 0) {
      log_ratio += std::log(t.data[r * 3 + 2] / p);
      ++n;
    }
  }
  // An unprobed pair: its proxy scaled by the probed pairs' geometric-mean KL/proxy.
  return n > 0 ? std::exp(log_ratio / n) * proxy_sum(pair) : proxy_sum(pair);
}

// The retention curve of `column` (policy) as a kept-fraction -> KL line. fp16 layers
// (no tail) read e2e_retention_kl; quantized or low-rank layers (block eviction above
// an fp16 tail) read the row of e2e_retention_quantized_kl measured at their own
// precision pair (the KL eviction adds on top of that pair), or, for a pair that was
// not probed (and fp16 low-rank layers), the worst probed row at that point.
double e2e_retention_kl(const calibration::CalibrationStats& s, bool quantized, const ir::PrecisionPair& pair,
                        int column, double kept_ratio) {
  const auto& t = *find_tensor(s, quantized ? "e2e_retention_quantized_kl" : "e2e_retention_kl");
  const auto& ratios_t = *find_tensor(s, quantized ? "e2e_keep_ratios_quantized" : "e2e_keep_ratios");
  const std::int64_t R = ratios_t.shape.at(0);
  const std::vector<double> xs(ratios_t.data.begin(), ratios_t.data.end());
  auto curve = [&](std::int64_t row) {
    std::vector<double> ys(R);
    for (std::int64_t r = 0; r < R; ++r) ys[r] = t.data[(row * kPolicies + column) * R + r];
    return interpolate_drop_curve(xs, ys, kept_ratio);
  };
  if (!quantized) return curve(0);
  const auto& pairs = *find_tensor(s, "e2e_quant_kl");
  const std::int64_t rows = pairs.shape.at(0);
  // NaN rows were not measured (format families' pairs): they read the worst measured row.
  auto measured = [&](std::int64_t row) { return !std::isnan(t.data[(row * kPolicies + column) * R]); };
  for (std::int64_t q = 0; q < rows; ++q)
    if (probe_pair(pairs, q) == pair && measured(q)) return curve(q);
  double worst = 0;
  for (std::int64_t q = 0; q < rows; ++q)
    if (measured(q)) worst = std::max(worst, curve(q));
  return worst;
}

double e2e_rank_kl(const calibration::CalibrationStats& s, const calibration::StatsTensor& t, int rank) {
  const int d = s.meta.model.head_dim;
  std::vector<double> xs, ys;
  for (std::int64_t r = 0; r < t.shape.at(0); ++r) {
    xs.push_back(t.data[r * 2] / d);
    ys.push_back(t.data[r * 2 + 1]);
  }
  return interpolate_drop_curve(xs, ys, static_cast<double>(rank) / d);
}

// The KL ceiling of the saturation transform: 1.25 x the largest KL any probe measured.
double e2e_kl_ceiling(const calibration::CalibrationStats& s) {
  double top = 0;
  const auto& quant = *find_tensor(s, "e2e_quant_kl");
  for (std::int64_t r = 0; r < quant.shape.at(0); ++r) top = std::max<double>(top, quant.data[r * 3 + 2]);
  for (float v : find_tensor(s, "e2e_retention_kl")->data) top = std::max<double>(top, v);
  const auto& q = *find_tensor(s, "e2e_retention_quantized_kl");
  const std::int64_t per_pair = q.shape.at(1) * q.shape.at(2);
  for (std::int64_t r = 0; r < q.shape.at(0); ++r)
    for (std::int64_t i = 0; i < per_pair; ++i)
      if (!std::isnan(q.data[r * per_pair + i])) top = std::max<double>(top, q.data[r * per_pair + i] + quant.data[r * 3 + 2]);
  const auto& rank = *find_tensor(s, "e2e_rank_kl");
  for (std::int64_t r = 0; r < rank.shape.at(0); ++r) top = std::max<double>(top, rank.data[r * 2 + 1]);
  return top > 0 ? 1.25 * top : 1.0;
}

// Measured KL -> additive damage: u(KL) = -C ln(1 - KL / C) (see cost_model.h).
double unsaturate(double kl, double ceiling) {
  return -ceiling * std::log1p(-std::clamp(kl, 0.0, 0.999 * ceiling) / ceiling);
}

// Each layer's share of weights `w` (w_l / sum w); equal shares when the sum is 0.
std::vector<double> normalized_shares(std::vector<double> w) {
  double sum = 0;
  for (double x : w) sum += x;
  for (double& x : w) x = sum > 0 ? x / sum : 1.0 / static_cast<double>(w.size());
  return w;
}

// Every layer's share of a uniform eviction's damage at kept fraction `kept_ratio`
// with policy `column`: its single-layer probe's damage over the sum of all layers'
// (e2e_layer_retention_kl), or 1 / layers each when the stats carry no per-layer probes.
std::vector<double> retention_layer_shares(const calibration::CalibrationStats& s, int column, double kept_ratio,
                                           double ceiling) {
  const auto* t = find_tensor(s, "e2e_layer_retention_kl");
  std::vector<double> damage(static_cast<std::size_t>(layers_of(s)), 0.0);
  if (!t) return normalized_shares(std::move(damage));
  const auto& ratios_t = *find_tensor(s, "e2e_layer_keep_ratios");
  const std::int64_t R = ratios_t.shape.at(0);
  const std::vector<double> xs(ratios_t.data.begin(), ratios_t.data.end());
  std::vector<double> ys(static_cast<std::size_t>(R));
  for (int l = 0; l < layers_of(s); ++l) {
    for (std::int64_t r = 0; r < R; ++r) ys[r] = t->data[(static_cast<std::int64_t>(l) * kPolicies + column) * R + r];
    damage[l] = unsaturate(interpolate_drop_curve(xs, ys, kept_ratio), ceiling);
  }
  return normalized_shares(std::move(damage));
}

// The end-to-end prices of one stats object, memoised for one search: each price
// below loops over every layer or probe row, and a search asks for the same few
// (pair, policy, kept fraction) settings once per candidate per layer (an 80-layer
// joint search asks ~700k times).
class EndToEndPrices {
 public:
  explicit EndToEndPrices(const calibration::CalibrationStats& s)
      : s_(s), ceiling_(e2e_kl_ceiling(s)), quant_(*find_tensor(s, "e2e_quant_kl")), rank_(*find_tensor(s, "e2e_rank_kl")) {}

  double ceiling() const { return ceiling_; }
  double quant_kl(const ir::PrecisionPair& p) {
    return memo(quant_kl_, {ir::side_code(p.key), ir::side_code(p.value), 0, 0.0}, [&] { return e2e_quant_kl(s_, quant_, p); });
  }
  double quant_share(int layer, const ir::PrecisionPair& p) {
    auto it = quant_share_.find(p);
    if (it == quant_share_.end()) {
      // Each layer's share of the pair's uniform KL: its squared proxy error (the
      // per-layer stats) over the sum of all layers'.
      std::vector<double> squared(static_cast<std::size_t>(layers_of(s_)));
      for (int l = 0; l < layers_of(s_); ++l) squared[l] = std::pow(predicted_quant_error(s_, l, p), 2);
      it = quant_share_.emplace(p, normalized_shares(std::move(squared))).first;
    }
    return it->second[static_cast<std::size_t>(layer)];
  }
  double retention_added(bool blocked, const ir::PrecisionPair& p, int column, double ratio) {
    const ir::PrecisionPair read = blocked ? p : ir::PrecisionPair{};
    return memo(added_, {ir::side_code(read.key), ir::side_code(read.value), column + (blocked ? kPolicies : 0), ratio},
                [&] { return e2e_retention_kl(s_, blocked, read, column, ratio); });
  }
  double retention_share(int layer, int column, double ratio) {
    auto it = retention_share_.find({column, ratio});
    if (it == retention_share_.end()) {
      it = retention_share_.emplace(std::make_pair(column, ratio), retention_layer_shares(s_, column, ratio, ceiling_))
               .first;
    }
    return it->second[static_cast<std::size_t>(layer)];
  }
  double rank_kl(int rank) {
    return memo(rank_kl_, {rank, 0, 0, 0.0}, [&] { return e2e_rank_kl(s_, rank_, rank); });
  }

 private:
  using Key = std::tuple<int, int, int, double>;
  template <typename F>
  static double memo(std::map<Key, double>& table, const Key& key, F compute) {
    auto it = table.find(key);
    if (it == table.end()) it = table.emplace(key, compute()).first;
    return it->second;
  }

  const calibration::CalibrationStats& s_;
  double ceiling_;
  const calibration::StatsTensor& quant_;
  const calibration::StatsTensor& rank_;
  std::map<Key, double> quant_kl_, added_, rank_kl_;
  std::map<ir::PrecisionPair, std::vector<double>> quant_share_;
  std::map<std::pair<int, double>, std::vector<double>> retention_share_;
};

// The precision pair a layer plan stores (the inverse of make_layer_plan's formats).
ir::PrecisionPair plan_pair(const ir::LayerPlan& p, int head_dim) {
  return {ir::key_side(p.key, ir::key_dims(p, head_dim)), ir::value_side(p.value, head_dim)};
}

// `prices` is null when the stats carry no end-to-end probes (the proxy model).
LayerErrorBreakdown layer_error(const ir::Module& m, const calibration::CalibrationStats& s, int layer,
                                const ir::LayerPlan& p, const ErrorModel& model, EndToEndPrices* prices) {
  LayerErrorBreakdown b;
  const ir::PrecisionPair pair = plan_pair(p, m.model.head_dim);
  const bool retains = p.retention.policy != ir::RetentionPolicy::Full && m.workload.context > 0;
  const bool low_rank = p.lowrank.sharing != ir::BasisSharing::None;
  const std::int64_t kept = retains ? ir::kept_tokens(p, m.workload.context) : m.workload.context;
  const double stats_ratio = retains ? stats_keep_ratio(s, kept, m.workload.context) : 1.0;
  if (prices) {
    // Damage units: the uniform setting's measured KL, unsaturated, times this layer's share of it.
    const double ceiling = prices->ceiling();
    const double quant_kl = pair.compressed() ? prices->quant_kl(pair) : 0.0;
    if (pair.compressed()) b.quant = unsaturate(quant_kl, ceiling) * prices->quant_share(layer, pair);
    if (retains) {
      const double ratio = static_cast<double>(kept) / static_cast<double>(m.workload.context);
      // A layer with an fp16 tail and token blocks (quantized or low-rank) evicts whole blocks.
      const bool blocked = ir::tail_capacity(p) > 0;
      const int column = policy_column(p.retention.policy);
      // What eviction adds on top of the layer's precision, measured with that precision.
      const double added = prices->retention_added(blocked, pair, column, ratio);
      b.retention = (unsaturate(quant_kl + added, ceiling) - unsaturate(quant_kl, ceiling)) *
                    prices->retention_share(layer, column, ratio);
    }
    if (low_rank) b.rank = unsaturate(prices->rank_kl(p.lowrank.rank), ceiling) / layers_of(s);
    b.weight = model.weight(layer);
    b.total = b.weight * (b.quant + b.retention + b.rank);
    return b;
  }
  b.quant = predicted_quant_error(s, layer, pair);
  if (retains) b.retention = predicted_retention_error(s, layer, p.retention.policy, stats_ratio);
  if (low_rank) b.rank = predicted_rank_error(s, layer, p.lowrank.rank);
  b.weight = model.weight(layer);
  b.total = b.weight * (b.quant * b.quant + b.retention * b.retention + b.rank * b.rank);
  return b;
}

}  // namespace

PlanErrorPrediction predict_plan_error(const ir::Module& plan, const calibration::CalibrationStats& stats,
                                       const ErrorModel& model) {
  calibration::check_stats_match_model(stats, plan.model, "calibration stats");
  PlanErrorPrediction out;
  std::optional<EndToEndPrices> prices;
  if (has_end_to_end_calibration(stats)) prices.emplace(stats);
  for (std::size_t i = 0; i < plan.layers.size(); ++i) {
    out.layers.push_back(layer_error(plan, stats, static_cast<int>(i), plan.layers[i], model, prices ? &*prices : nullptr));
    out.total += out.layers.back().total;
  }
  return out;
}

std::string describe(const LayerChoice& c) {
  std::string s = c.pair.name();
  if (c.policy != ir::RetentionPolicy::Full) {
    s += ' ';
    s += ir::to_string(c.policy);
    s += " keep ";
    s += std::to_string(c.keep);
  }
  if (c.rank > 0) {
    s += " rank ";
    s += std::to_string(c.rank);
  }
  return s;
}

ir::LayerPlan make_layer_plan(const ir::Module& m, int layer, const LayerChoice& c,
                              const frontend::SearchOptions& options) {
  // Only this layer: copying every layer per candidate would make an 80-layer search quadratic.
  ir::Module one;
  one.model = m.model;
  one.workload = m.workload;
  one.layers = {m.layers.at(layer)};
  apply_uniform_precision(one, c.pair, options.precision);
  ir::LayerPlan p = one.layers.front();
  p.index = layer;
  if (c.rank > 0) {
    p.lowrank.rank = c.rank;
    p.lowrank.sharing = ir::BasisSharing::PerLayer;
    p.lowrank.source =
        options.lowrank.basis == "calibrated" ? ir::BasisSource::Calibrated : ir::BasisSource::Prefill;
    // A low-rank key is a compressed key: it needs the fp16 tail like quantized ones.
    if (p.residual == 0) p.residual = options.precision.residual;
  }
  if (c.policy != ir::RetentionPolicy::Full) p.retention = retention_for(c.policy, c.keep, options.retention);
  return p;
}

std::vector<ir::PrecisionPair> precision_candidates(const frontend::PrecisionSearch& options) {
  std::vector<ir::PrecisionPair> out;
  if (options.candidates.empty() && !options.formats.empty()) {
    for (const std::string& key_family : options.formats)
      for (const std::string& value_family : options.formats)
        for (int kb : {8, 4, 3, 2})
          for (int vb : {8, 4, 3, 2}) {
            const auto key = ir::family_side(key_family, kb), value = ir::family_side(value_family, vb);
            if (key && value) out.push_back({*key, *value});
          }
    return out;
  }
  if (options.candidates.empty()) {
    for (auto [k, v] : std::initializer_list<std::pair<int, int>>{{8, 8}, {8, 4}, {4, 8}, {4, 4}, {4, 2}, {2, 4}, {2, 2}})
      out.push_back(ir::kivi_pair(k, v));
    return out;
  }
  for (const auto& c : options.candidates)
    if (auto p = ir::parse_precision_pair(c)) out.push_back(*p);
  return out;
}

std::vector<ir::PrecisionPair> uniform_precisions_to_try(const std::optional<ir::PrecisionPair>& fixed,
                                                         const frontend::PrecisionSearch& options) {
  if (fixed) return {*fixed};
  std::vector<ir::PrecisionPair> pairs{ir::PrecisionPair{}};
  for (auto p : precision_candidates(options))
    if (std::find(pairs.begin(), pairs.end(), p) == pairs.end()) pairs.push_back(p);
  return pairs;
}

std::vector<std::int64_t> keep_levels(const ir::Module& m, const ir::LayerPlan& plan_template, int max_levels) {
  const std::int64_t context = m.workload.context;
  const std::int64_t tail = std::max(1, ir::tail_capacity(plan_template));
  const std::int64_t block = std::max(1, ir::token_block(plan_template));
  std::vector<std::int64_t> out;
  if (context < tail) return out;
  // Budgets tail + j * block (the bytes change exactly there), last one context - 1.
  const std::int64_t steps = (context - 1 - tail) / block;
  const std::int64_t stride = std::max<std::int64_t>(1, (steps + max_levels - 1) / std::max(1, max_levels));
  for (std::int64_t j = 0; j <= steps; j += stride) out.push_back(tail + j * block);
  if (out.empty() || out.back() < context - 1) out.push_back(context - 1);
  // A legal budget also holds the StreamingLLM/H2O sink (the window shrinks to fit).
  out.erase(std::remove_if(out.begin(), out.end(), [&](std::int64_t k) { return k < 1 || k > context; }), out.end());
  return out;
}

namespace {

// What decides whether one precision pair's entries can all be beaten by another's
// in one layer (see undominated_pairs).
struct PairProfile {
  ir::PrecisionPair pair;
  int block = 0, tail = 0;      // token block and tail capacity: the same kept tokens cost alike
  std::vector<std::int64_t> block_bytes;  // at full rank, then at each candidate rank (takes_rank)
  double error = 0;             // the layer's error keeping everything
  double kl = 0;                // end-to-end: the pair's uniform KL
  std::vector<double> added;    // end-to-end: eviction's added KL at every probed point
  bool takes_rank = false;      // low-rank keys need KIVI's unrotated per-channel codes
};

bool dominates(const PairProfile& a, const PairProfile& b) {
  if (a.block != b.block || a.tail != b.tail || (b.takes_rank && !a.takes_rank)) return false;
  if (a.error > b.error || a.kl > b.kl) return false;
  // Block bytes at every rank b is tried at (low rank shrinks only the key section).
  for (std::size_t i = 0; i < b.block_bytes.size(); ++i)
    if (a.block_bytes[i] > b.block_bytes[i]) return false;
  for (std::size_t i = 0; i < a.added.size(); ++i)
    if (a.added[i] > b.added[i]) return false;
  return true;
}

// The pairs of `pairs` whose entries a search may need in `layer`. A pair P makes
// every entry of a pair Q redundant when, in this layer, P has the same token block
// and tail (so any kept-token count costs the same around the blocks), no larger
// blocks, no larger error keeping everything, and - with end-to-end prices - no
// larger uniform KL and no larger eviction curve at any probed point (and, for
// pairs that take a low rank, no larger blocks at any candidate rank): eviction's
// damage u(KL + added) - u(KL) grows with both (u is convex), so P's entry at every
// (policy, keep, rank) is no larger in bytes or error than Q's. Dropping Q then
// leaves every layer's Pareto frontier, and so the exact optimum, unchanged; it keeps
// tables of many formats as small as KIVI's alone. Pairs a head cannot store are dropped.
std::vector<ir::PrecisionPair> undominated_pairs(const ir::Module& m, const calibration::CalibrationStats& s, int layer,
                                                 const std::vector<ir::PrecisionPair>& pairs,
                                                 const std::vector<int>& ranks,
                                                 const frontend::SearchOptions& options, const ErrorModel& model,
                                                 EndToEndPrices* prices) {
  const int d = m.model.head_dim;
  std::vector<double> knots;
  if (prices)
    if (const auto* t = find_tensor(s, "e2e_keep_ratios_quantized")) knots.assign(t->data.begin(), t->data.end());
  std::vector<PairProfile> profiles;
  for (const ir::PrecisionPair& pair : pairs) {
    if (!ir::side_problem(pair.key, d).empty() || !ir::side_problem(pair.value, d).empty()) continue;
    PairProfile p;
    p.pair = pair;
    const ir::LayerPlan plan = make_layer_plan(m, layer, LayerChoice{pair}, options);
    p.block = ir::token_block(plan);
    p.tail = ir::tail_capacity(plan);
    p.error = layer_error(m, s, layer, plan, model, prices).total;
    p.takes_rank = pair.key.quantizer == ir::Quantizer::Kivi && !pair.key.rotated;
    for (int rank : ranks) {
      if (rank > 0 && !p.takes_rank) break;
      ir::LayerPlan ranked = plan;
      ranked.lowrank.rank = rank;
      p.block_bytes.push_back(ir::block_bytes(ranked, d));
    }
    if (prices && pair.compressed()) {
      p.kl = prices->quant_kl(pair);
      for (int column = 0; column < kPolicies; ++column)
        for (double x : knots) p.added.push_back(prices->retention_added(true, pair, column, x));
    }
    profiles.push_back(std::move(p));
  }
  std::vector<ir::PrecisionPair> out;
  for (std::size_t i = 0; i < profiles.size(); ++i) {
    bool dominated = false;
    for (std::size_t j = 0; j < profiles.size() && !dominated; ++j) {
      if (i == j || !dominates(profiles[j], profiles[i])) continue;
      // Of two pairs that dominate each other (equal in every respect) the first stays.
      dominated = !dominates(profiles[i], profiles[j]) || j < i;
    }
    if (!dominated) out.push_back(profiles[i].pair);
  }
  return out;
}

std::vector<int> tabulated_ranks(const ir::Module& m, const CandidateSpace& space) {
  std::vector<int> ranks = {0};
  for (int r : space.ranks)
    if (r > 0 && r < m.model.head_dim) ranks.push_back(r);
  return ranks;
}

}  // namespace

std::vector<std::vector<ir::PrecisionPair>> prune_pairs(const ir::Module& m, const calibration::CalibrationStats& s,
                                                        const frontend::SearchOptions& options,
                                                        const CandidateSpace& space, const ErrorModel& model) {
  calibration::check_stats_match_model(s, m.model, "calibration stats");
  std::optional<EndToEndPrices> prices;
  if (has_end_to_end_calibration(s)) prices.emplace(s);
  const std::vector<int> ranks = tabulated_ranks(m, space);
  std::vector<std::vector<ir::PrecisionPair>> out;
  for (int l = 0; l < static_cast<int>(m.layers.size()); ++l)
    out.push_back(undominated_pairs(m, s, l, space.pairs, ranks, options, model, prices ? &*prices : nullptr));
  return out;
}

std::vector<std::vector<CostEntry>> build_cost_tables(const ir::Module& m, const calibration::CalibrationStats& s,
                                                      const frontend::SearchOptions& options,
                                                      const CandidateSpace& space, const ErrorModel& model) {
  calibration::check_stats_match_model(s, m.model, "calibration stats");
  std::vector<std::vector<CostEntry>> tables(m.layers.size());
  std::optional<EndToEndPrices> prices;
  if (has_end_to_end_calibration(s)) prices.emplace(s);
  ir::Module scratch = m;
  std::vector<ir::RetentionPolicy> policies = {ir::RetentionPolicy::Full};
  for (auto p : space.policies)
    if (p != ir::RetentionPolicy::Full) policies.push_back(p);
  const std::vector<int> ranks = tabulated_ranks(m, space);
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    const int layer = static_cast<int>(l);
    const ir::LayerPlan original = scratch.layers[l];
    const std::vector<ir::PrecisionPair> pairs =
        space.layer_pairs.empty()
            ? undominated_pairs(m, s, layer, space.pairs, ranks, options, model, prices ? &*prices : nullptr)
            : space.layer_pairs.at(l);
    for (const ir::PrecisionPair& pair : pairs) {
      for (int rank : ranks) {
        // Low-rank keys are coefficients in a basis: only KIVI's per-channel codes store them.
        if (rank > 0 && (pair.key.quantizer != ir::Quantizer::Kivi || pair.key.rotated)) continue;
        for (auto policy : policies) {
          std::vector<std::int64_t> keeps = {0};
          if (policy != ir::RetentionPolicy::Full) keeps = space.keeps;
          for (std::int64_t keep : keeps) {
            LayerChoice c{pair, policy, keep, rank};
            ir::LayerPlan p = make_layer_plan(m, layer, c, options);
            if (policy != ir::RetentionPolicy::Full && keep < std::max(1, ir::tail_capacity(p))) continue;
            scratch.layers[l] = p;
            CostEntry e;
            e.choice = c;
            e.bytes = ir::layer_bytes(scratch, layer).total();
            e.error = layer_error(scratch, s, layer, p, model, prices ? &*prices : nullptr).total;
            tables[l].push_back(e);
          }
        }
      }
    }
    scratch.layers[l] = original;
  }
  return tables;
}

std::vector<CostEntry> pareto_frontier(std::vector<CostEntry> entries) {
  std::stable_sort(entries.begin(), entries.end(), [](const CostEntry& a, const CostEntry& b) {
    return a.bytes != b.bytes ? a.bytes < b.bytes : a.error < b.error;
  });
  std::vector<CostEntry> out;
  for (const auto& e : entries)
    if (out.empty() || e.error < out.back().error) out.push_back(e);
  return out;
}

void apply_choices(ir::Module& m, const std::vector<LayerChoice>& choices, const frontend::SearchOptions& options) {
  if (choices.size() != m.layers.size())
    throw Error("apply_choices: " + std::to_string(choices.size()) + " choices for " +
                std::to_string(m.layers.size()) + " layers");
  std::vector<ir::LayerPlan> planned;
  for (std::size_t l = 0; l < choices.size(); ++l)
    planned.push_back(make_layer_plan(m, static_cast<int>(l), choices[l], options));
  m.layers = std::move(planned);
}

}  // namespace kvc::passes
