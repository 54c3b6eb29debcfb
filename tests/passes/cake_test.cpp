#include <gtest/gtest.h>

#include "ir/layout.h"
#include "ir/verifier.h"
#include "knob_test_fixture.h"
#include "passes/cake.h"
#include "passes/cost_model.h"
#include "passes/pass_manager.h"
#include "passes/uniform.h"
#include "support/diagnostics.h"

namespace kvc::passes {
namespace {

using testing::stories_context;
using testing::stories_module;

TEST(Cake, PreferenceIsEntropyTimesVariance) {
  PassContext ctx = stories_context();
  const auto p = cake_layer_preferences(*ctx.stats, 1.0, 1.0);
  const auto& h = ctx.stats->tensor("cake_entropy_mean", {5, 4});
  const auto& v = ctx.stats->tensor("cake_variance_mean", {5, 4});
  ASSERT_EQ(p.size(), 5u);
  for (int l = 0; l < 5; ++l) {
    double hs = 0, vs = 0;
    for (int k = 0; k < 4; ++k) hs += h.data[l * 4 + k], vs += v.data[l * 4 + k];
    EXPECT_NEAR(p[l], hs * vs, 1e-6 * hs * vs);
  }
  const auto sharp = cake_layer_preferences(*ctx.stats, 0.5, 2.0);
  EXPECT_NE(sharp, p);
  EXPECT_THROW(cake_layer_preferences(*ctx.stats, 0.0, 1.0), Error);
}

TEST(Cake, MorePreferredLayersKeepMoreTokens) {
  PassContext ctx = stories_context();
  const auto pref = cake_layer_preferences(*ctx.stats, 1.0, 1.0);
  // (At 10% K4V2 leaves one token block per layer beyond the tails: no room to differ.)
  for (double fraction : {0.15, 0.2, 0.25}) {
    ir::Module m = stories_module(fraction);
    auto a = allocate_cake_retention(m, pref, ir::kivi_pair(4, 2), 200.0, ctx.search);
    ASSERT_TRUE(a) << fraction;
    ir::verify_or_throw(m);
    EXPECT_LE(ir::total_bytes(m), m.budget_bytes);
    for (int i = 0; i < 5; ++i)
      for (int j = 0; j < 5; ++j)
        if (pref[i] > pref[j]) {
          EXPECT_GE(a->tokens[i], a->tokens[j]) << i << " vs " << j << " at " << fraction;
        }
    const int top = static_cast<int>(std::max_element(pref.begin(), pref.end()) - pref.begin());
    const int bottom = static_cast<int>(std::min_element(pref.begin(), pref.end()) - pref.begin());
    EXPECT_GT(a->tokens[top], a->tokens[bottom]) << fraction;
    // The tokens above the 32-token tail follow the preferences to within a block.
    for (int l = 0; l < 5; ++l) {
      if (a->tokens[l] >= 512) continue;
      const double expected = static_cast<double>(a->tokens[top] - 32) * pref[l] / pref[top];
      EXPECT_NEAR(static_cast<double>(a->tokens[l] - 32), expected, 2 * 32 + 1e-9) << l;
    }
    for (const auto& l : m.layers) {
      if (l.retention.policy == ir::RetentionPolicy::Full) continue;
      EXPECT_EQ(l.retention.policy, ir::RetentionPolicy::CAKE);
      EXPECT_EQ(l.retention.gamma, 200.0);
      EXPECT_EQ(l.retention.window, 64);
    }
  }
}

TEST(Cake, BeatsUniformCakeAtTheSameBytes) {
  for (double fraction : {0.2, 0.25, 0.3}) {
    PassContext ctx = stories_context();
    ir::Module planned = stories_module(fraction);
    // Same precision (K4V2; below 20% its few token blocks per layer leave CAKE's
    // proportional split no room to differ); the baseline spends the budget on the same tokens in every layer.
    CakePass("K4V2").run(planned, ctx);
    ir::Module uniform = stories_module(fraction);
    apply_uniform_precision(uniform, ir::kivi_pair(planned.layers[0].key.bits, planned.layers[0].value.bits), ctx.search.precision);
    ctx.search.retention.method = "cake";
    auto tokens = largest_fitting_retention(uniform, uniform.budget_bytes, ctx.search.retention);
    ASSERT_TRUE(tokens);
    apply_uniform_retention(uniform, *tokens, ctx.search.retention);
    ASSERT_LE(ir::total_bytes(planned), planned.budget_bytes);
    EXPECT_LT(predict_plan_error(planned, *ctx.stats).total, predict_plan_error(uniform, *ctx.stats).total)
        << fraction;
  }
}

TEST(Cake, UnsetTemperaturesAreTunedNeverWorseThanCakesFallback) {
  for (double fraction : {0.15, 0.25, 0.5}) {
    PassContext fixed_ctx = stories_context(), tuned_ctx = stories_context();
    ir::Module fixed = stories_module(fraction), tuned = stories_module(fraction);
    CakePass("fp16,tau1=1,tau2=1").run(fixed, fixed_ctx);
    CakePass("fp16").run(tuned, tuned_ctx);
    ASSERT_LE(ir::total_bytes(tuned), tuned.budget_bytes);
    // The grid holds (1, 1), so tuning can only lower the predicted error.
    EXPECT_LE(predict_plan_error(tuned, *tuned_ctx.stats).total, predict_plan_error(fixed, *fixed_ctx.stats).total)
        << fraction;
    ASSERT_FALSE(tuned_ctx.notes.empty());
    EXPECT_NE(tuned_ctx.notes.back().find("tuned"), std::string::npos) << tuned_ctx.notes.back();
    EXPECT_EQ(fixed_ctx.notes.back().find("tuned"), std::string::npos) << fixed_ctx.notes.back();
  }
}

TEST(Cake, PassFitsIsDeterministicAndExplainsFailures) {
  PassContext ctx = stories_context();
  ir::Module m = stories_module(0.15);
  PassManager(parse_pipeline("cake<tau1=1.6,tau2=0.4>,estimate,legalize")).run(m, ctx);
  EXPECT_LE(ir::total_bytes(m), m.budget_bytes);
  ASSERT_FALSE(ctx.notes.empty());
  EXPECT_NE(ctx.notes.front().find("cake:"), std::string::npos);
  PassContext again = stories_context();
  ir::Module m2 = stories_module(0.15);
  PassManager(parse_pipeline("cake<tau1=1.6,tau2=0.4>,estimate,legalize")).run(m2, again);
  EXPECT_EQ(m, m2);

  ir::Module tiny = stories_module(0.001);
  try {
    CakePass("").run(tiny, ctx);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("smallest it can reach"), std::string::npos) << e.message();
  }
  EXPECT_THROW(CakePass("tau1=0"), Error);
  EXPECT_THROW(CakePass("tau3=1"), Error);
  EXPECT_THROW(CakePass("gamma=x"), Error);
}

}  // namespace
}  // namespace kvc::passes
