#include "random_attention_case.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "backends/reference/quantize.h"
#include "ir/layout.h"
#include "support/half.h"

namespace kvc::testing {
namespace {

template <typename T>
T pick(std::mt19937& rng, std::initializer_list<T> options) {
  std::uniform_int_distribution<std::size_t> d(0, options.size() - 1);
  return *(options.begin() + static_cast<std::ptrdiff_t>(d(rng)));
}

// The largest of 32/64/128 that divides dims, else dims itself.
int per_token_group(std::mt19937& rng, int dims) {
  std::vector<int> ok;
  for (int gsz : {32, 64, 128})
    if (dims % gsz == 0) ok.push_back(gsz);
  if (ok.empty()) return dims;
  return ok[std::uniform_int_distribution<std::size_t>(0, ok.size() - 1)(rng)];
}

}  // namespace

std::int64_t AttentionCase::tokens() const {
  return static_cast<std::int64_t>(blocks.size()) * ir::token_block(plan()) + n_tail;
}

kvc_attend_args AttentionCase::args(float* out, float* probs) const {
  kvc_attend_args a{};
  a.blocks = blocks.data();
  a.n_blocks = static_cast<std::int64_t>(blocks.size());
  a.tail_k = tail_k.data();
  a.tail_v = tail_v.data();
  a.n_tail = n_tail;
  a.q = q.data();
  a.basis = basis.empty() ? nullptr : basis.data();
  a.out = out;
  a.probs = probs;
  return a;
}

std::string AttentionCase::describe() const {
  std::ostringstream s;
  s << ir::kernel_name(ir::lower_layer(module, 0)) << " blocks=" << blocks.size() << " tail=" << n_tail;
  return s.str();
}

AttentionCase random_attention_case(int index, std::mt19937& rng) {
  static const int kBits[] = {16, 8, 4, 3, 2};
  AttentionCase c;
  c.head_dim = pick(rng, {8, 64, 128});
  c.g = pick(rng, {1, 4, 8});
  ir::ModelShape shape{"random", 1, c.g, 1, c.head_dim, 10000.0, ir::DType::F16};
  c.module = ir::make_uncompressed_module(shape, ir::Workload{4096, 1, 0}, 0);
  ir::LayerPlan& p = c.module.layers[0];
  const int rank = (index % 3 == 2) ? pick(rng, {8, 16}) : 0;
  if (rank > 0 && rank <= c.head_dim) {
    p.lowrank = ir::LowRank{std::min(rank, c.head_dim), ir::BasisSharing::PerLayer, -1, ir::BasisSource::Prefill};
  }
  const int kd = ir::key_dims(p, c.head_dim);
  const int block = pick(rng, {32, 64});
  p.key.bits = kBits[index % 5];
  p.value.bits = kBits[(index / 5) % 5];
  // KIVI's usual axes most of the time, the transposed ones sometimes.
  p.key.axis = pick(rng, {ir::QuantAxis::PerChannel, ir::QuantAxis::PerChannel, ir::QuantAxis::PerToken});
  p.value.axis = pick(rng, {ir::QuantAxis::PerToken, ir::QuantAxis::PerToken, ir::QuantAxis::PerChannel});
  p.key.group = p.key.axis == ir::QuantAxis::PerChannel ? block : per_token_group(rng, kd);
  p.value.group = p.value.axis == ir::QuantAxis::PerChannel ? block : per_token_group(rng, c.head_dim);
  p.residual = pick(rng, {0, 16, 128});

  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int b = ir::token_block(p);
  const int n_blocks = std::uniform_int_distribution<int>(0, b == 1 ? 300 : 6)(rng);
  const int cap = ir::tail_capacity(p);
  c.n_tail = std::uniform_int_distribution<int>(0, cap > 0 ? cap : 0)(rng);
  if (n_blocks == 0 && c.n_tail == 0) c.n_tail = 1;
  // Channels with their own offset and spread, as real keys have (outlier channels).
  std::vector<float> offset(static_cast<std::size_t>(c.head_dim)), spread(offset.size());
  for (std::size_t i = 0; i < offset.size(); ++i) {
    offset[i] = normal(rng);
    spread[i] = std::exp(normal(rng) * 0.5f);
  }
  auto sample = [&](std::size_t ch) { return offset[ch % offset.size()] + spread[ch % spread.size()] * normal(rng); };
  const std::int64_t bb = ir::block_bytes(p, c.head_dim);
  for (int i = 0; i < n_blocks; ++i) {
    std::vector<float> k(static_cast<std::size_t>(b) * static_cast<std::size_t>(kd));
    std::vector<float> v(static_cast<std::size_t>(b) * static_cast<std::size_t>(c.head_dim));
    for (std::size_t j = 0; j < k.size(); ++j) k[j] = round_to_half(sample(j % static_cast<std::size_t>(kd)));
    for (std::size_t j = 0; j < v.size(); ++j) v[j] = round_to_half(normal(rng));
    c.block_bytes.emplace_back(static_cast<std::size_t>(bb));
    reference::encode_block(p, c.head_dim, k.data(), v.data(), c.block_bytes.back().data());
  }
  for (auto& blk : c.block_bytes) c.blocks.push_back(blk.data());
  const std::size_t tail_n = static_cast<std::size_t>(c.n_tail) * static_cast<std::size_t>(c.head_dim);
  for (std::size_t j = 0; j < tail_n; ++j) {
    c.tail_k.push_back(float_to_half(sample(j % static_cast<std::size_t>(c.head_dim))));
    c.tail_v.push_back(float_to_half(normal(rng)));
  }
  // Queries scaled so that some softmaxes are peaked and some flat.
  const float q_scale = pick(rng, {0.3f, 1.0f, 3.0f});
  for (int j = 0; j < c.g * c.head_dim; ++j) c.q.push_back(q_scale * normal(rng));
  if (p.lowrank.rank > 0)
    for (int j = 0; j < c.head_dim * kd; ++j) c.basis.push_back(normal(rng) / std::sqrt(static_cast<float>(c.head_dim)));
  return c;
}

}  // namespace kvc::testing
