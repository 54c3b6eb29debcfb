#include "model/attention.h"

#include <cmath>

namespace kvc::model {

void attend_exact(const CacheShape& s, const float* q, const float* k, const float* v, int n, float* out,
                  float* scores) {
  const int hd = s.head_dim, kvd = s.kv_dim(), group = s.q_heads / s.kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int h = 0; h < s.q_heads; ++h) {
    const float* qh = q + h * hd;
    const int kv_off = (h / group) * hd;
    float max_score = -INFINITY;
    for (int t = 0; t < n; ++t) {
      const float* kt = k + static_cast<std::ptrdiff_t>(t) * kvd + kv_off;
      float dot = 0.0f;
      for (int i = 0; i < hd; ++i) dot += qh[i] * kt[i];
      scores[t] = dot * scale;
      if (scores[t] > max_score) max_score = scores[t];
    }
    float sum = 0.0f;
    for (int t = 0; t < n; ++t) {
      scores[t] = std::exp(scores[t] - max_score);
      sum += scores[t];
    }
    const float inv_sum = 1.0f / sum;
    float* oh = out + h * hd;
    for (int i = 0; i < hd; ++i) oh[i] = 0.0f;
    for (int t = 0; t < n; ++t) {
      const float p = scores[t] * inv_sum;
      const float* vt = v + static_cast<std::ptrdiff_t>(t) * kvd + kv_off;
      for (int i = 0; i < hd; ++i) oh[i] += p * vt[i];
    }
  }
}

}  // namespace kvc::model
