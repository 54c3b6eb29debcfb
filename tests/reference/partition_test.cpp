#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "backends/reference/reference_cache.h"
#include "cache_fixture.h"
#include "ir/layout.h"
#include "support/diagnostics.h"

namespace kvc::reference {
namespace {

using testing::one_layer_module;
using testing::quant_plan;
using testing::random_vector;

// Appends one token at a time and checks the partition of ir/layout.h after each.
void check_partition(const ir::LayerPlan& plan, std::int64_t n_tokens) {
  std::mt19937 rng(21);
  const ir::Module m = one_layer_module(4, 2, 8, n_tokens, plan);
  ReferenceLayerCache cache(m, 0);
  const std::int64_t b = ir::token_block(plan), c = ir::tail_capacity(plan);
  for (std::int64_t n = 1; n <= n_tokens; ++n) {
    const auto k = random_vector(16, rng), v = random_vector(16, rng);
    cache.append(k.data(), v.data(), 1);
    const std::int64_t blocks = n <= c ? 0 : (n - c + b - 1) / b;
    ASSERT_EQ(cache.held_blocks(0), blocks) << "after " << n << " tokens";
    ASSERT_EQ(cache.held_blocks(1), blocks);
    ASSERT_EQ(cache.tail_tokens(), n - blocks * b);
    ASSERT_LE(cache.tail_tokens(), c);
    if (blocks > 0) {
      ASSERT_GT(cache.tail_tokens(), c - b);  // the tail is never emptier than a flush leaves it
    }
    const auto pos = cache.block_positions(0);
    for (std::size_t i = 0; i < pos.size(); ++i) ASSERT_EQ(pos[i], static_cast<std::int64_t>(i) * b);
  }
}

TEST(Partition, TailFillsThenFlushesOldestBlock) {
  check_partition(quant_plan(4, 4, 8, 20), 300);   // C = 20 > B = 8
  check_partition(quant_plan(2, 2, 8, 3), 300);    // C = B = 8
  check_partition(quant_plan(2, 2, 8, 8), 131);    // R = B
  check_partition(quant_plan(16, 4, 4, 5), 99);    // only V quantized (per token): B = 1, C = 5
  check_partition(ir::LayerPlan{}, 50);            // nothing compressed: C = 0, 1-token blocks
}

TEST(Partition, BatchAppendEqualsTokenByToken) {
  std::mt19937 rng(22);
  const ir::Module m = one_layer_module(2, 1, 8, 200, quant_plan(4, 2, 8, 12));
  ReferenceLayerCache one(m, 0), many(m, 0);
  const auto k = random_vector(8 * 150, rng), v = random_vector(8 * 150, rng);
  for (int t = 0; t < 150; ++t) one.append(k.data() + 8 * t, v.data() + 8 * t, 1);
  many.append(k.data(), v.data(), 150);
  const auto q = random_vector(16, rng);
  std::vector<float> a(16), b(16);
  one.attend(q.data(), a.data());
  many.attend(q.data(), b.data());
  EXPECT_EQ(a, b);
}

TEST(Partition, FullRetentionRefusesMoreThanTheContext) {
  std::mt19937 rng(23);
  ReferenceLayerCache cache(one_layer_module(2, 1, 8, 40, quant_plan(4, 4, 8, 0)), 0);
  const auto k = random_vector(8 * 41, rng), v = random_vector(8 * 41, rng);
  cache.append(k.data(), v.data(), 40);
  EXPECT_EQ(cache.held_blocks(0), 4);
  EXPECT_THROW(cache.append(k.data(), v.data(), 1), Error);
}

TEST(Partition, BadInputsAreErrors) {
  const ir::Module m = one_layer_module(2, 1, 8, 40, quant_plan(4, 4, 8, 0));
  EXPECT_THROW(ReferenceLayerCache(m, 1), Error);
  ir::Module bad = m;
  bad.model.q_heads = 3;
  bad.model.kv_heads = 2;
  EXPECT_THROW(ReferenceLayerCache(bad, 0), Error);
  bad = m;
  bad.layers[0].value.group = 3;
  EXPECT_THROW(ReferenceLayerCache(bad, 0), Error);
  bad = m;
  bad.layers[0].value = {4, ir::QuantAxis::PerChannel, 16};  // disagrees with the key's block of 8
  EXPECT_THROW(ReferenceLayerCache(bad, 0), Error);
  bad = m;
  bad.layers[0].lowrank.rank = 9;
  EXPECT_THROW(ReferenceLayerCache(bad, 0), Error);

  ReferenceLayerCache cache(m, 0);
  std::vector<float> k(8, 1.0f), v(8, 1.0f);
  k[3] = 1e6f;
  EXPECT_THROW(cache.append(k.data(), v.data(), 1), Error);
  k[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(cache.append(k.data(), v.data(), 1), Error);
  EXPECT_THROW(cache.append(nullptr, v.data(), 1), Error);
  EXPECT_THROW(cache.held_blocks(1), Error);
  EXPECT_THROW(cache.set_basis(0, k), Error);  // no low rank
}

}  // namespace
}  // namespace kvc::reference
