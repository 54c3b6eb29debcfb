// backends/reference/codebook.h: Max's Lloyd-Max levels of a unit Gaussian.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "backends/reference/codebook.h"
#include "support/diagnostics.h"

namespace kvc::reference {
namespace {

double pdf(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI); }
double cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// Lloyd's iteration for N(0, 1) from evenly spaced levels: each level moves to the
// mean of the Gaussian between its thresholds, until nothing moves.
std::vector<double> lloyd_levels(int n) {
  std::vector<double> level(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) level[static_cast<std::size_t>(i)] = -2.0 + 4.0 * (i + 0.5) / n;
  for (int iteration = 0; iteration < 100000; ++iteration) {
    double moved = 0;
    std::vector<double> next(level.size());
    for (int i = 0; i < n; ++i) {
      const double a = i == 0 ? -INFINITY : 0.5 * (level[static_cast<std::size_t>(i - 1)] + level[static_cast<std::size_t>(i)]);
      const double b = i == n - 1 ? INFINITY : 0.5 * (level[static_cast<std::size_t>(i)] + level[static_cast<std::size_t>(i + 1)]);
      const double mass = (std::isinf(b) ? 1.0 : cdf(b)) - (std::isinf(a) ? 0.0 : cdf(a));
      next[static_cast<std::size_t>(i)] = ((std::isinf(a) ? 0.0 : pdf(a)) - (std::isinf(b) ? 0.0 : pdf(b))) / mass;
      moved = std::max(moved, std::fabs(next[static_cast<std::size_t>(i)] - level[static_cast<std::size_t>(i)]));
    }
    level = next;
    if (moved < 1e-13) break;
  }
  return level;
}

TEST(LloydMax, TheTableIsTheFixedPointOfLloydsIteration) {
  for (int bits : {2, 3, 4}) {
    const auto table = lloyd_max_levels(bits);
    const auto computed = lloyd_levels(1 << bits);
    ASSERT_EQ(table.size(), computed.size());
    for (std::size_t i = 0; i < table.size(); ++i) EXPECT_NEAR(table[i], computed[i], 1e-6) << bits << " " << i;
  }
}

TEST(LloydMax, MatchesMaxsPublishedLevels) {
  // Max (1960), to the four decimals the table gives (his last digit is off by one in places).
  const std::vector<std::vector<double>> published = {
      {0.4528, 1.5104},
      {0.2451, 0.7560, 1.3439, 2.1520},
      {0.1284, 0.3881, 0.6568, 0.9424, 1.2562, 1.6181, 2.0690, 2.7326}};
  for (int bits : {2, 3, 4}) {
    const auto table = lloyd_max_levels(bits);
    const auto& half = published[static_cast<std::size_t>(bits - 2)];
    for (std::size_t i = 0; i < half.size(); ++i) EXPECT_NEAR(table[half.size() + i], half[i], 1e-4) << bits << " " << i;
  }
}

TEST(LloydMax, LevelsAreAscendingAndSymmetric) {
  for (int bits : {2, 3, 4}) {
    const auto l = lloyd_max_levels(bits);
    for (std::size_t i = 0; i < l.size(); ++i) {
      EXPECT_EQ(l[i], -l[l.size() - 1 - i]);
      if (i > 0) EXPECT_LT(l[i - 1], l[i]);
    }
  }
}

TEST(LloydMax, CodesAreTheNearestLevel) {
  for (int bits : {2, 3, 4}) {
    const auto l = lloyd_max_levels(bits);
    for (double u = -4.0; u <= 4.0; u += 0.0137) {
      const std::uint8_t q = lloyd_max_code(static_cast<float>(u), bits);
      for (float other : l) EXPECT_LE(std::fabs(l[q] - u), std::fabs(other - u) + 1e-6) << bits << " " << u;
    }
    EXPECT_EQ(lloyd_max_code(-std::numeric_limits<float>::infinity(), bits), 0);
    EXPECT_EQ(lloyd_max_code(std::numeric_limits<float>::infinity(), bits), (1 << bits) - 1);
  }
  EXPECT_THROW(lloyd_max_levels(8), Error);
  EXPECT_THROW(lloyd_max_code(0.0f, 5), Error);
}

}  // namespace
}  // namespace kvc::reference
