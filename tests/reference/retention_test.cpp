#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "backends/reference/reference_cache.h"
#include "backends/reference/retention_scores.h"
#include "cache_fixture.h"
#include "ir/layout.h"
#include "support/diagnostics.h"

namespace kvc::reference {
namespace {

using testing::one_layer_module;
using testing::quant_plan;
using testing::random_vector;

constexpr int kDim = 8;

bool holds(const std::vector<std::int64_t>& pos, std::int64_t p) { return std::find(pos.begin(), pos.end(), p) != pos.end(); }

TEST(Retention, StreamingLlmKeepsSinkBlocksAndTheNewest) {
  std::mt19937 rng(41);
  // B = 8, C = 8, budget 48 -> 5 block slots; sink 4 -> the block at position 0 stays.
  ir::LayerPlan p = quant_plan(4, 4, 8, 0);
  p.retention = {ir::RetentionPolicy::StreamingLLM, 48, 4, 0, 0, 0.0};
  ReferenceLayerCache cache(one_layer_module(2, 1, kDim, 1000, p), 0);
  ASSERT_EQ(cache.block_capacity(), 5);
  const auto k = random_vector(kDim * 300, rng), v = random_vector(kDim * 300, rng);
  for (int n = 1; n <= 300; ++n) {
    cache.append(k.data() + (n - 1) * kDim, v.data() + (n - 1) * kDim, 1);
    ASSERT_LE(cache.held_blocks(0), 5);
  }
  // 300 tokens: flushed blocks at 0, 8, ..., 288 - 8 = 280 (tail holds 292..299 = 8 tokens).
  const std::int64_t newest = 300 - cache.tail_tokens() - 8;
  EXPECT_EQ(cache.block_positions(0),
            (std::vector<std::int64_t>{0, newest - 24, newest - 16, newest - 8, newest}));
}

TEST(Retention, StreamingLlmWithFp16OneTokenBlocks) {
  std::mt19937 rng(42);
  ir::LayerPlan p;
  p.retention = {ir::RetentionPolicy::StreamingLLM, 20, 4, 0, 0, 0.0};
  ReferenceLayerCache cache(one_layer_module(1, 1, kDim, 1000, p), 0);
  const auto k = random_vector(kDim * 100, rng), v = random_vector(kDim * 100, rng);
  cache.append(k.data(), v.data(), 100);
  std::vector<std::int64_t> want = {0, 1, 2, 3};
  for (std::int64_t t = 84; t < 100; ++t) want.push_back(t);
  EXPECT_EQ(cache.block_positions(0), want);
}

// Keys of the block at `hot` point along `dir`; the query is `dir`: that block gets ~all attention.
void make_hot_block(std::vector<float>& k, std::int64_t hot, int b, const std::vector<float>& dir) {
  for (std::int64_t t = hot; t < hot + b; ++t)
    for (int d = 0; d < kDim; ++d) k[static_cast<std::size_t>(t * kDim + d)] = 8.0f * dir[static_cast<std::size_t>(d)];
}

TEST(Retention, H2oKeepsTheBlockThatGetsTheAttention) {
  std::mt19937 rng(43);
  ir::LayerPlan p = quant_plan(8, 8, 8, 0);
  p.retention = {ir::RetentionPolicy::H2O, 40, 0, 8, 0, 0.0};  // 4 block slots, window 8
  ReferenceLayerCache cache(one_layer_module(2, 1, kDim, 1000, p), 0);
  const std::int64_t n = 200;
  auto k = random_vector(kDim * n, rng, 0.1f);
  const auto v = random_vector(kDim * n, rng);
  std::vector<float> dir(kDim, 0.0f);
  dir[2] = 3.0f;
  make_hot_block(k, 16, 8, dir);
  std::vector<float> q(2 * kDim), out(2 * kDim);
  std::copy(dir.begin(), dir.end(), q.begin());
  std::copy(dir.begin(), dir.end(), q.begin() + kDim);
  for (std::int64_t t = 0; t < n; ++t) {
    cache.append(k.data() + t * kDim, v.data() + t * kDim, 1);
    cache.attend(q.data(), out.data());
    ASSERT_LE(cache.held_blocks(0), 4);
    if (t >= 40) {
      ASSERT_TRUE(holds(cache.block_positions(0), 16)) << "after token " << t;
    }
  }
  EXPECT_EQ(cache.held_blocks(0), 4);
  // Blocks 0 and 8 took the attention before the hot block existed (heavy hitters too); the
  // blocks after it got almost none, so only the newest of them (in the window) survives.
  EXPECT_EQ(cache.block_positions(0),
            (std::vector<std::int64_t>{0, 8, 16, n - cache.tail_tokens() - 8}));
  // Its accumulated score: close to 2 (two query heads) per attend since it arrived.
  const auto scores = cache.token_scores(0);
  const auto pos = cache.block_positions(0);
  const std::size_t i = static_cast<std::size_t>(std::find(pos.begin(), pos.end(), 16) - pos.begin());
  double block = 0.0;
  for (int t = 0; t < 8; ++t) block += scores[i * 8 + static_cast<std::size_t>(t)];
  EXPECT_GT(block, 1.9 * (n - 16 - 8));
}

TEST(Retention, SnapKvKeepsTheBlockTheWindowAttendsTo) {
  std::mt19937 rng(44);
  ir::LayerPlan p = quant_plan(4, 4, 8, 0);
  p.retention = {ir::RetentionPolicy::SnapKV, 40, 0, 4, 3, 0.0};  // 4 block slots
  ReferenceLayerCache cache(one_layer_module(2, 1, kDim, 1000, p), 0);
  const std::int64_t prompt = 160;
  auto k = random_vector(kDim * (prompt + 40), rng, 0.1f);
  const auto v = random_vector(kDim * (prompt + 40), rng);
  std::vector<float> dir(kDim, 0.0f);
  dir[5] = 3.0f;
  make_hot_block(k, 48, 8, dir);
  cache.append(k.data(), v.data(), prompt);
  EXPECT_TRUE(cache.staging());
  std::vector<float> out(2 * kDim);
  EXPECT_THROW(cache.attend(dir.data(), out.data()), Error);
  EXPECT_THROW(cache.end_prefill({}), Error);  // SnapKV needs the window queries
  std::vector<float> window(4 * 2 * kDim);
  for (std::size_t i = 0; i < window.size(); i += kDim) std::copy(dir.begin(), dir.end(), window.begin() + i);
  cache.end_prefill(window);
  EXPECT_FALSE(cache.staging());
  const auto pos = cache.block_positions(0);
  ASSERT_EQ(pos.size(), 4u);
  EXPECT_TRUE(holds(pos, 48));
  // The window (positions 156..159) lies in the tail, so no block is protected: the kept blocks are
  // the hot one and the highest-scored others, in prompt order.
  EXPECT_TRUE(std::is_sorted(pos.begin(), pos.end()));
  // Afterwards FIFO with no sink: the hot block eventually leaves.
  cache.append(k.data() + prompt * kDim, v.data() + prompt * kDim, 40);
  EXPECT_FALSE(holds(cache.block_positions(0), 48));
  EXPECT_EQ(cache.block_positions(0).back(), prompt + 40 - cache.tail_tokens() - 8);
}

TEST(Retention, SnapKvProtectsBlocksHoldingTheWindow) {
  std::mt19937 rng(45);
  ir::LayerPlan p = quant_plan(4, 4, 8, 0);
  p.retention = {ir::RetentionPolicy::SnapKV, 32, 0, 12, 1, 0.0};  // 3 block slots, window 12
  ReferenceLayerCache cache(one_layer_module(1, 1, kDim, 1000, p), 0);
  const std::int64_t prompt = 100;
  auto k = random_vector(kDim * prompt, rng, 0.1f);
  const auto v = random_vector(kDim * prompt, rng);
  std::vector<float> dir(kDim, 0.0f);
  dir[0] = 3.0f;
  make_hot_block(k, 8, 8, dir);
  cache.append(k.data(), v.data(), prompt);
  // Window queries that look at the hot block only.
  std::vector<float> window(12 * kDim);
  for (std::size_t i = 0; i < window.size(); i += kDim) std::copy(dir.begin(), dir.end(), window.begin() + i);
  cache.end_prefill(window);
  // Prompt of 100 with B = C = 8: blocks at 0, 8, ..., 88 and a tail of 96..99. The window 88..99
  // reaches into block 88, which is protected; block 8 is the hot one.
  const auto pos = cache.block_positions(0);
  EXPECT_TRUE(holds(pos, 8));
  EXPECT_TRUE(holds(pos, 88));
  EXPECT_EQ(pos.size(), 3u);
}

TEST(Retention, CakeKeepsTheAttendedBlockAtPrefillAndRescoresAtDecode) {
  std::mt19937 rng(46);
  ir::LayerPlan p = quant_plan(8, 8, 8, 0);
  p.retention = {ir::RetentionPolicy::CAKE, 40, 0, 4, 5, 200.0};
  ReferenceLayerCache cache(one_layer_module(2, 1, kDim, 1000, p), 0);
  const std::int64_t prompt = 120, n = 200;
  auto k = random_vector(kDim * n, rng, 0.1f);
  const auto v = random_vector(kDim * n, rng);
  std::vector<float> dir(kDim, 0.0f), other(kDim, 0.0f);
  dir[1] = 3.0f;
  other[6] = 3.0f;
  make_hot_block(k, 32, 8, dir);
  make_hot_block(k, 144, 8, other);
  cache.append(k.data(), v.data(), prompt);
  std::vector<float> window(4 * 2 * kDim);
  for (std::size_t i = 0; i < window.size(); i += kDim) std::copy(dir.begin(), dir.end(), window.begin() + i);
  cache.end_prefill(window);
  EXPECT_TRUE(holds(cache.block_positions(0), 32));
  // Decode queries now look at the block at 144: CAKE re-scores, so 32 becomes evictable and 144 stays.
  std::vector<float> q(2 * kDim), out(2 * kDim);
  std::copy(other.begin(), other.end(), q.begin());
  std::copy(other.begin(), other.end(), q.begin() + kDim);
  for (std::int64_t t = prompt; t < n; ++t) {
    cache.append(k.data() + t * kDim, v.data() + t * kDim, 1);
    cache.attend(q.data(), out.data());
  }
  EXPECT_TRUE(holds(cache.block_positions(0), 144));
  EXPECT_FALSE(holds(cache.block_positions(0), 32));
  EXPECT_LE(cache.held_blocks(0), cache.block_capacity());
}

TEST(Retention, AveragePoolMeansTheNeighboursThatExist) {
  const std::vector<double> s = {0, 0, 0, 10, 0, 0, 0, 4};
  const std::vector<double> pooled = average_pool(s, 5);
  const std::vector<double> want = {0, 10.0 / 4, 10.0 / 5, 10.0 / 5, 10.0 / 5, 14.0 / 5, 4.0 / 4, 4.0 / 3};
  ASSERT_EQ(pooled.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_DOUBLE_EQ(pooled[i], want[i]) << i;
  EXPECT_EQ(average_pool(s, 1), s);
  EXPECT_TRUE(average_pool({}, 5).empty());
}

TEST(Retention, CakeDecodeScoresSumTheGroupThenPool) {
  // Two query heads, 6 tokens: head 0 attends token 2, head 1 token 3.
  const std::vector<float> probs = {0, 0, 1, 0, 0, 0,  //
                                    0, 0, 0, 1, 0, 0};
  const std::vector<double> raw = decode_attention_scores(probs, 2, 6, 1);
  EXPECT_EQ(raw, (std::vector<double>{0, 0, 1, 1, 0, 0}));
  const std::vector<double> pooled = decode_attention_scores(probs, 2, 6, 3);
  EXPECT_EQ(pooled, (std::vector<double>{0, 1.0 / 3, 2.0 / 3, 2.0 / 3, 1.0 / 3, 0}));
  // Tokens 1 and 4, never attended, now outrank 0 and 5: the neighbours of what is attended stay.
  EXPECT_THROW(decode_attention_scores(probs, 2, 7, 1), Error);
}

}  // namespace
}  // namespace kvc::reference
