#pragma once
// The statistics of ONE calibration sequence, computed from its per-layer post-RoPE
// keys, values and queries (what the model's cache sees). calibrate.cpp measures
// sequences in parallel and reduce_statistics combines them in sequence order, so
// the result does not depend on the thread count. Definitions: stats/stats.h.
#include <vector>

#include "stats/stats.h"

namespace kvc::calibration {

// One layer of one sequence: k, v [tokens][kv_heads*head_dim], q [tokens][q_heads*head_dim].
struct LayerActivations {
  std::vector<float> k, v, q;
};

struct SequenceActivations {
  int tokens = 0;
  std::vector<LayerActivations> layers;
};

struct SequenceStatistics {
  // Per-sequence ("P") tables, laid out like their stats tensors without the N axis.
  std::vector<float> quant_output_error;      // [L][H][B][B]
  std::vector<double> quant_key_error;        // [L][H][B]
  std::vector<double> quant_value_error;      // [L][H][B]
  std::vector<float> retention_output_error;  // [L][H][3][R]
  std::vector<float> prefix_curve;            // [L][F]
  std::vector<float> cake_entropy;            // [L][H]
  std::vector<float> cake_variance;           // [L][H]
  // Pooled sums, added over sequences.
  std::vector<double> key_min, key_max, key_sum, key_sumsq;  // [L][H][d]
  std::vector<double> value_min, value_max;                  // [L][H][d]
  std::vector<float> value_token_range, value_token_absmax;  // [L][H][tokens]
  std::vector<std::vector<double>> key_gram;                 // [L][max_group] blocks K_l^T K_{l+o}, D x D
};

// Throws kvc::Error when the formats the metadata ask for cannot be encoded for this
// head_dim (e.g. a value group that does not divide head_dim).
void check_statistics_settings(const StatsMeta& meta);

SequenceStatistics measure_sequence(const StatsMeta& meta, const SequenceActivations& acts);

// Combines per-sequence statistics (in the given order) into the stats tensors.
// Computes the key spectra (key_spectrum.h).
CalibrationStats reduce_statistics(const StatsMeta& meta, const std::vector<SequenceStatistics>& sequences);

}  // namespace kvc::calibration
