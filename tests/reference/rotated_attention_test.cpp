// reference_attend on rotated formats: rotating the query and un-rotating the output
// once gives the attention of the un-rotated decoded keys and values.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backends/reference/attention.h"
#include "backends/reference/quantize.h"
#include "backends/reference/reference_cache.h"
#include "backends/reference/rotation.h"
#include "cache_fixture.h"
#include "ir/layout.h"
#include "support/half.h"

namespace kvc::reference {
namespace {

using testing::one_layer_module;
using testing::random_vector;

ir::QuantFormat format(int bits, ir::QuantAxis axis, int group, ir::QuantScheme scheme, std::uint32_t seed) {
  ir::QuantFormat f{bits, axis, group, scheme};
  if (seed != 0) {
    f.rotation = ir::Rotation::Hadamard;
    f.seed = seed;
  }
  return f;
}

// The attention a kernel that decodes and un-rotates every token would compute.
std::vector<float> decode_then_attend(const ReferenceLayerCache& cache, int h, const float* q) {
  const ir::LayerPlan& plan = cache.plan();
  const int d = cache.head_dim(), b = ir::token_block(plan), g = cache.q_heads() / cache.kv_heads();
  std::vector<float> k, v;
  for (const std::uint8_t* block : cache.block_pointers(h)) {
    std::vector<float> bk(static_cast<std::size_t>(b * d)), bv(bk.size());
    decode_block(plan, d, block, bk.data(), bv.data());
    for (int t = 0; t < b; ++t) {
      for (auto [x, f] : {std::pair{bk.data(), &plan.key}, {bv.data(), &plan.value}}) {
        if (f->rotation != ir::Rotation::Hadamard) continue;
        std::vector<double> row(x + t * d, x + (t + 1) * d);
        unrotate(f->seed, d, row.data());
        for (int c = 0; c < d; ++c) x[t * d + c] = static_cast<float>(row[static_cast<std::size_t>(c)]);
      }
    }
    k.insert(k.end(), bk.begin(), bk.end());
    v.insert(v.end(), bv.begin(), bv.end());
  }
  for (std::int64_t t = 0; t < cache.tail_tokens() * d; ++t) {
    k.push_back(half_to_float(cache.tail_k(h)[t]));
    v.push_back(half_to_float(cache.tail_v(h)[t]));
  }
  std::vector<float> out(static_cast<std::size_t>(g * d));
  exact_attention(q, k.data(), v.data(), static_cast<std::int64_t>(k.size() / static_cast<std::size_t>(d)), d, g,
                  out.data());
  return out;
}

TEST(RotatedAttention, EqualsAttentionOverTheUnrotatedDecodedCache) {
  std::mt19937 rng(12);
  using S = ir::QuantScheme;
  using A = ir::QuantAxis;
  const int d = 96, kv = 2, g = 3;
  const std::vector<std::pair<ir::QuantFormat, ir::QuantFormat>> formats = {
      {format(4, A::PerChannel, 32, S::MinMax, 0), format(2, A::PerToken, d, S::LloydMax, 7)},
      {format(4, A::PerToken, d, S::Symmetric, 3), format(4, A::PerToken, d, S::Symmetric, 3)},
      {format(3, A::PerToken, 32, S::LloydMax, 5), format(8, A::PerToken, 32, S::MinMax, 0)},
      {format(2, A::PerChannel, 32, S::MinMax, 9), format(3, A::PerToken, 16, S::MinMax, 11)}};
  for (const auto& [key, value] : formats) {
    ir::LayerPlan plan;
    plan.key = key;
    plan.value = value;
    plan.residual = 32;
    const ir::Module m = one_layer_module(kv * g, kv, d, 200, plan);
    ReferenceLayerCache cache(m, 0);
    const std::int64_t n = 150;
    const auto k = random_vector(static_cast<std::size_t>(n * kv * d), rng, 2.0f);
    const auto v = random_vector(k.size(), rng);
    cache.append(k.data(), v.data(), n);
    cache.end_prefill();
    ASSERT_GT(cache.held_blocks(0), 0);
    const auto q = random_vector(static_cast<std::size_t>(kv * g * d), rng, 0.5f);
    std::vector<float> out(q.size());
    cache.attend(q.data(), out.data());
    for (int h = 0; h < kv; ++h) {
      const auto expected = decode_then_attend(cache, h, q.data() + h * g * d);
      for (int i = 0; i < g * d; ++i)
        EXPECT_NEAR(out[static_cast<std::size_t>(h * g * d + i)], expected[static_cast<std::size_t>(i)], 2e-5)
            << ir::to_string(key.scheme) << "/" << ir::to_string(value.scheme) << " head " << h << " " << i;
    }
  }
}

}  // namespace
}  // namespace kvc::reference
