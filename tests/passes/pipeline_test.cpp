#include <gtest/gtest.h>

#include <sstream>

#include "ir/layout.h"
#include "passes/pass_manager.h"
#include "support/diagnostics.h"

namespace kvc::passes {
namespace {

ir::Module small_module(std::int64_t budget) {
  ir::ModelShape shape{"tiny", 4, 8, 2, 64, 10000.0, ir::DType::F16};
  return ir::make_uncompressed_module(shape, {4096, 2, 128}, budget);
}

TEST(Pipeline, ParsesNamesAndArguments) {
  auto p = parse_pipeline("uniform<K4V2>,estimate,legalize");
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].name, "uniform");
  EXPECT_EQ(p[0].argument, "K4V2");
  EXPECT_EQ(p[2].name, "legalize");
}

TEST(Pipeline, UnknownPassSuggestsTheClosest) {
  try {
    parse_pipeline("uniform,estimat,legalize");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "pipeline");
    EXPECT_NE(e.message().find("did you mean 'estimate'?"), std::string::npos) << e.message();
  }
  EXPECT_THROW(parse_pipeline("uniform,,legalize"), Error);
  EXPECT_THROW(parse_pipeline("uniform<K4V2"), Error);
}

TEST(Pipeline, PrintAfterAllShowsEveryPass) {
  ir::Module m = small_module(1LL << 40);
  PassContext ctx;
  PassManager pm(parse_pipeline("uniform<K8V8>,estimate,legalize"));
  std::ostringstream out;
  pm.print_after_all(&out);
  pm.run(m, ctx);
  const std::string s = out.str();
  EXPECT_NE(s.find("IR Dump After uniform"), std::string::npos);
  EXPECT_NE(s.find("IR Dump After estimate"), std::string::npos);
  EXPECT_NE(s.find("IR Dump After legalize"), std::string::npos);
  ASSERT_EQ(pm.timings().size(), 3u);
  EXPECT_TRUE(ctx.estimate.valid);
  EXPECT_EQ(ctx.estimate.total, ir::total_bytes(m));
}

TEST(Legalize, SaysByHowMuchAndWhichLayers) {
  ir::Module m = small_module(1000);
  PassContext ctx;
  PassManager pm(parse_pipeline("uniform<fp16>,legalize"));
  try {
    pm.run(m, ctx);
    FAIL() << "expected the budget error";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "budget");
    const std::int64_t need = ir::total_bytes(m);
    EXPECT_NE(e.message().find("over by " + std::to_string(need - 1000) + " bytes"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("layer 0 by"), std::string::npos) << e.message();
  }
}

TEST(DefaultPipeline, FitsEveryBudgetAboveTheSmallestPlan) {
  for (std::int64_t budget : {1LL << 34, 1LL << 28, 1LL << 26, 1LL << 24, 1LL << 22}) {
    ir::Module m = small_module(budget);
    PassContext ctx;
    ctx.search.precision.group = 32;
    ctx.search.precision.residual = 128;
    PassManager pm(parse_pipeline(default_pipeline(ctx)));
    pm.run(m, ctx);
    EXPECT_LE(ctx.estimate.total, budget);
  }
}

TEST(DefaultPipeline, FollowsTheSearchSectionWhenStatsAreGiven) {
  PassContext ctx;
  ctx.calibration_stats = "calib.kvcstats";
  ctx.search.joint = true;
  EXPECT_EQ(default_pipeline(ctx), "joint,estimate,legalize");
  ctx.search.joint = false;
  ctx.search.precision.method = "kvtuner";
  EXPECT_EQ(default_pipeline(ctx), "kvtuner,estimate,legalize");
  ctx.search.precision.method = "uniform";
  ctx.search.retention.method = "cake";
  EXPECT_EQ(default_pipeline(ctx), "cake,estimate,legalize");
}

TEST(DefaultPipeline, WithoutStatsASearchSpecPlansUniformlyAndSaysSo) {
  ir::Module m = small_module(1LL << 26);
  PassContext ctx;
  ctx.search.joint = true;
  ctx.search.precision.residual = 128;
  EXPECT_EQ(default_pipeline(ctx), "uniform,estimate,legalize");
  PassManager pm(parse_pipeline(default_pipeline(ctx)));
  pm.run(m, ctx);
  EXPECT_LE(ctx.estimate.total, m.budget_bytes);
  ASSERT_FALSE(ctx.notes.empty());
  EXPECT_NE(ctx.notes.front().find("asks for `joint`"), std::string::npos) << ctx.notes.front();
  EXPECT_NE(ctx.notes.front().find("kvc calibrate"), std::string::npos) << ctx.notes.front();
}

}  // namespace
}  // namespace kvc::passes
