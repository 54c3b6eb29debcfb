// llama2.c's versioned checkpoints ("ak42" header): version 2 (int8 codes with
// grouped fp32 scales) and version 1 (fp32), on files written by the test and on
// stories3M. Loading returns exactly code x scale; every truncation and every
// corrupt header field is a kvc::Error naming the file and the offset.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "frontend/llama2c.h"
#include "frontend/model_file.h"
#include "model/llama2c_writer.h"
#include "model/model.h"
#include "model/error_of.h"
#include "model/test_files.h"
#include "support/diagnostics.h"
#include "test_support/test_data.h"

namespace kvc::model {
namespace {

using testing::contains;
using testing::error_of;

void expect_same_weights(const frontend::Llama2cCheckpoint& got, const frontend::Llama2cCheckpoint& want) {
  EXPECT_EQ(got.token_embedding, want.token_embedding);
  EXPECT_EQ(got.rms_att, want.rms_att);
  EXPECT_EQ(got.rms_ffn, want.rms_ffn);
  EXPECT_EQ(got.rms_final, want.rms_final);
  EXPECT_EQ(got.wq, want.wq);
  EXPECT_EQ(got.wk, want.wk);
  EXPECT_EQ(got.wv, want.wv);
  EXPECT_EQ(got.wo, want.wo);
  EXPECT_EQ(got.w1, want.w1);
  EXPECT_EQ(got.w2, want.w2);
  EXPECT_EQ(got.w3, want.w3);
  EXPECT_EQ(got.wcls, want.wcls);
}

TEST(Llama2cVersioned, Version2WeightsAreCodeTimesGroupScaleInFileOrder) {
  for (bool shared : {true, false}) {
    frontend::Llama2cHeader h = testing::tiny_versioned_header(2);
    h.shared_classifier = shared;
    const testing::VersionedCheckpoint c = testing::make_versioned_llama2c(h, 7);
    const std::string path = testing::scratch_path(shared ? "v2_shared.bin" : "v2_wcls.bin");
    testing::write_file_bytes(path, c.bytes);
    const frontend::Llama2cCheckpoint got = frontend::read_llama2c_checkpoint(path);
    EXPECT_EQ(got.header.version, 2);
    EXPECT_EQ(got.header.group_size, 8);
    EXPECT_EQ(got.header.shared_classifier, shared);
    expect_same_weights(got, c.expected);
    const Model m = Model::load(path);
    EXPECT_EQ(m.config.q_heads, 4);
    EXPECT_EQ(m.config.kv_heads, 2);
    EXPECT_EQ(m.config.head_dim, 4);
    EXPECT_EQ(m.layers[1].wk, std::vector<float>(c.expected.wk.begin() + 8 * 16, c.expected.wk.end()));
    EXPECT_EQ(m.classifier, c.expected.wcls);
  }
}

TEST(Llama2cVersioned, Version1IsReadAsFp32) {
  const testing::VersionedCheckpoint c = testing::make_versioned_llama2c(testing::tiny_versioned_header(1), 3);
  const std::string path = testing::scratch_path("v1.bin");
  testing::write_file_bytes(path, c.bytes);
  const frontend::Llama2cCheckpoint got = frontend::read_llama2c_checkpoint(path);
  EXPECT_EQ(got.header.version, 1);
  expect_same_weights(got, c.expected);
  const frontend::ModelFileInfo info = frontend::read_model_info(path);
  EXPECT_EQ(info.format, "llama2c");
  EXPECT_EQ(info.shape.head_dim, 4);
  EXPECT_EQ(info.context, 32);
}

TEST(Llama2cVersioned, EveryTruncationNamesTheFileAndOffset) {
  const testing::VersionedCheckpoint c = testing::make_versioned_llama2c(testing::tiny_versioned_header(2), 1);
  const std::string path = testing::scratch_path("v2_cut.bin");
  for (std::size_t cut = 0; cut < c.bytes.size(); ++cut) {
    testing::write_file_bytes(path, c.bytes.data(), cut);
    for (const std::string& e : {error_of([&] { frontend::read_model_info(path); }),
                                 error_of([&] { Model::load(path); })})
      ASSERT_TRUE(contains(e, path) && contains(e, "offset ")) << "cut at " << cut << ": '" << e << "'";
  }
}

// Header bytes patched with `value` at `offset`.
std::vector<std::uint8_t> patched(std::vector<std::uint8_t> bytes, std::size_t offset, std::int32_t value,
                                  std::size_t width = 4) {
  std::memcpy(bytes.data() + offset, &value, width);
  return bytes;
}

TEST(Llama2cVersioned, CorruptHeaderFieldsNameTheirOffset) {
  const testing::VersionedCheckpoint c = testing::make_versioned_llama2c(testing::tiny_versioned_header(2), 2);
  const std::string path = testing::scratch_path("v2_bad.bin");
  struct Case {
    std::size_t offset;
    std::int32_t value;
    std::size_t width;
    const char* says;
  };
  for (const Case& k : std::vector<Case>{{4, 3, 4, "version 3"},
                                         {4, 0, 4, "version 0"},
                                         {8, -16, 4, "dim"},
                                         {8, 17, 4, "offset 20"},     // heads no longer divide dim
                                         {12, 31, 4, "implies a file"},  // hidden: group size no longer fits
                                         {16, 1000, 4, "implies a file"},
                                         {20, 3, 4, "offset 20"},
                                         {24, 3, 4, "n_kv_heads"},
                                         {28, -24, 4, "vocab_size"},
                                         {32, 0, 4, "seq_len"},
                                         {36, 7, 1, "shared_classifier"},
                                         {36, 0, 1, "implies a file"},  // separate classifier: the file is too short
                                         {37, 0, 4, "group size 0"},
                                         {37, 5, 4, "does not divide"},
                                         {37, 1 << 30, 4, "does not divide"}}) {
    testing::write_file_bytes(path, patched(c.bytes, k.offset, k.value, k.width));
    const std::string e = error_of([&] { frontend::read_model_info(path); });
    EXPECT_TRUE(contains(e, path) && contains(e, "offset ") && contains(e, k.says))
        << "field at " << k.offset << " = " << k.value << ": '" << e << "'";
    EXPECT_FALSE(error_of([&] { Model::load(path); }).empty());
  }
}

TEST(Llama2cVersioned, NonFiniteScaleIsAnError) {
  const testing::VersionedCheckpoint c = testing::make_versioned_llama2c(testing::tiny_versioned_header(2), 4);
  // The first scale of the token embedding follows the norms and its codes.
  const std::size_t norms = (2 * 2 * 16 + 16) * 4, first_scale = 256 + norms + 24 * 16;
  std::vector<std::uint8_t> bytes = c.bytes;
  const float nan = std::nanf("");
  std::memcpy(bytes.data() + first_scale, &nan, 4);
  const std::string path = testing::scratch_path("v2_nan.bin");
  testing::write_file_bytes(path, bytes);
  const std::string e = error_of([&] { Model::load(path); });
  EXPECT_TRUE(contains(e, "offset " + std::to_string(first_scale)) && contains(e, "not finite")) << e;
}

TEST(Llama2cVersioned, Stories3MShapeAndTruncations) {
  std::string bin;
  KVC_REQUIRE_MODEL_FILE(bin, "stories3M-q80.bin");
  const frontend::ModelFileInfo info = frontend::read_model_info(bin);
  EXPECT_EQ(info.format, "llama2c");
  EXPECT_EQ(info.shape.layers, 6);
  EXPECT_EQ(info.shape.q_heads, 6);
  EXPECT_EQ(info.shape.kv_heads, 2);
  EXPECT_EQ(info.shape.head_dim, 32);
  EXPECT_EQ(info.vocab, 4096);
  EXPECT_EQ(info.context, 512);
  const std::vector<std::uint8_t> bytes = testing::read_file_bytes(bin);
  const std::string path = testing::scratch_path("stories3M_cut.bin");
  // Every 7th byte of the header and the norms, then every 40993rd byte, and the last.
  std::vector<std::size_t> cuts;
  for (std::size_t i = 0; i < bytes.size(); i += i < 256 + 9984 ? 7 : 40993) cuts.push_back(i);
  cuts.push_back(bytes.size() - 1);
  for (std::size_t cut : cuts) {
    testing::write_file_bytes(path, bytes.data(), cut);
    const std::string e = error_of([&] { frontend::read_model_info(path); });
    ASSERT_TRUE(contains(e, path) && contains(e, "offset ")) << "cut at " << cut << ": '" << e << "'";
  }
}

}  // namespace
}  // namespace kvc::model
