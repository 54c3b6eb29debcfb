#pragma once
// PlanKVCache: the model's KV cache stored as a kvc plan says, one
// reference::ReferenceLayerCache per layer (the reference semantics of every format,
// retention policy and low-rank basis). What `kvc eval` runs the model with.
//
// The module's workload.context is the most tokens a sequence may hold; build the
// module for the evaluation length (evaluate.cpp sets it). end_prefill hands a layer
// the last `retention.window` prompt queries (all of them when the window is 0 or
// longer than the prompt), the observation window of SnapKV and CAKE. A CrossLayer
// prefill basis is the runtime's (runtime/store.cpp): the group's layers wait, staged,
// until the last of them ends its prefill; then one basis per KV head comes from all
// their prompt keys (layers in order) and every member compresses with it.
#include <memory>
#include <vector>

#include "backends/reference/reference_cache.h"
#include "ir/plan.h"
#include "model/kv_cache.h"

namespace kvc::calibration {

class PlanKVCache final : public model::KVCacheInterface {
 public:
  // Throws kvc::Error when the module's model shape is not `shape` or a layer's plan
  // cannot be stored.
  PlanKVCache(const ir::Module& module, const model::CacheShape& shape);

  void begin_sequence() override;
  void append(int layer, const float* k, const float* v, int n) override;
  void attend(int layer, const float* q, float* out) override;
  void end_prefill(int layer, const float* queries, int n_queries) override;
  std::int64_t tokens(int layer) const override;
  // Sum of ReferenceLayerCache::bytes_allocated over layers (= ir::layer_bytes_per_sequence).
  std::int64_t bytes() const override;

  const reference::ReferenceLayerCache& layer(int l) const { return *layers_.at(l); }

 private:
  reference::ReferenceLayerCache& at(int layer);
  // Ends staging of a layer that never saw end_prefill (a sequence with no prompt).
  void finish_staging(int layer);
  // The layers sharing `layer`'s CrossLayer prefill basis (ascending), or {layer}.
  std::vector<int> prefill_group(int layer) const;
  // Ends the prefill of a whole group: the shared basis, then each member's selection.
  void end_group_prefill(const std::vector<int>& group);

  ir::Module module_;
  model::CacheShape shape_;
  std::vector<std::unique_ptr<reference::ReferenceLayerCache>> layers_;
  // Per layer, the window queries handed to end_prefill while its group waits.
  std::vector<std::vector<float>> pending_window_;
  std::vector<bool> prefill_ended_;
};

// Throws kvc::Error ("the plan is for layers=.. but the model has ..") unless the
// module's model shape matches the cache shape. `origin` names the plan.
void check_plan_matches_model(const ir::Module& module, const model::CacheShape& shape, const std::string& origin);

}  // namespace kvc::calibration
