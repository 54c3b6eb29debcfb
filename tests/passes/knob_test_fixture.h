#pragma once
// What the single-knob search pass tests share: a module of stories260K's shape
// (5 layers, 4 KV heads, head_dim 8, context 512) with its spec's search options,
// and seeded synthetic calibration statistics of that shape.
#include <memory>

#include "ir/layout.h"
#include "ir/plan.h"
#include "passes/pass.h"
#include "stats/synthetic_stats.h"

namespace kvc::passes::testing {

inline ir::ModelShape stories_shape() { return {"stories260K", 5, 8, 4, 8, 10000.0, ir::DType::F16}; }

// The module at `budget_fraction` of its fp16 cache.
inline ir::Module stories_module(double budget_fraction) {
  ir::Module m = ir::make_uncompressed_module(stories_shape(), {512, 1, 256}, 0);
  m.budget_bytes = static_cast<std::int64_t>(budget_fraction * static_cast<double>(ir::fp16_bytes(m)));
  return m;
}

inline PassContext stories_context(std::uint64_t seed = 7) {
  PassContext ctx;
  ctx.search.precision.group = 32;
  ctx.search.precision.residual = 32;
  ctx.search.retention.sink = 4;
  ctx.search.retention.window = 64;
  ctx.stats = std::make_shared<const calibration::CalibrationStats>(
      kvc::calibration::synthetic_stats(stories_shape(), {seed, 2, 256, 64, 4}));
  return ctx;
}

}  // namespace kvc::passes::testing
