// kvtuner and joint: they fit the budget, are deterministic, and joint's predicted
// error is never worse than a single-knob pass's (its candidate space contains
// theirs). Offline: synthetic stats of the model's shape (tests/stats/synthetic_stats.h).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "frontend/spec.h"
#include "ir/layout.h"
#include "ir/verifier.h"
#include "passes/cost_model.h"
#include "passes/pass_manager.h"
#include "stats/synthetic_stats.h"
#include "test_support/test_data.h"

namespace kvc::passes {
namespace {

frontend::Spec stories_spec() { return frontend::load_spec(testing::source_dir() + "/specs/stories260K.yaml"); }

struct Planned {
  ir::Module module;
  std::vector<std::string> notes;
};

Planned plan_with(const std::string& pipeline, const frontend::Spec& spec, double ratio,
                  const std::shared_ptr<const calibration::CalibrationStats>& stats) {
  Planned p{spec.to_module(), {}};
  p.module.budget_bytes = static_cast<std::int64_t>(ratio * static_cast<double>(ir::fp16_bytes(p.module)));
  PassContext ctx;
  ctx.search = spec.search;
  ctx.stats = stats;
  PassManager pm(parse_pipeline(pipeline));
  pm.run(p.module, ctx);
  p.notes = ctx.notes;
  return p;
}

bool registered(const std::string& name) {
  for (const auto& info : pass_registry())
    if (info.name == name) return true;
  return false;
}

TEST(CostModel, UncompressedPlanPredictsZeroAndErrorsFallWithBits) {
  const auto spec = stories_spec();
  const auto stats = kvc::calibration::synthetic_stats(spec.model);
  ir::Module m = spec.to_module();
  EXPECT_EQ(predict_plan_error(m, stats).total, 0.0);
  EXPECT_GT(predicted_quant_error(stats, 0, ir::kivi_pair(2, 2)), predicted_quant_error(stats, 0, ir::kivi_pair(4, 4)));
  EXPECT_GT(predicted_quant_error(stats, 0, ir::kivi_pair(4, 4)), predicted_quant_error(stats, 0, ir::kivi_pair(8, 8)));
  EXPECT_GT(predicted_retention_error(stats, 1, ir::RetentionPolicy::H2O, 0.1),
            predicted_retention_error(stats, 1, ir::RetentionPolicy::H2O, 0.6));
  EXPECT_EQ(predicted_retention_error(stats, 1, ir::RetentionPolicy::H2O, 1.0), 0.0);
  EXPECT_GT(predicted_rank_error(stats, 2, 2), predicted_rank_error(stats, 2, 6));
  EXPECT_THROW(predicted_quant_error(stats, 0, ir::kivi_pair(5, 4)), Error);
  EXPECT_THROW(predicted_quant_error(stats, 9, ir::kivi_pair(4, 4)), Error);
}

// End-to-end tensors by hand: every layer at K8V8 costs 0.01 nats; uniform eviction
// to half (a quarter) of the context costs 1 (2) nats with every policy. With
// `per_layer`, the single-layer probes say layer 0 loses far more than the others.
calibration::CalibrationStats with_end_to_end_probes(calibration::CalibrationStats s, bool per_layer) {
  const std::int64_t L = s.meta.model.layers;
  s.tensors["e2e_quant_kl"] = {{1, 3}, {8, 8, 0.01f}};
  s.tensors["e2e_keep_ratios"] = {{2}, {0.25f, 0.5f}};
  s.tensors["e2e_retention_kl"] = {{3, 2}, {2, 1, 2, 1, 2, 1}};
  s.tensors["e2e_keep_ratios_quantized"] = {{1}, {0.5f}};
  s.tensors["e2e_retention_quantized_kl"] = {{1, 3, 1}, {1, 1, 1}};
  s.tensors["e2e_rank_kl"] = {{1, 2}, {4, 0.5f}};
  if (per_layer) {
    calibration::StatsTensor layer{{L, 3, 2}, {}};
    for (std::int64_t l = 0; l < L; ++l)
      for (int p = 0; p < 3; ++p) {
        layer.data.push_back(l == 0 ? 1.5f : 0.1f);
        layer.data.push_back(l == 0 ? 0.8f : 0.05f);
      }
    s.tensors["e2e_layer_retention_kl"] = std::move(layer);
    s.tensors["e2e_layer_keep_ratios"] = {{2}, {0.25f, 0.5f}};
  }
  return s;
}

TEST(CostModel, SingleLayerRetentionProbesSplitAUniformEvictionsDamageAcrossLayers) {
  const auto spec = stories_spec();
  const auto base = kvc::calibration::synthetic_stats(spec.model);
  const auto equal = with_end_to_end_probes(base, false), split = with_end_to_end_probes(base, true);
  ASSERT_TRUE(has_end_to_end_calibration(split));
  const ir::Module m = spec.to_module();
  const std::int64_t half = m.workload.context / 2;
  const LayerChoice evict{{}, ir::RetentionPolicy::H2O, half, 0};
  ir::Module uniform = m;
  apply_choices(uniform, std::vector<LayerChoice>(m.layers.size(), evict), spec.search);
  // A uniform plan is priced by its own probe either way: the shares sum to one.
  EXPECT_NEAR(predict_plan_error(uniform, split).total, predict_plan_error(uniform, equal).total, 1e-9);
  auto only = [&](int layer) {
    ir::Module one = m;
    one.layers[layer] = make_layer_plan(m, layer, evict, spec.search);
    return one;
  };
  const int last = m.model.layers - 1;
  EXPECT_NEAR(predict_plan_error(only(0), equal).total, predict_plan_error(only(last), equal).total, 1e-12);
  EXPECT_GT(predict_plan_error(only(0), split).total, 5 * predict_plan_error(only(last), split).total);
  // Per-layer probes of the wrong shape are refused, not misread.
  auto bad = split;
  bad.tensors["e2e_layer_retention_kl"].shape = {m.model.layers + 1, 3, 2};
  EXPECT_THROW(has_end_to_end_calibration(bad), Error);
}

TEST(CostModel, CostTableBytesAreTheLayoutBytesOfThePlanEachChoiceMakes) {
  const auto spec = stories_spec();
  const auto stats = kvc::calibration::synthetic_stats(spec.model);
  const ir::Module m = spec.to_module();
  CandidateSpace space;
  space.pairs = {ir::kivi_pair(4, 2), ir::kivi_pair(8, 8)};
  space.policies = {ir::RetentionPolicy::SnapKV};
  space.keeps = {64, 160};
  space.ranks = {4};
  const auto tables = build_cost_tables(m, stats, spec.search, space);
  ASSERT_EQ(tables.size(), m.layers.size());
  for (const auto& e : tables[3]) {
    ir::Module one = m;
    one.layers[3] = make_layer_plan(m, 3, e.choice, spec.search);
    EXPECT_TRUE(ir::verify_module(one).empty()) << describe(e.choice);
    EXPECT_EQ(e.bytes, ir::layer_bytes(one, 3).total()) << describe(e.choice);
    EXPECT_DOUBLE_EQ(e.error, predict_plan_error(one, stats).layers[3].total) << describe(e.choice);
  }
}

class SearchPassesAtBudget : public ::testing::TestWithParam<double> {};

TEST_P(SearchPassesAtBudget, FitDeterministicAndJointIsNeverWorse) {
  const double ratio = GetParam();
  const auto spec = stories_spec();
  auto stats = std::make_shared<const calibration::CalibrationStats>(kvc::calibration::synthetic_stats(spec.model));
  const Planned joint = plan_with("joint,estimate,legalize", spec, ratio, stats);
  EXPECT_LE(ir::total_bytes(joint.module), joint.module.budget_bytes);
  EXPECT_TRUE(ir::verify_module(joint.module).empty());
  EXPECT_EQ(plan_with("joint", spec, ratio, stats).module, joint.module) << "joint is not deterministic";
  const double joint_error = predict_plan_error(joint.module, *stats).total;

  for (const std::string pass : {"kvtuner", "uniform", "prefixkv", "cake", "xkv"}) {
    if (!registered(pass)) continue;
    Planned single;
    try {
      single = plan_with(pass + ",estimate,legalize", spec, ratio, stats);
    } catch (const Error&) {
      continue;  // it cannot fit this budget: nothing to compare
    }
    if (pass == "kvtuner") {
      EXPECT_EQ(plan_with("kvtuner", spec, ratio, stats).module, single.module) << "kvtuner is not deterministic";
      bool both_reported = false;
      for (const auto& n : single.notes) both_reported |= n.find("clustered search") != std::string::npos;
      EXPECT_TRUE(both_reported);
    }
    EXPECT_LE(joint_error, predict_plan_error(single.module, *stats).total + 1e-12) << pass << " at " << ratio;
  }
}

INSTANTIATE_TEST_SUITE_P(Budgets, SearchPassesAtBudget, ::testing::Values(0.5, 0.25, 0.15, 0.1));

// Speed is bench/plan_bench.cpp's to show; this checks the 80-layer plan fits.
TEST(JointPass, PlansAnEightyLayerModelWithinBudget) {
  const auto spec = frontend::load_spec(testing::source_dir() + "/specs/llama-3.1-70b.yaml");
  auto stats = std::make_shared<const calibration::CalibrationStats>(kvc::calibration::synthetic_stats(spec.model));
  ASSERT_EQ(spec.model.layers, 80);
  const Planned joint = plan_with("joint,estimate,legalize", spec, 0.25, stats);
  EXPECT_LE(ir::total_bytes(joint.module), joint.module.budget_bytes);
}

}  // namespace
}  // namespace kvc::passes
