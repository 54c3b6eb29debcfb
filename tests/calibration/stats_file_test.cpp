// The stats file: round trip, and every kind of bad file is a kvc::Error.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "stats/stats_file.h"
#include "calibration/synthetic_activations.h"
#include "support/diagnostics.h"
#include "test_support/test_data.h"

namespace kvc::calibration {
namespace {

const CalibrationStats& stats() {
  static const CalibrationStats s = testing::synthetic_stats(testing::synthetic_meta(2));
  return s;
}

std::string error_of(std::string_view bytes) {
  try {
    parse_stats(bytes, "bad.stats");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(StatsFile, SerializeParseRoundTripsExactly) {
  const std::string bytes = serialize_stats(stats());
  EXPECT_EQ(bytes.substr(0, 8), "KVCSTATS");
  const CalibrationStats back = parse_stats(bytes, "mem");
  EXPECT_EQ(back.meta, stats().meta);
  EXPECT_EQ(back.tensors, stats().tensors);
  EXPECT_EQ(serialize_stats(back), bytes);
}

TEST(StatsFile, WriteReadRoundTripsThroughAFile) {
  const std::string path = (std::filesystem::temp_directory_path() / "kvc_stats_roundtrip.stats").string();
  write_stats_file(path, stats());
  const CalibrationStats back = read_stats_file(path);
  std::filesystem::remove(path);
  EXPECT_TRUE(back == stats());
}

TEST(StatsFile, MissingFileIsAnError) {
  EXPECT_THROW(read_stats_file("/nonexistent/dir/x.stats"), Error);
}

TEST(StatsFile, TruncatedFileIsAnErrorAtEveryLength) {
  const std::string bytes = serialize_stats(stats());
  // Every prefix (sampled) must be rejected, never crash.
  for (std::size_t n = 0; n < bytes.size(); n += std::max<std::size_t>(1, bytes.size() / 97))
    EXPECT_NE(error_of(std::string_view(bytes).substr(0, n)), "") << "prefix of " << n << " bytes accepted";
  EXPECT_NE(error_of(std::string_view(bytes).substr(0, bytes.size() - 1)), "");
  EXPECT_NE(error_of(std::string_view(bytes).substr(0, bytes.size() - 1)).find("bad.stats"), std::string::npos);
}

TEST(StatsFile, TrailingBytesAreAnError) {
  EXPECT_NE(error_of(serialize_stats(stats()) + "xx"), "");
}

TEST(StatsFile, CorruptHeaderIsAnError) {
  const std::string good = serialize_stats(stats());
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  EXPECT_NE(error_of(bad_magic).find("magic"), std::string::npos);

  std::string huge_len = good;
  huge_len[15] = '\x7f';
  EXPECT_NE(error_of(huge_len).find("truncated"), std::string::npos);

  std::string bad_json = good;
  bad_json[16] = '[';
  EXPECT_NE(error_of(bad_json), "");

  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    s.replace(at, from.size(), to);
    return s;
  };
  EXPECT_NE(error_of(replace("\"version\":2", "\"version\":9")).find("version 9"), std::string::npos);
  EXPECT_NE(error_of(replace("\"F32\"", "\"F64\"")), "");
  // Same length so offsets stay put: a renamed tensor leaves an expected one missing.
  EXPECT_NE(error_of(replace("\"cake_entropy\"", "\"cake_entropz\"")).find("cake_entropy"), std::string::npos);
  // A shape that disagrees with data_offsets.
  EXPECT_NE(error_of(replace("\"shape\":[3,2]", "\"shape\":[3,3]")), "");
}

TEST(StatsFile, ShapeMismatchWithTheModelIsAClearError) {
  ir::ModelShape other = stats().meta.model;
  EXPECT_NO_THROW(check_stats_match_model(stats(), other, "s.stats"));
  other.kv_heads = 4;
  other.name = "bigger";
  try {
    check_stats_match_model(stats(), other, "s.stats");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("s.stats"), std::string::npos) << msg;
    EXPECT_NE(msg.find("kv_heads=2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("kv_heads=4"), std::string::npos) << msg;
  }
}

TEST(StatsFile, TensorAccessorChecksTheShape) {
  EXPECT_NO_THROW(stats().tensor("cake_entropy_mean", {3, 2}));
  EXPECT_THROW(stats().tensor("cake_entropy_mean", {2, 3}), Error);
  EXPECT_THROW(stats().tensor("no_such_tensor", {1}), Error);
}

}  // namespace
}  // namespace kvc::calibration
