#pragma once
// Calibration statistics of any model shape without running a model: for the search
// passes' tests on shapes kvc has no weights for (Llama-3.1-70B's 80 layers) and
// for fast unit tests. The result passes calibration::validate_stats.
//
// The values are seeded and plausible, and consistent with each other where the
// passes compare them:
//   * each layer has an attention concentration a_l in [0.15, 0.85]; its prefix
//     curve is F_l(x) = x^a_l (monotone, ends at 1), retention errors are
//     c_policy * (1 - F_l(keep ratio)) (falling with keep; StreamingLLM worst,
//     SnapKV best), and its CAKE entropy grows with a_l (spread attention);
//   * quantization errors fall with bits (keys weigh more than values), scaled by
//     a per-layer sensitivity;
//   * key spectra are descending (exponential decay, a per-layer rate) and the
//     rank-error tables are computed from them exactly.
// Nothing here is a quality claim about a real model.
#include <cstdint>

#include "calibration/stats.h"

namespace kvc::testing {

struct SyntheticStatsOptions {
  std::uint64_t seed = 1;
  int sequences = 2;
  int length = 256;  // prompt = 3/4, decode the rest
  int prefix_points = 64;
  int max_group = 4;
};

calibration::CalibrationStats synthetic_stats(const ir::ModelShape& model, const SyntheticStatsOptions& options = {});

}  // namespace kvc::testing
