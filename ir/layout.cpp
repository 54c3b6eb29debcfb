#include "ir/layout.h"

#include <algorithm>

namespace kvc::ir {

int token_block(const LayerPlan& p) {
  if (p.key.bits < 16 && p.key.axis == QuantAxis::PerChannel) return p.key.group;
  if (p.value.bits < 16 && p.value.axis == QuantAxis::PerChannel) return p.value.group;
  return 1;
}

int tail_capacity(const LayerPlan& p) {
  const bool compresses = p.key.bits < 16 || p.value.bits < 16 || p.lowrank.rank > 0;
  if (!compresses) return 0;
  return std::max(p.residual, token_block(p));
}

int key_dims(const LayerPlan& p, int head_dim) { return p.lowrank.rank > 0 ? p.lowrank.rank : head_dim; }

std::int64_t kept_tokens(const LayerPlan& p, std::int64_t context) {
  if (p.retention.policy == RetentionPolicy::Full) return context;
  return std::min(p.retention.budget, context);
}

std::int64_t main_block_capacity(const LayerPlan& p, std::int64_t context) {
  const std::int64_t rest = std::max<std::int64_t>(kept_tokens(p, context) - tail_capacity(p), 0);
  const std::int64_t b = token_block(p);
  return (rest + b - 1) / b;
}

int group_param_bytes(const QuantFormat& f) { return f.scheme == QuantScheme::MinMax ? 4 : 2; }

std::int64_t section_bytes(const QuantFormat& f, int dims, int block) {
  const std::int64_t d = dims, b = block, params = group_param_bytes(f);
  if (f.bits >= 16) return b * d * 2;
  if (f.axis == QuantAxis::PerChannel) return d * (params + b * f.bits / 8);
  return b * ((d / f.group) * params + d * f.bits / 8);
}

std::int64_t block_bytes(const LayerPlan& p, int head_dim) {
  const int b = token_block(p);
  return section_bytes(p.key, key_dims(p, head_dim), b) + section_bytes(p.value, head_dim, b);
}

std::int64_t tail_bytes(const LayerPlan& p, int head_dim) {
  return static_cast<std::int64_t>(tail_capacity(p)) * head_dim * 2 * 2;
}

bool keeps_scores(const LayerPlan& p) {
  return p.retention.policy == RetentionPolicy::H2O || p.retention.policy == RetentionPolicy::CAKE;
}

std::int64_t basis_bytes_per_head(const LayerPlan& p, int head_dim) {
  return p.lowrank.rank > 0 ? static_cast<std::int64_t>(head_dim) * p.lowrank.rank * 4 : 0;
}

namespace {
// True when this layer is the one that counts its basis (the first of a cross-layer group).
bool owns_basis(const Module& m, int layer) {
  const LayerPlan& p = m.layers[static_cast<std::size_t>(layer)];
  if (p.lowrank.rank == 0) return false;
  if (p.lowrank.sharing != BasisSharing::CrossLayer) return true;
  for (int i = 0; i < layer; ++i) {
    const LowRank& o = m.layers[static_cast<std::size_t>(i)].lowrank;
    if (o.sharing == BasisSharing::CrossLayer && o.basis_group == p.lowrank.basis_group) return false;
  }
  return true;
}
}  // namespace

LayerBytes layer_bytes(const Module& m, int layer) {
  const LayerPlan& p = m.layers[static_cast<std::size_t>(layer)];
  const int d = m.model.head_dim;
  const std::int64_t heads = static_cast<std::int64_t>(m.model.kv_heads) * m.workload.batch;
  const std::int64_t blocks = main_block_capacity(p, m.workload.context);
  LayerBytes out;
  out.main = heads * blocks * block_bytes(p, d);
  out.tail = heads * tail_bytes(p, d);
  if (keeps_scores(p)) out.scores = heads * (blocks * token_block(p) + tail_capacity(p)) * 4;
  if (owns_basis(m, layer)) {
    const std::int64_t per_head = basis_bytes_per_head(p, d);
    out.basis = (p.lowrank.source == BasisSource::Prefill ? heads : m.model.kv_heads) * per_head;
  }
  return out;
}

std::int64_t layer_bytes_per_sequence(const Module& m, int layer) {
  Module one = m;
  one.workload.batch = 1;
  LayerBytes b = layer_bytes(one, layer);
  if (m.layers[static_cast<std::size_t>(layer)].lowrank.source == BasisSource::Calibrated) b.basis = 0;
  return b.total();
}

std::int64_t total_bytes(const Module& m) {
  std::int64_t sum = 0;
  for (int i = 0; i < static_cast<int>(m.layers.size()); ++i) sum += layer_bytes(m, i).total();
  return sum;
}

std::int64_t fp16_bytes(const Module& m) {
  return static_cast<std::int64_t>(m.model.layers) * m.workload.batch * m.model.kv_heads * m.workload.context *
         m.model.head_dim * 2 * 2;
}

}  // namespace kvc::ir
