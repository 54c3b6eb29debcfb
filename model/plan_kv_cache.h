#pragma once
// A KV cache stored in a kvc plan's compressed format: one
// reference::ReferenceLayerCache per layer (backends/reference), so the model
// runs on exactly the bytes and semantics the plan defines. Slow on purpose;
// the runtime store and JIT kernels plug in behind the same interface.
#include <memory>
#include <span>
#include <vector>

#include "backends/reference/reference_cache.h"
#include "ir/plan.h"
#include "model/kv_cache.h"

namespace kvc::model {

class PlanKVCache final : public KVCacheInterface {
 public:
  // The module's shape must match the model's (layers, heads, head_dim); its
  // workload.context bounds the tokens of a Full-retention layer.
  explicit PlanKVCache(ir::Module module);

  void begin_sequence() override;
  void append(int layer, const float* k, const float* v, int n) override;
  void attend(int layer, const float* q, float* out) override;
  // Hands the layer's cache the last retention.window queries (SnapKV, CAKE).
  void end_prefill(int layer, const float* queries, int n_queries) override;
  std::int64_t tokens(int layer) const override;
  std::int64_t bytes() const override;

  // Calibrated (BasisSource::Calibrated) key basis [head_dim][rank] of one KV
  // head; kept across sequences and re-applied by begin_sequence().
  void set_basis(int layer, int kv_head, std::span<const float> basis);

  const ir::Module& module() const { return module_; }
  const reference::ReferenceLayerCache& layer_cache(int layer) const;

 private:
  reference::ReferenceLayerCache& layer_at(int layer);

  ir::Module module_;
  std::vector<std::unique_ptr<reference::ReferenceLayerCache>> layers_;
  // (layer, kv_head) -> calibrated basis, replayed into fresh layer caches.
  std::vector<std::vector<std::vector<float>>> bases_;
};

}  // namespace kvc::model
