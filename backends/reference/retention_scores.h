#pragma once
// Prefill token scores of the observation-window retention policies, computed from
// the last n_q prompt queries against all P prompt keys (full precision).
//
// Query i (0 <= i < n_q) sits at prompt position P - n_q + i and attends causally
// to tokens 0 .. P - n_q + i: A[i][h][j] = softmax_j(q_{i,h} . k_j / sqrt(head_dim)),
// and A[i][h][j] = 0 for j after the query (as a causal mask gives). h runs over
// the g query heads that share the KV head.
//   SnapKV: s_j = sum_i sum_h A[i][h][j], then max-pooled over the `pool`
//           neighbours centred on j (pool <= 1: none; even pool acts as pool + 1).
//   CAKE:   s_j = sum_h (mean_i A[i][h][j] + gamma * var_i A[i][h][j]), population
//           variance over the n_q queries, then average-pooled over the `pool`
//           neighbours centred on j (CAKE's code: kernel 5, padding k//2; at the
//           ends the mean is over the neighbours that exist).
// At decode CAKE re-scores the held tokens from the current query's attention,
// pooled the same way over the cache order (average_pool below).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvc::reference {

struct WindowQueries {
  const float* q = nullptr;     // q of query i, head h at q[i * row_stride + h * head_dim]
  int n = 0;                    // n_q, 1 <= n_q <= P
  int heads = 0;                // g
  std::int64_t row_stride = 0;  // floats between consecutive queries (q_heads * head_dim)
};

std::vector<double> snapkv_token_scores(const float* keys, std::int64_t n_keys, int head_dim,
                                        const WindowQueries& queries, int pool);
std::vector<double> cake_token_scores(const float* keys, std::int64_t n_keys, int head_dim,
                                      const WindowQueries& queries, double gamma, int pool);

// out_j = mean of s over [j - pool/2, j + pool/2] clipped to the vector (pool <= 1: s).
// Why pool at all: a token next to an important one is likely to matter too
// (clustered selection); evicting by a single query's raw attention drops them.
std::vector<double> average_pool(const std::vector<double>& s, int pool);

// Decode-time attention per held token of one KV head: the sum over its g query
// heads of probs[h * n + t] (the kernel's probability rows), average-pooled over
// `pool` neighbours in the order the kernel read the tokens.
std::vector<double> decode_attention_scores(const std::vector<float>& probs, std::size_t g, std::size_t n, int pool);

}  // namespace kvc::reference
