#include "passes/synthetic_stats.h"

#include <cmath>
#include <random>

namespace kvc::testing {

calibration::CalibrationStats make_synthetic_stats(const ir::ModelShape& model, std::uint64_t seed) {
  calibration::CalibrationStats s;
  s.meta.model = model;
  s.meta.source = "synthetic";
  s.meta.sequences = 2;
  s.meta.length = 256;
  s.meta.prompt = 192;
  s.meta.decode = 64;
  s.meta.seed = seed;
  s.meta.bits = {2, 3, 4, 8};
  s.meta.keep_ratios = {0.05, 0.1, 0.25, 0.5, 0.75};
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> jitter(0.7, 1.3);
  std::vector<double> layer_scale(model.layers);
  for (auto& v : layer_scale) v = jitter(rng);
  for (const auto& [name, shape] : calibration::expected_tensor_shapes(s.meta)) {
    calibration::StatsTensor t;
    t.shape = shape;
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    t.data.assign(static_cast<std::size_t>(n), 0.5f);
    // Row-major index -> coordinates, to give the error tensors their structure.
    std::vector<std::int64_t> idx(shape.size());
    for (std::int64_t i = 0; i < n; ++i) {
      std::int64_t rest = i;
      for (std::size_t d = shape.size(); d-- > 0;) {
        idx[d] = rest % shape[d];
        rest /= shape[d];
      }
      const auto bits_err = [&](std::int64_t b) { return std::pow(2.0, -s.meta.bits[b]); };
      double v = 0.5;
      if (name == "quant_output_error_mean" || name == "quant_output_error_p90") {
        v = layer_scale[idx[0]] * (2.0 * bits_err(idx[2]) + bits_err(idx[3]));
      } else if (name == "quant_output_error") {
        v = layer_scale[idx[1]] * (2.0 * bits_err(idx[3]) + bits_err(idx[4]));
      } else if (name == "quant_key_error" || name == "quant_value_error") {
        v = bits_err(idx[2]);
      } else if (name.rfind("retention_output_error", 0) == 0) {
        const std::size_t r = idx.back(), p = idx[idx.size() - 2];
        const int layer = static_cast<int>(name == "retention_output_error" ? idx[1] : idx[0]);
        v = layer_scale[layer] * (1.0 - s.meta.keep_ratios[r]) * (0.6 - 0.1 * static_cast<double>(p));
      } else if (name.rfind("key_rank_error_g", 0) == 0) {
        const double r = static_cast<double>(idx[1]) / static_cast<double>(shape[1] - 1);
        v = std::sqrt(std::max(0.0, 1.0 - r)) * layer_scale[idx[0] % model.layers];
      } else if (name.rfind("prefix_curve", 0) == 0) {
        v = std::pow(static_cast<double>(idx.back() + 1) / static_cast<double>(shape.back()), 0.3);
      }
      t.data[static_cast<std::size_t>(i)] = static_cast<float>(v);
    }
    s.tensors[name] = std::move(t);
  }
  return s;
}

}  // namespace kvc::testing
