#pragma once
// The uncompressed cache: every key and value in fp32, exact attention. The
// baseline every compressed cache is compared with (KL, top-1 agreement).
#include <vector>

#include "model/kv_cache.h"

namespace kvc::model {

class FullKVCache final : public KVCacheInterface {
 public:
  explicit FullKVCache(const CacheShape& shape);

  void begin_sequence() override;
  void append(int layer, const float* k, const float* v, int n) override;
  void attend(int layer, const float* q, float* out) override;
  std::int64_t tokens(int layer) const override;
  std::int64_t bytes() const override;

  // The held keys / values of a layer, [tokens][kv_dim] (for calibration statistics).
  const std::vector<float>& keys(int layer) const { return layers_.at(layer).k; }
  const std::vector<float>& values(int layer) const { return layers_.at(layer).v; }

 private:
  struct Layer {
    std::vector<float> k, v;
  };
  Layer& layer_at(int layer);

  CacheShape shape_;
  std::vector<Layer> layers_;
  std::vector<float> scores_;
};

}  // namespace kvc::model
