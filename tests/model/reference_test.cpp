// The forward pass against the reference vectors of both test models, by decode
// and by prefill: stories260K (llama2.c legacy fp32, head_dim 8) and stories3M
// (llama2.c version-2 int8 export, head_dim 32, GQA 3).
#include <gtest/gtest.h>

#include <cmath>

#include "model/forward.h"
#include "model/full_kv_cache.h"
#include "model/reference_vectors.h"
#include "model/sampler.h"
#include "support/diagnostics.h"
#include "test_support/test_data.h"

namespace kvc::model {
namespace {

struct ReferenceModel {
  const char* name;
  const char* bin;
  const char* json;
  float tolerance;  // the largest logit error the reference vectors' README allows
};

class ReferenceTest : public ::testing::TestWithParam<ReferenceModel> {
 protected:
  void SetUp() override {
    std::string bin, json;
    KVC_REQUIRE_MODEL_FILE(bin, GetParam().bin);
    KVC_REQUIRE_MODEL_FILE(json, GetParam().json);
    model_ = Model::load(bin);
    ref_ = testing::load_reference_vectors(json);
    ASSERT_EQ(ref_.tokens.size(), 65u);
    ASSERT_EQ(ref_.logits_at.size(), 4u);
  }

  void expect_logits_match(const float* logits, int pos) {
    const std::vector<float>& want = ref_.logits_at.at(pos);
    ASSERT_EQ(want.size(), static_cast<std::size_t>(model_.config.vocab));
    float worst = 0.0f;
    for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(logits[i] - want[i]));
    EXPECT_LE(worst, GetParam().tolerance) << "largest logit error at position " << pos;
  }

  Model model_;
  testing::ReferenceVectors ref_;
};

TEST_P(ReferenceTest, DecodeReproducesGreedyIdsAndLogits) {
  FullKVCache cache(ForwardPass::cache_shape(model_.config));
  ForwardPass fp(model_, cache);
  fp.begin_sequence();
  int token = ref_.tokens[0];
  for (int pos = 0; pos < 64; ++pos) {
    const std::vector<float>& logits = fp.forward(token, pos);
    if (ref_.logits_at.count(pos)) expect_logits_match(logits.data(), pos);
    token = Sampler::argmax(logits);
    ASSERT_EQ(token, ref_.tokens[pos + 1]) << "greedy id at step " << pos;
  }
  EXPECT_EQ(cache.tokens(0), 64);
}

TEST_P(ReferenceTest, PrefillReproducesLogitsAtEveryListedPosition) {
  FullKVCache cache(ForwardPass::cache_shape(model_.config));
  ForwardPass fp(model_, cache);
  const std::vector<int> prompt(ref_.tokens.begin(), ref_.tokens.begin() + 64);
  const std::vector<float> logits = fp.prefill(prompt);
  const int vocab = model_.config.vocab;
  ASSERT_EQ(logits.size(), 64u * vocab);
  for (const auto& [pos, want] : ref_.logits_at) expect_logits_match(logits.data() + pos * vocab, pos);
  for (int pos = 0; pos < 64; ++pos) {
    const std::vector<float> row(logits.begin() + pos * vocab, logits.begin() + (pos + 1) * vocab);
    EXPECT_EQ(Sampler::argmax(row), ref_.tokens[pos + 1]) << "greedy id at step " << pos;
  }
  for (int l = 0; l < model_.config.layers; ++l) EXPECT_EQ(cache.tokens(l), 64);
}

TEST_P(ReferenceTest, DecodeAfterPrefillContinuesTheSameSequence) {
  FullKVCache cache(ForwardPass::cache_shape(model_.config));
  ForwardPass fp(model_, cache);
  const std::vector<int> prompt(ref_.tokens.begin(), ref_.tokens.begin() + 16);
  const std::vector<float> prefill_logits = fp.prefill(prompt);
  expect_logits_match(prefill_logits.data() + 15 * model_.config.vocab, 15);
  for (int pos = 16; pos < 64; ++pos) {
    const std::vector<float>& logits = fp.forward(ref_.tokens[pos], pos);
    EXPECT_EQ(Sampler::argmax(logits), ref_.tokens[pos + 1]) << "step " << pos;
    if (pos == 63) expect_logits_match(logits.data(), 63);
  }
}

TEST_P(ReferenceTest, GenerateSequenceGreedyIsTheReferenceRun) {
  const std::vector<int> ids = generate_sequence(model_, 123, 65, 0.0f);
  EXPECT_EQ(ids, ref_.tokens);
}

TEST_P(ReferenceTest, FullContextDecodeRunsTheWholeContext) {
  // 512 tokens (the whole context of both models) through the decode path; speed is measured by
  // benchmarks, not asserted here.
  const std::vector<int> ids = generate_sequence(model_, 7, 512, 1.0f);
  ASSERT_EQ(ids.size(), 512u);
  EXPECT_EQ(ids.front(), 1);
  for (int id : ids) EXPECT_TRUE(id >= 0 && id < model_.config.vocab);
}

TEST_P(ReferenceTest, RejectsTokensAndPositionsOutsideTheModel) {
  FullKVCache cache(ForwardPass::cache_shape(model_.config));
  ForwardPass fp(model_, cache);
  EXPECT_THROW(fp.forward(model_.config.vocab, 0), Error);
  EXPECT_THROW(fp.forward(-1, 0), Error);
  EXPECT_THROW(fp.forward(1, static_cast<int>(model_.config.context)), Error);
  EXPECT_THROW(fp.prefill({}), Error);
}

INSTANTIATE_TEST_SUITE_P(Models, ReferenceTest,
                         ::testing::Values(ReferenceModel{"stories260K", "stories260K.bin", "stories260K.reference.json", 1e-4f},
                                           ReferenceModel{"stories3M", "stories3M-q80.bin", "stories3M.reference.json", 1e-3f}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace kvc::model
