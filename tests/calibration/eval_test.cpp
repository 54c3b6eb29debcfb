// kvc eval's library on stories260K: the fp16 plan is exact, KL orders by bits.
#include <gtest/gtest.h>

#include "calibration/calibrate.h"
#include "calibration/evaluate.h"
#include "support/diagnostics.h"
#include "test_support/test_data.h"

namespace kvc::calibration {
namespace {

ir::Module uniform_plan(const model::Model& m, int bits) {
  ir::Module mod = ir::make_uncompressed_module(model_shape(m), {128, 1, 64}, 0);
  if (bits < 16)
    for (ir::LayerPlan& p : mod.layers) {
      p.key = {bits, ir::QuantAxis::PerChannel, 32};
      p.value = {bits, ir::QuantAxis::PerToken, std::min(32, m.config.head_dim)};
      p.residual = 32;
    }
  return mod;
}

EvalOptions options() {
  EvalOptions o;
  o.sequences = 2;
  o.length = 160;
  o.prompt = 64;
  o.seed = 11;
  o.threads = 2;
  return o;
}

class EvalStories : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string path;
    KVC_REQUIRE_MODEL_FILE(path, "stories260K.bin");
    model_ = std::make_unique<model::Model>(model::Model::load(path));
  }
  std::unique_ptr<model::Model> model_;
};

TEST_F(EvalStories, Fp16PlanIsExactlyTheBaseline) {
  const EvalReport r = evaluate_plan(*model_, uniform_plan(*model_, 16), options());
  EXPECT_EQ(r.kl_mean, 0.0);
  EXPECT_EQ(r.kl_max, 0.0);
  EXPECT_EQ(r.top1_agreement, 1.0);
  EXPECT_EQ(r.ppl_full, r.ppl_plan);
  EXPECT_EQ(r.bytes_full, r.bytes_plan);
  EXPECT_EQ(r.positions, 2 * (160 - 64));
  // fp16 storage itself is close to, but not exactly, the fp32 cache.
  EXPECT_GE(r.kl_fp16_vs_fp32, 0.0);
  EXPECT_LT(r.kl_fp16_vs_fp32, 1e-3);
  EXPECT_EQ(r.bytes_fp32, 2 * r.bytes_full);
}

TEST_F(EvalStories, KlGrowsAsBitsShrink) {
  const EvalReport k8 = evaluate_plan(*model_, uniform_plan(*model_, 8), options());
  const EvalReport k4 = evaluate_plan(*model_, uniform_plan(*model_, 4), options());
  const EvalReport k2 = evaluate_plan(*model_, uniform_plan(*model_, 2), options());
  EXPECT_GT(k8.kl_mean, 0.0);
  EXPECT_LT(k8.kl_mean, k4.kl_mean);
  EXPECT_LT(k4.kl_mean, k2.kl_mean);
  EXPECT_GE(k8.top1_agreement, k2.top1_agreement);
  EXPECT_GT(k8.bytes_plan, k4.bytes_plan);
  EXPECT_GT(k4.bytes_plan, k2.bytes_plan);
  EXPECT_LT(k8.bytes_plan, k8.bytes_full);
}

// evaluate_plans shares the fp32 and baseline runs; every plan's report must be
// exactly the one evaluate_plan gives it alone.
TEST_F(EvalStories, ManyPlansAtOnceGiveEachPlansOwnReport) {
  const std::vector<ir::Module> plans = {uniform_plan(*model_, 8), uniform_plan(*model_, 2), uniform_plan(*model_, 16)};
  const std::vector<EvalReport> together = evaluate_plans(*model_, plans, options());
  ASSERT_EQ(together.size(), plans.size());
  for (std::size_t i = 0; i < plans.size(); ++i) {
    const EvalReport alone = evaluate_plan(*model_, plans[i], options());
    EXPECT_EQ(together[i].kl_mean, alone.kl_mean) << i;
    EXPECT_EQ(together[i].kl_max, alone.kl_max) << i;
    EXPECT_EQ(together[i].top1_agreement, alone.top1_agreement) << i;
    EXPECT_EQ(together[i].ppl_plan, alone.ppl_plan) << i;
    EXPECT_EQ(together[i].bytes_plan, alone.bytes_plan) << i;
    EXPECT_EQ(together[i].kl_fp16_vs_fp32, alone.kl_fp16_vs_fp32) << i;
  }
  EXPECT_LT(together[0].kl_mean, together[1].kl_mean);
  EXPECT_EQ(together[2].kl_mean, 0.0);
}

TEST_F(EvalStories, SameSeedSameNumbersAnyThreadCount) {
  EvalOptions o = options();
  const EvalReport a = evaluate_plan(*model_, uniform_plan(*model_, 4), o);
  o.threads = 1;
  const EvalReport b = evaluate_plan(*model_, uniform_plan(*model_, 4), o);
  EXPECT_EQ(a.kl_mean, b.kl_mean);
  EXPECT_EQ(a.kl_max, b.kl_max);
  EXPECT_EQ(a.top1_agreement, b.top1_agreement);
  EXPECT_EQ(a.ppl_plan, b.ppl_plan);
  o.seed = 12;
  EXPECT_NE(evaluate_plan(*model_, uniform_plan(*model_, 4), o).kl_mean, a.kl_mean);
}

TEST_F(EvalStories, RetentionPlansRun) {
  ir::Module mod = uniform_plan(*model_, 16);
  for (ir::LayerPlan& p : mod.layers) p.retention = {ir::RetentionPolicy::SnapKV, 48, 0, 8, 7, 0.0};
  const EvalReport r = evaluate_plan(*model_, mod, options());
  EXPECT_GT(r.kl_mean, 0.0);
  EXPECT_LT(r.bytes_plan, r.bytes_full);
}

TEST_F(EvalStories, PlanForAnotherModelShapeIsAClearError) {
  ir::Module mod = uniform_plan(*model_, 4);
  mod.model.kv_heads *= 2;
  try {
    evaluate_plan(*model_, mod, options(), "other.kvc");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("other.kvc"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("kv_heads"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kvc::calibration
