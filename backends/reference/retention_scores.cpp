#include "backends/reference/retention_scores.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

#include "support/diagnostics.h"

namespace kvc::reference {

namespace {

// Causal window attention A[(i * heads + h) * n_keys + j].
std::vector<double> window_attention(const float* keys, std::int64_t n_keys, int head_dim, const WindowQueries& w) {
  if (!keys || !w.q || w.n < 1 || w.heads < 1 || w.n > n_keys)
    throw Error("window scores: need 1 <= window queries <= prompt tokens, got " + std::to_string(w.n) + " and " +
                std::to_string(n_keys));
  const std::size_t nk = static_cast<std::size_t>(n_keys), hd = static_cast<std::size_t>(head_dim);
  const double inv_sqrt = 1.0 / std::sqrt(static_cast<double>(head_dim));
  std::vector<double> a(static_cast<std::size_t>(w.n) * static_cast<std::size_t>(w.heads) * nk, 0.0);
  for (int i = 0; i < w.n; ++i) {
    const std::size_t visible = nk - static_cast<std::size_t>(w.n) + static_cast<std::size_t>(i) + 1;
    for (int h = 0; h < w.heads; ++h) {
      const float* q = w.q + static_cast<std::size_t>(i) * static_cast<std::size_t>(w.row_stride) +
                       static_cast<std::size_t>(h) * hd;
      double* row = a.data() + (static_cast<std::size_t>(i) * static_cast<std::size_t>(w.heads) +
                                static_cast<std::size_t>(h)) * nk;
      for (std::size_t j = 0; j < visible; ++j) {
        double s = 0.0;
        for (std::size_t d = 0; d < hd; ++d) s += static_cast<double>(q[d]) * keys[j * hd + d];
        row[j] = s * inv_sqrt;
      }
      const double top = *std::max_element(row, row + visible);
      double sum = 0.0;
      for (std::size_t j = 0; j < visible; ++j) sum += (row[j] = std::exp(row[j] - top));
      for (std::size_t j = 0; j < visible; ++j) row[j] /= sum;
    }
  }
  return a;
}

}  // namespace

std::vector<double> snapkv_token_scores(const float* keys, std::int64_t n_keys, int head_dim,
                                        const WindowQueries& w, int pool) {
  const std::vector<double> a = window_attention(keys, n_keys, head_dim, w);
  const std::size_t nk = static_cast<std::size_t>(n_keys);
  std::vector<double> s(nk, 0.0);
  for (std::size_t r = 0; r < a.size() / nk; ++r)
    for (std::size_t j = 0; j < nk; ++j) s[j] += a[r * nk + j];
  const std::int64_t half = pool > 1 ? pool / 2 : 0;
  if (half == 0) return s;
  std::vector<double> pooled(nk);
  for (std::int64_t j = 0; j < n_keys; ++j) {
    const std::int64_t lo = std::max<std::int64_t>(0, j - half), hi = std::min<std::int64_t>(n_keys - 1, j + half);
    double m = s[static_cast<std::size_t>(lo)];
    for (std::int64_t t = lo; t <= hi; ++t) m = std::max(m, s[static_cast<std::size_t>(t)]);
    pooled[static_cast<std::size_t>(j)] = m;
  }
  return pooled;
}

std::vector<double> average_pool(const std::vector<double>& s, int pool) {
  const std::size_t half = pool > 1 ? static_cast<std::size_t>(pool / 2) : 0;
  if (half == 0 || s.empty()) return s;
  // Prefix sums make every window O(1).
  std::vector<double> prefix(s.size() + 1, 0.0);
  for (std::size_t j = 0; j < s.size(); ++j) prefix[j + 1] = prefix[j] + s[j];
  std::vector<double> out(s.size());
  for (std::size_t j = 0; j < s.size(); ++j) {
    const std::size_t lo = j >= half ? j - half : 0, hi = std::min(s.size() - 1, j + half);
    out[j] = (prefix[hi + 1] - prefix[lo]) / static_cast<double>(hi - lo + 1);
  }
  return out;
}

std::vector<double> decode_attention_scores(const std::vector<float>& probs, std::size_t g, std::size_t n, int pool) {
  if (probs.size() < g * n) throw Error("decode attention scores: fewer probabilities than heads x tokens");
  std::vector<double> p(n, 0.0);
  for (std::size_t h = 0; h < g; ++h)
    for (std::size_t t = 0; t < n; ++t) p[t] += probs[h * n + t];
  return average_pool(p, pool);
}

std::vector<double> cake_token_scores(const float* keys, std::int64_t n_keys, int head_dim, const WindowQueries& w,
                                      double gamma, int pool) {
  const std::vector<double> a = window_attention(keys, n_keys, head_dim, w);
  const std::size_t nk = static_cast<std::size_t>(n_keys);
  const std::size_t heads = static_cast<std::size_t>(w.heads), nq = static_cast<std::size_t>(w.n);
  std::vector<double> s(nk, 0.0);
  for (std::size_t h = 0; h < heads; ++h) {
    for (std::size_t j = 0; j < nk; ++j) {
      double sum = 0.0, sq = 0.0;
      for (std::size_t i = 0; i < nq; ++i) {
        const double p = a[(i * heads + h) * nk + j];
        sum += p;
        sq += p * p;
      }
      const double mean = sum / static_cast<double>(nq);
      const double var = std::max(0.0, sq / static_cast<double>(nq) - mean * mean);
      s[j] += mean + gamma * var;
    }
  }
  return average_pool(s, pool);
}

}  // namespace kvc::reference
