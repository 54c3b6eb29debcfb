// Truncated, corrupt and unsupported model files: always a kvc::Error that names
// the file and the offset or key, never a crash, an out-of-bounds read or a
// different exception (these tests also run under ASan/UBSan).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "frontend/gguf.h"
#include "frontend/model_file.h"
#include "model/model.h"
#include "model/stories_gguf.h"
#include "model/error_of.h"
#include "model/test_files.h"
#include "model/tiny_gguf.h"
#include "support/diagnostics.h"
#include "test_support/test_data.h"

namespace kvc::model {
namespace {

using testing::GgufTensorType;

using testing::contains;
using testing::error_of;

// Offsets to cut at: every byte of the first `dense` bytes, then every `stride`-th, and the last byte.
std::vector<std::size_t> cut_points(std::size_t size, std::size_t dense, std::size_t stride) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 0; i < size; i += i < dense ? 1 : stride) cuts.push_back(i);
  cuts.push_back(size - 1);
  return cuts;
}

void expect_truncations_fail(const std::vector<std::uint8_t>& bytes, const std::string& name, std::size_t dense,
                             std::size_t stride, bool also_load) {
  const std::string path = testing::scratch_path(name);
  for (std::size_t cut : cut_points(bytes.size(), dense, stride)) {
    testing::write_file_bytes(path, bytes.data(), cut);
    const std::string info_error = error_of([&] { frontend::read_model_info(path); });
    ASSERT_TRUE(contains(info_error, path)) << "cut at " << cut << ": '" << info_error << "'";
    ASSERT_TRUE(contains(info_error, "offset ")) << "cut at " << cut << ": '" << info_error << "'";
    if (also_load) {
      const std::string load_error = error_of([&] { Model::load(path); });
      ASSERT_TRUE(contains(load_error, path) && contains(load_error, "offset "))
          << "cut at " << cut << ": '" << load_error << "'";
    }
  }
}

class CorruptFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    KVC_REQUIRE_MODEL_FILE(bin_, "stories260K.bin");
    bin_bytes_ = testing::read_file_bytes(bin_);
    gguf_bytes_ = testing::gguf_writer_from_llama2c(bin_).bytes();
  }
  std::string bin_;
  std::vector<std::uint8_t> bin_bytes_, gguf_bytes_;
};

TEST_F(CorruptFiles, TruncatedLlama2cFilesNameTheFileAndOffset) {
  expect_truncations_fail(bin_bytes_, "cut.bin", 64, 4099, true);
}

TEST_F(CorruptFiles, TruncatedGgufFilesNameTheFileAndOffset) {
  const frontend::GgufFile whole = [&] {
    const std::string path = testing::scratch_path("whole.gguf");
    testing::write_file_bytes(path, gguf_bytes_);
    return frontend::GgufFile::open(path);
  }();
  // Densely through the header and tensor directory (a cut inside it leaves
  // only header bytes, so the header alone is the source), sparsely through the data.
  const std::vector<std::uint8_t> header(gguf_bytes_.begin(), gguf_bytes_.begin() + whole.data_offset() + 64);
  expect_truncations_fail(header, "cut_header.gguf", 1024, 7, false);
  expect_truncations_fail(gguf_bytes_, "cut.gguf", 0, 16381, true);
}

// Writes `bytes` with the int32 header field `index` set to `value`.
std::string llama2c_with_field(const std::vector<std::uint8_t>& bytes, int index, std::int32_t value) {
  std::vector<std::uint8_t> b = bytes;
  std::memcpy(b.data() + 4 * index, &value, 4);
  const std::string path = testing::scratch_path("field" + std::to_string(index) + ".bin");
  testing::write_file_bytes(path, b);
  return path;
}

TEST_F(CorruptFiles, FlippedLlama2cHeaderFieldsAreReported) {
  for (int field = 0; field < 7; ++field) {
    std::int32_t original;
    std::memcpy(&original, bin_bytes_.data() + 4 * field, 4);
    for (std::int32_t value : {0, -1, 1, original + 1, original * 2, INT32_MAX, INT32_MIN, original ^ 0x40000000}) {
      if (value == original) continue;
      const std::string path = llama2c_with_field(bin_bytes_, field, value);
      const std::string e = error_of([&] { frontend::read_model_info(path); });
      EXPECT_TRUE(contains(e, path) && contains(e, "offset ")) << "field " << field << " = " << value << ": '" << e << "'";
      const std::string le = error_of([&] { Model::load(path); });
      EXPECT_FALSE(le.empty()) << "field " << field << " = " << value;
    }
  }
  const std::string e = error_of([&] { frontend::read_model_info(llama2c_with_field(bin_bytes_, 3, 7)); });
  EXPECT_TRUE(contains(e, "offset 12") && contains(e, "n_heads")) << e;
}

TEST_F(CorruptFiles, Llama2cFileWithTrailingBytesIsRejected) {
  std::vector<std::uint8_t> b = bin_bytes_;
  b.push_back(0);
  const std::string path = testing::scratch_path("trailing.bin");
  testing::write_file_bytes(path, b);
  EXPECT_TRUE(contains(error_of([&] { frontend::read_model_info(path); }), "trailing"));
}

// Offset of the first occurrence of `text` in `bytes`.
std::size_t find_bytes(const std::vector<std::uint8_t>& bytes, const std::string& text) {
  auto it = std::search(bytes.begin(), bytes.end(), text.begin(), text.end());
  EXPECT_NE(it, bytes.end()) << text;
  return static_cast<std::size_t>(it - bytes.begin());
}

template <class T>
std::string gguf_with(std::vector<std::uint8_t> b, std::size_t offset, T value, const std::string& name) {
  std::memcpy(b.data() + offset, &value, sizeof value);
  const std::string path = testing::scratch_path(name);
  testing::write_file_bytes(path, b);
  return path;
}

TEST_F(CorruptFiles, FlippedGgufHeaderFieldsNameTheOffsetOrKey) {
  struct Case {
    std::size_t offset;
    std::uint64_t value;
    int size;
    std::string expect;
  };
  const std::size_t q_info = find_bytes(gguf_bytes_, "blk.0.attn_q.weight") + std::strlen("blk.0.attn_q.weight");
  const std::size_t layers_key = find_bytes(gguf_bytes_, "llama.block_count") + std::strlen("llama.block_count");
  const std::size_t tokens_key =
      find_bytes(gguf_bytes_, "tokenizer.ggml.tokens") + std::strlen("tokenizer.ggml.tokens");
  const std::vector<Case> cases = {
      {0, 0x46554747 ^ 1, 4, "error: offset "},  // magic: not GGUF, so read as a (bad) llama2.c file
      {4, 4, 4, "offset 4: GGUF version 4"},
      {4, 0x03000000, 4, "big-endian"},
      {8, 1ull << 60, 8, "offset 8: tensor count"},
      {16, 1ull << 60, 8, "offset 16: metadata count"},
      {24, 1ull << 40, 8, "offset 24: metadata key #0"},
      {layers_key, 99, 4, "value type 99"},
      {layers_key, 6, 4, "key 'llama.block_count': expected an integer, found f32"},
      {layers_key + 4, 0, 4, "key 'llama.block_count': value 0 is out of range"},
      {tokens_key + 4, 77, 4, "array element type 77"},
      {tokens_key + 8, 1ull << 50, 8, "array of"},
      {tokens_key + 16, 1ull << 50, 8, "string length"},
      {q_info, 5, 4, "n_dims 5"},
      {q_info + 4, 0, 8, "dimension 0 is 0"},
      {q_info + 4, 1ull << 40, 8, "extends past the end of the file"},
      {q_info + 4 + 16, 99, 4, "type 99 is not a ggml type"},
      {q_info + 4 + 16, 12, 4, "multiple of Q4_K's block of 256"},
      {q_info + 4 + 16 + 4, 7, 8, "not a multiple of the alignment 32"},
      {q_info + 4 + 16 + 4, 1ull << 40, 8, "extends past the end of the file"},
  };
  for (const Case& c : cases) {
    const std::string path = c.size == 4 ? gguf_with(gguf_bytes_, c.offset, static_cast<std::uint32_t>(c.value), "flip.gguf")
                                         : gguf_with(gguf_bytes_, c.offset, c.value, "flip.gguf");
    const std::string e = error_of([&] { frontend::read_model_info(path); });
    EXPECT_TRUE(contains(e, path) && contains(e, c.expect)) << "offset " << c.offset << ": '" << e << "'";
    EXPECT_FALSE(error_of([&] { Model::load(path); }).empty()) << "offset " << c.offset;
  }
}

TEST(CorruptGguf, EveryByteCorruptedIsAnErrorOrHarmless) {
  const std::vector<std::uint8_t> good = testing::tiny_llama_gguf().bytes();
  const std::string path = testing::scratch_path("corrupt.gguf");
  testing::write_file_bytes(path, good);
  ASSERT_EQ(Model::load(path).config.layers, 2);
  int errors = 0;
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (std::uint8_t mask : {0xFF, 0x01}) {
      std::vector<std::uint8_t> b = good;
      b[i] ^= mask;
      testing::write_file_bytes(path, b);
      const std::string e = error_of([&] { Model::load(path); });
      const std::string info_error = error_of([&] { frontend::read_model_info(path); });
      for (const std::string& message : {e, info_error}) {
        if (message.empty()) continue;
        ++errors;
        ASSERT_TRUE(contains(message, path)) << "byte " << i << ": '" << message << "'";
        ASSERT_TRUE(contains(message, "offset ") || contains(message, "key '") || contains(message, "tensor '"))
            << "byte " << i << ": '" << message << "'";
      }
    }
  }
  EXPECT_GT(errors, 300);
}

TEST(CorruptGguf, EveryTruncationOfATinyFileFails) {
  expect_truncations_fail(testing::tiny_llama_gguf().bytes(), "tiny_cut.gguf", SIZE_MAX, 1, true);
}

TEST_F(CorruptFiles, UnsupportedTensorTypeIsReportedAtLoadNotAtInfo) {
  testing::GgufWriter w = testing::gguf_writer_from_llama2c(bin_);
  // blk.0.attn_q.weight re-labelled Q4_0 (ggml type 2), which the forward pass
  // does not convert: 64x64 values = 128 blocks of 18 bytes, within the F32 data.
  std::vector<std::uint8_t> b = w.bytes();
  const std::size_t q_info = find_bytes(b, "blk.0.attn_q.weight") + std::strlen("blk.0.attn_q.weight");
  std::uint32_t type = 2;
  std::memcpy(b.data() + q_info + 4 + 16, &type, 4);  
  const std::string path = testing::scratch_path("q4k.gguf");
  testing::write_file_bytes(path, b);
  const frontend::ModelFileInfo info = frontend::read_model_info(path);
  EXPECT_EQ(info.shape.layers, 5);
  const std::string e = error_of([&] { Model::load(path); });
  EXPECT_TRUE(contains(e, path) && contains(e, "blk.0.attn_q.weight") && contains(e, "Q4_0")) << e;
}

// An F32 tensor of 2^62 + 8 elements: 4 bytes each wrap the byte size to 32 in
// 64 bits, which fits the data section. Found by fuzz/gguf.cpp, where reading the
// tensor then asked std::vector for 2^62 floats.
TEST(CorruptGguf, TensorWhoseByteSizeWrapsIsPastTheEnd) {
  std::vector<std::uint8_t> b = testing::tiny_llama_gguf().bytes();
  const std::string name = "blk.0.attn_norm.weight";
  const std::size_t ne0 = find_bytes(b, name) + name.size() + 4;  // after the name, n_dims (1)
  std::uint64_t n = 0;
  std::memcpy(&n, b.data() + ne0, 8);
  ASSERT_EQ(n, 8u);
  n = (std::uint64_t{1} << 62) + 8;
  std::memcpy(b.data() + ne0, &n, 8);
  const std::string path = testing::scratch_path("wrapped_size.gguf");
  testing::write_file_bytes(path, b);
  const std::string e = error_of([&] { frontend::GgufFile::open(path); });
  EXPECT_TRUE(contains(e, path) && contains(e, name) && contains(e, "more than 2^64 bytes") &&
              contains(e, "extends past the end"))
      << e;
}

TEST(CorruptGguf, OtherArchitecturesAreReadForShapeButNotRun) {
  const std::string path = testing::scratch_path("qwen2.gguf");
  testing::tiny_llama_gguf("qwen2").write(path);
  const frontend::ModelFileInfo info = frontend::read_model_info(path);
  EXPECT_EQ(info.format, "gguf");
  EXPECT_EQ(info.shape.layers, 2);
  EXPECT_EQ(info.shape.kv_heads, 1);
  const std::string e = error_of([&] { Model::load(path); });
  EXPECT_TRUE(contains(e, "key 'general.architecture'") && contains(e, "qwen2")) << e;
}

TEST_F(CorruptFiles, ArchitectureWithoutItsKeysNamesTheMissingKey) {
  std::vector<std::uint8_t> b = gguf_bytes_;
  const std::size_t arch = find_bytes(b, "general.architecture") + std::strlen("general.architecture") + 4 + 8;
  ASSERT_EQ(std::memcmp(b.data() + arch, "llama", 5), 0);
  std::memcpy(b.data() + arch, "qlama", 5);  // keys are still under "llama."
  const std::string path = testing::scratch_path("qlama.gguf");
  testing::write_file_bytes(path, b);
  const std::string e = error_of([&] { frontend::read_model_info(path); });
  EXPECT_TRUE(contains(e, "key 'qlama.block_count': missing")) << e;
}

TEST_F(CorruptFiles, MissingTensorIsNamed) {
  std::vector<std::uint8_t> b = gguf_bytes_;
  const std::size_t at = find_bytes(b, "blk.3.ffn_up.weight");
  b[at + 4] = 'X';  // "blk.X.ffn_up.weight"
  const std::string path = testing::scratch_path("missing.gguf");
  testing::write_file_bytes(path, b);
  const std::string e = error_of([&] { Model::load(path); });
  EXPECT_TRUE(contains(e, path) && contains(e, "tensor 'blk.3.ffn_up.weight': missing")) << e;
}

TEST(ModelFiles, MissingFileAndEmptyFileAreErrors) {
  const std::string missing = testing::scratch_path("does_not_exist.bin");
  EXPECT_TRUE(contains(error_of([&] { frontend::read_model_info(missing); }), missing));
  EXPECT_TRUE(contains(error_of([&] { Model::load(missing); }), missing));
  const std::string empty = testing::scratch_path("empty.bin");
  testing::write_file_bytes(empty, {});
  EXPECT_TRUE(contains(error_of([&] { frontend::read_model_info(empty); }), "offset 0"));
}

}  // namespace
}  // namespace kvc::model
