// read_model_info recognises both formats by content and returns stories260K's shape.
#include <gtest/gtest.h>

#include "frontend/model_file.h"
#include "model/stories_gguf.h"
#include "model/test_files.h"
#include "test_support/test_data.h"

namespace kvc::frontend {
namespace {

void expect_stories_shape(const ModelFileInfo& info) {
  EXPECT_EQ(info.shape.layers, 5);
  EXPECT_EQ(info.shape.q_heads, 8);
  EXPECT_EQ(info.shape.kv_heads, 4);
  EXPECT_EQ(info.shape.head_dim, 8);
  EXPECT_EQ(info.shape.rope_theta, 10000.0);
  EXPECT_EQ(info.context, 512);
  EXPECT_EQ(info.dim, 64);
  EXPECT_EQ(info.hidden, 172);
  EXPECT_EQ(info.vocab, 512);
  EXPECT_EQ(info.shape.name, "stories260K");
}

TEST(ModelInfo, Llama2cCheckpoint) {
  std::string bin;
  KVC_REQUIRE_MODEL_FILE(bin, "stories260K.bin");
  const ModelFileInfo info = read_model_info(bin);
  EXPECT_EQ(info.format, "llama2c");
  expect_stories_shape(info);
}

TEST(ModelInfo, GgufWrittenFromTheCheckpoint) {
  std::string bin;
  KVC_REQUIRE_MODEL_FILE(bin, "stories260K.bin");
  // Named differently from the model so the name must come from general.name.
  const std::string path = kvc::testing::scratch_path("converted.gguf");
  kvc::testing::write_gguf_from_llama2c(bin, path, {kvc::testing::GgufTensorType::Q8_0, false});
  const ModelFileInfo info = read_model_info(path);
  EXPECT_EQ(info.format, "gguf");
  expect_stories_shape(info);
}

TEST(ModelInfo, JsonObjectGoesToTheHfConfigReader) {
  const std::string path = kvc::testing::scratch_path("config.json");
  const std::string json = R"(  {"num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4,
    "hidden_size": 64, "intermediate_size": 172, "vocab_size": 512, "max_position_embeddings": 512})";
  kvc::testing::write_file_bytes(path, reinterpret_cast<const std::uint8_t*>(json.data()), json.size());
  const ModelFileInfo info = read_model_info(path);
  EXPECT_EQ(info.format, "hf-config");
  EXPECT_EQ(info.shape.layers, 5);
  EXPECT_EQ(info.shape.head_dim, 8);
}

}  // namespace
}  // namespace kvc::frontend
