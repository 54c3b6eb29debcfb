#include "passes/calibration_input.h"

#include <memory>
#include <string>

#include "stats/stats_file.h"
#include "support/diagnostics.h"

namespace kvc::passes {

const calibration::CalibrationStats& require_calibration_stats(PassContext& ctx, const ir::Module& module,
                                                               std::string_view pass) {
  if (!ctx.stats) {
    if (ctx.calibration_stats.empty())
      throw Error(SourceLocation{}, "calibration.stats",
                  std::string(pass) +
                      " needs calibration statistics: run `kvc calibrate --model M -o STATS` and name the file "
                      "in the spec's calibration.stats");
    ctx.stats = std::make_shared<const calibration::CalibrationStats>(
        calibration::read_stats_file(ctx.calibration_stats));
  }
  const std::string origin = ctx.calibration_stats.empty() ? std::string("calibration stats") : ctx.calibration_stats;
  calibration::check_stats_match_model(*ctx.stats, module.model, origin);
  return *ctx.stats;
}

}  // namespace kvc::passes
