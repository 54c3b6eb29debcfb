#include "calibration/plan_cache.h"

#include <algorithm>
#include <string>

#include "backends/reference/lowrank_basis.h"
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
  pending_window_.assign(static_cast<std::size_t>(shape_.layers), {});
  prefill_ended_.assign(static_cast<std::size_t>(shape_.layers), false);
}

std::vector<int> PlanKVCache::prefill_group(int layer) const {
  const ir::LowRank& lr = module_.layers[static_cast<std::size_t>(layer)].lowrank;
  if (lr.rank == 0 || lr.sharing != ir::BasisSharing::CrossLayer || lr.source != ir::BasisSource::Prefill) return {layer};
  std::vector<int> group;
  for (const ir::LayerPlan& other : module_.layers)
    if (other.lowrank.rank > 0 && other.lowrank.sharing == ir::BasisSharing::CrossLayer &&
        other.lowrank.basis_group == lr.basis_group)
      group.push_back(other.index);
  return group;
}

reference::ReferenceLayerCache& PlanKVCache::at(int layer) {
  if (layer < 0 || layer >= static_cast<int>(layers_.size()))
    throw Error("plan cache: layer " + std::to_string(layer) + " out of range");
  return *layers_[static_cast<std::size_t>(layer)];
}

void PlanKVCache::append(int layer, const float* k, const float* v, int n) { at(layer).append(k, v, n); }

void PlanKVCache::end_prefill(int layer, const float* queries, int n_queries) {
  at(layer);
  const ir::LayerPlan& plan = module_.layers[static_cast<std::size_t>(layer)];
  const int window = plan.retention.window > 0 ? std::min(plan.retention.window, n_queries) : n_queries;
  const std::size_t row = static_cast<std::size_t>(shape_.q_dim());
  const float* first = queries + static_cast<std::size_t>(n_queries - window) * row;
  pending_window_[static_cast<std::size_t>(layer)].assign(first, first + static_cast<std::size_t>(window) * row);
  prefill_ended_[static_cast<std::size_t>(layer)] = true;
  const std::vector<int> group = prefill_group(layer);
  for (int m : group)
    if (!prefill_ended_[static_cast<std::size_t>(m)]) return;  // the group's last layer finishes it
  end_group_prefill(group);
}

void PlanKVCache::end_group_prefill(const std::vector<int>& group) {
  const ir::LowRank& lr = module_.layers[static_cast<std::size_t>(group.front())].lowrank;
  if (group.size() > 1 || (lr.sharing == ir::BasisSharing::CrossLayer && lr.rank > 0)) {
    const int d = shape_.head_dim;
    for (int h = 0; h < shape_.kv_heads; ++h) {
      std::vector<float> keys;
      for (int m : group) {
        const std::vector<float> k = at(m).staged_keys(h);
        keys.insert(keys.end(), k.begin(), k.end());
      }
      const std::int64_t n = static_cast<std::int64_t>(keys.size()) / d;
      const std::vector<float> basis = reference::principal_key_basis(keys.data(), n, d, lr.rank);
      for (int m : group) at(m).set_basis(h, basis);
    }
  }
  for (int m : group) {
    std::vector<float>& w = pending_window_[static_cast<std::size_t>(m)];
    at(m).end_prefill(w);
    w.clear();
    w.shrink_to_fit();
  }
}

void PlanKVCache::finish_staging(int layer) {
  if (!at(layer).staging()) return;
  // A sequence with no prompt: the group ends its (empty) prefill together.
  const std::vector<int> group = prefill_group(layer);
  for (int m : group) prefill_ended_[static_cast<std::size_t>(m)] = true;
  end_group_prefill(group);
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
