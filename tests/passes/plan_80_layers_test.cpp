// The search passes on an 80-layer model (specs/llama-3.1-70b.yaml: 8 GiB for a 40 GiB
// fp16 cache) with generated statistics of that shape: every registered search pass
// gives a verified plan that fits. (How long they take is bench/plan_bench.cpp's job.)
#include <gtest/gtest.h>

#include <memory>

#include "stats/stats.h"
#include "frontend/spec.h"
#include "ir/layout.h"
#include "ir/verifier.h"
#include "passes/cost_model.h"
#include "passes/pass_manager.h"
#include "stats/synthetic_stats.h"
#include "test_support/test_data.h"

namespace kvc::passes {
namespace {

TEST(Plan80Layers, GeneratedStatsAreValid) {
  const frontend::Spec spec = frontend::load_spec(kvc::testing::source_dir() + "/specs/llama-3.1-70b.yaml");
  const auto stats = kvc::calibration::synthetic_stats(spec.model);
  EXPECT_NO_THROW(calibration::validate_stats(stats, "synthetic"));
  EXPECT_EQ(stats.meta.model.layers, 80);
  EXPECT_EQ(kvc::calibration::synthetic_stats(spec.model), stats) << "the generator is seeded";
}

TEST(Plan80Layers, EverySearchPassFitsTheBudget) {
  const frontend::Spec spec = frontend::load_spec(kvc::testing::source_dir() + "/specs/llama-3.1-70b.yaml");
  // Both pricings: the per-layer proxies, and the end-to-end probes real calibrations carry.
  for (bool end_to_end : {false, true}) {
  kvc::calibration::SyntheticStatsOptions options;
  options.end_to_end_probes = end_to_end;
  auto stats = std::make_shared<const calibration::CalibrationStats>(kvc::calibration::synthetic_stats(spec.model, options));
  ASSERT_EQ(has_end_to_end_calibration(*stats), end_to_end);
  int ran = 0;
  for (const char* name : {"prefixkv", "cake", "xkv", "kvtuner", "joint"}) {
    bool registered = false;
    for (const auto& info : pass_registry()) registered |= info.name == name;
    if (!registered) continue;  // kvtuner and joint land separately
    ++ran;
    PassContext ctx;
    ctx.search = spec.search;
    ctx.stats = stats;
    ir::Module m = spec.to_module();
    PassManager(parse_pipeline(std::string(name) + ",estimate,legalize")).run(m, ctx);
    EXPECT_NO_THROW(ir::verify_or_throw(m)) << name;
    EXPECT_LE(ir::total_bytes(m), m.budget_bytes) << name;
    EXPECT_EQ(static_cast<int>(m.layers.size()), 80) << name;
  }
  EXPECT_GE(ran, 3);
  }
}

}  // namespace
}  // namespace kvc::passes
