// HF config.json: the published shapes of the example models, the defaults the
// format allows, and errors located at line:column of the key at fault.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "frontend/hf_config.h"
#include "frontend/model_file.h"
#include "support/diagnostics.h"
#include "test_support/test_data.h"

namespace kvc::frontend {
namespace {

namespace fs = std::filesystem;

fs::path hf_dir() { return fs::path(testing::source_dir()) / "tests" / "frontend" / "fixtures" / "hf"; }

std::string write_config(const std::string& name, const std::string& text) {
  const fs::path dir = fs::path(::testing::TempDir()) / "kvc_hf_config";
  fs::create_directories(dir);
  const fs::path p = dir / (name + ".json");
  std::ofstream(p, std::ios::binary) << text;
  return p.string();
}

Error error_of(const std::string& path) {
  try {
    read_hf_config(path);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << path << " was accepted";
  return Error("accepted");
}

TEST(HfConfig, PublishedShapes) {
  struct Case {
    const char* dir;
    ir::ModelShape shape;
    std::int64_t context;
    int dim, hidden, vocab;
  };
  const Case cases[] = {
      {"Llama-3.1-8B", {"Llama-3.1-8B", 32, 32, 8, 128, 500000.0, ir::DType::BF16}, 131072, 4096, 14336, 128256},
      {"Llama-3.1-70B", {"Llama-3.1-70B", 80, 64, 8, 128, 500000.0, ir::DType::BF16}, 131072, 8192, 28672, 128256},
      {"Qwen2.5-7B", {"Qwen2.5-7B", 28, 28, 4, 128, 1e6, ir::DType::BF16}, 32768, 3584, 18944, 152064},
      {"Mistral-7B-v0.3", {"Mistral-7B-v0.3", 32, 32, 8, 128, 1e6, ir::DType::BF16}, 32768, 4096, 14336, 32768},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dir);
    const ModelFileInfo info = read_hf_config((hf_dir() / c.dir / "config.json").string());
    EXPECT_EQ(info.format, "hf-config");
    EXPECT_EQ(info.shape, c.shape);
    EXPECT_EQ(info.context, c.context);
    EXPECT_EQ(info.dim, c.dim);
    EXPECT_EQ(info.hidden, c.hidden);
    EXPECT_EQ(info.vocab, c.vocab);
  }
}

TEST(HfConfig, ReadModelInfoRecognisesJson) {
  const ModelFileInfo info = read_model_info((hf_dir() / "Qwen2.5-7B" / "config.json").string());
  EXPECT_EQ(info.format, "hf-config");
  EXPECT_EQ(info.shape.kv_heads, 4);
}

TEST(HfConfig, DefaultsTheFormatAllows) {
  // No num_key_value_heads (MHA), no head_dim, no rope_theta, no dtype, a name.
  const ModelFileInfo info = read_hf_config(write_config(
      "defaults", R"({"_name_or_path": "org/tiny", "num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 64,
                     "head_dim": null})"));
  EXPECT_EQ(info.shape, (ir::ModelShape{"org/tiny", 2, 4, 4, 16, 10000.0, ir::DType::F16}));
  EXPECT_EQ(info.context, 0);
}

TEST(HfConfig, NestedTextConfigAndRopeParameters) {
  const ModelFileInfo info = read_hf_config(write_config("nested", R"({
  "architectures": ["SomethingForConditionalGeneration"],
  "vision_config": {"num_hidden_layers": 27, "hidden_size": 1152},
  "text_config": {
    "num_hidden_layers": 12, "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64,
    "rope_parameters": {"rope_theta": 250000.0, "rope_type": "default"}, "torch_dtype": "float32"
  },
  "vocab_size": 1000
})"));
  EXPECT_EQ(info.shape.layers, 12);
  EXPECT_EQ(info.shape.kv_heads, 2);
  EXPECT_EQ(info.shape.head_dim, 64);
  EXPECT_EQ(info.shape.rope_theta, 250000.0);
  EXPECT_EQ(info.shape.cache_dtype, ir::DType::F32);
  EXPECT_EQ(info.vocab, 1000);
}

TEST(HfConfig, SyntaxErrorIsLocatedByLineAndColumn) {
  const std::string path = (hf_dir() / "bad" / "syntax.json").string();
  const Error e = error_of(path);
  EXPECT_EQ(e.location().file, path);
  EXPECT_EQ(e.location().line, 6);
  EXPECT_EQ(e.location().column, 25);  // the second comma of `10000.0,,`
  EXPECT_NE(e.message().find("JSON syntax error"), std::string::npos) << e.what();
}

TEST(HfConfig, TruncatedFile) {
  const Error e = error_of(write_config("truncated", "{\n  \"num_hidden_layers\": 5,\n  \"num_attention_heads\""));
  EXPECT_EQ(e.location().line, 3);
  EXPECT_EQ(e.location().column, 24);
}

// A number beyond double is well-formed JSON that nlohmann refuses with an
// exception carrying no position (found by fuzz/hf_config.cpp: it escaped as
// nlohmann's out_of_range, not a kvc::Error).
TEST(HfConfig, NumberBeyondDoubleIsLocated) {
  const Error e =
      error_of(write_config("huge_number", "{\n  \"num_hidden_layers\": 5,\n  \"intermediate_size\": 1e4336\n}\n"));
  EXPECT_EQ(e.location().line, 3);
  EXPECT_EQ(e.location().column, 24);
  EXPECT_NE(e.message().find("JSON number out of range: 1e4336"), std::string::npos) << e.what();
}

struct BadConfig {
  const char* name;
  const char* text;
  int line, column;
  const char* field;
  const char* phrase;
};

class HfConfigError : public ::testing::TestWithParam<BadConfig> {};

TEST_P(HfConfigError, NamesTheKeyAndWhereItIs) {
  const BadConfig& c = GetParam();
  const Error e = error_of(write_config(c.name, c.text));
  SCOPED_TRACE(e.what());
  EXPECT_EQ(e.location().line, c.line);
  EXPECT_EQ(e.location().column, c.column);
  EXPECT_EQ(e.field(), c.field);
  EXPECT_NE(e.message().find(c.phrase), std::string::npos);
}

const BadConfig kBadConfigs[] = {
    {"not_an_object", "[1, 2]", 1, 1, "", "must hold a JSON object"},
    {"missing_layers", "{\n  \"num_attention_heads\": 8,\n  \"hidden_size\": 64\n}", 1, 1, "num_hidden_layers",
     "missing required key \"num_hidden_layers\""},
    {"layers_float", "{\n  \"num_hidden_layers\": 32.0,\n  \"num_attention_heads\": 8,\n  \"hidden_size\": 64\n}", 2, 3,
     "num_hidden_layers", "expected an integer for \"num_hidden_layers\", got the number 32.0"},
    {"heads_string", "{\"num_hidden_layers\": 2, \"num_attention_heads\": \"8\", \"hidden_size\": 64}", 1, 26,
     "num_attention_heads", "got string"},
    {"kv_not_dividing",
     "{\n  \"num_hidden_layers\": 2,\n  \"num_attention_heads\": 8,\n    \"num_key_value_heads\": 3,\n  \"hidden_size\": 64\n}", 4,
     5, "num_key_value_heads", "does not divide num_attention_heads 8"},
    {"hidden_not_multiple", "{\"num_hidden_layers\": 2, \"num_attention_heads\": 6, \"hidden_size\": 64}", 1, 52,
     "hidden_size", "not a multiple of num_attention_heads 6"},
    {"no_hidden_no_head_dim", "{\"num_hidden_layers\": 2, \"num_attention_heads\": 6}", 1, 1, "hidden_size",
     "missing hidden_size"},
    {"negative_layers", "{\"num_hidden_layers\": -1, \"num_attention_heads\": 6, \"hidden_size\": 60}", 1, 2,
     "num_hidden_layers", "must be between 1"},
    {"odd_head_dim", "{\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"head_dim\": 9}", 1, 52, "head_dim", "is odd"},
    {"rope_string", "{\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"head_dim\": 8, \"rope_theta\": \"1e4\"}", 1,
     67, "rope_theta", "expected a number"},
    {"nested_missing_heads", "{\"text_config\": {\"num_hidden_layers\": 2, \"hidden_size\": 64}}", 1, 1,
     "text_config.num_attention_heads", "missing required key"},
    {"nested_bad_kv", "{\"text_config\": {\"num_hidden_layers\": 2,\n \"num_attention_heads\": 4, \"num_key_value_heads\": 3, \"head_dim\": 8}}",
     2, 28, "text_config.num_key_value_heads", "does not divide"},
    {"bad_dtype", "{\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"head_dim\": 8, \"torch_dtype\": \"int8\"}", 1, 67,
     "torch_dtype", "unknown dtype \"int8\""},
};

INSTANTIATE_TEST_SUITE_P(Configs, HfConfigError, ::testing::ValuesIn(kBadConfigs),
                         [](const ::testing::TestParamInfo<BadConfig>& info) { return std::string(info.param.name); });

TEST(HfConfig, MissingFile) {
  const Error e = error_of("/nonexistent/config.json");
  EXPECT_EQ(e.location().file, "/nonexistent/config.json");
  EXPECT_NE(e.message().find("not found"), std::string::npos);
}

}  // namespace
}  // namespace kvc::frontend
