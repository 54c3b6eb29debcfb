#pragma once
// The KV cache the forward pass talks to. Implementations: FullKVCache (fp32,
// exact), and caches that store a kvc plan's compressed format and attend with
// the reference, runtime or JIT kernels; the forward pass does not know which.
//
// Protocol for one sequence:
//   begin_sequence();
//   prefill (optional, once, first): append(layer, K, V, n) with all n prompt
//     tokens, then end_prefill(layer, Q, n) with the prompt's queries, per layer;
//   decode: per token and layer, append(layer, k, v, 1) then attend(layer, q, out).
// Keys and queries arrive post-RoPE. Layers are independent: a cache may compress
// or evict each layer as its plan says.
#include <cstdint>

namespace kvc::model {

struct CacheShape {
  int layers = 0;
  int q_heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int kv_dim() const { return kv_heads * head_dim; }
  int q_dim() const { return q_heads * head_dim; }
};

class KVCacheInterface {
 public:
  virtual ~KVCacheInterface() = default;

  // Drops everything held and starts a new sequence.
  virtual void begin_sequence() = 0;
  // n tokens' keys and values, each [n][kv_heads * head_dim], oldest first.
  virtual void append(int layer, const float* k, const float* v, int n) = 0;
  // Attention of one query token, q [q_heads * head_dim], over every token the
  // layer holds: out [q_heads * head_dim]. Query head h reads KV head
  // h / (q_heads / kv_heads); scores are q.k / sqrt(head_dim), softmax, sum p v.
  virtual void attend(int layer, const float* q, float* out) = 0;
  // After the prompt was appended: its queries [n_queries][q_heads * head_dim],
  // oldest first (all prompt positions; a SnapKV-style cache uses the last
  // `window` of them to choose which tokens to keep). Default: nothing to do.
  virtual void end_prefill(int layer, const float* queries, int n_queries) {
    (void)layer, (void)queries, (void)n_queries;
  }
  // Tokens the layer holds now (after any eviction).
  virtual std::int64_t tokens(int layer) const = 0;
  // Bytes of cache data held now, all layers (what the format stores, not
  // std::vector capacity).
  virtual std::int64_t bytes() const = 0;
};

}  // namespace kvc::model
