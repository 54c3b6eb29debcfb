// backends/reference/rotation.h: the randomized Hadamard transform.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backends/reference/attention.h"
#include "backends/reference/rotation.h"
#include "cache_fixture.h"

namespace kvc::reference {
namespace {

using testing::random_vector;

// Row j of the rotation matrix: the image of the unit vector e_j.
std::vector<double> column(std::uint32_t seed, int dims, int j) {
  std::vector<double> e(static_cast<std::size_t>(dims), 0.0);
  e[static_cast<std::size_t>(j)] = 1.0;
  rotate(seed, dims, e.data());
  return e;
}

TEST(Hadamard, BlocksAreTheLargestPowerOfTwoDividingTheHead) {
  EXPECT_EQ(hadamard_block(128), 128);
  EXPECT_EQ(hadamard_block(96), 32);
  EXPECT_EQ(hadamard_block(8), 8);
  EXPECT_EQ(hadamard_block(12), 4);
  EXPECT_EQ(hadamard_block(7), 1);
}

TEST(Hadamard, IsOrthogonalForEveryHeadShape) {
  for (int dims : {8, 12, 32, 96, 128}) {
    for (std::uint32_t seed : {0u, 1u, 77u}) {
      for (int i = 0; i < dims; ++i) {
        const auto ci = column(seed, dims, i);
        for (int j = i; j < dims; ++j) {
          const auto cj = column(seed, dims, j);
          double dot = 0;
          for (int c = 0; c < dims; ++c) dot += ci[static_cast<std::size_t>(c)] * cj[static_cast<std::size_t>(c)];
          ASSERT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-12) << dims << " " << seed << " " << i << " " << j;
        }
      }
    }
  }
}

TEST(Hadamard, MixesEveryChannelOfItsBlockAndNoOther) {
  // Each entry of a block is +-1/sqrt(n): an outlier channel spreads evenly over its block.
  const int dims = 96, n = 32;
  const auto c = column(5, dims, 40);  // channel 40 is in block 1 (channels 32..63)
  for (int i = 0; i < dims; ++i) {
    const double expected = (i / n == 1) ? 1.0 / std::sqrt(n) : 0.0;
    EXPECT_NEAR(std::fabs(c[static_cast<std::size_t>(i)]), expected, 1e-15) << i;
  }
}

TEST(Hadamard, UnrotateInvertsRotateAndTheFloatPathAgrees) {
  std::mt19937 rng(3);
  for (int dims : {8, 32, 96, 128}) {
    const auto x = random_vector(static_cast<std::size_t>(dims), rng, 2.0f);
    std::vector<double> y(x.begin(), x.end());
    rotate(9, dims, y.data());
    std::vector<float> yf = x;
    rotate_float(9, dims, yf.data());
    for (int i = 0; i < dims; ++i) EXPECT_NEAR(yf[static_cast<std::size_t>(i)], y[static_cast<std::size_t>(i)], 1e-5);
    unrotate(9, dims, y.data());
    unrotate_float(9, dims, yf.data());
    for (int i = 0; i < dims; ++i) {
      EXPECT_NEAR(y[static_cast<std::size_t>(i)], x[static_cast<std::size_t>(i)], 1e-12);
      EXPECT_NEAR(yf[static_cast<std::size_t>(i)], x[static_cast<std::size_t>(i)], 1e-5);
    }
  }
}

TEST(Hadamard, SeedsGiveDifferentSignsAndTheSameSeedTheSame) {
  EXPECT_EQ(hadamard_signs(4, 64), hadamard_signs(4, 64));
  EXPECT_NE(hadamard_signs(4, 64), hadamard_signs(5, 64));
  int negative = 0;
  for (float s : hadamard_signs(1, 4096)) negative += s < 0;
  EXPECT_GT(negative, 1900);  // about half
  EXPECT_LT(negative, 2200);
}

TEST(Hadamard, AttentionScoresAndOutputsAreUnchangedInExactArithmetic) {
  // Rotating q and every k leaves q.k; rotating every v and un-rotating the output
  // leaves the output: attention over rotated vectors equals attention over the originals.
  std::mt19937 rng(4);
  const int d = 96, n = 40, g = 3;
  const auto q = random_vector(static_cast<std::size_t>(g * d), rng);
  const auto k = random_vector(static_cast<std::size_t>(n * d), rng, 1.5f);
  const auto v = random_vector(static_cast<std::size_t>(n * d), rng);
  std::vector<float> out(static_cast<std::size_t>(g * d)), probs(static_cast<std::size_t>(g * n));
  exact_attention(q.data(), k.data(), v.data(), n, d, g, out.data(), probs.data());
  auto rotated = [&](const std::vector<float>& x) {
    std::vector<float> r = x;
    for (std::size_t t = 0; t * d < x.size(); ++t) {
      std::vector<double> row(x.begin() + static_cast<std::ptrdiff_t>(t * d), x.begin() + static_cast<std::ptrdiff_t>((t + 1) * d));
      rotate(21, d, row.data());
      for (int c = 0; c < d; ++c) r[t * d + static_cast<std::size_t>(c)] = static_cast<float>(row[static_cast<std::size_t>(c)]);
    }
    return r;
  };
  std::vector<float> out_r(out.size()), probs_r(probs.size());
  exact_attention(rotated(q).data(), rotated(k).data(), rotated(v).data(), n, d, g, out_r.data(), probs_r.data());
  for (std::size_t i = 0; i < probs.size(); ++i) EXPECT_NEAR(probs_r[i], probs[i], 1e-5);
  for (int h = 0; h < g; ++h) {
    std::vector<double> o(out_r.begin() + h * d, out_r.begin() + (h + 1) * d);
    unrotate(21, d, o.data());
    for (int c = 0; c < d; ++c) EXPECT_NEAR(o[static_cast<std::size_t>(c)], out[static_cast<std::size_t>(h * d + c)], 1e-5);
  }
}

}  // namespace
}  // namespace kvc::reference
