#pragma once
// Random keys, values and queries for statistics tests that need no model.
#include <cstdint>

#include "calibration/sequence_statistics.h"

namespace kvc::calibration::testing {

// A small model shape and calibration settings: 3 layers, 4 query heads, 2 KV heads,
// head_dim 8, sequences of 96 tokens (prompt 80, decode 16).
StatsMeta synthetic_meta(int sequences);

// Gaussian activations; key channel 3 of every head is scaled up (an outlier channel).
SequenceActivations synthetic_activations(const StatsMeta& meta, std::uint64_t seed);

// measure_sequence over `meta.sequences` synthetic sequences, then reduce_statistics.
CalibrationStats synthetic_stats(const StatsMeta& meta);

}  // namespace kvc::calibration::testing
