#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "backends/reference/reference_cache.h"
#include "cache_fixture.h"
#include "ir/layout.h"

namespace kvc::reference {
namespace {

using testing::random_vector;

// A random plan the reference can store, over every bits/axis/group/residual/retention/rank combination.
ir::LayerPlan random_plan(std::mt19937& rng, int head_dim) {
  const int bits[] = {16, 8, 4, 3, 2};
  const int groups[] = {8, 16, 32};
  ir::LayerPlan p;
  p.key.bits = bits[rng() % 5];
  p.value.bits = bits[rng() % 5];
  const int block_group = groups[rng() % 3];
  p.key.axis = rng() % 2 ? ir::QuantAxis::PerChannel : ir::QuantAxis::PerToken;
  p.value.axis = rng() % 3 == 0 ? ir::QuantAxis::PerChannel : ir::QuantAxis::PerToken;
  p.key.group = p.key.axis == ir::QuantAxis::PerChannel ? block_group : groups[rng() % 3];
  p.value.group = p.value.axis == ir::QuantAxis::PerChannel ? block_group : groups[rng() % 3];
  p.residual = static_cast<int>(rng() % 70);
  if (rng() % 2) {
    // Rank a multiple of the key's per-token group so its groups divide the coefficients.
    p.lowrank.rank = p.key.group * (1 + static_cast<int>(rng() % (head_dim / p.key.group)));
    p.lowrank.sharing = rng() % 2 ? ir::BasisSharing::PerLayer : ir::BasisSharing::CrossLayer;
    p.lowrank.basis_group = static_cast<int>(rng() % 2);
    p.lowrank.source = rng() % 2 ? ir::BasisSource::Prefill : ir::BasisSource::Calibrated;
  }
  // Per-token tensors may use one scale (symmetric, or the Lloyd-Max codebook at <= 4
  // bits); full-rank keys and any values may be rotated.
  for (ir::QuantFormat* f : {&p.key, &p.value}) {
    if (f->bits == 16 || f->axis != ir::QuantAxis::PerToken) continue;
    if (rng() % 2) f->scheme = f->bits <= 4 && rng() % 2 ? ir::QuantScheme::LloydMax : ir::QuantScheme::Symmetric;
  }
  for (ir::QuantFormat* f : {&p.key, &p.value}) {
    if (f->bits == 16 || (f == &p.key && p.lowrank.rank > 0) || rng() % 2) continue;
    f->rotation = ir::Rotation::Hadamard;
    f->seed = static_cast<std::uint32_t>(rng());
  }
  p.retention.policy = static_cast<ir::RetentionPolicy>(rng() % 5);
  if (p.retention.policy != ir::RetentionPolicy::Full) {
    p.retention.budget = 1 + static_cast<std::int64_t>(rng() % 600);
    p.retention.sink = static_cast<int>(rng() % 8);
    p.retention.window = static_cast<int>(rng() % 32);
    p.retention.pool = static_cast<int>(rng() % 4) * 2 + 1;
    p.retention.gamma = 200.0;
  }
  return p;
}

TEST(Bytes, CacheAllocatesExactlyTheLayoutBytesForRandomPlans) {
  std::mt19937 rng(31);
  const int head_dim = 32;
  for (int trial = 0; trial < 300; ++trial) {
    ir::ModelShape shape{"random", 4, 8, static_cast<int>(1u << (rng() % 4)), head_dim};
    ir::Workload w;
    w.context = 1 + static_cast<std::int64_t>(rng() % 1500);
    ir::Module m = ir::make_uncompressed_module(shape, w, 0);
    for (int l = 0; l < shape.layers; ++l) {
      m.layers[static_cast<std::size_t>(l)] = random_plan(rng, head_dim);
      m.layers[static_cast<std::size_t>(l)].index = l;
    }
    std::int64_t cache_total = 0, shared_bases = 0;
    for (int l = 0; l < shape.layers; ++l) {
      ReferenceLayerCache cache(m, l);
      ASSERT_EQ(cache.bytes_allocated(), ir::layer_bytes_per_sequence(m, l)) << "trial " << trial << " layer " << l;
      cache_total += cache.bytes_allocated();
      const ir::LayerBytes lb = ir::layer_bytes(m, l);  // batch 1: calibrated bases are the shared part
      if (m.layers[static_cast<std::size_t>(l)].lowrank.source == ir::BasisSource::Calibrated) shared_bases += lb.basis;
    }
    EXPECT_EQ(cache_total + shared_bases, ir::total_bytes(m)) << "trial " << trial;
  }
}

TEST(Bytes, StayFixedWhileTokensComeAndGo) {
  std::mt19937 rng(32);
  ir::LayerPlan p = testing::quant_plan(2, 4, 8, 10);
  p.retention = {ir::RetentionPolicy::H2O, 64, 4, 8, 0, 0.0};
  p.lowrank = {16, ir::BasisSharing::PerLayer, -1, ir::BasisSource::Prefill};
  const ir::Module m = testing::one_layer_module(4, 2, 32, 500, p);
  ReferenceLayerCache cache(m, 0);
  const std::int64_t want = ir::layer_bytes_per_sequence(m, 0);
  const auto k = random_vector(300 * 64, rng), v = random_vector(300 * 64, rng);
  cache.append(k.data(), v.data(), 100);
  cache.end_prefill();
  EXPECT_EQ(cache.bytes_allocated(), want);
  std::vector<float> out(128);
  const auto q = random_vector(128, rng);
  for (int t = 100; t < 300; ++t) {
    cache.append(k.data() + t * 64, v.data() + t * 64, 1);
    cache.attend(q.data(), out.data());
    ASSERT_LE(cache.held_blocks(0), cache.block_capacity());
  }
  EXPECT_EQ(cache.bytes_allocated(), want);
}

}  // namespace
}  // namespace kvc::reference
