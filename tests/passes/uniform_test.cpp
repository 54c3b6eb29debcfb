#include <gtest/gtest.h>

#include "ir/layout.h"
#include "ir/verifier.h"
#include "passes/estimate.h"
#include "passes/uniform.h"
#include "support/diagnostics.h"

namespace kvc::passes {
namespace {

ir::Module llama8b(std::int64_t budget) {
  ir::ModelShape shape{"Llama-3.1-8B", 32, 32, 8, 128, 500000.0, ir::DType::F16};
  return ir::make_uncompressed_module(shape, {32768, 4, 512}, budget);
}

PassContext context() {
  PassContext ctx;
  ctx.search.precision.group = 32;
  ctx.search.precision.residual = 128;
  return ctx;
}

TEST(Uniform, Fp16WhenTheBudgetAllowsIt) {
  ir::Module m = llama8b(16LL << 30);
  PassContext ctx = context();
  UniformPass("").run(m, ctx);
  for (const auto& l : m.layers) {
    EXPECT_EQ(l.key.bits, 16);
    EXPECT_EQ(l.value.bits, 16);
    EXPECT_EQ(l.retention.policy, ir::RetentionPolicy::Full);
  }
  EXPECT_EQ(ir::total_bytes(m), 16LL << 30);
}

TEST(Uniform, PicksTheMostPreciseFormatThatFits) {
  // 6 GiB of a 16 GiB fp16 cache: K8V4 (7 bits/elem with scales) does not fit, K4V4 (5 bits
  // with scales, 5 GiB + 64 MiB of fp16 tail) does.
  ir::Module m = llama8b(6LL << 30);
  PassContext ctx = context();
  UniformPass("").run(m, ctx);
  ir::verify_or_throw(m);
  EXPECT_LE(ir::total_bytes(m), m.budget_bytes);
  EXPECT_EQ(m.layers[0].key.bits, 4);
  EXPECT_EQ(m.layers[0].value.bits, 4);
  EXPECT_EQ(m.layers[0].residual, 128);
  EXPECT_EQ(m.layers[0].retention.policy, ir::RetentionPolicy::Full);
  // The next more precise candidate (K8V4) must not fit, or the pass was not greedy enough.
  ir::Module more = m;
  apply_uniform_precision(more, ir::kivi_pair(8, 4), ctx.search.precision);
  EXPECT_GT(ir::total_bytes(more), m.budget_bytes);
}

TEST(Uniform, FallsBackToStreamingLLMTokensWhenNoFormatFits) {
  ir::Module m = llama8b(1LL << 30);  // 1/16 of fp16: below K2V2 at full context
  PassContext ctx = context();
  ctx.search.retention.sink = 4;
  UniformPass("").run(m, ctx);
  ir::verify_or_throw(m);
  const auto& l = m.layers[0];
  EXPECT_EQ(l.key.bits, 2);
  EXPECT_EQ(l.value.bits, 2);
  EXPECT_EQ(l.retention.policy, ir::RetentionPolicy::StreamingLLM);
  EXPECT_LT(l.retention.budget, 32768);
  EXPECT_LE(ir::total_bytes(m), m.budget_bytes);
  // One more kept token would not fit (the search is tight).
  ir::Module plus = m;
  apply_uniform_retention(plus, l.retention.budget + 1, ctx.search.retention);
  EXPECT_GT(ir::total_bytes(plus), m.budget_bytes);
}

TEST(Uniform, ExplicitFormatArgument) {
  ir::Module m = llama8b(16LL << 30);
  PassContext ctx = context();
  UniformPass("K4V2").run(m, ctx);
  EXPECT_EQ(m.layers[31].key.bits, 4);
  EXPECT_EQ(m.layers[31].value.bits, 2);
  EXPECT_THROW(UniformPass("K5V2").run(m, ctx), Error);
}

TEST(Uniform, NarrowHeadsUseWholeHeadValueGroups) {
  ir::ModelShape shape{"stories260K", 5, 8, 4, 8, 10000.0, ir::DType::F32};
  ir::Module m = ir::make_uncompressed_module(shape, {512, 1, 64}, 1 << 30);
  PassContext ctx = context();
  UniformPass("K4V4").run(m, ctx);
  EXPECT_EQ(m.layers[0].key.group, 32);
  EXPECT_EQ(m.layers[0].value.group, 8);
  ir::verify_or_throw(m);
}

TEST(Uniform, CandidatesFromTheSpecRestrictTheLadder) {
  ir::Module m = llama8b(16LL << 30);
  PassContext ctx = context();
  ctx.search.precision.candidates = {"K4V2", "K2V2"};
  UniformPass("").run(m, ctx);
  EXPECT_EQ(m.layers[0].key.bits, 4);
  EXPECT_EQ(m.layers[0].value.bits, 2);
}

TEST(Estimate, MatchesTheLayoutModel) {
  ir::Module m = llama8b(4LL << 30);
  PassContext ctx = context();
  UniformPass("K4V2").run(m, ctx);
  const Estimate e = estimate_module(m);
  ASSERT_EQ(e.layers.size(), 32u);
  EXPECT_EQ(e.total, ir::total_bytes(m));
  EXPECT_EQ(e.fp16, 16LL << 30);
  // By hand, one KV head of one sequence: 32768 tokens, tail C = 128, B = 32,
  // blocks = (32768-128)/32 = 1020; K: 128 ch * (4 + 32*4/8) = 2560 B per block;
  // V: 32 tokens * (4 groups * 4 + 128*2/8) = 1536 B; tail 128*128*2*2 = 65536 B.
  const std::int64_t per_head = 1020 * (2560 + 1536) + 65536;
  EXPECT_EQ(e.layers[0].total(), per_head * 8 * 4);
}

}  // namespace
}  // namespace kvc::passes
