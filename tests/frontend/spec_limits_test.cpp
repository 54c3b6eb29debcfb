// The smallest plan: its shape, its bytes by the layout model, and the budget
// check at exactly that floor.
#include <gtest/gtest.h>

#include "frontend/spec.h"
#include "frontend/spec_limits.h"
#include "ir/layout.h"

namespace kvc {
namespace {

ir::Module module_of(int layers, int kv_heads, int head_dim, std::int64_t context, std::int64_t batch) {
  return ir::make_uncompressed_module(ir::ModelShape{"m", layers, kv_heads * 2, kv_heads, head_dim, 10000.0, ir::DType::F16},
                                      ir::Workload{context, batch, 0}, 0);
}

TEST(SmallestPlan, ValueGroupNeverExceedsTheHead) {
  EXPECT_EQ(frontend::value_group(32, 8), 8);
  EXPECT_EQ(frontend::value_group(32, 128), 32);
  EXPECT_EQ(frontend::value_group(128, 64), 64);
}

TEST(SmallestPlan, IsK2V2KeepingOnlyTheTail) {
  const ir::Module m = ir::smallest_plan(module_of(5, 4, 8, 512, 1), 32);
  ASSERT_EQ(m.layers.size(), 5u);
  for (const ir::LayerPlan& p : m.layers) {
    EXPECT_EQ(p.key, (ir::QuantFormat{2, ir::QuantAxis::PerChannel, 32}));
    EXPECT_EQ(p.value, (ir::QuantFormat{2, ir::QuantAxis::PerToken, 8}));  // the whole 8-channel head
    EXPECT_EQ(p.residual, 32);
    EXPECT_EQ(p.retention.policy, ir::RetentionPolicy::StreamingLLM);
    EXPECT_EQ(p.retention.budget, ir::tail_capacity(p));
    EXPECT_EQ(ir::main_block_capacity(p, 512), 0);
    EXPECT_EQ(p.lowrank.rank, 0);
  }
  // Only the 32-token fp16 tail remains: layers x kv_heads x 32 x 8 x (K+V) x 2 bytes.
  EXPECT_EQ(ir::total_bytes(m), 5 * 4 * 32 * 8 * 2 * 2);
}

TEST(SmallestPlan, ScalesWithBatchAndGroup) {
  const ir::Module m = ir::smallest_plan(module_of(32, 8, 128, 32768, 4), 64);
  EXPECT_EQ(ir::total_bytes(m), std::int64_t{32} * 4 * 8 * 64 * 128 * 2 * 2);
  EXPECT_EQ(m.layers[0].value.group, 64);
}

// A budget of exactly the floor is accepted; one byte less names budget.bytes.
TEST(SmallestPlan, SpecBudgetBoundary) {
  const std::string head =
      "kvc: 1\nmodel: {layers: 5, q_heads: 8, kv_heads: 4, head_dim: 8}\nworkload: {context: 512}\nbudget: {bytes: ";
  const std::int64_t floor = 5 * 4 * 32 * 8 * 2 * 2;
  EXPECT_EQ(frontend::parse_spec(head + std::to_string(floor) + "}\n", "b.yaml").budget_bytes, floor);
  try {
    frontend::parse_spec(head + std::to_string(floor - 1) + "}\n", "b.yaml");
    FAIL() << "a budget below the smallest plan must be rejected";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "budget.bytes");
    EXPECT_EQ(e.location().line, 4);
    EXPECT_EQ(e.location().column, 17);
    EXPECT_NE(e.message().find("(20480 bytes"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kvc
