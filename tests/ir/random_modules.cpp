#include "random_modules.h"

#include <cstring>
#include <limits>
#include <vector>

#include "ir/layout.h"

namespace kvc::ir::testing {

namespace {

template <typename T>
T pick(std::mt19937& rng, std::initializer_list<T> values) {
  std::uniform_int_distribution<std::size_t> d(0, values.size() - 1);
  return *(values.begin() + d(rng));
}

std::int64_t uniform(std::mt19937& rng, std::int64_t lo, std::int64_t hi) {
  return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
}

bool coin(std::mt19937& rng, double p = 0.5) { return std::bernoulli_distribution(p)(rng); }

// Small values, extremes and anything in between, so both printing and range checks are exercised.
template <typename Int>
Int any_int(std::mt19937& rng) {
  using L = std::numeric_limits<Int>;
  switch (uniform(rng, 0, 3)) {
    case 0: return static_cast<Int>(uniform(rng, -3, 300));
    case 1: return pick<Int>(rng, {L::min(), L::max(), Int{0}, Int{-1}, static_cast<Int>(L::max() - 1)});
    default: return static_cast<Int>(uniform(rng, L::min(), L::max()));
  }
}

double any_double(std::mt19937& rng) {
  switch (uniform(rng, 0, 3)) {
    case 0:
      return pick<double>(rng, {0.0, -0.0, 0.1, 1e-300, 5e-324, 1e300, 500000.0, 1e21, 1e20, 1e-7, 1e-6, 123.456,
                                std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest(),
                                std::numeric_limits<double>::min(), std::numeric_limits<double>::infinity(),
                                -std::numeric_limits<double>::infinity()});
    case 1: return std::uniform_real_distribution<double>(-1e6, 1e6)(rng);
    default: {
      // Any bit pattern but NaN (NaN != NaN, so == cannot check it; a separate test covers it).
      while (true) {
        const std::uint64_t bits = (static_cast<std::uint64_t>(rng()) << 32) | rng();
        double v;
        std::memcpy(&v, &bits, sizeof v);
        if (v == v) return v;
      }
    }
  }
}

QuantFormat valid_quant(std::mt19937& rng, int dims, QuantAxis default_axis, bool low_rank) {
  QuantFormat f;
  f.axis = default_axis;
  f.bits = pick(rng, {16, 8, 4, 3, 2});
  if (f.bits == 16) return f;
  f.axis = coin(rng) ? QuantAxis::PerChannel : QuantAxis::PerToken;
  f.group = pick(rng, {8, 16, 32, 64, 128});
  if (f.axis == QuantAxis::PerToken && dims % f.group != 0) {
    std::vector<int> fits;
    for (int g : {8, 16, 32, 64, 128}) {
      if (dims % g == 0) fits.push_back(g);
    }
    if (fits.empty()) {
      f.axis = QuantAxis::PerChannel;
    } else {
      f.group = fits[static_cast<std::size_t>(uniform(rng, 0, static_cast<std::int64_t>(fits.size()) - 1))];
    }
  }
  // Per-token codes: one group spanning the whole vector, one scale (symmetric or a
  // Lloyd-Max codebook) instead of scale and min; any full-rank vector may be rotated.
  if (f.axis == QuantAxis::PerToken) {
    if (coin(rng, 0.2)) f.group = dims;
    if (coin(rng, 0.5)) f.scheme = f.bits <= 4 && coin(rng) ? QuantScheme::LloydMax : QuantScheme::Symmetric;
  }
  if (!low_rank && coin(rng, 0.4)) {
    f.rotation = Rotation::Hadamard;
    f.seed = static_cast<std::uint32_t>(rng());
  }
  return f;
}

Retention valid_retention(std::mt19937& rng, const LayerPlan& p, std::int64_t context) {
  Retention r;
  const std::int64_t floor = std::max<std::int64_t>(1, tail_capacity(p));
  if (floor > context || coin(rng, 0.25)) return r;
  r.policy = pick(rng, {RetentionPolicy::StreamingLLM, RetentionPolicy::H2O, RetentionPolicy::SnapKV,
                        RetentionPolicy::CAKE});
  r.budget = uniform(rng, floor, context);
  switch (r.policy) {
    case RetentionPolicy::StreamingLLM:
    case RetentionPolicy::H2O:
      r.sink = static_cast<int>(uniform(rng, 0, std::min<std::int64_t>(r.budget, 64)));
      r.window = static_cast<int>(uniform(rng, 0, std::min<std::int64_t>(r.budget - r.sink, 4096)));
      break;
    case RetentionPolicy::SnapKV:
      r.window = static_cast<int>(uniform(rng, 1, 64));
      r.pool = static_cast<int>(2 * uniform(rng, 0, 7) + 1);
      break;
    case RetentionPolicy::CAKE:
      r.window = static_cast<int>(uniform(rng, 1, 64));
      r.pool = static_cast<int>(2 * uniform(rng, 0, 3) + 1);
      r.gamma = coin(rng) ? pick(rng, {0.0, 0.1, 1.0, 5.0}) : std::uniform_real_distribution<double>(0, 10)(rng);
      break;
    case RetentionPolicy::Full: break;
  }
  return r;
}

}  // namespace

std::string random_name(std::mt19937& rng) {
  static const std::vector<std::string> pieces = {
      "Llama", "-3.1-", "8B", "Qwen", " ", "\"", "\\", "\\\"", "\n", "\t", "\r", std::string(1, '\0'), "\x01",
      "\x7f", "\xc3\xa9" /* é */, "\xe6\x97\xa5\xe6\x9c\xac" /* 日本 */, "\xf0\x9f\xa6\x99" /* llama emoji */,
      "\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80" /* encoded surrogate: not well-formed */, "{", "}", ";", "=", "x"};
  std::string name;
  const auto n = uniform(rng, 0, 12);
  for (std::int64_t i = 0; i < n; ++i) {
    if (coin(rng, 0.1)) {
      name += static_cast<char>(uniform(rng, 0, 255));
    } else {
      name += pieces[static_cast<std::size_t>(uniform(rng, 0, static_cast<std::int64_t>(pieces.size()) - 1))];
    }
  }
  return name;
}

Module random_valid_module(std::mt19937& rng) {
  Module m;
  ModelShape& s = m.model;
  s.name = random_name(rng);
  s.layers = static_cast<int>(uniform(rng, 1, 40));
  s.kv_heads = static_cast<int>(uniform(rng, 1, 16));
  s.q_heads = s.kv_heads * static_cast<int>(uniform(rng, 1, 8));
  s.head_dim = pick(rng, {8, 16, 32, 64, 96, 128, 256});
  s.rope_theta = coin(rng) ? pick(rng, {10000.0, 500000.0, 1e6}) : std::uniform_real_distribution<double>(1, 1e7)(rng);
  s.cache_dtype = pick(rng, {DType::F16, DType::BF16, DType::F32});
  m.workload.context = coin(rng, 0.2) ? uniform(rng, 1, 256) : uniform(rng, 256, 131072);
  m.workload.batch = uniform(rng, 1, 64);
  m.workload.generate = uniform(rng, 0, m.workload.context - 1);
  m.budget_bytes = uniform(rng, 0, std::int64_t{1} << 40);

  int next_group = 0;
  for (int i = 0; i < s.layers;) {
    // A run of layers sharing one kind of basis: a cross-layer group is one run.
    const BasisSharing sharing = pick(rng, {BasisSharing::None, BasisSharing::PerLayer, BasisSharing::CrossLayer});
    const int run = sharing == BasisSharing::CrossLayer ? static_cast<int>(uniform(rng, 1, 4)) : 1;
    const int rank = sharing == BasisSharing::None ? 0 : static_cast<int>(uniform(rng, 1, s.head_dim));
    const BasisSource source = coin(rng) ? BasisSource::Prefill : BasisSource::Calibrated;
    const int group = sharing == BasisSharing::CrossLayer ? next_group++ : -1;
    for (int j = 0; j < run && i < s.layers; ++j, ++i) {
      LayerPlan p;
      p.index = i;
      p.lowrank = {rank, sharing, group, sharing == BasisSharing::None ? BasisSource::Prefill : source};
      p.key = valid_quant(rng, key_dims(p, s.head_dim), QuantAxis::PerChannel, rank > 0);
      p.value = valid_quant(rng, s.head_dim, QuantAxis::PerToken, false);
      if (p.key.bits < 16 && p.key.axis == QuantAxis::PerChannel && p.value.bits < 16 &&
          p.value.axis == QuantAxis::PerChannel) {
        p.value.group = p.key.group;
      }
      p.residual = token_block(p) * static_cast<int>(uniform(rng, 0, 8));
      p.retention = valid_retention(rng, p, m.workload.context);
      m.layers.push_back(p);
    }
  }
  return m;
}

Module random_arbitrary_module(std::mt19937& rng) {
  Module m;
  ModelShape& s = m.model;
  s.name = random_name(rng);
  s.layers = any_int<int>(rng);
  s.q_heads = any_int<int>(rng);
  s.kv_heads = any_int<int>(rng);
  s.head_dim = any_int<int>(rng);
  s.rope_theta = any_double(rng);
  s.cache_dtype = pick(rng, {DType::F16, DType::BF16, DType::F32});
  m.workload = {any_int<std::int64_t>(rng), any_int<std::int64_t>(rng), any_int<std::int64_t>(rng)};
  m.budget_bytes = any_int<std::int64_t>(rng);
  const auto n = uniform(rng, 0, 8);
  for (std::int64_t i = 0; i < n; ++i) {
    LayerPlan p;
    // Mostly default-looking layers so the short forms (fp16, full, none) are hit too.
    const bool wild = coin(rng, 0.7);
    p.index = wild ? any_int<int>(rng) : static_cast<int>(i);
    for (QuantFormat* f : {&p.key, &p.value}) {
      if (!wild && coin(rng)) continue;
      f->bits = coin(rng) ? 16 : any_int<int>(rng);
      f->axis = coin(rng) ? QuantAxis::PerChannel : QuantAxis::PerToken;
      f->group = coin(rng) ? 32 : any_int<int>(rng);
      if (coin(rng, 0.3)) f->scheme = pick(rng, {QuantScheme::MinMax, QuantScheme::Symmetric, QuantScheme::LloydMax});
      if (coin(rng, 0.3)) f->rotation = pick(rng, {Rotation::None, Rotation::Hadamard});
      if (coin(rng, 0.3)) f->seed = static_cast<std::uint32_t>(rng());
    }
    if (wild) {
      p.residual = any_int<int>(rng);
      p.retention.policy = pick(rng, {RetentionPolicy::Full, RetentionPolicy::StreamingLLM, RetentionPolicy::H2O,
                                      RetentionPolicy::SnapKV, RetentionPolicy::CAKE});
      if (coin(rng)) p.retention.budget = any_int<std::int64_t>(rng);
      if (coin(rng)) p.retention.sink = any_int<int>(rng);
      if (coin(rng)) p.retention.window = any_int<int>(rng);
      if (coin(rng)) p.retention.pool = any_int<int>(rng);
      if (coin(rng)) p.retention.gamma = any_double(rng);
      if (coin(rng)) p.lowrank.rank = any_int<int>(rng);
      if (coin(rng)) {
        p.lowrank.sharing = pick(rng, {BasisSharing::None, BasisSharing::PerLayer, BasisSharing::CrossLayer});
      }
      if (coin(rng)) p.lowrank.basis_group = any_int<int>(rng);
      if (coin(rng)) p.lowrank.source = BasisSource::Calibrated;
    }
    m.layers.push_back(p);
  }
  return m;
}

}  // namespace kvc::ir::testing
