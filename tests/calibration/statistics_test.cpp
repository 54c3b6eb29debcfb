// The statistics math on synthetic keys, values and queries.
#include <gtest/gtest.h>

#include <cmath>

#include "calibration/key_spectrum.h"
#include "calibration/synthetic_activations.h"

namespace kvc::calibration {
namespace {

const CalibrationStats& stats() {
  static const CalibrationStats s = testing::synthetic_stats(testing::synthetic_meta(3));
  return s;
}

TEST(Statistics, OutputErrorShrinksAsBitsGrow) {
  const StatsMeta& m = stats().meta;
  const int L = m.model.layers, H = m.model.kv_heads, B = 4;  // bits {2, 3, 4, 8}
  const StatsTensor& e = stats().tensor("quant_output_error_mean", {L, H, B, B});
  auto at = [&](int l, int h, int kb, int vb) { return e.data[((l * H + h) * B + kb) * B + vb]; };
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      for (int b = 0; b + 1 < B; ++b) {
        EXPECT_GT(at(l, h, b, 3), at(l, h, b + 1, 3)) << "keys, layer " << l << " head " << h << " bits index " << b;
        EXPECT_GT(at(l, h, 3, b), at(l, h, 3, b + 1)) << "values, layer " << l << " head " << h;
        EXPECT_GT(at(l, h, b, b), at(l, h, b + 1, b + 1));
      }
      EXPECT_GT(at(l, h, 3, 3), 0.0f);
      EXPECT_LT(at(l, h, 3, 3), 0.05f);  // 8 bits is close to lossless
    }
  const StatsTensor& ke = stats().tensor("quant_key_error", {L, H, B});
  for (int i = 0; i < L * H; ++i)
    for (int b = 0; b + 1 < B; ++b) EXPECT_GT(ke.data[i * B + b], ke.data[i * B + b + 1]);
}

TEST(Statistics, P90IsAtLeastTheMedianAndPerSequenceValuesAreKept) {
  const StatsMeta& m = stats().meta;
  const std::int64_t L = m.model.layers, H = m.model.kv_heads;
  const auto& all = stats().tensor("quant_output_error", {3, L, H, 4, 4}).data;
  const auto& mean = stats().tensor("quant_output_error_mean", {L, H, 4, 4}).data;
  const auto& p90 = stats().tensor("quant_output_error_p90", {L, H, 4, 4}).data;
  const std::size_t n = mean.size();
  for (std::size_t i = 0; i < n; ++i) {
    const float a = all[i], b = all[n + i], c = all[2 * n + i];
    EXPECT_NEAR(mean[i], (static_cast<double>(a) + b + c) / 3, 1e-6);
    EXPECT_EQ(p90[i], std::max({a, b, c}));  // nearest rank of 3 values
  }
}

TEST(Statistics, PrefixCurveIsMonotoneAndEndsAtOne) {
  const StatsMeta& m = stats().meta;
  const auto& f = stats().tensor("prefix_curve", {3, m.model.layers, m.prefix_points}).data;
  for (std::size_t row = 0; row < f.size() / m.prefix_points; ++row) {
    const float* c = f.data() + row * m.prefix_points;
    EXPECT_GT(c[0], 0.0f);
    for (int i = 0; i + 1 < m.prefix_points; ++i) EXPECT_LE(c[i], c[i + 1]);
    EXPECT_EQ(c[m.prefix_points - 1], 1.0f);
    // Top tokens hold more than their share of the mass.
    EXPECT_GE(c[m.prefix_points / 2 - 1], 0.5f);
  }
}

TEST(Statistics, CakeTermsArePositiveAndFinite) {
  for (const char* name : {"cake_entropy", "cake_variance"})
    for (float v : stats().tensors.at(name).data) {
      EXPECT_TRUE(std::isfinite(v));
      EXPECT_GT(v, 0.0f) << name;
    }
}

TEST(Statistics, RetentionErrorShrinksFromSmallestToLargestKeepRatio) {
  const StatsMeta& m = stats().meta;
  const int R = static_cast<int>(m.keep_ratios.size());
  const auto& e = stats().tensor("retention_output_error_mean", {m.model.layers, m.model.kv_heads, 3, R}).data;
  for (std::size_t row = 0; row < e.size() / R; ++row) {
    EXPECT_GT(e[row * R], e[row * R + R - 1]) << "row " << row;
    for (int r = 0; r < R; ++r) EXPECT_TRUE(std::isfinite(e[row * R + r]) && e[row * R + r] >= 0.0f);
  }
}

TEST(Statistics, OutlierChannelIsVisibleInKeysNotValues) {
  const StatsMeta& m = stats().meta;
  const auto& k = stats().tensor("key_outlier_ratio", {m.model.layers, m.model.kv_heads}).data;
  const auto& v = stats().tensor("value_outlier_ratio", {m.model.layers, m.model.kv_heads}).data;
  for (std::size_t i = 0; i < k.size(); ++i) {
    EXPECT_GT(k[i], 4.0f);
    EXPECT_LT(v[i], 2.0f);
  }
  const auto& var = stats().tensor("key_channel_var", {m.model.layers, m.model.kv_heads, m.model.head_dim}).data;
  EXPECT_NEAR(var[3], 36.0, 6.0);
  EXPECT_NEAR(var[0], 1.0, 0.2);
}

TEST(Statistics, SpectraAreNonNegativeSortedAndRankErrorsFallToZero) {
  const StatsMeta& m = stats().meta;
  const int D = m.model.kv_heads * m.model.head_dim;
  for (int g = 1; g <= 3; ++g) {
    const auto& s = stats().tensor("key_spectrum_g" + std::to_string(g), {m.model.layers - g + 1, g * D}).data;
    const auto& e = stats().tensor("key_rank_error_g" + std::to_string(g), {m.model.layers - g + 1, g * D + 1}).data;
    for (int row = 0; row < m.model.layers - g + 1; ++row) {
      for (int i = 0; i < g * D; ++i) {
        EXPECT_GE(s[row * g * D + i], 0.0f);
        if (i + 1 < g * D) {
          EXPECT_GE(s[row * g * D + i], s[row * g * D + i + 1]);
        }
      }
      EXPECT_FLOAT_EQ(e[row * (g * D + 1)], 1.0f);
      EXPECT_EQ(e[row * (g * D + 1) + g * D], 0.0f);
      for (int r = 0; r < g * D; ++r) EXPECT_GE(e[row * (g * D + 1) + r], e[row * (g * D + 1) + r + 1]);
    }
  }
  EXPECT_EQ(stats().tensors.count("key_spectrum_g4"), 0u);  // only 3 layers
}

TEST(KeySpectrum, EigenvaluesOfAKnownGram) {
  // X = [[1, 0], [0, 2], [0, 0]] -> X^T X = diag(1, 4).
  const std::vector<double> eig = gram_eigenvalues({1, 0, 0, 4}, 2);
  ASSERT_EQ(eig.size(), 2u);
  EXPECT_NEAR(eig[0], 4.0, 1e-12);
  EXPECT_NEAR(eig[1], 1.0, 1e-12);
  const std::vector<double> err = rank_errors(eig);
  EXPECT_NEAR(err[1], std::sqrt(1.0 / 5.0), 1e-12);
  EXPECT_EQ(err[2], 0.0);
  EXPECT_EQ(rank_errors({0, 0}), (std::vector<double>{0, 0, 0}));
}

TEST(Statistics, MeasuringIsDeterministic) {
  const StatsMeta m = testing::synthetic_meta(2);
  EXPECT_TRUE(testing::synthetic_stats(m) == testing::synthetic_stats(m));
}

}  // namespace
}  // namespace kvc::calibration
