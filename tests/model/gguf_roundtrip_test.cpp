// GGUF files written from stories260K.bin give the llama2.c file's logits:
// exactly for F32, closely for F16 / BF16 / Q8_0 matrices.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>

#include "frontend/gguf.h"
#include "model/forward.h"
#include "model/full_kv_cache.h"
#include "model/sampler.h"
#include "model/stories_gguf.h"
#include "model/test_files.h"
#include "support/diagnostics.h"
#include "support/half.h"
#include "test_support/test_data.h"

namespace kvc::model {
namespace {

using testing::GgufTensorType;

// Logits of a greedy run of `steps` tokens from BOS, all positions concatenated.
std::vector<float> greedy_logits(const Model& m, int steps) {
  FullKVCache cache(ForwardPass::cache_shape(m.config));
  ForwardPass fp(m, cache);
  fp.begin_sequence();
  std::vector<float> all;
  int token = kBosToken;
  for (int pos = 0; pos < steps; ++pos) {
    const std::vector<float>& logits = fp.forward(token, pos);
    all.insert(all.end(), logits.begin(), logits.end());
    token = Sampler::argmax(logits);
  }
  return all;
}

class GgufRoundTrip : public ::testing::Test {
 protected:
  void SetUp() override { KVC_REQUIRE_MODEL_FILE(bin_, "stories260K.bin"); }
  std::string write(const std::string& name, testing::StoriesGgufOptions opt) {
    const std::string path = testing::scratch_path(name);
    testing::write_gguf_from_llama2c(bin_, path, opt);
    return path;
  }
  std::string bin_;
};

TEST_F(GgufRoundTrip, F32GivesIdenticalWeightsAndLogits) {
  const Model a = Model::load(bin_);
  const Model b = Model::load(write("stories_f32.gguf", {GgufTensorType::F32, false}));
  EXPECT_EQ(b.config.layers, 5);
  EXPECT_EQ(b.config.q_heads, 8);
  EXPECT_EQ(b.config.kv_heads, 4);
  EXPECT_EQ(b.config.head_dim, 8);
  EXPECT_EQ(b.config.vocab, 512);
  EXPECT_EQ(b.config.context, 512);
  EXPECT_EQ(b.config.rope, RopeStyle::AdjacentPairs);
  EXPECT_TRUE(b.classifier.empty());
  EXPECT_EQ(a.token_embedding, b.token_embedding);
  for (int l = 0; l < 5; ++l) {
    EXPECT_EQ(a.layers[l].wq, b.layers[l].wq);
    EXPECT_EQ(a.layers[l].w2, b.layers[l].w2);
  }
  EXPECT_EQ(greedy_logits(a, 64), greedy_logits(b, 64));
}

TEST_F(GgufRoundTrip, SeparateClassifierTensorGivesTheSameLogits) {
  const Model a = Model::load(bin_);
  const Model b = Model::load(write("stories_untied.gguf", {GgufTensorType::F32, true}));
  EXPECT_FALSE(b.classifier.empty());
  EXPECT_EQ(greedy_logits(a, 32), greedy_logits(b, 32));
}

// Reduced-precision weights, teacher-forced on the fp32 model's greedy run: the
// logits stay close (relative to their spread) and the top-1 choice mostly agrees.
void expect_close(const Model& reference, const Model& reduced, float max_abs, double max_mean, double min_agreement,
                  const char* what) {
  const int steps = 64, vocab = reference.config.vocab;
  const std::vector<int> prompt = generate_sequence(reference, 0, steps, 0.0f);
  FullKVCache ca(ForwardPass::cache_shape(reference.config)), cb(ForwardPass::cache_shape(reduced.config));
  const std::vector<float> want = ForwardPass(reference, ca).prefill(prompt);
  const std::vector<float> got = ForwardPass(reduced, cb).prefill(prompt);
  ASSERT_EQ(want.size(), got.size());
  float worst = 0.0f;
  for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(want[i] - got[i]));
  int agree = 0;
  for (int p = 0; p < steps; ++p) {
    const std::vector<float> a(want.begin() + p * vocab, want.begin() + (p + 1) * vocab);
    const std::vector<float> b(got.begin() + p * vocab, got.begin() + (p + 1) * vocab);
    agree += Sampler::argmax(a) == Sampler::argmax(b);
  }
  double mean = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) mean += std::fabs(want[i] - got[i]);
  mean /= static_cast<double>(want.size());
  std::printf("%s: max |logit error| %.4f, mean %.5f, top-1 agreement %d/%d\n", what, worst, mean, agree, steps);
  EXPECT_LT(worst, max_abs) << what;
  EXPECT_LT(mean, max_mean) << what;
  EXPECT_GT(worst, 0.0f) << what << ": reduced precision cannot be bit-identical";
  EXPECT_GE(static_cast<double>(agree) / steps, min_agreement) << what;
  ::testing::Test::RecordProperty(std::string(what) + "_max_abs_logit_error", std::to_string(worst));
}

TEST_F(GgufRoundTrip, ReducedPrecisionMatricesGiveCloseLogits) {
  const Model fp32 = Model::load(bin_);
  // Measured: F16 max 0.058 / mean 0.0076 / 63 of 64; BF16 0.90 / 0.078 / 63;
  // Q8_0 2.1 / 0.22 / 58 (this tiny model is sensitive; Q8_0's step is max/127
  // of a block of 32, coarser than BF16's 8-bit mantissa for most weights).
  expect_close(fp32, Model::load(write("stories_f16.gguf", {GgufTensorType::F16, false})), 0.15f, 0.02, 0.95, "F16");
  expect_close(fp32, Model::load(write("stories_bf16.gguf", {GgufTensorType::BF16, false})), 1.5f, 0.2, 0.9, "BF16");
  expect_close(fp32, Model::load(write("stories_q8.gguf", {GgufTensorType::Q8_0, false})), 3.5f, 0.4, 0.85, "Q8_0");
}

TEST_F(GgufRoundTrip, NegativeVocabLlama2cFileUsesItsOwnClassifier) {
  // The same checkpoint re-written with vocab_size = -512 and wcls appended.
  std::vector<std::uint8_t> bytes = testing::read_file_bytes(bin_);
  std::int32_t vocab;
  std::memcpy(&vocab, bytes.data() + 20, 4);
  ASSERT_EQ(vocab, 512);
  vocab = -vocab;
  std::memcpy(bytes.data() + 20, &vocab, 4);
  const std::size_t embedding_bytes = 512 * 64 * 4;
  bytes.insert(bytes.end(), bytes.begin() + 28, bytes.begin() + 28 + embedding_bytes);
  const std::string path = testing::scratch_path("stories_untied.bin");
  testing::write_file_bytes(path, bytes);
  const Model a = Model::load(bin_);
  const Model b = Model::load(path);
  EXPECT_FALSE(b.classifier.empty());
  EXPECT_EQ(b.config.vocab, 512);
  EXPECT_EQ(greedy_logits(a, 32), greedy_logits(b, 32));
}

TEST(GgufReader, DecodesEachTensorTypeAsTheWriterEncodedIt) {
  std::vector<float> x(64);
  for (int i = 0; i < 64; ++i) x[i] = std::sin(0.37f * i) * (i % 7 == 0 ? 3.0f : 0.5f);
  testing::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_tensor("f32", {32, 2}, GgufTensorType::F32, x.data());
  w.add_tensor("f16", {32, 2}, GgufTensorType::F16, x.data());
  w.add_tensor("bf16", {32, 2}, GgufTensorType::BF16, x.data());
  w.add_tensor("q8", {32, 2}, GgufTensorType::Q8_0, x.data());
  const std::string path = testing::scratch_path("types.gguf");
  w.write(path);
  const frontend::GgufFile g = frontend::GgufFile::open(path);
  EXPECT_EQ(g.read_tensor_f32(*g.find_tensor("f32")), x);
  const std::vector<float> f16 = g.read_tensor_f32(*g.find_tensor("f16"));
  const std::vector<float> bf16 = g.read_tensor_f32(*g.find_tensor("bf16"));
  const std::vector<float> q8 = g.read_tensor_f32(*g.find_tensor("q8"));
  const std::vector<std::uint8_t> q8_bytes = testing::quantize_q8_0(x.data(), 64);
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(f16[i], round_to_half(x[i]));
    std::uint32_t bits = static_cast<std::uint32_t>(testing::float_to_bf16(x[i])) << 16;
    float b;
    std::memcpy(&b, &bits, 4);
    EXPECT_EQ(bf16[i], b);
    EXPECT_NEAR(bf16[i], x[i], std::fabs(x[i]) / 128.0f);
    // Q8_0: value = fp16 scale * int8 code, block of 32.
    const std::uint8_t* block = q8_bytes.data() + 34 * (i / 32);
    std::uint16_t d;
    std::memcpy(&d, block, 2);
    EXPECT_EQ(q8[i], half_to_float(d) * static_cast<float>(static_cast<std::int8_t>(block[2 + i % 32])));
    EXPECT_NEAR(q8[i], x[i], 3.0f / 127.0f);
  }
}

TEST(GgufReader, ReadsTypedMetadata) {
  testing::GgufWriter w(64);
  w.add_string("general.architecture", "llama");
  w.add_u32("general.alignment", 64);
  w.add_i32("some.int", -7);
  w.add_f32("some.float", 0.25f);
  w.add_bool("some.flag", true);
  w.add_string_array("some.strings", {"a", "bc", ""});
  const float one = 1.0f;
  w.add_tensor("t", {1}, GgufTensorType::F32, &one);
  const std::string path = testing::scratch_path("meta.gguf");
  w.write(path);
  const frontend::GgufFile g = frontend::GgufFile::open(path);
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 64u);
  EXPECT_EQ(g.data_offset() % 64, 0u);
  EXPECT_EQ(g.get_int("some.int"), -7);
  EXPECT_EQ(g.get_float("some.float", 0.0), 0.25);
  EXPECT_TRUE(g.find("some.flag")->b);
  ASSERT_EQ(g.find("some.strings")->array.size(), 3u);
  EXPECT_EQ(g.find("some.strings")->array[1].s, "bc");
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  EXPECT_THROW(g.get_int("some.float"), Error);
  EXPECT_THROW(g.get_string("some.int"), Error);
  EXPECT_THROW(g.get_int("absent.key"), Error);
  EXPECT_EQ(g.get_int("absent.key", 5), 5);
  EXPECT_EQ(g.read_tensor_f32(*g.find_tensor("t")), std::vector<float>{1.0f});
}

}  // namespace
}  // namespace kvc::model
