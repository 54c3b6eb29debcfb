#pragma once
// Exact fp32 attention of one query token over n contiguous cached tokens. The
// full-precision cache and the prefill's causal attention both call it, so the
// two paths of the forward pass give the same numbers.
#include "model/kv_cache.h"

namespace kvc::model {

// q [q_heads*head_dim]; k, v [n][kv_heads*head_dim]; out [q_heads*head_dim];
// scratch holds at least n floats.
void attend_exact(const CacheShape& shape, const float* q, const float* k, const float* v, int n, float* out,
                  float* scratch);

}  // namespace kvc::model
