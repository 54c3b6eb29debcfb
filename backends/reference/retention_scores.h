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
//           variance over the n_q queries.
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
                                      const WindowQueries& queries, double gamma);

}  // namespace kvc::reference
