#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "backends/reference/attention.h"
#include "backends/reference/quantize.h"
#include "backends/reference/reference_cache.h"
#include "cache_fixture.h"
#include "ir/layout.h"
#include "support/diagnostics.h"
#include "support/half.h"

namespace kvc::reference {
namespace {

using testing::one_layer_module;
using testing::quant_plan;
using testing::random_vector;

// Keys/values of one KV head out of [n][kv_heads][head_dim].
std::vector<float> head_slice(const std::vector<float>& x, std::int64_t n, int kv_heads, int d, int h) {
  std::vector<float> out(static_cast<std::size_t>(n * d));
  for (std::int64_t t = 0; t < n; ++t)
    std::copy_n(x.begin() + (t * kv_heads + h) * d, d, out.begin() + t * d);
  return out;
}

TEST(ExactAttention, MatchesAHandComputedCase) {
  const float q[2] = {1.0f, 0.0f};
  const float k[4] = {0.0f, 0.0f, std::sqrt(2.0f) * std::log(3.0f), 0.0f};  // scores 0 and ln 3
  const float v[4] = {1.0f, 0.0f, 0.0f, 1.0f};
  float out[2], probs[2];
  exact_attention(q, k, v, 2, 2, 1, out, probs);
  EXPECT_NEAR(probs[0], 0.25f, 1e-6f);
  EXPECT_NEAR(probs[1], 0.75f, 1e-6f);
  EXPECT_NEAR(out[0], 0.25f, 1e-6f);
  EXPECT_NEAR(out[1], 0.75f, 1e-6f);
}

TEST(ReferenceAttend, EmptyCacheGivesZerosAndBadArgumentsAreErrors) {
  ir::LayerPlan plan;
  const float q[4] = {1, 2, 3, 4};
  float out[4] = {9, 9, 9, 9};
  kvc_attend_args args{};
  args.q = q;
  args.out = out;
  reference_attend(plan, 4, 1, &args);
  for (float x : out) EXPECT_EQ(x, 0.0f);
  args.n_tail = 1;
  EXPECT_THROW(reference_attend(plan, 4, 1, &args), Error);
  EXPECT_THROW(reference_attend(plan, 4, 1, nullptr), Error);
}

struct Shape {
  int head_dim, q_heads, kv_heads;
};

TEST(ReferenceAttend, Fp16PlanEqualsExactAttention) {
  std::mt19937 rng(11);
  for (Shape s : {Shape{8, 8, 4}, Shape{64, 4, 1}, Shape{128, 16, 2}}) {
    const std::int64_t n = 77;
    ReferenceLayerCache cache(one_layer_module(s.q_heads, s.kv_heads, s.head_dim, 100, ir::LayerPlan{}), 0);
    const std::size_t row = static_cast<std::size_t>(s.kv_heads * s.head_dim);
    const auto k = random_vector(n * row, rng), v = random_vector(n * row, rng);
    const auto q = random_vector(static_cast<std::size_t>(s.q_heads * s.head_dim), rng);
    cache.append(k.data(), v.data(), n);
    ASSERT_EQ(cache.tail_tokens(), 0);
    ASSERT_EQ(cache.held_blocks(0), n);
    std::vector<float> out(q.size()), want(q.size()), want_rounded(q.size());
    cache.attend(q.data(), out.data());
    const int g = s.q_heads / s.kv_heads;
    for (int h = 0; h < s.kv_heads; ++h) {
      auto kh = head_slice(k, n, s.kv_heads, s.head_dim, h), vh = head_slice(v, n, s.kv_heads, s.head_dim, h);
      exact_attention(q.data() + h * g * s.head_dim, kh.data(), vh.data(), n, s.head_dim, g,
                      want.data() + h * g * s.head_dim);
      for (auto& x : kh) x = round_to_half(x);
      for (auto& x : vh) x = round_to_half(x);
      exact_attention(q.data() + h * g * s.head_dim, kh.data(), vh.data(), n, s.head_dim, g,
                      want_rounded.data() + h * g * s.head_dim);
    }
    for (std::size_t i = 0; i < out.size(); ++i) {
      EXPECT_NEAR(out[i], want_rounded[i], 1e-6f) << "fp16 storage is the only rounding";
      EXPECT_NEAR(out[i], want[i], 2e-3f) << "within fp16 rounding of the exact result";
    }
  }
}

// |out - exact| bound for a quantized cache, derived from the stored scales:
// per key the score error is at most sum_d |q_d| e_kd / sqrt(d) <= D, so every
// probability moves by a factor within e^{+-2D} and sum |p^ - p| <= e^{2D} - 1;
// then |out^_d - out_d| <= (e^{2D} - 1) max_t |v^_td| + max_t e_vd.
TEST(ReferenceAttend, QuantizedPlansStayWithinTheScaleBound) {
  std::mt19937 rng(12);
  struct Case {
    Shape s;
    int kbits, vbits, group, residual;
    std::int64_t n;
  };
  const Case cases[] = {
      {{8, 8, 8}, 8, 8, 8, 0, 45},    {{8, 32, 4}, 4, 4, 8, 5, 61},     {{64, 4, 1}, 3, 2, 32, 0, 150},
      {{64, 32, 4}, 2, 4, 32, 40, 99}, {{128, 8, 8}, 4, 3, 64, 64, 200}, {{128, 8, 1}, 8, 16, 32, 7, 101},
  };
  for (const Case& c : cases) {
    const Shape s = c.s;
    const ir::LayerPlan plan = quant_plan(c.kbits, c.vbits, c.group, c.residual);
    ReferenceLayerCache cache(one_layer_module(s.q_heads, s.kv_heads, s.head_dim, 1000, plan), 0);
    const std::size_t row = static_cast<std::size_t>(s.kv_heads * s.head_dim);
    const auto k = random_vector(c.n * row, rng), v = random_vector(c.n * row, rng, 0.5f);
    const auto q = random_vector(static_cast<std::size_t>(s.q_heads * s.head_dim), rng, 0.3f);
    cache.append(k.data(), v.data(), c.n);
    std::vector<float> out(q.size());
    cache.attend(q.data(), out.data());
    const int g = s.q_heads / s.kv_heads, d = s.head_dim, b = ir::token_block(plan);
    for (int h = 0; h < s.kv_heads; ++h) {
      // Stored values and their error bounds, in token order (blocks then tail).
      auto kh = head_slice(k, c.n, s.kv_heads, d, h), vh = head_slice(v, c.n, s.kv_heads, d, h);
      std::vector<float> ks(kh.size()), vs(vh.size()), ek(kh.size()), ev(vh.size());
      const auto blocks = cache.block_pointers(h);
      const auto pos = cache.block_positions(h);
      ASSERT_EQ(static_cast<std::int64_t>(blocks.size()) * b + cache.tail_tokens(), c.n);
      for (std::size_t i = 0; i < blocks.size(); ++i)
        decode_block(plan, d, blocks[i], ks.data() + pos[i] * d, vs.data() + pos[i] * d, ek.data() + pos[i] * d,
                     ev.data() + pos[i] * d);
      for (std::int64_t t = c.n - cache.tail_tokens(); t < c.n; ++t)
        for (int j = 0; j < d; ++j) {
          ks[t * d + j] = round_to_half(kh[t * d + j]);
          vs[t * d + j] = round_to_half(vh[t * d + j]);
        }
      for (std::size_t i = 0; i < kh.size(); ++i) {
        // Block codes come from fp16-rounded inputs: add that rounding to the bound.
        ek[i] += std::fabs(kh[i] - round_to_half(kh[i]));
        ev[i] += std::fabs(vh[i] - round_to_half(vh[i]));
        ASSERT_LE(std::fabs(ks[i] - kh[i]), ek[i] * 1.0001f + 1e-7f);
        ASSERT_LE(std::fabs(vs[i] - vh[i]), ev[i] * 1.0001f + 1e-7f);
      }
      std::vector<float> want(static_cast<std::size_t>(g * d)), on_stored(want.size());
      exact_attention(q.data() + h * g * d, kh.data(), vh.data(), c.n, d, g, want.data());
      exact_attention(q.data() + h * g * d, ks.data(), vs.data(), c.n, d, g, on_stored.data());
      for (int j = 0; j < g; ++j) {
        const float* qj = q.data() + (h * g + j) * d;
        double score_err = 0.0;
        for (std::int64_t t = 0; t < c.n; ++t) {
          double e = 0.0;
          for (int x = 0; x < d; ++x) e += std::fabs(qj[x]) * ek[t * d + x];
          score_err = std::max(score_err, e / std::sqrt(static_cast<double>(d)));
        }
        const double mass = std::expm1(2.0 * score_err);
        for (int x = 0; x < d; ++x) {
          double vmax = 0.0, evmax = 0.0;
          for (std::int64_t t = 0; t < c.n; ++t) {
            vmax = std::max(vmax, static_cast<double>(std::fabs(vs[t * d + x])));
            evmax = std::max(evmax, static_cast<double>(ev[t * d + x]));
          }
          const double bound = mass * vmax + evmax + 1e-6;
          const float got = out[(h * g + j) * d + x];
          EXPECT_LE(std::fabs(got - want[j * d + x]), bound) << c.kbits << "/" << c.vbits << " d=" << d;
          // The kernel computes exactly attention over the stored (dequantized) tokens.
          EXPECT_NEAR(got, on_stored[j * d + x], 1e-5f);
        }
      }
    }
  }
}

}  // namespace
}  // namespace kvc::reference
