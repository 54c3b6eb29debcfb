#include "calibration/plan_cache.h"

#include <algorithm>
#include <string>

#include "ir/layout.h"
#include "support/diagnostics.h"

namespace kvc::calibration {

void check_plan_matches_model(const ir::Module& module, const model::CacheShape& shape, const std::string& origin) {
  const ir::ModelShape& m = module.model;
  if (m.layers == shape.layers && m.q_heads == shape.q_heads && m.kv_heads == shape.kv_heads &&
      m.head_dim == shape.head_dim && static_cast<int>(module.layers.size()) == shape.layers)
    return;
  auto text = [](int l, int q, int kv, int d) {
    return "layers=" + std::to_string(l) + " q_heads=" + std::to_string(q) + " kv_heads=" + std::to_string(kv) +
           " head_dim=" + std::to_string(d);
  };
  throw Error({origin, 0, 0}, "model",
              "the plan is for a model with " + text(m.layers, m.q_heads, m.kv_heads, m.head_dim) + " ('" + m.name +
                  "'), but the model has " + text(shape.layers, shape.q_heads, shape.kv_heads, shape.head_dim));
}

PlanKVCache::PlanKVCache(const ir::Module& module, const model::CacheShape& shape) : module_(module), shape_(shape) {
  check_plan_matches_model(module, shape, "<plan>");
  for (const ir::LayerPlan& p : module.layers)
    if (p.lowrank.rank > 0 && p.lowrank.source == ir::BasisSource::Calibrated)
      throw Error({}, "layer " + std::to_string(p.index) + ": lowrank",
                  "plans with calibrated bases carry no basis data yet; the evaluation cache cannot run them");
  begin_sequence();
}

void PlanKVCache::begin_sequence() {
  layers_.clear();
  for (int l = 0; l < shape_.layers; ++l)
    layers_.push_back(std::make_unique<reference::ReferenceLayerCache>(module_, l));
}

reference::ReferenceLayerCache& PlanKVCache::at(int layer) {
  if (layer < 0 || layer >= static_cast<int>(layers_.size()))
    throw Error("plan cache: layer " + std::to_string(layer) + " out of range");
  return *layers_[static_cast<std::size_t>(layer)];
}

void PlanKVCache::append(int layer, const float* k, const float* v, int n) { at(layer).append(k, v, n); }

void PlanKVCache::end_prefill(int layer, const float* queries, int n_queries) {
  reference::ReferenceLayerCache& c = at(layer);
  const ir::LayerPlan& plan = module_.layers[static_cast<std::size_t>(layer)];
  // A CrossLayer basis belongs to the group's first layer, which the forward pass
  // finishes first (layers run in order); later layers reuse it.
  if (plan.lowrank.rank > 0 && plan.lowrank.sharing == ir::BasisSharing::CrossLayer) {
    for (int l = 0; l < layer; ++l) {
      const ir::LayerPlan& other = module_.layers[static_cast<std::size_t>(l)];
      if (other.lowrank.sharing == ir::BasisSharing::CrossLayer && other.lowrank.basis_group == plan.lowrank.basis_group &&
          !layers_[static_cast<std::size_t>(l)]->basis(0).empty()) {
        for (int h = 0; h < shape_.kv_heads; ++h) c.set_basis(h, layers_[static_cast<std::size_t>(l)]->basis(h));
        break;
      }
    }
  }
  const int window = plan.retention.window > 0 ? std::min(plan.retention.window, n_queries) : n_queries;
  const std::size_t row = static_cast<std::size_t>(shape_.q_dim());
  c.end_prefill(std::span<const float>(queries + static_cast<std::size_t>(n_queries - window) * row,
                                       static_cast<std::size_t>(window) * row));
}

void PlanKVCache::finish_staging(int layer) {
  reference::ReferenceLayerCache& c = at(layer);
  if (c.staging()) c.end_prefill({});
}

void PlanKVCache::attend(int layer, const float* q, float* out) {
  finish_staging(layer);
  at(layer).attend(q, out);
}

std::int64_t PlanKVCache::tokens(int layer) const {
  const reference::ReferenceLayerCache& c = *layers_.at(static_cast<std::size_t>(layer));
  return c.held_blocks(0) * ir::token_block(c.plan()) + c.tail_tokens();
}

std::int64_t PlanKVCache::bytes() const {
  std::int64_t total = 0;
  for (const auto& l : layers_) total += l->bytes_allocated();
  return total;
}

}  // namespace kvc::calibration
