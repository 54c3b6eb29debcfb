// kvtuner and joint choosing per layer among every format family
// (search.precision.formats): never worse than KIVI's formats alone, the cost
// tables' pair pruning leaves the optimum unchanged, and rotated/codebook formats are
// chosen where the stats price them lower. Synthetic stats (stats/synthetic_stats.h).
#include <gtest/gtest.h>

#include <memory>
#include <set>

#include "frontend/spec.h"
#include "ir/layout.h"
#include "ir/precision.h"
#include "ir/verifier.h"
#include "passes/budget_search.h"
#include "passes/cost_model.h"
#include "passes/joint.h"
#include "passes/pass_manager.h"
#include "stats/synthetic_stats.h"
#include "test_support/test_data.h"

namespace kvc::passes {
namespace {

const std::vector<std::string> kFamilies = {"kivi", "t", "tr", "cr"};

std::shared_ptr<const calibration::CalibrationStats> stats_for(const ir::ModelShape& model, bool end_to_end) {
  kvc::calibration::SyntheticStatsOptions o;
  o.end_to_end_probes = end_to_end;
  o.families = kFamilies;
  return std::make_shared<const calibration::CalibrationStats>(kvc::calibration::synthetic_stats(model, o));
}

ir::Module plan(const std::string& pass, frontend::Spec spec, double ratio, bool all_formats,
                const std::shared_ptr<const calibration::CalibrationStats>& stats) {
  ir::Module m = spec.to_module();
  m.budget_bytes = static_cast<std::int64_t>(ratio * static_cast<double>(ir::fp16_bytes(m)));
  PassContext ctx;
  ctx.search = spec.search;
  if (all_formats) {
    ctx.search.precision.formats = kFamilies;
    ctx.search.precision.candidates.clear();  // candidates, when given, are the whole space
  }
  ctx.stats = stats;
  PassManager(parse_pipeline(pass + ",estimate,legalize")).run(m, ctx);
  return m;
}

std::set<std::string> families_used(const ir::Module& m) {
  std::set<std::string> out;
  for (const auto& l : m.layers) {
    out.insert(ir::family_name(ir::key_side(l.key, ir::key_dims(l, m.model.head_dim))));
    out.insert(ir::family_name(ir::value_side(l.value, m.model.head_dim)));
  }
  return out;
}

class FormatSearch : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(FormatSearch, AllFamiliesAreNeverWorseThanKiviAloneAndGetUsed) {
  const auto& [pass, end_to_end] = GetParam();
  const frontend::Spec spec = frontend::load_spec(kvc::testing::source_dir() + "/specs/llama-3.1-8b.yaml");
  const auto stats = stats_for(spec.model, end_to_end);
  bool any_new = false;
  for (double ratio : {0.3, 0.2, 0.12}) {
    const ir::Module kivi = plan(pass, spec, ratio, false, stats);
    const ir::Module all = plan(pass, spec, ratio, true, stats);
    EXPECT_TRUE(ir::verify_module(all).empty());
    EXPECT_LE(ir::total_bytes(all), all.budget_bytes);
    EXPECT_EQ(families_used(kivi), (std::set<std::string>{"kivi"})) << ratio;
    const double kivi_error = predict_plan_error(kivi, *stats).total, all_error = predict_plan_error(all, *stats).total;
    if (pass == "joint") {
      EXPECT_LE(all_error, kivi_error * (1 + 1e-12)) << ratio;
    }
    any_new = any_new || families_used(all) != std::set<std::string>{"kivi"};
  }
  EXPECT_TRUE(any_new) << pass << ": the cheaper, more accurate rotated formats were never chosen";
}

INSTANTIATE_TEST_SUITE_P(Passes, FormatSearch,
                         ::testing::Combine(::testing::Values("joint", "kvtuner"), ::testing::Bool()));

TEST(FormatSearch, PairPruningKeepsEveryLayersFrontier) {
  // The cost tables drop pairs another pair dominates in a layer; the frontier of
  // each layer must be what every pair's entries would give.
  const frontend::Spec spec = frontend::load_spec(kvc::testing::source_dir() + "/specs/llama-3.1-8b.yaml");
  for (bool end_to_end : {false, true}) {
    const auto stats = stats_for(spec.model, end_to_end);
    ir::Module m = spec.to_module();
    frontend::SearchOptions options = spec.search;
    options.precision.formats = kFamilies;
    options.precision.candidates.clear();
    CandidateSpace space = joint_candidate_space(m, options);
    const auto pruned = build_cost_tables(m, *stats, options, space);
    // One pair at a time is never pruned (nothing dominates it).
    const std::vector<int> layers = {0, 13, 31};
    std::vector<std::vector<CostEntry>> unpruned(layers.size());
    for (const ir::PrecisionPair& pair : space.pairs) {
      CandidateSpace one = space;
      one.pairs = {pair};
      const auto t = build_cost_tables(m, *stats, options, one);
      for (std::size_t i = 0; i < layers.size(); ++i)
        unpruned[i].insert(unpruned[i].end(), t[static_cast<std::size_t>(layers[i])].begin(),
                           t[static_cast<std::size_t>(layers[i])].end());
    }
    std::size_t entries = 0, kept = 0;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const int layer = layers[i];
      const std::vector<CostEntry>& every = unpruned[i];
      entries += every.size();
      kept += pruned[static_cast<std::size_t>(layer)].size();
      const auto want = pareto_frontier(every), got = pareto_frontier(pruned[static_cast<std::size_t>(layer)]);
      ASSERT_EQ(got.size(), want.size()) << "layer " << layer;
      for (std::size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(got[i].bytes, want[i].bytes) << layer << " " << i;
        EXPECT_DOUBLE_EQ(got[i].error, want[i].error) << layer << " " << i;
      }
    }
    EXPECT_LT(kept * 4, entries) << "pruning should drop most pairs' entries";
  }
}

}  // namespace
}  // namespace kvc::passes
