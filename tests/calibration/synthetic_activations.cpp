#include "calibration/synthetic_activations.h"

#include <random>

namespace kvc::calibration::testing {

StatsMeta synthetic_meta(int sequences) {
  StatsMeta m;
  m.model = {"synthetic", 3, 4, 2, 8, 10000.0, ir::DType::F16};
  m.source = "synthetic";
  m.sequences = sequences;
  m.length = 96;
  m.decode = 16;
  m.prompt = 80;
  m.seed = 7;
  m.key_formats = m.value_formats = kivi_formats({2, 3, 4, 8});
  m.quant_token_group = 32;
  m.quant_channel_group = 8;
  m.keep_ratios = {0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75};
  m.cake_window = 16;
  m.prefix_points = 16;
  m.max_group = 4;
  return m;
}

SequenceActivations synthetic_activations(const StatsMeta& m, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  SequenceActivations a;
  a.tokens = m.length;
  const int D = m.model.kv_heads * m.model.head_dim, QD = m.model.q_heads * m.model.head_dim;
  for (int l = 0; l < m.model.layers; ++l) {
    LayerActivations la;
    la.k.resize(static_cast<std::size_t>(m.length) * D);
    la.v.resize(la.k.size());
    la.q.resize(static_cast<std::size_t>(m.length) * QD);
    for (std::size_t i = 0; i < la.k.size(); ++i) {
      const int channel = static_cast<int>(i % m.model.head_dim);
      la.k[i] = normal(rng) * (channel == 3 ? 6.0f : 1.0f);
      la.v[i] = normal(rng);
    }
    for (float& q : la.q) q = 2.0f * normal(rng);
    a.layers.push_back(std::move(la));
  }
  return a;
}

CalibrationStats synthetic_stats(const StatsMeta& meta) {
  std::vector<SequenceStatistics> seqs;
  for (int i = 0; i < meta.sequences; ++i) seqs.push_back(measure_sequence(meta, synthetic_activations(meta, 100 + i)));
  return reduce_statistics(meta, seqs);
}

}  // namespace kvc::calibration::testing
