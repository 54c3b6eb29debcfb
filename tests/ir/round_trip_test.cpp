// print -> parse -> print is byte-identical and parse(print(m)) == m, on random modules.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "ir/parser.h"
#include "ir/printer.h"
#include "random_modules.h"

namespace kvc::ir {
namespace {

void expect_round_trip(const Module& m, int seed) {
  const std::string text = print_module(m);
  Module back;
  try {
    back = parse_module(text, "random.plan");
  } catch (const std::exception& e) {
    FAIL() << "seed " << seed << ": " << e.what() << "\n" << text;
  }
  EXPECT_TRUE(back == m) << "seed " << seed << "\n" << text;
  EXPECT_EQ(print_module(back), text) << "seed " << seed;
}

TEST(IrRoundTrip, ThousandRandomValidModules) {
  for (int seed = 0; seed < 1000; ++seed) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    expect_round_trip(testing::random_valid_module(rng), seed);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(IrRoundTrip, ThousandRandomArbitraryModules) {
  for (int seed = 0; seed < 1000; ++seed) {
    std::mt19937 rng(static_cast<unsigned>(seed) + 1'000'000u);
    expect_round_trip(testing::random_arbitrary_module(rng), seed);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(IrRoundTrip, NanPrintsAndParsesBackToNan) {
  Module m = make_uncompressed_module({"nan", 1, 1, 1, 8}, {16, 1, 0}, 0);
  m.model.rope_theta = std::numeric_limits<double>::quiet_NaN();
  m.layers[0].retention.gamma = -std::numeric_limits<double>::quiet_NaN();
  const std::string text = print_module(m);
  const Module back = parse_module(text);
  EXPECT_TRUE(std::isnan(back.model.rope_theta));
  EXPECT_TRUE(std::isnan(back.layers[0].retention.gamma));
  EXPECT_EQ(print_module(back), text);
}

TEST(IrRoundTrip, NegativeZeroKeepsItsSign) {
  Module m = make_uncompressed_module({"z", 1, 1, 1, 8}, {16, 1, 0}, 0);
  m.model.rope_theta = -0.0;
  m.layers[0].retention.gamma = -0.0;  // compares equal to the default 0 but must still be written
  const Module back = parse_module(print_module(m));
  EXPECT_TRUE(std::signbit(back.model.rope_theta));
  EXPECT_TRUE(std::signbit(back.layers[0].retention.gamma));
}

}  // namespace
}  // namespace kvc::ir
