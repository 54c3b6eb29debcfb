#include "model/sampler.h"

#include <cmath>

#include "model/forward.h"
#include "model/full_kv_cache.h"
#include "support/diagnostics.h"

namespace kvc::model {

Sampler::Sampler(float temperature, std::uint64_t seed) : temperature_(temperature), rng_(seed) {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature))
    throw Error("sampler: temperature " + std::to_string(temperature) + " must be a finite value >= 0");
}

int Sampler::argmax(const std::vector<float>& logits) {
  if (logits.empty()) throw Error("sampler: empty logits");
  int best = 0;
  for (int i = 1; i < static_cast<int>(logits.size()); ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

int Sampler::sample(const std::vector<float>& logits) {
  if (temperature_ == 0.0f) return argmax(logits);
  const int n = static_cast<int>(logits.size());
  const float max_logit = logits[argmax(logits)];
  probs_.resize(n);
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    probs_[i] = std::exp((logits[i] - max_logit) / temperature_);
    sum += probs_[i];
  }
  // 53 random bits -> u in [0, 1), scaled to the unnormalised total.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * sum;
  double cdf = 0.0;
  for (int i = 0; i < n; ++i) {
    cdf += probs_[i];
    if (u < cdf) return i;
  }
  return n - 1;  // u landed in the rounding gap at the very top
}

std::vector<int> generate_sequence(const Model& model, std::uint64_t seed, int length, float temperature) {
  const ModelConfig& c = model.config;
  if (length < 1 || (c.context > 0 && length > c.context))
    throw Error("generate_sequence: length " + std::to_string(length) + " must be in [1, " +
                std::to_string(c.context) + "]");
  FullKVCache cache(ForwardPass::cache_shape(c));
  ForwardPass fp(model, cache);
  Sampler sampler(temperature, seed);
  fp.begin_sequence();
  std::vector<int> ids{kBosToken};
  ids.reserve(length);
  for (int pos = 0; static_cast<int>(ids.size()) < length; ++pos) ids.push_back(sampler.sample(fp.forward(ids[pos], pos)));
  return ids;
}

}  // namespace kvc::model
