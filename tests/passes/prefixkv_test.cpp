#include <gtest/gtest.h>

#include "ir/layout.h"
#include "ir/verifier.h"
#include "knob_test_fixture.h"
#include "passes/cost_model.h"
#include "passes/pass_manager.h"
#include "passes/prefixkv.h"
#include "passes/uniform.h"
#include "support/diagnostics.h"

namespace kvc::passes {
namespace {

using testing::stories_context;
using testing::stories_module;

TEST(PrefixKV, TokensForLevelReadsTheCurve) {
  const std::vector<double> curve = {0.5, 0.8, 0.9, 1.0};  // at 1/4, 2/4, 3/4, 4/4 of the tokens
  EXPECT_EQ(tokens_for_level(curve, 0.0, 400), 0);
  EXPECT_EQ(tokens_for_level(curve, 0.5, 400), 100);
  EXPECT_EQ(tokens_for_level(curve, 0.25, 400), 50);  // halfway to the first point
  EXPECT_EQ(tokens_for_level(curve, 0.65, 400), 150);
  EXPECT_EQ(tokens_for_level(curve, 1.0, 400), 400);
}

TEST(PrefixKV, LevelAndTokensRiseWithTheBudgetAndFit) {
  PassContext ctx = stories_context();
  const auto curves = prefix_importance_curves(*ctx.stats);
  double last_level = -1;
  std::vector<std::int64_t> last_tokens(5, 0);
  for (double fraction : {0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5}) {
    ir::Module m = stories_module(fraction);
    auto a = allocate_prefix_retention(m, curves, ir::kivi_pair(4, 2), ir::RetentionPolicy::H2O, ctx.search);
    ASSERT_TRUE(a) << fraction;
    ir::verify_or_throw(m);
    EXPECT_LE(ir::total_bytes(m), m.budget_bytes);
    EXPECT_EQ(ir::total_bytes(m), a->bytes);
    EXPECT_GE(a->level, last_level) << fraction;
    for (int l = 0; l < 5; ++l) {
      EXPECT_GE(a->tokens[l], last_tokens[l]) << "layer " << l << " at " << fraction;
      // Every layer keeps at least the level's share of its attention mass.
      EXPECT_GE(a->tokens[l], tokens_for_level(curves[l], a->level, 512));
      EXPECT_EQ(ir::kept_tokens(m.layers[l], 512), a->tokens[l]);
    }
    // The search is tight: a clearly higher level no longer fits.
    if (a->level < 0.99) {
      ir::Module probe = m;
      for (int l = 0; l < 5; ++l) {
        const std::int64_t t = std::max<std::int64_t>(tokens_for_level(curves[l], a->level + 0.01, 512),
                                                      ir::tail_capacity(m.layers[l]));
        const LayerChoice c{ir::kivi_pair(4, 2), t >= 512 ? ir::RetentionPolicy::Full : ir::RetentionPolicy::H2O, t >= 512 ? 0 : t, 0};
        probe.layers[l] = make_layer_plan(probe, l, c, ctx.search);
      }
      EXPECT_GT(ir::total_bytes(probe), m.budget_bytes) << fraction;
    }
    last_level = a->level;
    last_tokens = a->tokens;
  }
}

TEST(PrefixKV, ConcentratedLayersGiveUpMoreTokens) {
  PassContext ctx = stories_context();
  const auto curves = prefix_importance_curves(*ctx.stats);
  ir::Module m = stories_module(0.25);
  auto a = allocate_prefix_retention(m, curves, ir::kivi_pair(4, 2), ir::RetentionPolicy::H2O, ctx.search);
  ASSERT_TRUE(a);
  // A layer whose curve is higher everywhere (more concentrated) never keeps more.
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) {
      bool dominates = true;
      for (std::size_t k = 0; k < curves[i].size(); ++k) dominates &= curves[i][k] >= curves[j][k];
      if (dominates) {
        EXPECT_LE(a->tokens[i], a->tokens[j]) << i << " vs " << j;
      }
    }
  const auto [lo, hi] = std::minmax_element(a->tokens.begin(), a->tokens.end());
  EXPECT_LT(*lo, *hi) << "layers differ in concentration, so their budgets must differ";
}

TEST(PrefixKV, BeatsUniformH2OAtTheSameBytes) {
  for (double fraction : {0.15, 0.2, 0.25}) {
    PassContext ctx = stories_context();
    ir::Module planned = stories_module(fraction);
    // Same precision (K4V2; at 10% it leaves one token block per layer, no room to
    // differ); the baseline spends the budget on the same tokens in every layer.
    PrefixKVPass("K4V2").run(planned, ctx);
    ir::Module uniform = stories_module(fraction);
    apply_uniform_precision(uniform, ir::kivi_pair(planned.layers[0].key.bits, planned.layers[0].value.bits), ctx.search.precision);
    ctx.search.retention.method = "h2o";
    auto tokens = largest_fitting_retention(uniform, uniform.budget_bytes, ctx.search.retention);
    ASSERT_TRUE(tokens);
    apply_uniform_retention(uniform, *tokens, ctx.search.retention);
    ASSERT_LE(ir::total_bytes(planned), planned.budget_bytes);
    ASSERT_LE(ir::total_bytes(uniform), uniform.budget_bytes);
    EXPECT_LT(predict_plan_error(planned, *ctx.stats).total, predict_plan_error(uniform, *ctx.stats).total)
        << fraction;
  }
}

TEST(PrefixKV, PassChoosesPrecisionFitsAndExplains) {
  PassContext ctx = stories_context();
  ir::Module m = stories_module(0.15);
  PassManager pm(parse_pipeline("prefixkv,estimate,legalize"));
  pm.run(m, ctx);
  EXPECT_LE(ir::total_bytes(m), m.budget_bytes);
  for (const auto& l : m.layers) {
    EXPECT_EQ(l.key.bits, m.layers[0].key.bits);
    EXPECT_EQ(l.value.bits, m.layers[0].value.bits);
  }
  ASSERT_FALSE(ctx.notes.empty());
  EXPECT_NE(ctx.notes.front().find("prefixkv:"), std::string::npos);
  // Deterministic: the same inputs give the same plan.
  PassContext again = stories_context();
  ir::Module m2 = stories_module(0.15);
  PassManager(parse_pipeline("prefixkv,estimate,legalize")).run(m2, again);
  EXPECT_EQ(m, m2);
}

TEST(PrefixKV, ExplainsAnUnreachableBudgetAndBadArguments) {
  PassContext ctx = stories_context();
  ir::Module m = stories_module(0.001);
  try {
    PrefixKVPass("").run(m, ctx);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("smallest it can reach"), std::string::npos) << e.message();
  }
  EXPECT_THROW(PrefixKVPass("K5V2"), Error);
  EXPECT_THROW(PrefixKVPass("lru"), Error);
  PassContext none;
  ir::Module n = stories_module(0.25);
  EXPECT_THROW(PrefixKVPass("").run(n, none), Error);  // no calibration stats
}

}  // namespace
}  // namespace kvc::passes
