// The runtime store against the reference cache (backends/reference/reference_cache.h)
// on random data: every format, retention policy and low-rank kind, head_dim 64 and
// 128, GQA 1/4/8, prompts that are not a multiple of the group. At every step the
// attention outputs must be bit-identical, the held blocks the same, and the memory
// within the plan's estimate (ir/layout.h), which the store's allocation equals.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/reference/lowrank_basis.h"
#include "backends/reference/reference_cache.h"
#include "ir/layout.h"
#include "ir/precision.h"
#include "runtime/status_error.h"
#include "runtime/store.h"
#include "runtime/plan_builders.h"
#include "support/half.h"

namespace kvc {
namespace {

using ir::BasisSharing;
using ir::BasisSource;
using ir::RetentionPolicy;

struct Case {
  std::string name;
  int head_dim = 64, kv_heads = 1, g = 1;
  std::int64_t context = 160, prompt = 70;
  std::vector<ir::LayerPlan> layers;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::vector<float> random_values(std::mt19937& rng, std::size_t n, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> x(n);
  for (float& e : x) e = dist(rng);
  return x;
}

ir::Module module_of(const Case& c, std::int64_t batch) {
  return testing::runtime_module(c.head_dim, c.kv_heads, c.g, c.context, batch, c.layers);
}

void expect_memory_invariant(const runtime::Store& store, const ir::Module& m) {
  const kvc_memory_stats st = store.memory_stats();
  ASSERT_EQ(st.bytes_allocated, ir::total_bytes(m));
  ir::Module live = m;
  live.workload.batch = st.live_sequences;
  if (st.live_sequences > 0) {
    ASSERT_EQ(st.bytes_live, ir::total_bytes(live));
  }
  ASSERT_LE(st.bytes_used, st.bytes_live);
  ASSERT_LE(st.blocks_used, st.blocks_total);
}

// One sequence of the store and its reference caches (one per layer), driven together.
struct Twin {
  kvc_seq seq = 0;
  std::vector<std::unique_ptr<reference::ReferenceLayerCache>> ref;
};

class Driver {
 public:
  Driver(const Case& c, std::int64_t batch, int threads, std::uint32_t seed)
      : c_(c), module_(module_of(c, batch)), store_(module_, threads), rng_(seed) {
    // Calibrated bases: one random basis per (group owner, KV head), shared by the batch.
    for (std::size_t l = 0; l < c.layers.size(); ++l) {
      const ir::LowRank& lr = c.layers[l].lowrank;
      if (lr.rank == 0 || lr.source != BasisSource::Calibrated) continue;
      for (int h = 0; h < c.kv_heads; ++h) {
        const int owner = owner_of(static_cast<int>(l));
        auto key = std::make_pair(owner, h);
        if (!calibrated_.count(key)) {
          calibrated_[key] = random_values(rng_, static_cast<std::size_t>(c.head_dim * lr.rank), 0.2f);
          store_.set_calibrated_basis(static_cast<int>(l), h, calibrated_[key].data());
        }
      }
    }
  }

  int owner_of(int layer) const {
    const ir::LowRank& lr = c_.layers[static_cast<std::size_t>(layer)].lowrank;
    if (lr.sharing != BasisSharing::CrossLayer) return layer;
    for (int o = 0; o < layer; ++o) {
      const ir::LowRank& x = c_.layers[static_cast<std::size_t>(o)].lowrank;
      if (x.sharing == BasisSharing::CrossLayer && x.basis_group == lr.basis_group) return o;
    }
    return layer;
  }

  Twin create() {
    Twin t;
    t.seq = store_.create_sequence();
    for (std::size_t l = 0; l < c_.layers.size(); ++l) {
      t.ref.push_back(std::make_unique<reference::ReferenceLayerCache>(module_, static_cast<int>(l)));
      for (int h = 0; h < c_.kv_heads; ++h) {
        auto it = calibrated_.find({owner_of(static_cast<int>(l)), h});
        if (it != calibrated_.end()) t.ref.back()->set_basis(h, it->second);
      }
    }
    return t;
  }

  Twin fork(const Twin& src) {
    Twin t;
    t.seq = store_.fork_sequence(src.seq);
    for (const auto& r : src.ref) t.ref.push_back(std::make_unique<reference::ReferenceLayerCache>(*r));
    return t;
  }

  // Appends the same prompt to both, sets cross-layer bases in the reference from
  // the concatenated fp16 keys of the group (what the store does), ends prefill.
  void prefill(Twin& t, std::int64_t n) {
    const std::size_t kv_row = static_cast<std::size_t>(c_.kv_heads * c_.head_dim);
    const std::size_t q_row = static_cast<std::size_t>(c_.kv_heads * c_.g * c_.head_dim);
    const int layers = static_cast<int>(c_.layers.size());
    std::vector<std::vector<float>> keys(static_cast<std::size_t>(layers));
    for (int l = 0; l < layers; ++l) {
      keys[static_cast<std::size_t>(l)] = random_values(rng_, kv_row * static_cast<std::size_t>(n));
      const std::vector<float> v = random_values(rng_, kv_row * static_cast<std::size_t>(n));
      store_.append(l, t.seq, keys[static_cast<std::size_t>(l)].data(), v.data(), n);
      t.ref[static_cast<std::size_t>(l)]->append(keys[static_cast<std::size_t>(l)].data(), v.data(), n);
    }
    for (int l = 0; l < layers; ++l) {
      const ir::LowRank& lr = c_.layers[static_cast<std::size_t>(l)].lowrank;
      if (lr.rank == 0 || lr.sharing != BasisSharing::CrossLayer || lr.source != BasisSource::Prefill) continue;
      for (int h = 0; h < c_.kv_heads; ++h) {
        std::vector<float> concat;
        std::int64_t rows = 0;
        for (int o = 0; o < layers; ++o) {
          const ir::LowRank& x = c_.layers[static_cast<std::size_t>(o)].lowrank;
          if (x.sharing != BasisSharing::CrossLayer || x.basis_group != lr.basis_group) continue;
          for (std::int64_t tok = 0; tok < n; ++tok)
            for (int d = 0; d < c_.head_dim; ++d)
              concat.push_back(round_to_half(
                  keys[static_cast<std::size_t>(o)][static_cast<std::size_t>(tok) * kv_row +
                                                    static_cast<std::size_t>(h * c_.head_dim + d)]));
          rows += n;
        }
        t.ref[static_cast<std::size_t>(l)]->set_basis(
            h, reference::principal_key_basis(concat.data(), rows, c_.head_dim, lr.rank));
      }
    }
    const std::int64_t n_q = std::min<std::int64_t>(n, 8);
    for (int l = 0; l < layers; ++l) {
      const std::vector<float> window = random_values(rng_, q_row * static_cast<std::size_t>(n_q));
      store_.end_prefill(l, t.seq, window.data(), n_q);
      t.ref[static_cast<std::size_t>(l)]->end_prefill(window);
    }
  }

  // One decode step on one layer: append a token, attend, compare everything.
  void step(Twin& t, int l) {
    const std::size_t kv_row = static_cast<std::size_t>(c_.kv_heads * c_.head_dim);
    const std::size_t q_row = static_cast<std::size_t>(c_.kv_heads * c_.g * c_.head_dim);
    const std::vector<float> k = random_values(rng_, kv_row), v = random_values(rng_, kv_row);
    const std::vector<float> q = random_values(rng_, q_row);
    store_.append(l, t.seq, k.data(), v.data(), 1);
    t.ref[static_cast<std::size_t>(l)]->append(k.data(), v.data(), 1);
    std::vector<float> out(q_row), want(q_row);
    store_.attend(l, t.seq, q.data(), out.data());
    t.ref[static_cast<std::size_t>(l)]->attend(q.data(), want.data());
    ASSERT_EQ(0, std::memcmp(out.data(), want.data(), q_row * sizeof(float))) << "layer " << l;
    const runtime::LayerStore& ls = store_.layer_store(l);
    const int slot = store_.slot_of(t.seq);
    for (int h = 0; h < c_.kv_heads; ++h) {
      ASSERT_EQ(ls.block_positions(slot, h), t.ref[static_cast<std::size_t>(l)]->block_positions(h)) << "head " << h;
      ASSERT_LE(ls.held_blocks(slot, h), t.ref[static_cast<std::size_t>(l)]->block_capacity());
    }
    ASSERT_EQ(ls.tail_tokens(slot), t.ref[static_cast<std::size_t>(l)]->tail_tokens());
    expect_memory_invariant(store_, module_);
  }

  void decode(Twin& t, std::int64_t steps) {
    for (std::int64_t s = 0; s < steps; ++s)
      for (int l = 0; l < static_cast<int>(c_.layers.size()); ++l) {
        step(t, l);
        if (::testing::Test::HasFatalFailure()) return;
      }
  }

  runtime::Store& store() { return store_; }
  const ir::Module& module() const { return module_; }

 private:
  Case c_;
  ir::Module module_;
  runtime::Store store_;
  std::mt19937 rng_;
  std::map<std::pair<int, int>, std::vector<float>> calibrated_;
};

// The randomized matrix: every (format, policy, rank kind), shapes drawn per case.
std::vector<Case> all_cases() {
  std::mt19937 rng(20240601);
  const std::vector<std::pair<int, int>> bits = {{16, 16}, {8, 8}, {4, 2}, {3, 3}, {2, 4}, {16, 4}};
  const std::vector<RetentionPolicy> policies = {RetentionPolicy::Full, RetentionPolicy::StreamingLLM,
                                                 RetentionPolicy::H2O, RetentionPolicy::SnapKV,
                                                 RetentionPolicy::CAKE};
  const int gqa[] = {1, 4, 8};
  std::vector<Case> cases;
  int n = 0;
  for (auto [kb, vb] : bits)
    for (RetentionPolicy policy : policies) {
      Case c;
      c.head_dim = (n % 2) ? 128 : 64;
      c.g = gqa[n % 3];
      c.kv_heads = c.g == 8 ? 1 : 2;
      const int group = (n % 4 == 3) ? 64 : 32;
      c.context = 150 + static_cast<std::int64_t>(rng() % 60);
      c.prompt = 60 + static_cast<std::int64_t>(rng() % 30);
      if (c.prompt % group == 0) ++c.prompt;
      const int residual = (n % 3 == 0) ? 0 : 40;
      const ir::LayerPlan base = testing::with_retention(testing::kivi_layer(kb, vb, group, residual), policy, 100);
      // Layer 0 plain; layer 1 low rank of a kind that rotates through the cases.
      ir::LayerPlan lr = base;
      switch (n % 3) {
        case 0: lr = testing::with_rank(base, 16, BasisSharing::PerLayer, BasisSource::Prefill); break;
        case 1: lr = testing::with_rank(base, 24, BasisSharing::PerLayer, BasisSource::Calibrated); break;
        case 2: break;
      }
      c.layers = {base, lr};
      if (n % 5 == 2) {
        // A cross-layer prefill group of the two layers, and a third layer at rank 8.
        c.layers = {testing::with_rank(base, 16, BasisSharing::CrossLayer, BasisSource::Prefill, 0),
                    testing::with_rank(base, 16, BasisSharing::CrossLayer, BasisSource::Prefill, 0)};
      } else if (n % 5 == 4) {
        c.layers = {testing::with_rank(base, 8, BasisSharing::CrossLayer, BasisSource::Calibrated, 3),
                    testing::with_rank(base, 8, BasisSharing::CrossLayer, BasisSource::Calibrated, 3)};
      }
      c.name = "k" + std::to_string(kb) + "v" + std::to_string(vb) + "_" + ir::to_string(policy) + "_d" +
               std::to_string(c.head_dim) + "_g" + std::to_string(c.g) + "_case" + std::to_string(n);
      cases.push_back(c);
      ++n;
    }
  // Rotated, per-token scale and codebook formats, alone and mixed with KIVI's.
  const std::vector<std::pair<ir::SideFormat, ir::SideFormat>> sides = {
      {ir::SideFormat{4}, ir::SideFormat{2, ir::Quantizer::Codebook, true, 0}},
      {ir::SideFormat{4, ir::Quantizer::Token, true, 0}, ir::SideFormat{4, ir::Quantizer::Token, true, 0}},
      {ir::SideFormat{3, ir::Quantizer::Token, false, 16}, ir::SideFormat{3, ir::Quantizer::Codebook, false, 0}},
      {ir::SideFormat{8, ir::Quantizer::TokenMinMax, true, 0}, ir::SideFormat{2, ir::Quantizer::Kivi, true, 0}},
      {ir::SideFormat{2, ir::Quantizer::Kivi, true, 0}, ir::SideFormat{4, ir::Quantizer::Codebook, true, 32}}};
  for (const auto& [key, value] : sides)
    for (RetentionPolicy policy : {RetentionPolicy::Full, RetentionPolicy::H2O, RetentionPolicy::SnapKV}) {
      Case c;
      c.head_dim = (n % 2) ? 128 : 64;
      c.g = gqa[n % 3];
      c.kv_heads = c.g == 8 ? 1 : 2;
      c.context = 150 + static_cast<std::int64_t>(rng() % 60);
      c.prompt = 60 + static_cast<std::int64_t>(rng() % 30);
      ir::LayerPlan base;
      base.key = ir::key_format(key, 32, c.head_dim, 11 + static_cast<std::uint32_t>(n));
      base.value = ir::value_format(value, 32, c.head_dim, 3 * static_cast<std::uint32_t>(n));
      base.residual = (n % 3 == 0) ? 0 : 32;
      base = testing::with_retention(base, policy, 100);
      ir::LayerPlan second = base;
      // Values may be rotated under low-rank keys (only keys are coefficients).
      if (!key.rotated && key.quantizer == ir::Quantizer::Kivi)
        second = testing::with_rank(base, 16, BasisSharing::PerLayer, BasisSource::Prefill);
      c.layers = {base, second};
      c.name = "k" + key.name() + "v" + value.name() + "_" + ir::to_string(policy) + "_d" +
               std::to_string(c.head_dim) + "_g" + std::to_string(c.g) + "_case" + std::to_string(n);
      cases.push_back(c);
      ++n;
    }
  return cases;
}

class StoreVsReference : public ::testing::TestWithParam<Case> {};

TEST_P(StoreVsReference, AttentionBlocksAndBytesMatchAtEveryStep) {
  const Case& c = GetParam();
  Driver d(c, /*batch=*/2, /*threads=*/1, 7);
  expect_memory_invariant(d.store(), d.module());
  Twin t = d.create();
  d.prefill(t, c.prompt);
  ASSERT_FALSE(HasFatalFailure());
  d.decode(t, c.context - c.prompt);
}

INSTANTIATE_TEST_SUITE_P(Formats, StoreVsReference, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

Case small_case(RetentionPolicy policy) {
  Case c;
  c.head_dim = 64;
  c.kv_heads = 2;
  c.g = 4;
  c.context = 140;
  c.prompt = 45;
  c.layers = {testing::with_retention(testing::kivi_layer(4, 2, 32, 32), policy, 80),
              testing::with_rank(testing::with_retention(testing::kivi_layer(2, 2, 32, 0), policy, 96), 16, BasisSharing::PerLayer,
                        BasisSource::Prefill)};
  return c;
}

TEST(StoreSequences, ForkFreeAndReuseKeepEverySequenceEqualToItsReference) {
  const Case c = small_case(RetentionPolicy::H2O);
  Driver d(c, /*batch=*/3, /*threads=*/1, 11);
  Twin a = d.create();
  d.prefill(a, c.prompt);
  d.decode(a, 10);
  Twin b = d.fork(a);  // a plain copy: both continue independently
  d.decode(a, 20);
  d.decode(b, 25);
  ASSERT_FALSE(HasFatalFailure());
  Twin extra = d.create();
  EXPECT_THROW(d.create(), runtime::StatusError);  // batch = 3 sequences at most
  d.store().free_sequence(extra.seq);
  Twin e = d.create();  // reuses the freed slot and its blocks
  d.prefill(e, 50);
  d.decode(e, 30);
  d.decode(a, 10);
  ASSERT_FALSE(HasFatalFailure());
  d.store().free_sequence(a.seq);
  d.store().free_sequence(b.seq);
  d.store().free_sequence(e.seq);
  const kvc_memory_stats st = d.store().memory_stats();
  EXPECT_EQ(st.blocks_used, 0);
  EXPECT_EQ(st.live_sequences, 0);
}

TEST(StoreSequences, LongRandomizedRunsStayWithinTheEstimate) {
  // Random interleavings of create / fork / free / decode over all policies; the
  // per-step checks in Driver::step assert equality and the memory invariant.
  for (RetentionPolicy policy : {RetentionPolicy::StreamingLLM, RetentionPolicy::SnapKV, RetentionPolicy::CAKE}) {
    const Case c = small_case(policy);
    Driver d(c, /*batch=*/3, /*threads=*/1, 100 + static_cast<unsigned>(policy));
    std::mt19937 rng(5 + static_cast<unsigned>(policy));
    std::vector<Twin> live;
    for (int op = 0; op < 60; ++op) {
      const unsigned r = rng() % 10;
      if (live.empty() || (r == 0 && live.size() < 3)) {
        live.push_back(d.create());
        d.prefill(live.back(), 20 + static_cast<std::int64_t>(rng() % 40));
      } else if (r == 1 && live.size() < 3) {
        live.push_back(d.fork(live[rng() % live.size()]));
      } else if (r == 2) {
        const std::size_t i = rng() % live.size();
        d.store().free_sequence(live[i].seq);
        live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
        expect_memory_invariant(d.store(), d.module());
      } else {
        Twin& t = live[rng() % live.size()];
        const runtime::LayerStore& l0 = d.store().layer_store(0);
        if (l0.tokens_seen(d.store().slot_of(t.seq)) < c.context) d.decode(t, 1);
      }
      ASSERT_FALSE(HasFatalFailure()) << "op " << op;
    }
  }
}

TEST(StoreThreads, AttentionIsIdenticalForAnyNumberOfThreads) {
  Case c = small_case(RetentionPolicy::H2O);
  c.kv_heads = 4;
  c.g = 2;
  std::vector<std::vector<float>> results;
  for (int threads : {1, 3, 4}) {
    Driver d(c, /*batch=*/3, threads, 42);
    std::vector<Twin> seqs;
    for (int i = 0; i < 3; ++i) {
      seqs.push_back(d.create());
      d.prefill(seqs.back(), 40 + i);
    }
    std::mt19937 rng(9);
    const std::size_t q_row = static_cast<std::size_t>(c.kv_heads * c.g * c.head_dim);
    std::vector<float> all;
    for (int step = 0; step < 20; ++step) {
      for (Twin& t : seqs) d.decode(t, 1);  // also checks each sequence against its reference
      std::vector<float> q = random_values(rng, 3 * q_row), out(3 * q_row);
      const kvc_seq ids[3] = {seqs[2].seq, seqs[0].seq, seqs[1].seq};
      d.store().attend_batch(1, ids, 3, q.data(), out.data());
      all.insert(all.end(), out.begin(), out.end());
    }
    results.push_back(all);
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  EXPECT_EQ(0, std::memcmp(results[0].data(), results[1].data(), results[0].size() * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(results[0].data(), results[2].data(), results[0].size() * sizeof(float)));
}

}  // namespace
}  // namespace kvc
