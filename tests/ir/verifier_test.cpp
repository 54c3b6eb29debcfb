// One test per verifier rule: a valid module, one field broken, the exact diagnostic.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "ir/verifier.h"
#include "random_modules.h"
#include "support/diagnostics.h"

namespace kvc::ir {
namespace {

// 4 layers, head_dim 128: layer 0 K4V2 g32 r128 with streamingllm, layer 1 h2o,
// layers 2-3 one cross-layer basis group with snapkv and cake.
Module valid_module() {
  Module m = make_uncompressed_module({"test", 4, 32, 8, 128, 500000.0, DType::F16}, {32768, 4, 512}, 1LL << 32);
  LayerPlan& l0 = m.layers[0];
  l0.key = {4, QuantAxis::PerChannel, 32};
  l0.value = {2, QuantAxis::PerToken, 32};
  l0.residual = 128;
  l0.retention = {RetentionPolicy::StreamingLLM, 2048, 4, 32, 0, 0.0};
  m.layers[1].retention = {RetentionPolicy::H2O, 1024, 4, 64, 0, 0.0};
  for (int i : {2, 3}) {
    LayerPlan& l = m.layers[static_cast<std::size_t>(i)];
    l.key = {8, QuantAxis::PerToken, 16};
    l.lowrank = {64, BasisSharing::CrossLayer, 0, BasisSource::Calibrated};
  }
  m.layers[2].retention = {RetentionPolicy::SnapKV, 4096, 0, 32, 7, 0.0};
  m.layers[3].retention = {RetentionPolicy::CAKE, 4096, 0, 32, 5, 0.5};
  return m;
}

// The module has exactly one problem and it reads `expected`.
void expect_only(const Module& m, const std::string& expected) {
  const std::vector<Diagnostic> d = verify_module(m);
  ASSERT_EQ(d.size(), 1u) << (d.empty() ? std::string("no diagnostics") : d[0].to_string() + " ...");
  EXPECT_EQ(d[0].to_string(), expected);
}

TEST(IrVerifier, AcceptsTheValidModule) { EXPECT_TRUE(verify_module(valid_module()).empty()); }

TEST(IrVerifier, SchemesAndRotations) {
  Module m = valid_module();
  m.layers[0].value = {2, QuantAxis::PerToken, 128, QuantScheme::LloydMax, Rotation::Hadamard, 3};
  m.layers[0].key = {4, QuantAxis::PerChannel, 32, QuantScheme::MinMax, Rotation::Hadamard, 0};
  EXPECT_TRUE(verify_module(m).empty()) << verify_module(m)[0].to_string();
  Module bad = m;
  bad.layers[0].value.bits = 8;
  expect_only(bad, "layer 0: v.bits: 8: the Lloyd-Max codebook has 2, 3 or 4 bits");
  bad = m;
  bad.layers[0].key.scheme = QuantScheme::Symmetric;
  expect_only(bad, "layer 0: k.scheme: symmetric codes are per token; per-channel groups use minmax (KIVI)");
  bad = m;
  bad.layers[0].key.rotation = Rotation::None;
  bad.layers[0].key.seed = 5;
  expect_only(bad, "layer 0: k.rotation.seed: 5: a seed without a rotation (must be 0)");
  bad = m;
  bad.layers[1].key = {16, QuantAxis::PerChannel, 32, QuantScheme::MinMax, Rotation::Hadamard, 0};
  expect_only(bad, "layer 1: k.scheme: an fp16 tensor is not coded: scheme minmax and no rotation");
  bad = m;
  bad.layers[2].key.rotation = Rotation::Hadamard;
  expect_only(bad, "layer 2: k.rotation: low-rank key coefficients are not rotated (rotate full-rank keys only)");
  bad = m;
  bad.layers[0].value.scheme = static_cast<QuantScheme>(9);
  expect_only(bad, "layer 0: v.scheme: is not minmax, symmetric or lloyd-max");
}

TEST(IrVerifier, AcceptsThousandRandomValidModules) {
  for (int seed = 0; seed < 1000; ++seed) {
    std::mt19937 rng(static_cast<unsigned>(seed));
    const auto d = verify_module(testing::random_valid_module(rng));
    ASSERT_TRUE(d.empty()) << "seed " << seed << ": " << d[0].to_string();
  }
}

TEST(IrVerifier, NeverCrashesOnArbitraryModules) {
  for (int seed = 0; seed < 1000; ++seed) {
    std::mt19937 rng(static_cast<unsigned>(seed) + 7u);
    const Module m = testing::random_arbitrary_module(rng);
    const auto d = verify_module(m);
    if (m.model.layers != static_cast<int>(m.layers.size())) {
      EXPECT_FALSE(d.empty()) << seed;
    }
  }
}

TEST(IrVerifier, LayerCountMatchesModel) {
  Module m = valid_module();
  m.layers.pop_back();
  expect_only(m, "model.layers: the module has 3 layer plans but model.layers is 4");
}

TEST(IrVerifier, ModelHasLayers) {
  Module m = valid_module();
  m.model.layers = 0;
  m.layers.clear();
  expect_only(m, "model.layers: 0: a model has at least 1 layer");
}

TEST(IrVerifier, LayerIndicesInOrder) {
  Module m = valid_module();
  std::swap(m.layers[0].index, m.layers[1].index);
  const auto d = verify_module(m);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].to_string(), "layer 0: index: is 1 but this is layer plan 0 (layers are listed in order 0..L-1)");
  EXPECT_EQ(d[1].layer, 1);
}

TEST(IrVerifier, QueryHeadsMultipleOfKvHeads) {
  Module m = valid_module();
  m.model.q_heads = 12;
  m.model.kv_heads = 8;
  expect_only(m, "model.q_heads: 12 is not a multiple of kv_heads 8 (each KV head serves a whole number of query heads)");
}

TEST(IrVerifier, HeadCountsPositive) {
  Module m = valid_module();
  m.model.kv_heads = 0;
  expect_only(m, "model.kv_heads: 0: must be >= 1");
  m = valid_module();
  m.model.q_heads = -4;
  expect_only(m, "model.q_heads: -4: must be >= 1");
}

TEST(IrVerifier, HeadDimPositive) {
  Module m = make_uncompressed_module({"t", 1, 1, 1, 0}, {16, 1, 0}, 0);
  expect_only(m, "model.head_dim: 0: must be >= 1");
}

TEST(IrVerifier, RopeThetaPositiveFinite) {
  Module m = valid_module();
  m.model.rope_theta = 0.0;
  expect_only(m, "model.rope_theta: must be a finite number > 0");
  m.model.rope_theta = std::numeric_limits<double>::infinity();
  expect_only(m, "model.rope_theta: must be a finite number > 0");
}

TEST(IrVerifier, NamedEnums) {
  Module m = valid_module();
  m.model.cache_dtype = static_cast<DType>(9);
  expect_only(m, "model.cache: is not a known dtype (fp16, bf16, fp32)");
  m = valid_module();
  m.layers[1].retention.policy = static_cast<RetentionPolicy>(9);
  expect_only(m, "layer 1: keep: is not a known retention policy");
}

TEST(IrVerifier, WorkloadRanges) {
  Module m = valid_module();
  m.workload.context = 0;
  m.workload.generate = 0;
  for (LayerPlan& p : m.layers) p.retention = {};
  expect_only(m, "workload.context: 0: must be >= 1");
  m = valid_module();
  m.workload.batch = 0;
  expect_only(m, "workload.batch: 0: must be >= 1");
  m = valid_module();
  m.workload.generate = 32768;
  expect_only(m, "workload.generate: 32768: must be >= 0 and less than context 32768 (the prompt holds at least one token)");
  m.workload.generate = -1;
  expect_only(m, "workload.generate: -1: must be >= 0 and less than context 32768 (the prompt holds at least one token)");
}

TEST(IrVerifier, UncompressedCacheFitsIn64Bits) {
  Module m = valid_module();
  m.workload.batch = std::int64_t{1} << 40;
  expect_only(m, "workload: the uncompressed cache (layers x batch x kv_heads x context x head_dim x 4 bytes) does "
                 "not fit in 64 bits");
}

TEST(IrVerifier, BudgetNonNegative) {
  Module m = valid_module();
  m.budget_bytes = -1;
  expect_only(m, "budget.bytes: -1: must be >= 0");
}

TEST(IrVerifier, Bits) {
  Module m = valid_module();
  m.layers[0].key.bits = 5;
  expect_only(m, "layer 0: k.bits: 5 is not one of 16, 8, 4, 3, 2");
  m = valid_module();
  m.layers[1].value.bits = 1;
  expect_only(m, "layer 1: v.bits: 1 is not one of 16, 8, 4, 3, 2");
}

TEST(IrVerifier, GroupSizes) {
  Module m = valid_module();
  m.layers[3].key.group = 24;
  expect_only(m, "layer 3: k.group: 24 is not one of 8, 16, 32, 64, 128 or the 64 channels of the vector");
  // At 16 bits the group is unused and not checked.
  m = valid_module();
  m.layers[1].key.group = 24;
  EXPECT_TRUE(verify_module(m).empty());
}

TEST(IrVerifier, PerTokenGroupDividesHeadDim) {
  Module m = make_uncompressed_module({"t", 1, 1, 1, 96}, {1024, 1, 0}, 0);
  m.layers[0].value = {4, QuantAxis::PerToken, 64};
  expect_only(m, "layer 0: v.group: per-token group 64 does not divide the 96 channels it groups");
}

TEST(IrVerifier, PerTokenKeyGroupDividesRank) {
  Module m = valid_module();
  m.layers[2].lowrank.rank = m.layers[3].lowrank.rank = 40;  // 40 % 16 != 0
  const auto d = verify_module(m);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].to_string(), "layer 2: k.group: per-token group 16 does not divide the 40 channels it groups");
}

TEST(IrVerifier, PerChannelGroupsOfKAndVAgree) {
  Module m = valid_module();
  m.layers[0].value = {2, QuantAxis::PerChannel, 64};
  expect_only(m, "layer 0: v.group: 64 differs from k.group 32: K and V both quantized per channel must share one "
                 "token block");
}

TEST(IrVerifier, ResidualMultipleOfTokenBlock) {
  Module m = valid_module();
  m.layers[0].residual = 100;
  expect_only(m, "layer 0: residual: 100 is not a multiple of the token block 32 (the per-channel group size)");
  m.layers[0].residual = -32;
  expect_only(m, "layer 0: residual: -32: must be >= 0");
}

TEST(IrVerifier, FullRetentionHasNoBudget) {
  Module m = valid_module();
  m.layers[0].retention = {RetentionPolicy::Full, 100, 0, 0, 0, 0.0};
  expect_only(m, "layer 0: keep.budget: 100: full retention keeps every token; budget must be 0");
}

TEST(IrVerifier, BudgetCoversTheTail) {
  Module m = valid_module();
  m.layers[0].retention.budget = 96;  // tail capacity is max(residual 128, block 32)
  m.layers[0].retention.sink = 0;
  m.layers[0].retention.window = 0;
  expect_only(m, "layer 0: keep.budget: 96 is below 128, the fp16 tail capacity (the tail is never evicted)");
  m = valid_module();
  m.layers[1].retention = {RetentionPolicy::H2O, 0, 0, 0, 0, 0.0};
  expect_only(m, "layer 1: keep.budget: 0 is below 1: keep at least 1 token");
}

TEST(IrVerifier, BudgetAtMostContext) {
  Module m = valid_module();
  m.layers[1].retention.budget = 40000;
  expect_only(m, "layer 1: keep.budget: 40000 is more than workload.context 32768");
}

TEST(IrVerifier, SinkPlusWindowWithinBudget) {
  Module m = valid_module();
  m.layers[0].retention.window = 2045;
  expect_only(m, "layer 0: keep.budget: sink 4 + window 2045 exceeds the budget 2048 (streamingllm always keeps both)");
  m = valid_module();
  m.layers[1].retention.sink = -1;
  expect_only(m, "layer 1: keep.sink: -1: must be >= 0");
}

TEST(IrVerifier, SnapKvPoolOddAndWindowPositive) {
  Module m = valid_module();
  m.layers[2].retention.pool = 4;
  expect_only(m, "layer 2: keep.pool: 4: the pooling kernel is odd and >= 1 (1 = no pooling)");
  m.layers[2].retention.pool = 0;
  expect_only(m, "layer 2: keep.pool: 0: the pooling kernel is odd and >= 1 (1 = no pooling)");
  m = valid_module();
  m.layers[2].retention.window = 0;
  expect_only(m, "layer 2: keep.window: 0: snapkv observes at least 1 query");
}

TEST(IrVerifier, CakeGammaNonNegative) {
  Module m = valid_module();
  m.layers[3].retention.gamma = -0.5;
  expect_only(m, "layer 3: keep.gamma: must be a finite number >= 0");
  m.layers[3].retention.gamma = std::nan("");
  expect_only(m, "layer 3: keep.gamma: must be a finite number >= 0");
}

TEST(IrVerifier, RankZeroExactlyWithoutSharing) {
  Module m = valid_module();
  m.layers[0].lowrank.rank = 32;
  expect_only(m, "layer 0: rank: 32 with sharing none: keys at full head_dim have rank 0");
  m = valid_module();
  m.layers[1].lowrank = {0, BasisSharing::PerLayer, -1, BasisSource::Prefill};
  expect_only(m, "layer 1: rank: 0 with sharing layer: a basis needs rank >= 1");
}

TEST(IrVerifier, RankAtMostHeadDim) {
  Module m = valid_module();
  m.layers[1].lowrank = {129, BasisSharing::PerLayer, -1, BasisSource::Prefill};
  expect_only(m, "layer 1: rank: 129 is not in 1..128 (head_dim)");
}

TEST(IrVerifier, BasisGroupIds) {
  Module m = valid_module();
  m.layers[1].lowrank = {32, BasisSharing::PerLayer, 5, BasisSource::Prefill};
  expect_only(m, "layer 1: rank.group: 5: must be -1 for a per-layer basis");
  m = valid_module();
  m.layers[0].lowrank.basis_group = 0;
  expect_only(m, "layer 0: rank.group: 0: must be -1 without a basis");
  m = valid_module();
  m.layers[2].lowrank.basis_group = m.layers[3].lowrank.basis_group = -1;
  const auto d = verify_module(m);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].to_string(), "layer 2: rank.group: -1: a cross-layer basis group id is >= 0");
}

TEST(IrVerifier, CrossLayerGroupsAreContiguous) {
  Module m = valid_module();
  // Layers 1 and 3 in group 0 with layer 2 (group 1) between them.
  m.layers[1].key = m.layers[2].key;
  m.layers[1].lowrank = m.layers[2].lowrank;
  m.layers[2].lowrank.basis_group = 1;
  expect_only(m, "layer 3: rank.group: cross-layer group 0 is not contiguous: it began at layer 1 but layer 2 is not in it");
}

TEST(IrVerifier, CrossLayerGroupsAgreeOnRankAndSource) {
  Module m = valid_module();
  m.layers[3].lowrank.rank = 32;
  expect_only(m, "layer 3: rank: 32 differs from rank 64 of layer 2 in cross-layer group 0 (they share one basis)");
  m = valid_module();
  m.layers[3].lowrank.source = BasisSource::Prefill;
  expect_only(m, "layer 3: rank.source: prefill differs from calibrated of layer 2 in cross-layer group 0");
}

TEST(IrVerifier, VerifyOrThrowReportsTheFirstAndCountsTheRest) {
  Module m = valid_module();
  m.layers[3].key.group = 24;
  m.budget_bytes = -5;
  m.layers[0].key.bits = 7;
  try {
    verify_or_throw(m, "plan.kvc");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.field(), "budget.bytes");
    EXPECT_EQ(e.message(), "-5: must be >= 0 (and 2 more problems)");
    EXPECT_EQ(e.location().file, "plan.kvc");
    EXPECT_EQ(std::string(e.what()), "plan.kvc: error: budget.bytes: -5: must be >= 0 (and 2 more problems)");
  }
  m = valid_module();
  m.layers[3].key.group = 24;
  try {
    verify_or_throw(m);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "error: layer 3: k.group: 24 is not one of 8, 16, 32, 64, 128 or the 64 channels of the vector");
  }
  EXPECT_NO_THROW(verify_or_throw(valid_module()));
}

}  // namespace
}  // namespace kvc::ir
