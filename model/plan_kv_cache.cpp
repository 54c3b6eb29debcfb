#include "model/plan_kv_cache.h"

#include <algorithm>

#include "ir/layout.h"
#include "support/diagnostics.h"

namespace kvc::model {

PlanKVCache::PlanKVCache(ir::Module module) : module_(std::move(module)) {
  bases_.resize(module_.layers.size(), std::vector<std::vector<float>>(std::max(module_.model.kv_heads, 0)));
  begin_sequence();
}

void PlanKVCache::begin_sequence() {
  layers_.clear();
  for (int l = 0; l < static_cast<int>(module_.layers.size()); ++l) {
    layers_.push_back(std::make_unique<reference::ReferenceLayerCache>(module_, l));
    for (int h = 0; h < module_.model.kv_heads; ++h)
      if (!bases_[l][h].empty()) layers_.back()->set_basis(h, bases_[l][h]);
  }
}

reference::ReferenceLayerCache& PlanKVCache::layer_at(int layer) {
  if (layer < 0 || layer >= static_cast<int>(layers_.size()))
    throw Error("PlanKVCache: layer " + std::to_string(layer) + " out of range (the plan has " +
                std::to_string(layers_.size()) + ")");
  return *layers_[layer];
}

const reference::ReferenceLayerCache& PlanKVCache::layer_cache(int layer) const {
  return const_cast<PlanKVCache*>(this)->layer_at(layer);
}

void PlanKVCache::append(int layer, const float* k, const float* v, int n) { layer_at(layer).append(k, v, n); }

void PlanKVCache::attend(int layer, const float* q, float* out) { layer_at(layer).attend(q, out); }

void PlanKVCache::end_prefill(int layer, const float* queries, int n_queries) {
  reference::ReferenceLayerCache& c = layer_at(layer);
  const int window = c.plan().retention.window;
  const int n = window > 0 ? std::min(window, n_queries) : n_queries;
  const std::size_t q_dim = static_cast<std::size_t>(c.q_heads()) * c.head_dim();
  const float* last = queries + static_cast<std::size_t>(n_queries - n) * q_dim;
  c.end_prefill(std::span<const float>(last, static_cast<std::size_t>(n) * q_dim));
}

std::int64_t PlanKVCache::tokens(int layer) const {
  const reference::ReferenceLayerCache& c = layer_cache(layer);
  if (c.staging()) return c.tokens_seen();
  return c.held_blocks(0) * ir::token_block(c.plan()) + c.tail_tokens();
}

std::int64_t PlanKVCache::bytes() const {
  std::int64_t b = 0;
  for (const auto& l : layers_) b += l->bytes_allocated();
  return b;
}

void PlanKVCache::set_basis(int layer, int kv_head, std::span<const float> basis) {
  layer_at(layer).set_basis(kv_head, basis);
  bases_[layer].at(kv_head).assign(basis.begin(), basis.end());
}

}  // namespace kvc::model
