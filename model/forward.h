#pragma once
// The fp32 forward pass of a llama-family decoder over a pluggable KV cache:
// RMSNorm, RoPE (the model's convention), GQA attention through the cache,
// SwiGLU FFN, tied or separate classifier.
#include <vector>

#include "model/kv_cache.h"
#include "model/model.h"
#include "model/rope.h"

namespace kvc::model {

class ForwardPass {
 public:
  // Both must outlive the ForwardPass. The cache's shape must match the model's.
  ForwardPass(const Model& model, KVCacheInterface& cache);

  // Starts a new sequence (clears the cache).
  void begin_sequence();

  // Decode one token at position `pos`: its K/V are appended to the cache, then
  // each layer attends through the cache. Returns the next-token logits [vocab]
  // (valid until the next call).
  const std::vector<float>& forward(int token, int pos);

  // Runs a prompt from position 0 (starts a new sequence). The prompt's causal
  // attention is computed here in full precision, as KIVI and SnapKV do at
  // prefill; per layer, all prompt K/V then go to the cache in one append and
  // end_prefill receives the prompt's queries. Returns the logits of every
  // position, [n][vocab]. Continue with forward(token, n).
  std::vector<float> prefill(const std::vector<int>& tokens);

  static CacheShape cache_shape(const ModelConfig& c) { return {c.layers, c.q_heads, c.kv_heads, c.head_dim}; }

 private:
  void check_token(int token, int pos) const;
  void embed(int token, float* x) const;
  void classify(const float* x, float* logits);
  void ffn(const LayerWeights& w, float* x);

  const Model& model_;
  KVCacheInterface& cache_;
  RopeAngles angles_;
  // Scratch, sized once.
  std::vector<float> x_, xb_, q_, k_, v_, att_, h1_, h3_, logits_, scores_;
};

}  // namespace kvc::model
