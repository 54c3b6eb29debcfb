#pragma once
// The pass interface, after LLVM's: every pass is small, has a name, and
// transforms (or only analyses) one ir::Module. Passes talk to later passes and to
// the report through the PassContext, never through globals.
#include <chrono>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "stats/stats.h"
#include "frontend/spec.h"
#include "ir/layout.h"
#include "ir/plan.h"

namespace kvc::passes {

// What the `estimate` pass computed (bytes per layer and in total, by kind).
struct Estimate {
  std::vector<ir::LayerBytes> layers;
  std::int64_t total = 0;
  std::int64_t fp16 = 0;
  bool valid = false;
};

// State shared by the passes of one pipeline run.
struct PassContext {
  frontend::SearchOptions search;  // the spec's `search:` section
  std::string calibration_stats;   // path, "" when none
  // The stats file, read once by the first pass that needs it (calibration_input.h).
  std::shared_ptr<const calibration::CalibrationStats> stats;
  Estimate estimate;               // filled by `estimate`
  std::vector<std::string> notes;  // one line each, shown in reports ("used no calibration ...")
};

class Pass {
 public:
  virtual ~Pass() = default;
  virtual std::string_view name() const = 0;
  virtual void run(ir::Module& module, PassContext& ctx) = 0;
};

}  // namespace kvc::passes
