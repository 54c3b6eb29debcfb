#pragma once
// Next-token choice: greedy (temperature 0) or sampling from softmax(logits / T)
// with a seeded std::mt19937_64, reproducible across platforms (the uniform draw
// is made from the raw 64-bit output, not a library distribution).
#include <cstdint>
#include <random>
#include <vector>

#include "model/model.h"

namespace kvc::model {

inline constexpr int kBosToken = 1;

class Sampler {
 public:
  explicit Sampler(float temperature = 0.0f, std::uint64_t seed = 0);
  int sample(const std::vector<float>& logits);

  // The first index of the largest logit.
  static int argmax(const std::vector<float>& logits);

 private:
  float temperature_;
  std::mt19937_64 rng_;
  std::vector<float> probs_;
};

// `length` token ids starting with BOS (ids[0] == 1), each next one sampled from
// the model (full fp32 cache) at `temperature` (0 = greedy). For calibration
// data: the tokenizer is not available, so sequences are the model's own.
std::vector<int> generate_sequence(const Model& model, std::uint64_t seed, int length, float temperature);

}  // namespace kvc::model
