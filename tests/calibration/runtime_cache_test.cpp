// The forward pass with the runtime as its cache (RuntimeKVCache): on stories260K
// it gives exactly the logits, token counts and bytes of PlanKVCache (the reference
// kernels) for quantized, evicting and cross-layer low-rank plans, and `kvc eval --cache runtime` reports
// exactly the numbers of the reference cache, with one or two runtime threads.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "calibration/calibrate.h"
#include "calibration/evaluate.h"
#include "calibration/plan_cache.h"
#include "calibration/runtime_kv_cache.h"
#include "runtime/store.h"
#include "ir/layout.h"
#include "model/forward.h"
#include "model/model.h"
#include "model/sampler.h"
#include "ir/precision.h"
#include "support/diagnostics.h"
#include "test_support/test_data.h"

namespace kvc::calibration {
namespace {

constexpr int kContext = 128;
constexpr int kPrompt = 80;  // longer than the SnapKV budget: selection drops tokens

ir::Module quantized_plan(const model::Model& m, int key_bits, int value_bits) {
  ir::Module mod = ir::make_uncompressed_module(model_shape(m), {kContext, 1, 64}, 0);
  for (ir::LayerPlan& p : mod.layers) {
    p.key = {key_bits, ir::QuantAxis::PerChannel, 32};
    p.value = {value_bits, ir::QuantAxis::PerToken, std::min(32, m.config.head_dim)};
    p.residual = 32;
  }
  return mod;
}

struct NamedPlan {
  std::string name;
  ir::Module module;
};

// K8V8, K4V2, and K8V8 with SnapKV selection at the (kPrompt-token) prompt (layers
// 0, 2, 4) and StreamingLLM eviction while decoding (layers 1, 3).
std::vector<NamedPlan> plans(const model::Model& m) {
  ir::Module retention = quantized_plan(m, 8, 8);
  for (ir::LayerPlan& p : retention.layers)
    p.retention = p.index % 2 == 0 ? ir::Retention{ir::RetentionPolicy::SnapKV, 48, 0, 8, 7, 0.0}
                                   : ir::Retention{ir::RetentionPolicy::StreamingLLM, 64, 4, 32, 0, 0.0};
  // Keys at rank 4 of 8 on prefill bases shared by layers {0, 1} and {2, 3, 4}: the
  // basis of a group comes from all its layers' prompt keys in both caches.
  ir::Module cross_layer = quantized_plan(m, 8, 8);
  for (ir::LayerPlan& p : cross_layer.layers)
    p.lowrank = {4, ir::BasisSharing::CrossLayer, p.index < 2 ? 0 : 1, ir::BasisSource::Prefill};
  // Rotated per-token keys and values keeping 64 tokens by H2O, and KIVI keys with
  // rotated codebook values (stories260K: 8-wide heads, one scale per token).
  auto pair_plan = [&](const std::string& name) {
    ir::Module mod = quantized_plan(m, 8, 8);
    const ir::PrecisionPair pair = *ir::parse_precision_pair(name);
    for (ir::LayerPlan& p : mod.layers) {
      p.key = ir::key_format(pair.key, 32, m.config.head_dim, 3);
      p.value = ir::value_format(pair.value, 32, m.config.head_dim, 4);
    }
    return mod;
  };
  ir::Module rotated = pair_plan("K4trV4tr");
  for (ir::LayerPlan& p : rotated.layers) p.retention = ir::Retention{ir::RetentionPolicy::H2O, 64, 4, 16, 0, 0.0};
  return {{"K8V8", quantized_plan(m, 8, 8)},
          {"K4V2", quantized_plan(m, 4, 2)},
          {"K4V2cr", pair_plan("K4V2cr")},
          {"K4trV4tr H2O", rotated},
          {"SnapKV+StreamingLLM", retention},
          {"cross-layer rank 4", cross_layer}};
}

class RuntimeCacheStories : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string path;
    KVC_REQUIRE_MODEL_FILE(path, "stories260K.bin");
    model_ = std::make_unique<model::Model>(model::Model::load(path));
  }
  std::unique_ptr<model::Model> model_;
};

// Prefills `prompt` tokens of `tokens`, then decodes the rest teacher-forced;
// returns every decoded position's logits, and the caches' token counts and bytes.
struct CacheRun {
  std::vector<std::vector<float>> logits;
  std::vector<std::int64_t> tokens;  // per layer, after the sequence
  std::int64_t bytes = 0;
};

CacheRun run_sequence(const model::Model& m, model::KVCacheInterface& cache, const std::vector<int>& tokens, int prompt) {
  model::ForwardPass fp(m, cache);
  CacheRun r;
  fp.prefill({tokens.begin(), tokens.begin() + prompt});
  for (int t = prompt; t < static_cast<int>(tokens.size()); ++t) r.logits.push_back(fp.forward(tokens[t], t));
  for (int l = 0; l < m.config.layers; ++l) r.tokens.push_back(cache.tokens(l));
  r.bytes = cache.bytes();
  return r;
}

TEST_F(RuntimeCacheStories, SameLogitsTokensAndBytesAsThePlanCache) {
  const model::CacheShape shape = model::ForwardPass::cache_shape(model_->config);
  const std::vector<int> first = model::generate_sequence(*model_, 3, kContext, 1.0f);
  const std::vector<int> second = model::generate_sequence(*model_, 4, kContext, 1.0f);
  for (const NamedPlan& plan : plans(*model_)) {
    SCOPED_TRACE(plan.name);
    PlanKVCache reference(plan.module, shape);
    RuntimeKVCache one_thread(plan.module, shape, 1), two_threads(plan.module, shape, 2);
    EXPECT_EQ(two_threads.store().threads(), 2);
    // Two sequences on the same caches: the second runs on a recreated sequence.
    for (const std::vector<int>* tokens : {&first, &second}) {
      const CacheRun want = run_sequence(*model_, reference, *tokens, kPrompt);
      const kvc_seq before = one_thread.sequence();
      const CacheRun got = run_sequence(*model_, one_thread, *tokens, kPrompt);
      EXPECT_NE(one_thread.sequence(), before) << "each sequence is a fresh runtime sequence";
      const CacheRun got2 = run_sequence(*model_, two_threads, *tokens, kPrompt);
      ASSERT_EQ(got.logits.size(), want.logits.size());
      for (std::size_t i = 0; i < want.logits.size(); ++i) {
        ASSERT_EQ(got.logits[i], want.logits[i]) << "decoded position " << kPrompt + i;
        ASSERT_EQ(got2.logits[i], want.logits[i]) << "decoded position " << kPrompt + i << ", 2 threads";
      }
      EXPECT_EQ(got.tokens, want.tokens);
      EXPECT_EQ(got2.tokens, want.tokens);
      EXPECT_EQ(got.bytes, want.bytes);
      EXPECT_EQ(got2.bytes, want.bytes);
      EXPECT_EQ(got.bytes, ir::total_bytes(plan.module)) << "one live sequence of a batch-1 plan";
    }
    if (plan.name == "SnapKV+StreamingLLM") {
      EXPECT_LT(one_thread.tokens(0), kContext) << "SnapKV dropped prompt tokens";
      EXPECT_LT(one_thread.tokens(1), kContext) << "StreamingLLM evicted while decoding";
    }
  }
}

TEST_F(RuntimeCacheStories, EvalThroughTheRuntimeReportsTheReferenceNumbers) {
  EvalOptions o;
  o.sequences = 2;
  o.length = kContext;
  o.prompt = kPrompt;
  o.seed = 5;
  o.threads = 2;
  for (const NamedPlan& plan : plans(*model_)) {
    SCOPED_TRACE(plan.name);
    o.cache = EvalCache::Reference;
    const EvalReport want = evaluate_plan(*model_, plan.module, o);
    for (int cache_threads : {1, 2}) {
      o.cache = EvalCache::Runtime;
      o.cache_threads = cache_threads;
      const EvalReport got = evaluate_plan(*model_, plan.module, o);
      EXPECT_GT(got.kl_mean, 0.0) << "a compressed plan changes the predictions";
      EXPECT_EQ(got.kl_mean, want.kl_mean);
      EXPECT_EQ(got.kl_max, want.kl_max);
      EXPECT_EQ(got.top1_agreement, want.top1_agreement);
      EXPECT_EQ(got.ppl_full, want.ppl_full);
      EXPECT_EQ(got.ppl_plan, want.ppl_plan);
      EXPECT_EQ(got.ppl_fp32, want.ppl_fp32);
      EXPECT_EQ(got.kl_fp16_vs_fp32, want.kl_fp16_vs_fp32);
      EXPECT_EQ(got.bytes_full, want.bytes_full);
      EXPECT_EQ(got.bytes_plan, want.bytes_plan);
      EXPECT_EQ(got.positions, want.positions);
    }
    o.cache_threads = 1;
  }
}

TEST_F(RuntimeCacheStories, BadPlansAndOptionsAreClearErrors) {
  const model::CacheShape shape = model::ForwardPass::cache_shape(model_->config);
  ir::Module calibrated = quantized_plan(*model_, 8, 8);
  calibrated.layers[1].lowrank = {4, ir::BasisSharing::None, -1, ir::BasisSource::Calibrated};
  EXPECT_THROW(RuntimeKVCache(calibrated, shape), Error);
  ir::Module other = quantized_plan(*model_, 8, 8);
  other.model.kv_heads *= 2;
  EXPECT_THROW(RuntimeKVCache(other, shape), Error);
  EXPECT_THROW(RuntimeKVCache(quantized_plan(*model_, 8, 8), shape, 0), Error);
  RuntimeKVCache cache(quantized_plan(*model_, 8, 8), shape);
  std::vector<float> kv(static_cast<std::size_t>(shape.kv_dim()), 0.5f);
  EXPECT_THROW(cache.append(shape.layers, kv.data(), kv.data(), 1), Error);
  EXPECT_THROW(cache.tokens(-1), Error);
  EvalOptions o;
  o.cache = EvalCache::Runtime;
  o.cache_threads = 0;
  EXPECT_THROW(evaluate_plan(*model_, quantized_plan(*model_, 8, 8), o), Error);
}

}  // namespace
}  // namespace kvc::calibration
