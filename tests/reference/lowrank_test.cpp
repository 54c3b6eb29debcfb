#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backends/reference/attention.h"
#include "backends/reference/lowrank_basis.h"
#include "backends/reference/reference_cache.h"
#include "cache_fixture.h"
#include "support/diagnostics.h"
#include "support/half.h"

namespace kvc::reference {
namespace {

using testing::one_layer_module;
using testing::random_vector;

// Keys of exact rank r: k_t = U c_t with U [d][r] orthonormal (Gram-Schmidt of random columns).
struct RankRKeys {
  std::vector<float> basis;  // [d][r]
  std::vector<float> keys;   // [n][d]
};

RankRKeys rank_r_keys(int d, int r, std::int64_t n, std::mt19937& rng) {
  std::vector<double> u(static_cast<std::size_t>(d * r));
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int j = 0; j < r; ++j) {
    for (int i = 0; i < d; ++i) u[i * r + j] = normal(rng);
    for (int p = 0; p < j; ++p) {
      double dot = 0.0;
      for (int i = 0; i < d; ++i) dot += u[i * r + j] * u[i * r + p];
      for (int i = 0; i < d; ++i) u[i * r + j] -= dot * u[i * r + p];
    }
    double norm = 0.0;
    for (int i = 0; i < d; ++i) norm += u[i * r + j] * u[i * r + j];
    for (int i = 0; i < d; ++i) u[i * r + j] /= std::sqrt(norm);
  }
  RankRKeys out;
  out.basis.assign(u.begin(), u.end());
  out.keys.resize(static_cast<std::size_t>(n * d));
  for (std::int64_t t = 0; t < n; ++t) {
    const auto c = random_vector(static_cast<std::size_t>(r), rng);
    for (int i = 0; i < d; ++i) {
      double s = 0.0;
      for (int j = 0; j < r; ++j) s += u[i * r + j] * c[j];
      // Stored through fp16 anyway: start from fp16 values so only the coefficient rounding remains.
      out.keys[t * d + i] = round_to_half(static_cast<float>(s));
    }
  }
  return out;
}

TEST(LowRank, PrincipalBasisSpansExactRankKeys) {
  std::mt19937 rng(51);
  const RankRKeys kr = rank_r_keys(16, 3, 200, rng);
  const auto u = principal_key_basis(kr.keys.data(), 200, 16, 3);
  // Projection onto the found basis reproduces every key.
  for (int t = 0; t < 200; ++t) {
    for (int i = 0; i < 16; ++i) {
      double back = 0.0;
      for (int j = 0; j < 3; ++j) {
        double c = 0.0;
        for (int x = 0; x < 16; ++x) c += u[x * 3 + j] * kr.keys[t * 16 + x];
        back += u[i * 3 + j] * c;
      }
      ASSERT_NEAR(back, kr.keys[t * 16 + i], 2e-3);  // keys carry fp16 rounding
    }
  }
  EXPECT_THROW(principal_key_basis(kr.keys.data(), 200, 16, 0), Error);
  EXPECT_THROW(principal_key_basis(kr.keys.data(), 200, 16, 17), Error);
}

void expect_matches_full_attention(ReferenceLayerCache& cache, const std::vector<float>& k, const std::vector<float>& v,
                                   std::int64_t n, int d, std::mt19937& rng) {
  const auto q = random_vector(static_cast<std::size_t>(2 * d), rng, 0.5f);
  std::vector<float> out(2 * d), want(2 * d);
  cache.attend(q.data(), out.data());
  std::vector<float> vr(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) vr[i] = round_to_half(v[i]);
  exact_attention(q.data(), k.data(), vr.data(), n, d, 2, want.data());
  for (int i = 0; i < 2 * d; ++i) EXPECT_NEAR(out[i], want[i], 3e-3f) << i;
}

TEST(LowRank, PrefillBasisWithExactRankKeysReproducesFullAttention) {
  std::mt19937 rng(52);
  const int d = 32, r = 4;
  const std::int64_t n = 150;
  const RankRKeys kr = rank_r_keys(d, r, n, rng);
  const auto v = random_vector(static_cast<std::size_t>(n * d), rng);
  ir::LayerPlan p;
  p.residual = 16;
  p.lowrank = {r, ir::BasisSharing::PerLayer, -1, ir::BasisSource::Prefill};
  ReferenceLayerCache cache(one_layer_module(2, 1, d, 400, p), 0);
  cache.append(kr.keys.data(), v.data(), 100);
  EXPECT_TRUE(cache.staging());
  cache.end_prefill();
  EXPECT_EQ(cache.basis(0).size(), static_cast<std::size_t>(d * r));
  cache.append(kr.keys.data() + 100 * d, v.data() + 100 * d, n - 100);
  EXPECT_GT(cache.held_blocks(0), 100);
  expect_matches_full_attention(cache, kr.keys, v, n, d, rng);
}

TEST(LowRank, CalibratedBasisWithQuantizedCoefficients) {
  std::mt19937 rng(53);
  const int d = 16, r = 8;
  const std::int64_t n = 90;
  const RankRKeys kr = rank_r_keys(d, r, n, rng);
  const auto v = random_vector(static_cast<std::size_t>(n * d), rng);
  ir::LayerPlan p;
  p.key = {8, ir::QuantAxis::PerToken, 8};
  p.residual = 4;
  p.lowrank = {r, ir::BasisSharing::PerLayer, -1, ir::BasisSource::Calibrated};
  ReferenceLayerCache cache(one_layer_module(2, 1, d, 400, p), 0);
  EXPECT_FALSE(cache.staging());
  std::vector<float> many(static_cast<std::size_t>(10 * d), 0.5f);
  // Compressing before the basis is known is an error.
  EXPECT_THROW(cache.append(many.data(), many.data(), 10), Error);
  ReferenceLayerCache fresh(one_layer_module(2, 1, d, 400, p), 0);
  EXPECT_THROW(fresh.set_basis(0, std::vector<float>(3)), Error);
  fresh.set_basis(0, kr.basis);
  fresh.append(kr.keys.data(), v.data(), n);
  const auto q = random_vector(static_cast<std::size_t>(2 * d), rng, 0.5f);
  std::vector<float> out(2 * d), want(2 * d);
  fresh.attend(q.data(), out.data());
  std::vector<float> vr(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) vr[i] = round_to_half(v[i]);
  exact_attention(q.data(), kr.keys.data(), vr.data(), n, d, 2, want.data());
  for (int i = 0; i < 2 * d; ++i) EXPECT_NEAR(out[i], want[i], 2e-2f) << i;  // 8-bit coefficients
}

TEST(LowRank, CrossLayerMemberNeedsTheGroupBasis) {
  ir::ModelShape shape{"x", 2, 2, 1, 16};
  ir::Workload w;
  w.context = 100;
  ir::Module m = ir::make_uncompressed_module(shape, w, 0);
  for (auto& l : m.layers) {
    l.residual = 8;
    l.lowrank = {4, ir::BasisSharing::CrossLayer, 0, ir::BasisSource::Prefill};
  }
  ReferenceLayerCache owner(m, 0), member(m, 1);
  std::mt19937 rng(54);
  const auto k = random_vector(16 * 20, rng), v = random_vector(16 * 20, rng);
  owner.append(k.data(), v.data(), 20);
  member.append(k.data(), v.data(), 20);
  owner.end_prefill();
  EXPECT_THROW(member.end_prefill(), Error);
  member.set_basis(0, owner.basis(0));
  member.end_prefill();
  EXPECT_EQ(member.held_blocks(0), owner.held_blocks(0));
}

}  // namespace
}  // namespace kvc::reference
