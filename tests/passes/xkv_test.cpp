#include <gtest/gtest.h>

#include <map>

#include "ir/layout.h"
#include "ir/verifier.h"
#include "knob_test_fixture.h"
#include "passes/cost_model.h"
#include "passes/pass_manager.h"
#include "passes/uniform.h"
#include "passes/xkv.h"
#include "support/diagnostics.h"

namespace kvc::passes {
namespace {

using testing::stories_context;
using testing::stories_module;

// Every cross-layer group is a run of adjacent layers with one rank; returns the groups.
std::map<int, std::vector<int>> check_groups(const ir::Module& m) {
  std::map<int, std::vector<int>> groups;
  for (const auto& l : m.layers)
    if (l.lowrank.sharing == ir::BasisSharing::CrossLayer) groups[l.lowrank.basis_group].push_back(l.index);
  for (const auto& [id, layers] : groups) {
    for (std::size_t i = 1; i < layers.size(); ++i) EXPECT_EQ(layers[i], layers[i - 1] + 1) << "group " << id;
    for (int l : layers) EXPECT_EQ(m.layers[l].lowrank.rank, m.layers[layers.front()].lowrank.rank);
  }
  return groups;
}

TEST(XKV, GroupsAreAdjacentRuns) {
  const auto g = adjacent_groups(5, 2);
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0].first, 0);
  EXPECT_EQ(g[1].first, 2);
  EXPECT_EQ(g[2].first, 4);
  EXPECT_EQ(g[2].size, 1);
}

TEST(XKV, RanksMeetTheEnergyTargetAndNoLess) {
  for (double target : {0.6, 0.8, 0.95}) {
    PassContext ctx = stories_context();
    ir::Module m = stories_module(0.5);
    XKVPass("group=2,energy=" + std::to_string(target)).run(m, ctx);
    ir::verify_or_throw(m);
    EXPECT_LE(ir::total_bytes(m), m.budget_bytes);
    check_groups(m);
    for (const auto& g : adjacent_groups(5, 2)) {
      const int rank = m.layers[g.first].lowrank.rank == 0 ? 8 : m.layers[g.first].lowrank.rank;
      EXPECT_GE(group_key_energy(*ctx.stats, g, rank), target) << g.first;
      if (rank > 1) {
        EXPECT_LT(group_key_energy(*ctx.stats, g, rank - 1), target) << g.first;
      }
      EXPECT_EQ(rank, rank_for_energy(*ctx.stats, g, target));
    }
  }
}

TEST(XKV, BudgetModeFitsUsesCrossLayerBasesAndIsTight) {
  for (double fraction : {0.1, 0.15, 0.25}) {
    PassContext ctx = stories_context();
    ir::Module m = stories_module(fraction);
    XKVPass("").run(m, ctx);
    ir::verify_or_throw(m);
    EXPECT_LE(ir::total_bytes(m), m.budget_bytes) << fraction;
    const auto groups = check_groups(m);
    for (const auto& [id, layers] : groups) EXPECT_LE(layers.size(), 4u);
    // Tight: no low-rank group can take one more rank within the budget.
    for (const auto& [id, layers] : groups) {
      ir::Module more = m;
      for (int l : layers) ++more.layers[l].lowrank.rank;
      if (more.layers[layers.front()].lowrank.rank < 8) {
        EXPECT_GT(ir::total_bytes(more), m.budget_bytes) << fraction;
      }
    }
    ASSERT_FALSE(ctx.notes.empty());
    EXPECT_NE(ctx.notes.back().find("xkv: groups of 4"), std::string::npos) << ctx.notes.back();
  }
  // With the precision fixed at fp16 and a quarter of the bytes, keys must go low rank.
  PassContext ctx = stories_context();
  ir::Module m = stories_module(0.25);
  XKVPass("fp16").run(m, ctx);
  EXPECT_LE(ir::total_bytes(m), m.budget_bytes);
  EXPECT_TRUE(m.layers[0].lowrank.rank > 0 || m.layers[0].retention.policy != ir::RetentionPolicy::Full)
      << ctx.notes.back();
}

TEST(XKV, NoWorseThanTheUniformPlanAtTheSameBudget) {
  for (double fraction : {0.1, 0.15, 0.25}) {
    PassContext ctx = stories_context();
    ir::Module planned = stories_module(fraction);
    XKVPass("").run(planned, ctx);
    ir::Module uniform = stories_module(fraction);
    UniformPass("").run(uniform, ctx);
    ASSERT_LE(ir::total_bytes(uniform), uniform.budget_bytes);
    EXPECT_LE(predict_plan_error(planned, *ctx.stats).total, predict_plan_error(uniform, *ctx.stats).total + 1e-12)
        << fraction;
  }
}

TEST(XKV, ExplainsBadArgumentsAndUnreachableBudgets) {
  EXPECT_THROW(XKVPass("group=0"), Error);
  EXPECT_THROW(XKVPass("energy=1.5"), Error);
  EXPECT_THROW(XKVPass("rank=3"), Error);
  PassContext ctx = stories_context();
  ir::Module m = stories_module(0.25);
  EXPECT_THROW(XKVPass("group=5").run(m, ctx), Error);  // stats measured groups of at most 4
  ir::Module tiny = stories_module(0.001);
  try {
    XKVPass("").run(tiny, ctx);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("smallest it can reach"), std::string::npos) << e.message();
  }
  PassContext deterministic = stories_context();
  ir::Module a = stories_module(0.15), b = stories_module(0.15);
  XKVPass("").run(a, deterministic);
  XKVPass("").run(b, deterministic);
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace kvc::passes
