#include "stats/synthetic_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace kvc::calibration {
namespace {

// splitmix64: the same numbers on every platform (std distributions are not).
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  double uniform(double lo, double hi) {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return lo + (hi - lo) * static_cast<double>(z >> 11) / 9007199254740992.0;
  }

 private:
  std::uint64_t state_;
};

calibration::StatsTensor make_tensor(std::vector<std::int64_t> shape) {
  std::int64_t n = 1;
  for (std::int64_t e : shape) n *= e;
  return {std::move(shape), std::vector<float>(static_cast<std::size_t>(n), 0.0f)};
}

// The e2e_* tensors, shaped as calibration/error_probes.cpp stores them: KL of a uniform
// pair ~ 0.02 * 2^((16 - K - V) / 2); eviction to kept fraction r adds
// c_policy * (1 - r)^2 (StreamingLLM worst, SnapKV best), more on quantized layers;
// one layer evicting alone costs its share (by sensitivity) of the uniform KL.
// How much a format family's error exceeds KIVI's at the same bits (see the header).
double family_factor(const ir::SideFormat& f, bool key) {
  if (f.quantizer == ir::Quantizer::Kivi && !f.rotated) return 1.0;
  const double base = f.quantizer == ir::Quantizer::Codebook ? 0.8 : f.quantizer == ir::Quantizer::Token ? 1.0 : 1.1;
  if (f.rotated) return base * (key ? 1.05 : 0.85);
  return base * (key ? 2.0 : 1.2);
}

void add_end_to_end_probes(calibration::CalibrationStats& stats, const std::vector<double>& sensitivity,
                           const std::vector<std::string>& families) {
  const int L = stats.meta.model.layers, d = stats.meta.model.head_dim;
  std::vector<ir::PrecisionPair> pairs;
  for (auto [k, v] : std::vector<std::pair<int, int>>{{8, 8}, {8, 4}, {4, 8}, {4, 4}, {4, 2}, {2, 4}, {2, 2}, {3, 3}})
    pairs.push_back(ir::kivi_pair(k, v));
  const std::size_t retention_pairs = pairs.size();
  for (const std::string& kf : families)
    for (const std::string& vf : families)
      for (int bits : {4, 3, 2}) {
        const ir::PrecisionPair p{*ir::family_side(kf, bits), *ir::family_side(vf, bits)};
        if (std::find(pairs.begin(), pairs.end(), p) == pairs.end()) pairs.push_back(p);
      }
  const double policy_scale[3] = {3.0, 2.0, 1.5};
  const std::vector<float> ratios = {1.0f / 32, 1.0f / 16, 1.0f / 8, 1.0f / 4, 1.0f / 2, 3.0f / 4};
  const std::vector<float> quantized_ratios = {1.0f / 8, 1.0f / 4, 1.0f / 2, 3.0f / 4};
  const std::vector<float> layer_ratios = {1.0f / 16, 1.0f / 4, 1.0f / 2};
  auto evict_kl = [&](int policy, double r) { return policy_scale[policy] * (1 - r) * (1 - r); };
  auto pair_kl = [](const ir::PrecisionPair& p) {
    return 0.02 * std::pow(2.0, (16.0 - p.key.bits - p.value.bits) / 2.0) *
           std::sqrt(family_factor(p.key, true) * family_factor(p.value, false));
  };
  const auto Q = static_cast<std::int64_t>(pairs.size());

  calibration::StatsTensor quant = make_tensor({Q, 3});
  for (std::size_t q = 0; q < pairs.size(); ++q) {
    quant.data[q * 3] = static_cast<float>(ir::side_code(pairs[q].key));
    quant.data[q * 3 + 1] = static_cast<float>(ir::side_code(pairs[q].value));
    quant.data[q * 3 + 2] = static_cast<float>(pair_kl(pairs[q]));
  }
  calibration::StatsTensor retention = make_tensor({3, static_cast<std::int64_t>(ratios.size())});
  for (int p = 0; p < 3; ++p)
    for (std::size_t r = 0; r < ratios.size(); ++r) retention.data[p * ratios.size() + r] = static_cast<float>(evict_kl(p, ratios[r]));
  calibration::StatsTensor quantized = make_tensor({Q, 3, static_cast<std::int64_t>(quantized_ratios.size())});
  for (std::int64_t q = 0; q < Q; ++q)
    for (int p = 0; p < 3; ++p)
      for (std::size_t r = 0; r < quantized_ratios.size(); ++r)
        quantized.data[(q * 3 + p) * quantized_ratios.size() + r] =
            static_cast<std::size_t>(q) < retention_pairs ? static_cast<float>(1.2 * evict_kl(p, quantized_ratios[r]))
                                                          : std::numeric_limits<float>::quiet_NaN();
  calibration::StatsTensor rank = make_tensor({3, 2});
  for (int i = 0; i < 3; ++i) {
    const int r = std::max(1, (i + 1) * d / 4);
    rank.data[i * 2] = static_cast<float>(r);
    rank.data[i * 2 + 1] = static_cast<float>(2.0 * (1.0 - static_cast<double>(r) / d));
  }
  double total_sensitivity = 0;
  for (double s : sensitivity) total_sensitivity += s;
  calibration::StatsTensor layer = make_tensor({L, 3, static_cast<std::int64_t>(layer_ratios.size())});
  for (int l = 0; l < L; ++l)
    for (int p = 0; p < 3; ++p)
      for (std::size_t r = 0; r < layer_ratios.size(); ++r)
        layer.data[(static_cast<std::size_t>(l) * 3 + p) * layer_ratios.size() + r] =
            static_cast<float>(evict_kl(p, layer_ratios[r]) * sensitivity[l] / total_sensitivity);

  auto vector_tensor = [](const std::vector<float>& v) {
    return calibration::StatsTensor{{static_cast<std::int64_t>(v.size())}, v};
  };
  stats.tensors["e2e_quant_kl"] = std::move(quant);
  stats.tensors["e2e_keep_ratios"] = vector_tensor(ratios);
  stats.tensors["e2e_retention_kl"] = std::move(retention);
  stats.tensors["e2e_keep_ratios_quantized"] = vector_tensor(quantized_ratios);
  stats.tensors["e2e_retention_quantized_kl"] = std::move(quantized);
  stats.tensors["e2e_rank_kl"] = std::move(rank);
  stats.tensors["e2e_layer_keep_ratios"] = vector_tensor(layer_ratios);
  stats.tensors["e2e_layer_retention_kl"] = std::move(layer);
}

}  // namespace

calibration::CalibrationStats synthetic_stats(const ir::ModelShape& model, const SyntheticStatsOptions& options) {
  calibration::CalibrationStats stats;
  calibration::StatsMeta& meta = stats.meta;
  meta.model = model;
  meta.source = "synthetic (tests/stats/synthetic_stats.h)";
  meta.sequences = options.sequences;
  meta.length = options.length;
  meta.decode = std::max(1, options.length / 4);
  meta.prompt = options.length - meta.decode;
  meta.seed = options.seed;
  for (const std::string& family : options.families)
    for (int bits : {2, 3, 4, 8})
      if (const auto side = ir::family_side(family, bits)) meta.key_formats.push_back(*side);
  meta.value_formats = meta.key_formats;
  meta.keep_ratios = {0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75};
  meta.prefix_points = options.prefix_points;
  meta.max_group = options.max_group;

  const int L = model.layers, H = model.kv_heads, d = model.head_dim, D = H * d, N = meta.sequences;
  const int B = static_cast<int>(meta.key_formats.size()), R = static_cast<int>(meta.keep_ratios.size());
  const int F = meta.prefix_points;
  Random rng(options.seed);

  // Per-layer character: attention concentration, quantization sensitivity, spectral decay.
  std::vector<double> concentration(L), sensitivity(L), decay(L);
  for (int l = 0; l < L; ++l) {
    concentration[l] = rng.uniform(0.15, 0.85);
    sensitivity[l] = rng.uniform(0.5, 2.0);
    decay[l] = rng.uniform(0.05, 0.3) * D;  // eigenvalue i ~ exp(-i / decay)
  }

  for (const auto& [name, shape] : calibration::expected_tensor_shapes(meta)) stats.tensors[name] = make_tensor(shape);
  auto at = [&](const std::string& name) -> std::vector<float>& { return stats.tensors.at(name).data; };

  // B. distributions
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      const std::size_t lh = static_cast<std::size_t>(l * H + h);
      for (int c = 0; c < d; ++c) {
        const std::size_t i = lh * d + c;
        const double spread = rng.uniform(0.5, 3.0);
        at("key_channel_min")[i] = static_cast<float>(-spread);
        at("key_channel_max")[i] = static_cast<float>(spread * rng.uniform(0.8, 1.2));
        at("key_channel_mean")[i] = static_cast<float>(rng.uniform(-0.1, 0.1));
        at("key_channel_var")[i] = static_cast<float>(spread * spread / 9);
      }
      at("key_outlier_ratio")[lh] = static_cast<float>(rng.uniform(1.0, 6.0));
      at("value_outlier_ratio")[lh] = static_cast<float>(rng.uniform(1.0, 2.0));
      const double range = rng.uniform(0.5, 2.0);
      at("value_token_range_p50")[lh] = static_cast<float>(range);
      at("value_token_range_mean")[lh] = static_cast<float>(range * 1.05);
      at("value_token_range_p99")[lh] = static_cast<float>(range * 1.8);
      at("value_token_range_max")[lh] = static_cast<float>(range * 2.5);
      at("value_token_absmax_mean")[lh] = static_cast<float>(range * 0.6);
      at("value_token_absmax_max")[lh] = static_cast<float>(range * 1.5);
    }

  // C. quantization: error ~ 2^-bits, keys weigh more than values.
  for (int n = 0; n < N; ++n)
    for (int l = 0; l < L; ++l)
      for (int h = 0; h < H; ++h) {
        const double head = sensitivity[l] * rng.uniform(0.8, 1.2);
        for (int kb = 0; kb < B; ++kb)
          for (int vb = 0; vb < B; ++vb) {
            const double e = head * (1.6 * std::ldexp(1.0, -meta.key_formats[kb].bits) * family_factor(meta.key_formats[kb], true) +
                                       std::ldexp(1.0, -meta.value_formats[vb].bits) * family_factor(meta.value_formats[vb], false)) *
                             rng.uniform(0.95, 1.05);
            const std::size_t i = ((static_cast<std::size_t>(n * L + l) * H + h) * B + kb) * B + vb;
            at("quant_output_error")[i] = static_cast<float>(e);
            const std::size_t j = (static_cast<std::size_t>(l * H + h) * B + kb) * B + vb;
            at("quant_output_error_mean")[j] += static_cast<float>(e / N);
            at("quant_output_error_p90")[j] = std::max(at("quant_output_error_p90")[j], static_cast<float>(e * 1.2));
          }
      }
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h)
      for (int b = 0; b < B; ++b) {
        const std::size_t i = static_cast<std::size_t>(l * H + h) * B + b;
        at("quant_key_error")[i] = static_cast<float>(0.5 * std::ldexp(1.0, -meta.key_formats[b].bits) * family_factor(meta.key_formats[b], true));
        at("quant_value_error")[i] = static_cast<float>(0.4 * std::ldexp(1.0, -meta.value_formats[b].bits) * family_factor(meta.value_formats[b], false));
      }

  // D. retention: prefix curves x^a and errors c_policy * (1 - F(ratio)).
  const double policy_scale[3] = {1.0, 0.6, 0.5};  // StreamingLLM, H2O, SnapKV
  for (int n = 0; n < N; ++n)
    for (int l = 0; l < L; ++l) {
      const double a = std::clamp(concentration[l] * rng.uniform(0.95, 1.05), 0.05, 1.0);
      for (int i = 0; i < F; ++i) {
        const double v = i + 1 == F ? 1.0 : std::pow(static_cast<double>(i + 1) / F, a);
        at("prefix_curve")[static_cast<std::size_t>(n * L + l) * F + i] = static_cast<float>(v);
        at("prefix_curve_mean")[static_cast<std::size_t>(l) * F + i] += static_cast<float>(v / N);
      }
      for (int h = 0; h < H; ++h) {
        const std::size_t nlh = static_cast<std::size_t>(n * L + l) * H + h, lh = static_cast<std::size_t>(l * H + h);
        const double head = rng.uniform(0.9, 1.1);
        for (int p = 0; p < 3; ++p)
          for (int r = 0; r < R; ++r) {
            const double e = policy_scale[p] * head * (1.0 - std::pow(meta.keep_ratios[r], a));
            at("retention_output_error")[(nlh * 3 + p) * R + r] = static_cast<float>(e);
            at("retention_output_error_mean")[(lh * 3 + p) * R + r] += static_cast<float>(e / N);
            float& p90 = at("retention_output_error_p90")[(lh * 3 + p) * R + r];
            p90 = std::max(p90, static_cast<float>(e * 1.1));
          }
        const double entropy = (1.0 + 4.0 * a) * rng.uniform(0.9, 1.1) * 32;
        const double variance = rng.uniform(0.5, 1.5) * 1e-3;
        at("cake_entropy")[nlh] = static_cast<float>(entropy);
        at("cake_variance")[nlh] = static_cast<float>(variance);
        at("cake_entropy_mean")[lh] += static_cast<float>(entropy / N);
        at("cake_variance_mean")[lh] += static_cast<float>(variance / N);
      }
    }

  // E. low rank: descending spectra; a group of s layers decays s times slower
  // than its layers on average, a little less (adjacent layers share directions).
  for (int s = 1; s <= meta.max_group && s <= L; ++s) {
    auto& spectrum = at("key_spectrum_g" + std::to_string(s));
    auto& error = at("key_rank_error_g" + std::to_string(s));
    const int width = s * D;
    for (int l = 0; l + s <= L; ++l) {
      double rate = 0;
      for (int k = l; k < l + s; ++k) rate += decay[k];
      rate *= s == 1 ? 1.0 : 0.85;
      std::vector<double> lambda(static_cast<std::size_t>(width));
      for (int i = 0; i < width; ++i) lambda[i] = 100.0 * std::exp(-i / rate);
      double total = 0;
      for (double v : lambda) total += v;
      double tail = total;
      for (int r = 0; r <= width; ++r) {
        error[static_cast<std::size_t>(l) * (width + 1) + r] = static_cast<float>(std::sqrt(std::max(tail, 0.0) / total));
        if (r < width) {
          spectrum[static_cast<std::size_t>(l) * width + r] = static_cast<float>(lambda[r]);
          tail -= lambda[r];
        }
      }
      error[static_cast<std::size_t>(l) * (width + 1) + width] = 0.0f;
    }
  }
  if (options.end_to_end_probes) add_end_to_end_probes(stats, sensitivity, options.families);
  return stats;
}

}  // namespace kvc::calibration
