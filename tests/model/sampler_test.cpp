#include <gtest/gtest.h>

#include <cmath>

#include "model/sampler.h"
#include "support/diagnostics.h"
#include "test_support/test_data.h"

namespace kvc::model {
namespace {

TEST(Sampler, GreedyTakesTheFirstLargestLogit) {
  Sampler s;
  EXPECT_EQ(s.sample({0.5f, 2.0f, -1.0f, 2.0f}), 1);
}

TEST(Sampler, TemperatureSamplingFollowsTheSoftmaxAndIsSeeded) {
  const std::vector<float> logits = {0.0f, std::log(3.0f)};  // p = 1/4, 3/4 at T = 1
  Sampler a(1.0f, 99), b(1.0f, 99), c(1.0f, 100);
  int ones = 0, differ = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const int x = a.sample(logits);
    EXPECT_EQ(x, b.sample(logits));
    differ += x != c.sample(logits);
    ones += x;
  }
  EXPECT_NEAR(static_cast<double>(ones) / n, 0.75, 0.02);
  EXPECT_GT(differ, 0);
  // Low temperature sharpens towards the argmax.
  Sampler cold(0.05f, 1);
  int cold_ones = 0;
  for (int i = 0; i < 1000; ++i) cold_ones += cold.sample(logits);
  EXPECT_EQ(cold_ones, 1000);
  EXPECT_THROW(Sampler(-1.0f, 0), Error);
}

TEST(GenerateSequence, SeededSamplesFromBosAreReproducible) {
  std::string bin;
  KVC_REQUIRE_MODEL_FILE(bin, "stories260K.bin");
  const Model m = Model::load(bin);
  const std::vector<int> a = generate_sequence(m, 5, 100, 1.0f);
  ASSERT_EQ(a.size(), 100u);
  EXPECT_EQ(a[0], kBosToken);
  for (int id : a) EXPECT_TRUE(id >= 0 && id < 512);
  EXPECT_EQ(a, generate_sequence(m, 5, 100, 1.0f));
  EXPECT_NE(a, generate_sequence(m, 6, 100, 1.0f));
  EXPECT_THROW(generate_sequence(m, 5, 513, 1.0f), Error);
  EXPECT_THROW(generate_sequence(m, 5, 0, 1.0f), Error);
}

}  // namespace
}  // namespace kvc::model
