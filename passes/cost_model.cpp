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

// Index of `bits` in the stats' measured bits; 16 reads as the most precise
// measured width (its error is the closest measured stand-in for "nothing lost").
int bits_index(const calibration::CalibrationStats& s, int bits) {
  const auto& measured = s.meta.bits;
  if (measured.empty()) throw Error("calibration stats measured no quantization bits");
  if (bits >= 16) return static_cast<int>(std::max_element(measured.begin(), measured.end()) - measured.begin());
  for (std::size_t i = 0; i < measured.size(); ++i)
    if (measured[i] == bits) return static_cast<int>(i);
  throw Error("cost model: " + std::to_string(bits) + "-bit quantization was not measured by `kvc calibrate` (bits: " +
              [&] {
                std::string all;
                for (int b : measured) all += (all.empty() ? "" : ",") + std::to_string(b);
                return all;
              }() +
              ")");
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

double predicted_quant_error(const calibration::CalibrationStats& s, int layer, int key_bits, int value_bits) {
  check_layer(s, layer);
  if (key_bits >= 16 && value_bits >= 16) return 0.0;
  const std::int64_t L = layers_of(s), H = heads_of(s), B = static_cast<std::int64_t>(s.meta.bits.size());
  const auto& t = s.tensor("quant_output_error_mean", {L, H, B, B});
  const int k = bits_index(s, key_bits), v = bits_index(s, value_bits);
  return head_mean(t, static_cast<std::size_t>(((layer * H) * B + k) * B + v), static_cast<std::size_t>(B * B), H);
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
  const std::int64_t L = layers_of(s), H = heads_of(s), B = static_cast<std::int64_t>(s.meta.bits.size());
  const auto& out = s.tensor("quant_output_error_mean", {L, H, B, B});
  const auto& key = s.tensor("quant_key_error", {L, H, B});
  const int v = bits_index(s, 16);
  double sum = 0;
  int n = 0;
  for (std::int64_t k = 0; k < B; ++k) {
    for (std::int64_t h = 0; h < H; ++h) {
      const double ke = key.data[(layer * H + h) * B + k];
      if (ke <= 1e-9) continue;
      sum += out.data[((layer * H + h) * B + k) * B + v] / ke;
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
  for (int k : s.meta.bits)
    for (int v : s.meta.bits) {
      sum += predicted_quant_error(s, layer, k, v);
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

double e2e_quant_kl(const calibration::CalibrationStats& s, const calibration::StatsTensor& t, int key_bits,
                    int value_bits) {
  const std::int64_t rows = t.shape.at(0);
  double log_ratio = 0;
  int n = 0;
  auto proxy_sum = [&](int k, int v) {
    double sum = 0;
    for (int l = 0; l < layers_of(s); ++l) sum += std::pow(predicted_quant_error(s, l, k, v), 2);
    return sum;
  };
  for (std::int64_t r = 0; r < rows; ++r) {
    const int k = static_cast<int>(t.data[r * 3]), v = static_cast<int>(t.data[r * 3 + 1]);
    if (k == key_bits && v == value_bits) return t.data[r * 3 + 2];
    const double p = proxy_sum(k, v);
    if (p > 0 && t.data[r * 3 + 2] > 0) {
      log_ratio += std::log(t.data[r * 3 + 2] / p);
      ++n;
    }
  }
  // An unprobed pair: its proxy scaled by the probed pairs' geometric-mean KL/proxy.
  return n > 0 ? std::exp(log_ratio / n) * proxy_sum(key_bits, value_bits) : proxy_sum(key_bits, value_bits);
}

// The retention curve of `column` (policy) as a kept-fraction -> KL line. fp16 layers
// (no tail) read e2e_retention_kl; quantized or low-rank layers (block eviction above
// an fp16 tail) read the row of e2e_retention_quantized_kl measured at their own
// precision pair (the KL eviction adds on top of that pair), or, for a pair that was
// not probed (and fp16 low-rank layers), the worst probed row at that point.
double e2e_retention_kl(const calibration::CalibrationStats& s, bool quantized, int key_bits, int value_bits,
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
  for (std::int64_t q = 0; q < rows; ++q)
    if (static_cast<int>(pairs.data[q * 3]) == key_bits && static_cast<int>(pairs.data[q * 3 + 1]) == value_bits)
      return curve(q);
  double worst = 0;
  for (std::int64_t q = 0; q < rows; ++q) worst = std::max(worst, curve(q));
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
    for (std::int64_t i = 0; i < per_pair; ++i) top = std::max<double>(top, q.data[r * per_pair + i] + quant.data[r * 3 + 2]);
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
  double quant_kl(int k, int v) {
    return memo(quant_kl_, {k, v, 0, 0.0}, [&] { return e2e_quant_kl(s_, quant_, k, v); });
  }
  double quant_share(int layer, int k, int v) {
    auto it = quant_share_.find({k, v});
    if (it == quant_share_.end()) {
      // Each layer's share of the pair's uniform KL: its squared proxy error (the
      // per-layer stats) over the sum of all layers'.
      std::vector<double> squared(static_cast<std::size_t>(layers_of(s_)));
      for (int l = 0; l < layers_of(s_); ++l) squared[l] = std::pow(predicted_quant_error(s_, l, k, v), 2);
      it = quant_share_.emplace(std::make_pair(k, v), normalized_shares(std::move(squared))).first;
    }
    return it->second[static_cast<std::size_t>(layer)];
  }
  double retention_added(bool blocked, int k, int v, int column, double ratio) {
    return memo(added_, {blocked ? k : 16, blocked ? v : 16, column + (blocked ? kPolicies : 0), ratio},
                [&] { return e2e_retention_kl(s_, blocked, k, v, column, ratio); });
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
  std::map<std::pair<int, int>, std::vector<double>> quant_share_;
  std::map<std::pair<int, double>, std::vector<double>> retention_share_;
};

// `prices` is null when the stats carry no end-to-end probes (the proxy model).
LayerErrorBreakdown layer_error(const ir::Module& m, const calibration::CalibrationStats& s, int layer,
                                const ir::LayerPlan& p, const ErrorModel& model, EndToEndPrices* prices) {
  LayerErrorBreakdown b;
  const bool retains = p.retention.policy != ir::RetentionPolicy::Full && m.workload.context > 0;
  const bool low_rank = p.lowrank.sharing != ir::BasisSharing::None;
  const std::int64_t kept = retains ? ir::kept_tokens(p, m.workload.context) : m.workload.context;
  const double stats_ratio = retains ? stats_keep_ratio(s, kept, m.workload.context) : 1.0;
  if (prices) {
    // Damage units: the uniform setting's measured KL, unsaturated, times this layer's share of it.
    const double ceiling = prices->ceiling();
    const bool quantized = p.key.bits < 16 || p.value.bits < 16;
    const double quant_kl = quantized ? prices->quant_kl(p.key.bits, p.value.bits) : 0.0;
    if (quantized) b.quant = unsaturate(quant_kl, ceiling) * prices->quant_share(layer, p.key.bits, p.value.bits);
    if (retains) {
      const double ratio = static_cast<double>(kept) / static_cast<double>(m.workload.context);
      // A layer with an fp16 tail and token blocks (quantized or low-rank) evicts whole blocks.
      const bool blocked = ir::tail_capacity(p) > 0;
      const int column = policy_column(p.retention.policy);
      // What eviction adds on top of the layer's precision, measured with that precision.
      const double added = prices->retention_added(blocked, p.key.bits, p.value.bits, column, ratio);
      b.retention = (unsaturate(quant_kl + added, ceiling) - unsaturate(quant_kl, ceiling)) *
                    prices->retention_share(layer, column, ratio);
    }
    if (low_rank) b.rank = unsaturate(prices->rank_kl(p.lowrank.rank), ceiling) / layers_of(s);
    b.weight = model.weight(layer);
    b.total = b.weight * (b.quant + b.retention + b.rank);
    return b;
  }
  b.quant = predicted_quant_error(s, layer, p.key.bits, p.value.bits);
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
  std::string s = PrecisionPair{c.key_bits, c.value_bits}.name();
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
  apply_uniform_precision(one, PrecisionPair{c.key_bits, c.value_bits}, options.precision);
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

std::vector<std::pair<int, int>> precision_candidates(const frontend::PrecisionSearch& options) {
  std::vector<std::pair<int, int>> out;
  if (options.candidates.empty()) return {{8, 8}, {8, 4}, {4, 8}, {4, 4}, {4, 2}, {2, 4}, {2, 2}};
  for (const auto& c : options.candidates)
    if (auto p = parse_precision_pair(c)) out.emplace_back(p->key_bits, p->value_bits);
  return out;
}

std::vector<std::pair<int, int>> uniform_precisions_to_try(const std::optional<std::pair<int, int>>& fixed,
                                                           const frontend::PrecisionSearch& options) {
  if (fixed) return {*fixed};
  std::vector<std::pair<int, int>> pairs{{16, 16}};
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
  std::vector<int> ranks = {0};
  for (int r : space.ranks)
    if (r > 0 && r < m.model.head_dim) ranks.push_back(r);
  for (std::size_t l = 0; l < m.layers.size(); ++l) {
    const int layer = static_cast<int>(l);
    const ir::LayerPlan original = scratch.layers[l];
    for (const auto& [kb, vb] : space.pairs) {
      for (int rank : ranks) {
        for (auto policy : policies) {
          std::vector<std::int64_t> keeps = {0};
          if (policy != ir::RetentionPolicy::Full) keeps = space.keeps;
          for (std::int64_t keep : keeps) {
            LayerChoice c{kb, vb, policy, keep, rank};
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
