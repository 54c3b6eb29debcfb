#include "model/full_kv_cache.h"

#include "model/attention.h"
#include "support/diagnostics.h"

namespace kvc::model {

FullKVCache::FullKVCache(const CacheShape& shape) : shape_(shape), layers_(shape.layers) {
  if (shape.layers <= 0 || shape.q_heads <= 0 || shape.kv_heads <= 0 || shape.head_dim <= 0 ||
      shape.q_heads % shape.kv_heads != 0)
    throw Error("FullKVCache: invalid cache shape");
}

void FullKVCache::begin_sequence() {
  for (Layer& l : layers_) {
    l.k.clear();
    l.v.clear();
  }
}

FullKVCache::Layer& FullKVCache::layer_at(int layer) {
  if (layer < 0 || layer >= shape_.layers)
    throw Error("FullKVCache: layer " + std::to_string(layer) + " out of range (the cache has " +
                std::to_string(shape_.layers) + ")");
  return layers_[layer];
}

void FullKVCache::append(int layer, const float* k, const float* v, int n) {
  Layer& l = layer_at(layer);
  const std::size_t count = static_cast<std::size_t>(n) * shape_.kv_dim();
  l.k.insert(l.k.end(), k, k + count);
  l.v.insert(l.v.end(), v, v + count);
}

void FullKVCache::attend(int layer, const float* q, float* out) {
  Layer& l = layer_at(layer);
  const int n = static_cast<int>(l.k.size() / shape_.kv_dim());
  if (n == 0) throw Error("FullKVCache: attend on layer " + std::to_string(layer) + " before any append");
  if (scores_.size() < static_cast<std::size_t>(n)) scores_.resize(static_cast<std::size_t>(n) * 2);
  attend_exact(shape_, q, l.k.data(), l.v.data(), n, out, scores_.data());
}

std::int64_t FullKVCache::tokens(int layer) const {
  return static_cast<std::int64_t>(layers_.at(layer).k.size() / shape_.kv_dim());
}

std::int64_t FullKVCache::bytes() const {
  std::int64_t b = 0;
  for (const Layer& l : layers_) b += static_cast<std::int64_t>((l.k.size() + l.v.size()) * sizeof(float));
  return b;
}

}  // namespace kvc::model
