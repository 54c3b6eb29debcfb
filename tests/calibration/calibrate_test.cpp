// kvc calibrate's library on stories260K: determinism, round trip, sanity.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "calibration/calibrate.h"
#include "stats/stats_file.h"
#include "support/diagnostics.h"
#include "test_support/test_data.h"

namespace kvc::calibration {
namespace {

TEST(Calibrate, Stories260KIsDeterministicRoundTripsAndMatchesItsShape) {
  std::string path;
  KVC_REQUIRE_MODEL_FILE(path, "stories260K.bin");
  const model::Model m = model::Model::load(path);
  CalibrateOptions o;
  o.sequences = 3;
  o.length = 128;
  o.seed = 5;
  o.threads = 2;
  const CalibrationStats a = calibrate(m, o);
  o.threads = 1;
  const CalibrationStats b = calibrate(m, o);
  EXPECT_TRUE(a == b) << "thread count changed the statistics";

  EXPECT_EQ(a.meta.model.layers, m.config.layers);
  EXPECT_EQ(a.meta.prompt + a.meta.decode, 128);
  EXPECT_NO_THROW(check_stats_match_model(a, model_shape(m), "x"));
  EXPECT_TRUE(parse_stats(serialize_stats(a), "mem") == a);

  // Every key format x value format of the default families: KIVI's, per-token, rotated
  // per-token at 2, 3, 4, 8 bits and the rotated codebook at 2, 3, 4.
  ASSERT_EQ(a.meta.key_formats.size(), 15u);
  EXPECT_EQ(a.meta.key_formats[3].name(), "8");
  EXPECT_EQ(a.meta.key_formats[6].name(), "4t");
  EXPECT_EQ(a.meta.key_formats[14].name(), "4cr");
  EXPECT_EQ(a.meta.value_formats, a.meta.key_formats);
  // KIVI's K8V8 is much closer than K2V2 in every layer and head.
  const int L = m.config.layers, H = m.config.kv_heads, F = 15;
  const auto& e = a.tensor("quant_output_error_mean", {L, H, F, F}).data;
  for (int lh = 0; lh < L * H; ++lh) EXPECT_LT(e[lh * F * F + 3 * F + 3], e[lh * F * F + 0]);

  o.seed = 6;
  EXPECT_FALSE(calibrate(m, o) == a) << "the seed does not change the sequences";
}

TEST(Calibrate, TokenFileIsReadAndBadOnesAreErrors) {
  std::string path;
  KVC_REQUIRE_MODEL_FILE(path, "stories260K.bin");
  const model::Model m = model::Model::load(path);
  const std::string tokens = (std::filesystem::temp_directory_path() / "kvc_calib_tokens.txt").string();
  {
    std::ofstream f(tokens);
    f << "# two sequences\n";
    for (int s = 0; s < 2; ++s) {
      for (int i = 0; i < 40; ++i) f << (1 + (i * 37 + s * 11) % 500) << (i % 5 == 4 ? "," : " ");
      f << "\n";
    }
  }
  CalibrateOptions o;
  o.sequences = 2;
  o.length = 32;
  o.source.token_file = tokens;
  const CalibrationStats s = calibrate(m, o);
  EXPECT_EQ(s.meta.source, "tokens:" + tokens);
  o.sequences = 3;
  EXPECT_THROW(calibrate(m, o), Error);  // only two sequences
  o.sequences = 2;
  o.length = 64;
  EXPECT_THROW(calibrate(m, o), Error);  // lines too short
  {
    std::ofstream f(tokens);
    f << "1 2 x 4 5 6 7 8 9 10\n";
  }
  o.length = 8;
  o.sequences = 1;
  try {
    calibrate(m, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.location().line, 1);
    EXPECT_EQ(e.location().column, 5);
  }
  std::filesystem::remove(tokens);
}

TEST(Calibrate, BadOptionsAreErrors) {
  std::string path;
  KVC_REQUIRE_MODEL_FILE(path, "stories260K.bin");
  const model::Model m = model::Model::load(path);
  CalibrateOptions o;
  o.sequences = 0;
  EXPECT_THROW(calibrate(m, o), Error);
  o.sequences = 1;
  o.length = 100000;
  EXPECT_THROW(calibrate(m, o), Error);
}

}  // namespace
}  // namespace kvc::calibration
