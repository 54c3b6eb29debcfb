// ir/precision.h: the one parser of precision pairs, their names and the IR formats they make.
#include <gtest/gtest.h>

#include "ir/layout.h"
#include "ir/precision.h"

namespace kvc::ir {
namespace {

std::vector<SideFormat> every_side() {
  std::vector<SideFormat> out = {SideFormat{}};
  for (int bits : {8, 4, 3, 2})
    for (Quantizer q : {Quantizer::Kivi, Quantizer::Token, Quantizer::TokenMinMax, Quantizer::Codebook})
      for (bool rotated : {false, true})
        for (int group : {0, 8, 16, 32, 64, 128}) {
          if (q == Quantizer::Codebook && bits == 8) continue;
          if (q == Quantizer::Kivi && group != 0) continue;
          out.push_back(SideFormat{bits, q, rotated, group});
        }
  return out;
}

TEST(Precision, EveryPairNameParsesBackToItself) {
  int pairs = 0;
  for (const SideFormat& k : every_side())
    for (const SideFormat& v : every_side()) {
      const PrecisionPair p{k, v};
      std::string problem;
      const auto back = parse_precision_pair(p.name(), &problem);
      ASSERT_TRUE(back) << p.name() << ": " << problem;
      EXPECT_EQ(*back, p) << p.name();
      ++pairs;
    }
  EXPECT_GT(pairs, 10000);
}

TEST(Precision, NamesReadAsTheSpecWritesThem) {
  EXPECT_EQ(kivi_pair(4, 2).name(), "K4V2");
  EXPECT_EQ(PrecisionPair{}.name(), "fp16");
  EXPECT_EQ(parse_precision_pair("K16V16"), PrecisionPair{});
  EXPECT_EQ(parse_precision_pair("fp16"), PrecisionPair{});
  const auto p = parse_precision_pair("K4V2cr");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->key, (SideFormat{4}));
  EXPECT_EQ(p->value, (SideFormat{2, Quantizer::Codebook, true, 0}));
  EXPECT_EQ(parse_precision_pair("K3trg16V8a")->key, (SideFormat{3, Quantizer::Token, true, 16}));
  EXPECT_EQ(parse_precision_pair("K3trg16V8a")->value, (SideFormat{8, Quantizer::TokenMinMax, false, 0}));
}

TEST(Precision, BadNamesSayWhatIsWrong) {
  auto problem_of = [](const std::string& text) {
    std::string problem;
    EXPECT_FALSE(parse_precision_pair(text, &problem)) << text;
    return problem;
  };
  EXPECT_NE(problem_of("K5V4").find("bits 16, 8, 4, 3 or 2"), std::string::npos);
  EXPECT_NE(problem_of("K8cV4").find("2, 3 or 4 bits"), std::string::npos);
  EXPECT_NE(problem_of("K16rV4").find("takes no quantizer"), std::string::npos);
  EXPECT_NE(problem_of("K4g16V4").find("KIVI's group"), std::string::npos);
  EXPECT_NE(problem_of("K4tg24V4").find("g8, g16"), std::string::npos);
  EXPECT_NE(problem_of("K4rtV4").find("unexpected 't'"), std::string::npos);
  EXPECT_NE(problem_of("K4V4x").find("unexpected 'x'"), std::string::npos);
  EXPECT_NE(problem_of("4V4").find("not a precision pair"), std::string::npos);
  EXPECT_NE(problem_of("").find("not a precision pair"), std::string::npos);
}

TEST(Precision, SidesMakeTheFormatsTheirLettersName) {
  const int d = 64;
  EXPECT_EQ(key_format(SideFormat{4}, 32, d, 9), (QuantFormat{4, QuantAxis::PerChannel, 32}));
  EXPECT_EQ(value_format(SideFormat{2}, 32, d, 9), (QuantFormat{2, QuantAxis::PerToken, 32}));
  // KIVI values on heads narrower than the group take the whole head.
  EXPECT_EQ(value_format(SideFormat{2}, 32, 8, 9), (QuantFormat{2, QuantAxis::PerToken, 8}));
  // fp16 sides keep KIVI's axis and group, as plans always printed them.
  EXPECT_EQ(key_format(SideFormat{}, 16, d, 9), (QuantFormat{16, QuantAxis::PerChannel, 16}));
  const QuantFormat tr = key_format(SideFormat{4, Quantizer::Token, true, 0}, 32, d, 9);
  EXPECT_EQ(tr, (QuantFormat{4, QuantAxis::PerToken, d, QuantScheme::Symmetric, Rotation::Hadamard, 9}));
  const QuantFormat crg = value_format(SideFormat{3, Quantizer::Codebook, true, 16}, 32, d, 5);
  EXPECT_EQ(crg, (QuantFormat{3, QuantAxis::PerToken, 16, QuantScheme::LloydMax, Rotation::Hadamard, 5}));
  const QuantFormat a = key_format(SideFormat{8, Quantizer::TokenMinMax, false, 0}, 32, d, 5);
  EXPECT_EQ(a, (QuantFormat{8, QuantAxis::PerToken, d, QuantScheme::MinMax, Rotation::None, 0}));
}

TEST(Precision, FormatsNameTheSideTheyCameFrom) {
  const int d = 32;
  for (const SideFormat& side : every_side()) {
    if (!side_problem(side, d).empty()) continue;
    SideFormat canonical = side;  // a sub-group as wide as the head is the whole head
    if (canonical.group == d) canonical.group = 0;
    EXPECT_EQ(key_side(key_format(side, 32, d, 3), d), canonical) << side.name();
    // A value grouped per token with a min is named KIVI whatever its group.
    if (side.quantizer != Quantizer::TokenMinMax)
      EXPECT_EQ(value_side(value_format(side, 32, d, 3), d), canonical) << side.name();
  }
}

TEST(Precision, SideProblemsNameTheHead) {
  EXPECT_EQ(side_problem(SideFormat{4, Quantizer::Token, true, 0}, 96), "");
  EXPECT_NE(side_problem(SideFormat{4, Quantizer::Token, true, 64}, 96).find("does not divide head_dim 96"),
            std::string::npos);
  EXPECT_NE(side_problem(SideFormat{3, Quantizer::Codebook, false, 0}, 12).find("whole number of bytes"),
            std::string::npos);
}

TEST(Precision, SideCodesRoundTripAndKiviSidesAreTheirBits) {
  for (const SideFormat& side : every_side()) {
    const auto back = side_from_code(side_code(side));
    ASSERT_TRUE(back) << side.name();
    EXPECT_EQ(*back, side);
  }
  EXPECT_EQ(side_code(SideFormat{4}), 4);
  EXPECT_EQ(side_code(SideFormat{}), 16);
  EXPECT_FALSE(side_from_code(5));               // 5 bits
  EXPECT_FALSE(side_from_code(8 + 32 * 3));      // an 8-bit codebook
  EXPECT_FALSE(side_from_code(-1));
}

TEST(Precision, PerTokenScaleFormatsStoreTwoBytesPerGroupAndKiviFour) {
  // head_dim 128, one token: 4-bit codes are 64 bytes; one fp16 scale (t, c) or scale
  // and min (a, KIVI values at group 32: 4 groups x 4 bytes).
  const int d = 128;
  EXPECT_EQ(section_bytes(key_format(SideFormat{4, Quantizer::Token, true, 0}, 32, d, 1), d, 1), 64 + 2);
  EXPECT_EQ(section_bytes(value_format(SideFormat{4, Quantizer::Codebook, true, 0}, 32, d, 1), d, 1), 64 + 2);
  EXPECT_EQ(section_bytes(value_format(SideFormat{4, Quantizer::Codebook, true, 32}, 32, d, 1), d, 1), 64 + 8);
  EXPECT_EQ(section_bytes(key_format(SideFormat{4, Quantizer::TokenMinMax, false, 0}, 32, d, 1), d, 1), 64 + 4);
  EXPECT_EQ(section_bytes(value_format(SideFormat{4}, 32, d, 1), d, 1), 64 + 16);
  // 3-bit codebook on 32 channels: 12 bytes of codes and one scale.
  EXPECT_EQ(section_bytes(value_format(SideFormat{3, Quantizer::Codebook, true, 0}, 32, 32, 1), 32, 1), 12 + 2);
}

TEST(Precision, RotatedPerTokenLayersNeedNoTokenBlock) {
  // Without a per-channel group a layer compresses one token at a time (B = 1), so
  // its tail is just the residual window.
  LayerPlan p;
  p.key = key_format(SideFormat{4, Quantizer::Token, true, 0}, 32, 128, 1);
  p.value = value_format(SideFormat{2, Quantizer::Codebook, true, 0}, 32, 128, 1);
  p.residual = 8;
  EXPECT_EQ(token_block(p), 1);
  EXPECT_EQ(tail_capacity(p), 8);
  // 64 + 2 bytes of K and 32 + 2 of V per token.
  EXPECT_EQ(block_bytes(p, 128), 100);
}

}  // namespace
}  // namespace kvc::ir
