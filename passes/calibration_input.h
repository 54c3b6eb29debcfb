#pragma once
// How a search pass gets the calibration statistics it plans from: read once per
// pipeline run from the spec's `calibration.stats` (or already loaded into the
// context by a caller such as `kvc sweep`), and checked against the module's
// model shape so a pass never plans from another model's measurements.
#include <string_view>

#include "stats/stats.h"
#include "passes/pass.h"

namespace kvc::passes {

// The stats for `module`. Throws kvc::Error naming `pass` when the spec gives no
// stats file ("<pass> needs calibration statistics: run `kvc calibrate` ..."),
// when the file cannot be read, or when it was measured on another model shape.
const calibration::CalibrationStats& require_calibration_stats(PassContext& ctx, const ir::Module& module,
                                                               std::string_view pass);

}  // namespace kvc::passes
