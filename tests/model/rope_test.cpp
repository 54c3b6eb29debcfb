// RoPE conventions: adjacent pairs (llama2.c, GGUF llama) and half split (HF
// rotate_half) are the same rotation up to llama.cpp's converter permutation.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/rope.h"

namespace kvc::model {
namespace {

std::vector<float> random_heads(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

TEST(Rope, PositionZeroIsIdentityAndRotationPreservesPairNorms) {
  const int heads = 3, hd = 8;
  const std::vector<float> x = random_heads(heads * hd, 1);
  RopeAngles a;
  a.compute(0, hd, 10000.0f);
  std::vector<float> y = x;
  apply_rope(y.data(), heads, hd, RopeStyle::AdjacentPairs, a);
  EXPECT_EQ(y, x);
  a.compute(37, hd, 10000.0f);
  apply_rope(y.data(), heads, hd, RopeStyle::AdjacentPairs, a);
  EXPECT_NE(y, x);
  for (int i = 0; i < heads * hd; i += 2)
    EXPECT_NEAR(std::hypot(y[i], y[i + 1]), std::hypot(x[i], x[i + 1]), 1e-5f);
}

TEST(Rope, LowestPairTurnsByThePositionInRadians) {
  // Pair 0 has frequency theta^0 = 1: position p turns it by p radians.
  std::vector<float> x = {1.0f, 0.0f, 1.0f, 0.0f};
  RopeAngles a;
  a.compute(2, 4, 10000.0f);
  apply_rope(x.data(), 1, 4, RopeStyle::AdjacentPairs, a);
  EXPECT_NEAR(x[0], std::cos(2.0f), 1e-6f);
  EXPECT_NEAR(x[1], std::sin(2.0f), 1e-6f);
  EXPECT_NEAR(x[2], std::cos(2.0f / 100.0f), 1e-6f);  // pair 1: 10000^(-2/4) = 1/100
  EXPECT_NEAR(x[3], std::sin(2.0f / 100.0f), 1e-6f);
}

TEST(Rope, HalfSplitEqualsAdjacentPairsAfterTheConverterPermutation) {
  // llama.cpp's convert_hf_to_gguf permutes HF rows so that HF channel i is
  // GGUF channel 2i and HF channel i + hd/2 is GGUF channel 2i + 1.
  const int heads = 2, hd = 8, half = hd / 2;
  const std::vector<float> gguf = random_heads(heads * hd, 2);
  std::vector<float> hf(gguf.size());
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < half; ++i) {
      hf[h * hd + i] = gguf[h * hd + 2 * i];
      hf[h * hd + i + half] = gguf[h * hd + 2 * i + 1];
    }
  RopeAngles a;
  a.compute(11, hd, 500000.0f);
  std::vector<float> g = gguf;
  apply_rope(g.data(), heads, hd, RopeStyle::AdjacentPairs, a);
  apply_rope(hf.data(), heads, hd, RopeStyle::HalfSplit, a);
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < half; ++i) {
      EXPECT_EQ(hf[h * hd + i], g[h * hd + 2 * i]);
      EXPECT_EQ(hf[h * hd + i + half], g[h * hd + 2 * i + 1]);
    }
}

}  // namespace
}  // namespace kvc::model
