// The one-scale quantizers of backends/reference/quantize.h (Symmetric, LloydMax) and
// rotated sections.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backends/reference/codebook.h"
#include "backends/reference/quantize.h"
#include "backends/reference/rotation.h"
#include "cache_fixture.h"
#include "ir/layout.h"
#include "support/diagnostics.h"
#include "support/half.h"

namespace kvc::reference {
namespace {

using testing::random_vector;

TEST(SymmetricQuantizer, StoresTheScaleThatPutsTheLargestValueOnTheOuterLevel) {
  const float x[4] = {-3.0f, 1.0f, 0.25f, 2.0f};
  std::uint8_t codes[4];
  const GroupParams p = quantize_group(ir::QuantScheme::Symmetric, x, 4, 1, 2, codes);
  // 2 bits: levels (q - 1.5) * s with s = 2 * 3 / 3 = 2: -3, -1, 1, 3.
  EXPECT_EQ(half_to_float(p.scale), 2.0f);
  EXPECT_EQ(p.min, 0);
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[1], 2);
  EXPECT_EQ(codes[2], 2);  // 0.25 -> 0.125 + 1.5 = 1.625 -> 2
  EXPECT_EQ(codes[3], 2);  // 2 -> 1 + 1.5 = 2.5: a tie, rounded to even
  EXPECT_EQ(dequantize(ir::QuantScheme::Symmetric, 0, p, 2), -3.0f);
  EXPECT_EQ(dequantize(ir::QuantScheme::Symmetric, 3, p, 2), 3.0f);
}

TEST(SymmetricQuantizer, ErrorWithinItsBound) {
  std::mt19937 rng(7);
  for (int bits : {2, 3, 4, 8})
    for (int trial = 0; trial < 300; ++trial) {
      const std::size_t n = 1 + rng() % 128;
      const float scale = std::ldexp(1.0f, static_cast<int>(rng() % 16) - 8);
      auto x = random_vector(n, rng, scale);
      std::vector<std::uint8_t> codes(n);
      const GroupParams p = quantize_group(ir::QuantScheme::Symmetric, x.data(), n, 1, bits, codes.data());
      const float bound = group_error_bound(ir::QuantScheme::Symmetric, p, bits, n);
      for (std::size_t i = 0; i < n; ++i) {
        ASSERT_LT(codes[i], 1u << bits);
        EXPECT_LE(std::fabs(dequantize(ir::QuantScheme::Symmetric, codes[i], p, bits) - x[i]), bound)
            << bits << " " << trial << " " << i;
      }
    }
}

TEST(LloydMaxQuantizer, MeanSquaredErrorOfGaussiansIsMaxsDistortion) {
  // Max's minimum distortion of N(0, 1): 0.1175 (2 bits), 0.03454 (3), 0.009497 (4). With
  // the group's own RMS as scale the measured error sits within a few percent of it.
  const double distortion[] = {0.1175, 0.03454, 0.009497};
  std::mt19937 rng(8);
  for (int bits : {2, 3, 4}) {
    double sum = 0, energy = 0;
    const std::size_t n = 128;
    for (int trial = 0; trial < 400; ++trial) {
      auto x = random_vector(n, rng, 0.3f);
      std::vector<std::uint8_t> codes(n);
      const GroupParams p = quantize_group(ir::QuantScheme::LloydMax, x.data(), n, 1, bits, codes.data());
      for (std::size_t i = 0; i < n; ++i) {
        const double e = dequantize(ir::QuantScheme::LloydMax, codes[i], p, bits) - x[i];
        sum += e * e;
        energy += static_cast<double>(x[i]) * x[i];
      }
    }
    EXPECT_NEAR(sum / energy, distortion[bits - 2], 0.06 * distortion[bits - 2]) << bits;
  }
}

TEST(LloydMaxQuantizer, ErrorWithinItsBoundEvenForOneHugeValue) {
  std::mt19937 rng(9);
  for (int bits : {2, 3, 4})
    for (std::size_t n : {2u, 8u, 32u, 128u}) {
      auto x = random_vector(n, rng);
      x[n / 2] = 40.0f;  // all the energy in one coordinate: |x| = sqrt(n) * RMS
      std::vector<std::uint8_t> codes(n);
      const GroupParams p = quantize_group(ir::QuantScheme::LloydMax, x.data(), n, 1, bits, codes.data());
      const float bound = group_error_bound(ir::QuantScheme::LloydMax, p, bits, n);
      for (std::size_t i = 0; i < n; ++i)
        EXPECT_LE(std::fabs(dequantize(ir::QuantScheme::LloydMax, codes[i], p, bits) - x[i]), bound) << bits << " " << n;
    }
}

TEST(LloydMaxQuantizer, AZeroGroupDecodesToZero) {
  const float x[8] = {};
  std::uint8_t codes[8];
  const GroupParams p = quantize_group(ir::QuantScheme::LloydMax, x, 8, 1, 3, codes);
  EXPECT_EQ(p.scale, 0);
  for (std::uint8_t c : codes) EXPECT_EQ(dequantize(ir::QuantScheme::LloydMax, c, p, 3), 0.0f);
}

ir::QuantFormat per_token(int bits, int group, ir::QuantScheme scheme, bool rotated) {
  ir::QuantFormat f{bits, ir::QuantAxis::PerToken, group, scheme};
  if (rotated) {
    f.rotation = ir::Rotation::Hadamard;
    f.seed = 12;
  }
  return f;
}

TEST(ScaleSections, EncodeWritesTheLayoutBytesAndDecodesWithinBounds) {
  std::mt19937 rng(10);
  for (ir::QuantScheme scheme : {ir::QuantScheme::Symmetric, ir::QuantScheme::LloydMax, ir::QuantScheme::MinMax})
    for (int bits : {2, 3, 4, 8})
      for (int dims : {32, 96})
        for (int group : {dims, 32}) {
          if (scheme == ir::QuantScheme::LloydMax && bits == 8) continue;
          for (bool rotated : {false, true}) {
            const ir::QuantFormat f = per_token(bits, group, scheme, rotated);
            const int block = 5;
            const auto x = random_vector(static_cast<std::size_t>(block * dims), rng);
            const std::size_t bytes = static_cast<std::size_t>(ir::section_bytes(f, dims, block));
            std::vector<std::uint8_t> buf(bytes + 1, 0xCD);
            encode_section(f, dims, block, x.data(), buf.data());
            EXPECT_EQ(buf.back(), 0xCD) << "wrote past the section";
            std::vector<float> y(x.size()), bound(x.size());
            decode_section(f, dims, block, buf.data(), y.data(), bound.data());
            // Decoding gives the coded (rotated) domain; compare there.
            std::vector<float> coded = x;
            if (rotated)
              for (int t = 0; t < block; ++t) rotate_float(f.seed, dims, coded.data() + static_cast<std::size_t>(t * dims));
            for (std::size_t i = 0; i < x.size(); ++i)
              ASSERT_LE(std::fabs(y[i] - coded[i]), bound[i])
                  << ir::to_string(scheme) << " bits " << bits << " dims " << dims << " rotated " << rotated << " " << i;
          }
        }
}

TEST(ScaleSections, RotationSpreadsAnOutlierChannelSoOneScaleFitsEveryCoordinate) {
  // Keys with one channel 20x the others: one symmetric scale per token wastes its
  // levels on that channel; after rotation every coordinate shares the energy.
  std::mt19937 rng(11);
  const int d = 64, block = 64;
  auto x = random_vector(static_cast<std::size_t>(block * d), rng);
  for (int t = 0; t < block; ++t) x[static_cast<std::size_t>(t * d + 5)] *= 20.0f;
  auto error = [&](bool rotated) {
    const ir::QuantFormat f = per_token(4, d, ir::QuantScheme::Symmetric, rotated);
    std::vector<std::uint8_t> buf(static_cast<std::size_t>(ir::section_bytes(f, d, block)));
    encode_section(f, d, block, x.data(), buf.data());
    std::vector<float> y(x.size());
    decode_section(f, d, block, buf.data(), y.data());
    double num = 0, den = 0;
    for (int t = 0; t < block; ++t) {
      std::vector<double> row(y.begin() + t * d, y.begin() + (t + 1) * d);
      if (rotated) unrotate(f.seed, d, row.data());
      for (int c = 0; c < d; ++c) {
        const double e = row[static_cast<std::size_t>(c)] - x[static_cast<std::size_t>(t * d + c)];
        num += e * e;
        den += static_cast<double>(x[static_cast<std::size_t>(t * d + c)]) * x[static_cast<std::size_t>(t * d + c)];
      }
    }
    return std::sqrt(num / den);
  };
  EXPECT_LT(error(true), 0.5 * error(false));
}

TEST(ScaleSections, FormatsTheReferenceCannotStoreAreErrors) {
  EXPECT_THROW(check_format(per_token(8, 32, ir::QuantScheme::LloydMax, false), 32, 1, "v"), Error);
  ir::QuantFormat per_channel{4, ir::QuantAxis::PerChannel, 32, ir::QuantScheme::Symmetric};
  EXPECT_THROW(check_format(per_channel, 32, 32, "k"), Error);
  ir::QuantFormat seeded = per_token(4, 32, ir::QuantScheme::Symmetric, false);
  seeded.seed = 3;
  EXPECT_THROW(check_format(seeded, 32, 1, "k"), Error);
  ir::QuantFormat fp16_rotated{16, ir::QuantAxis::PerToken, 32, ir::QuantScheme::MinMax, ir::Rotation::Hadamard, 1};
  EXPECT_THROW(check_format(fp16_rotated, 32, 1, "v"), Error);
  EXPECT_NO_THROW(check_format(per_token(3, 32, ir::QuantScheme::LloydMax, true), 32, 1, "v"));
}

}  // namespace
}  // namespace kvc::reference
