#pragma once
// Calibration stats of any model shape without a model: every tensor kvc reads,
// filled with plausible, layer-dependent values (errors fall with more bits, more
// kept tokens and higher rank), so pass tests and the 80-layer timing run offline.
#include <cstdint>

#include "calibration/stats.h"

namespace kvc::testing {

calibration::CalibrationStats make_synthetic_stats(const ir::ModelShape& model, std::uint64_t seed = 1);

}  // namespace kvc::testing
