#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "backends/reference/quantize.h"
#include "ir/layout.h"
#include "support/diagnostics.h"
#include "support/half.h"

namespace kvc::reference {
namespace {

TEST(Packing, RoundTripsEveryWidthIncludingThreeBitsAcrossBytes) {
  std::mt19937 rng(1);
  for (int bits : {2, 3, 4, 8}) {
    for (std::size_t n : {1u, 7u, 8u, 13u, 32u, 128u}) {
      std::vector<std::uint8_t> codes(n);
      for (auto& c : codes) c = static_cast<std::uint8_t>(rng() % (1u << bits));
      std::vector<std::uint8_t> packed(packed_bytes(n, bits) + 1, 0xAB);
      pack_codes(codes.data(), n, bits, packed.data());
      EXPECT_EQ(packed.back(), 0xAB) << "wrote past the packed run";
      for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(unpack_code(packed.data(), i, bits), codes[i]) << bits << " " << i;
    }
  }
}

TEST(Packing, IsALittleEndianBitStream) {
  // 3-bit codes 1..8 (mod 8): code i at bits [3i, 3i+3).
  const std::uint8_t codes[8] = {1, 2, 3, 4, 5, 6, 7, 0};
  std::uint8_t packed[3];
  pack_codes(codes, 8, 3, packed);
  std::uint32_t stream = packed[0] | (packed[1] << 8) | (packed[2] << 16);
  for (int i = 0; i < 8; ++i) EXPECT_EQ((stream >> (3 * i)) & 7u, codes[i]);
  EXPECT_EQ(packed[0], 0b11'010'001);  // codes 0,1 and the low 2 bits of code 2
  const std::uint8_t two[4] = {3, 0, 1, 2};
  std::uint8_t one;
  pack_codes(two, 4, 2, &one);
  EXPECT_EQ(one, 0b10'01'00'11);
}

TEST(Quantize, ErrorWithinHalfAScalePlusFp16Rounding) {
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int bits : {2, 3, 4, 8}) {
    for (int trial = 0; trial < 200; ++trial) {
      const std::size_t n = 1 + rng() % 64;
      const float scale = std::ldexp(1.0f, static_cast<int>(rng() % 20) - 10);
      const float shift = normal(rng) * 3.0f * scale;
      std::vector<float> x(n);
      for (auto& v : x) v = normal(rng) * scale + shift;
      std::vector<std::uint8_t> codes(n);
      const GroupParams p = quantize_group(x.data(), n, 1, bits, codes.data());
      float lo = x[0], hi = x[0];
      for (float v : x) lo = std::min(lo, v), hi = std::max(hi, v);
      EXPECT_EQ(p.min, float_to_half(lo));
      EXPECT_EQ(p.scale, float_to_half((hi - lo) / static_cast<float>((1 << bits) - 1)));
      const float s = half_to_float(p.scale);
      // Definition of the bound: s'/2 plus the fp16 rounding of min and scale.
      const float rounding = std::fabs(lo - half_to_float(p.min)) +
                             static_cast<float>((1 << bits) - 1) * std::fabs((hi - lo) / ((1 << bits) - 1) - s);
      const float bound = group_error_bound(p, bits);
      for (std::size_t i = 0; i < n; ++i) {
        ASSERT_LT(codes[i], 1u << bits);
        const float err = std::fabs(dequantize(codes[i], p) - x[i]);
        EXPECT_LE(err, 0.5f * s + rounding + 1e-6f * (std::fabs(lo) + std::fabs(hi))) << bits << " " << i;
        EXPECT_LE(err, bound);
      }
    }
  }
}

TEST(Quantize, ConstantGroupHasZeroScaleAndReadsBackAsFp16Min) {
  std::vector<float> x(32, 0.3f);
  std::vector<std::uint8_t> codes(32);
  const GroupParams p = quantize_group(x.data(), 32, 1, 4, codes.data());
  EXPECT_EQ(p.scale, 0);
  for (auto c : codes) EXPECT_EQ(c, 0);
  EXPECT_EQ(dequantize(codes[0], p), round_to_half(0.3f));
}

TEST(Quantize, ExtremesMapToFirstAndLastCode) {
  const float x[4] = {-1.0f, 0.0f, 0.5f, 2.0f};
  std::uint8_t codes[4];
  quantize_group(x, 4, 1, 2, codes);
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[3], 3);
  EXPECT_EQ(codes[1], 1);  // (0 - -1) / 1 = 1
}

ir::LayerPlan plan_with(ir::QuantFormat k, ir::QuantFormat v, int rank = 0) {
  ir::LayerPlan p;
  p.key = k;
  p.value = v;
  p.lowrank.rank = rank;
  return p;
}

TEST(Block, LayoutMatchesTheDocumentedOffsets) {
  // K per-channel 4 bits, group 8 tokens; V per-token 2 bits, group 4 channels; head_dim 8.
  const ir::LayerPlan plan = plan_with({4, ir::QuantAxis::PerChannel, 8}, {2, ir::QuantAxis::PerToken, 4});
  const int d = 8, b = ir::token_block(plan);
  ASSERT_EQ(b, 8);
  std::vector<float> k(b * d), v(b * d);
  for (int i = 0; i < b * d; ++i) k[i] = static_cast<float>(i % 13) * 0.25f - 1.0f, v[i] = static_cast<float>(i % 7);
  std::vector<std::uint8_t> block(static_cast<std::size_t>(ir::block_bytes(plan, d)));
  encode_block(plan, d, k.data(), v.data(), block.data());
  // K: scale[8], min[8], then channel c's 8 codes at 4 bits = 4 bytes each.
  for (int c = 0; c < d; ++c) {
    std::vector<std::uint8_t> codes(b);
    const GroupParams p = quantize_group(k.data() + c, b, d, 4, codes.data());
    EXPECT_EQ(load_half(block.data() + 2 * c), half_to_float(p.scale));
    EXPECT_EQ(load_half(block.data() + 16 + 2 * c), half_to_float(p.min));
    for (int t = 0; t < b; ++t) EXPECT_EQ(unpack_code(block.data() + 32 + 4 * c, t, 4), codes[t]);
  }
  // V starts after K's 8 * (4 + 4) = 64 bytes; per token: scale[2], min[2], then 8 codes at 2 bits = 2 bytes.
  const std::uint8_t* vs = block.data() + 64;
  for (int t = 0; t < b; ++t) {
    const std::uint8_t* tok = vs + t * (2 * 4 + 2);
    for (int j = 0; j < 2; ++j) {
      std::vector<std::uint8_t> codes(4);
      const GroupParams p = quantize_group(v.data() + t * d + 4 * j, 4, 1, 2, codes.data());
      EXPECT_EQ(load_half(tok + 2 * j), half_to_float(p.scale));
      EXPECT_EQ(load_half(tok + 4 + 2 * j), half_to_float(p.min));
      for (int c = 0; c < 4; ++c) EXPECT_EQ(unpack_code(tok + 8, 4 * j + c, 2), codes[c]);
    }
  }
}

TEST(Block, DecodeIsWithinTheReportedBoundsForEveryFormat) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int d = 16;
  for (int kb : {16, 8, 4, 3, 2})
    for (int vb : {16, 8, 4, 3, 2})
      for (auto kaxis : {ir::QuantAxis::PerChannel, ir::QuantAxis::PerToken}) {
        const ir::LayerPlan plan = plan_with({kb, kaxis, kaxis == ir::QuantAxis::PerChannel ? 32 : 8},
                                             {vb, ir::QuantAxis::PerToken, 16});
        const int b = ir::token_block(plan);
        std::vector<float> k(b * d), v(b * d), k2(b * d), v2(b * d), kb_err(b * d), vb_err(b * d);
        for (auto& x : k) x = normal(rng) * 2.0f;
        for (auto& x : v) x = normal(rng);
        std::vector<std::uint8_t> block(static_cast<std::size_t>(ir::block_bytes(plan, d)));
        encode_block(plan, d, k.data(), v.data(), block.data());
        decode_block(plan, d, block.data(), k2.data(), v2.data(), kb_err.data(), vb_err.data());
        for (int i = 0; i < b * d; ++i) {
          const float k_fp16 = std::fabs(k[i] - round_to_half(k[i]));
          EXPECT_LE(std::fabs(k2[i] - k[i]), kb == 16 ? k_fp16 : kb_err[i]) << kb << vb;
          EXPECT_LE(std::fabs(v2[i] - v[i]), vb == 16 ? std::fabs(v[i] - round_to_half(v[i])) : vb_err[i]);
        }
      }
}

TEST(Block, BadFormatsAreErrors) {
  EXPECT_THROW(check_format({5, ir::QuantAxis::PerToken, 8}, 8, 1, "key"), Error);
  EXPECT_THROW(check_format({4, ir::QuantAxis::PerToken, 3}, 8, 1, "key"), Error);
  EXPECT_THROW(check_format({4, ir::QuantAxis::PerToken, 0}, 8, 1, "key"), Error);
  EXPECT_THROW(check_format({3, ir::QuantAxis::PerToken, 1}, 7, 1, "key"), Error);
  EXPECT_THROW(check_format({4, ir::QuantAxis::PerChannel, 32}, 8, 64, "value"), Error);
  EXPECT_NO_THROW(check_format({3, ir::QuantAxis::PerChannel, 32}, 8, 32, "key"));
  EXPECT_NO_THROW(check_format({16, ir::QuantAxis::PerChannel, 7}, 8, 1, "key"));
}

}  // namespace
}  // namespace kvc::reference
