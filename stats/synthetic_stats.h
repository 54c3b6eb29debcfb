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
//     rank-error tables are computed from them exactly;
//   * with `end_to_end_probes`, the e2e_* tensors `kvc calibrate` measures (the cost
//     model's end-to-end pricing, passes/cost_model.h) with the shapes a real
//     calibration gives, single-layer retention probes included: KL grows as bits
//     and kept fractions fall, and single-layer eviction hurts in proportion to the
//     layer's sensitivity. This is the path real calibrated stats take, so it is
//     the one to time at 80 layers.
// Nothing here is a quality claim about a real model.
#include <cstdint>
#include <string>
#include <vector>

#include "stats/stats.h"

namespace kvc::calibration {

struct SyntheticStatsOptions {
  std::uint64_t seed = 1;
  int sequences = 2;
  int length = 256;  // prompt = 3/4, decode the rest
  int prefix_points = 64;
  int max_group = 4;
  bool end_to_end_probes = false;
  // Format families measured (ir/precision.h family names), each at 2, 3, 4, 8 bits.
  // A family scales KIVI's error at the same bits: per-token keys without rotation
  // lose more (outlier channels), rotated ones and codebooks less. With end-to-end
  // probes, each family pair also gets probes at 4, 3 and 2 bits on both sides,
  // without eviction rows (NaN rows, as `kvc calibrate --spec` stores its format
  // probes; a real calibration probes every pair), so the other pairs are
  // extrapolated as the cost model does for any unprobed pair.
  std::vector<std::string> families = {"kivi"};
};

calibration::CalibrationStats synthetic_stats(const ir::ModelShape& model, const SyntheticStatsOptions& options = {});

}  // namespace kvc::calibration
