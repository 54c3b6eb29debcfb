#include "backends/reference/attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "backends/reference/quantize.h"
#include "backends/reference/rotation.h"
#include "ir/layout.h"
#include "support/diagnostics.h"
#include "support/half.h"

namespace kvc::reference {

namespace {

template <typename Q>
double dot(const Q* a, const float* b, int n) {
  double s = 0.0;
  for (int i = 0; i < n; ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return s;
}

// Softmax over scores[0..n) and the weighted value sum; value(t) returns v_t. When
// `rotation` is given, values before `n_rotated` are in its rotated domain: their
// weighted sum is un-rotated once (in double) before the others are added.
template <typename ValueAt>
void softmax_and_mix(const std::vector<double>& scores, int head_dim, ValueAt value, float* out, float* probs,
                     const ir::QuantFormat* rotation = nullptr, std::size_t n_rotated = 0) {
  const std::size_t n = scores.size();
  std::fill(out, out + head_dim, 0.0f);
  if (n == 0) return;
  const double top = *std::max_element(scores.begin(), scores.end());
  std::vector<double> w(n);
  double sum = 0.0;
  for (std::size_t t = 0; t < n; ++t) sum += (w[t] = std::exp(scores[t] - top));
  std::vector<double> acc(static_cast<std::size_t>(head_dim), 0.0);
  for (std::size_t t = 0; t < n; ++t) {
    if (rotation && t == n_rotated) unrotate(rotation->seed, head_dim, acc.data());
    const double p = w[t] / sum;
    if (probs) probs[t] = static_cast<float>(p);
    const float* v = value(t);
    for (int d = 0; d < head_dim; ++d) acc[static_cast<std::size_t>(d)] += p * v[d];
  }
  if (rotation && n == n_rotated) unrotate(rotation->seed, head_dim, acc.data());
  for (int d = 0; d < head_dim; ++d) out[d] = static_cast<float>(acc[static_cast<std::size_t>(d)]);
}

}  // namespace

void reference_attend(const ir::LayerPlan& plan, int head_dim, int g, const kvc_attend_args* a) {
  if (!a) throw Error("reference_attend: null arguments");
  if (head_dim <= 0 || g <= 0) throw Error("reference_attend: head_dim and group size must be positive");
  if (a->n_blocks < 0 || a->n_tail < 0) throw Error("reference_attend: negative token count");
  if (a->n_blocks > 0 && !a->blocks) throw Error("reference_attend: blocks is null");
  if (a->n_tail > 0 && (!a->tail_k || !a->tail_v)) throw Error("reference_attend: tail is null");
  if (!a->q || !a->out) throw Error("reference_attend: q or out is null");
  const int rank = plan.lowrank.rank;
  if (rank > 0 && a->n_blocks > 0 && !a->basis) throw Error("reference_attend: low-rank plan without a basis");
  if (rank > 0 && plan.key.rotation != ir::Rotation::None)
    throw Error("reference_attend: low-rank key coefficients are not rotated");
  const bool keys_rotated = plan.key.bits < 16 && plan.key.rotation == ir::Rotation::Hadamard;
  const bool values_rotated = plan.value.bits < 16 && plan.value.rotation == ir::Rotation::Hadamard;
  const int b = ir::token_block(plan);
  const int kd = ir::key_dims(plan, head_dim);
  const std::size_t hd = static_cast<std::size_t>(head_dim);

  // Dequantize every held token once (keys in their stored dims).
  const std::size_t n_main = static_cast<std::size_t>(a->n_blocks) * static_cast<std::size_t>(b);
  const std::size_t n_tail = static_cast<std::size_t>(a->n_tail);
  std::vector<float> main_k(n_main * static_cast<std::size_t>(kd)), main_v(n_main * hd);
  for (std::int64_t i = 0; i < a->n_blocks; ++i) {
    if (!a->blocks[i]) throw Error("reference_attend: block pointer is null");
    const std::size_t first = static_cast<std::size_t>(i) * static_cast<std::size_t>(b);
    decode_block(plan, head_dim, a->blocks[i], main_k.data() + first * static_cast<std::size_t>(kd),
                 main_v.data() + first * hd);
  }
  std::vector<float> tail_k(n_tail * hd), tail_v(n_tail * hd);
  for (std::size_t i = 0; i < n_tail * hd; ++i) {
    tail_k[i] = half_to_float(a->tail_k[i]);
    tail_v[i] = half_to_float(a->tail_v[i]);
  }

  const double inv_sqrt = 1.0 / std::sqrt(static_cast<double>(head_dim));
  const std::size_t n = n_main + n_tail;
  std::vector<float> q_proj(static_cast<std::size_t>(kd));
  std::vector<double> q_rotated(keys_rotated ? hd : 0);
  std::vector<double> scores(n);
  for (int h = 0; h < g; ++h) {
    const float* q = a->q + static_cast<std::size_t>(h) * hd;
    const float* q_main = q;
    if (keys_rotated) {
      // Block keys are stored rotated: (R q) . (R k) = q . k, so rotate the query once.
      std::copy(q, q + hd, q_rotated.begin());
      rotate(plan.key.seed, head_dim, q_rotated.data());
    }
    if (rank > 0) {
      // U^T q, accumulated in double, rounded once.
      for (int r = 0; r < rank; ++r) {
        double s = 0.0;
        for (int d = 0; d < head_dim; ++d)
          s += static_cast<double>(a->basis[static_cast<std::size_t>(d) * static_cast<std::size_t>(rank) +
                                            static_cast<std::size_t>(r)]) *
               q[d];
        q_proj[static_cast<std::size_t>(r)] = static_cast<float>(s);
      }
      q_main = q_proj.data();
    }
    for (std::size_t t = 0; t < n_main; ++t)
      scores[t] = (keys_rotated ? dot(q_rotated.data(), main_k.data() + t * hd, head_dim)
                                : dot(q_main, main_k.data() + t * static_cast<std::size_t>(kd), kd)) *
                  inv_sqrt;
    for (std::size_t t = 0; t < n_tail; ++t) scores[n_main + t] = dot(q, tail_k.data() + t * hd, head_dim) * inv_sqrt;
    auto value_at = [&](std::size_t t) {
      return t < n_main ? main_v.data() + t * hd : tail_v.data() + (t - n_main) * hd;
    };
    softmax_and_mix(scores, head_dim, value_at, a->out + static_cast<std::size_t>(h) * hd,
                    a->probs ? a->probs + static_cast<std::size_t>(h) * n : nullptr,
                    values_rotated ? &plan.value : nullptr, n_main);
  }
}

void exact_attention(const float* q, const float* k, const float* v, std::int64_t n, int head_dim, int g,
                     float* out, float* probs) {
  if (n < 0 || head_dim <= 0 || g <= 0) throw Error("exact_attention: bad shape");
  const std::size_t hd = static_cast<std::size_t>(head_dim), nt = static_cast<std::size_t>(n);
  const double inv_sqrt = 1.0 / std::sqrt(static_cast<double>(head_dim));
  std::vector<double> scores(nt);
  for (int h = 0; h < g; ++h) {
    const float* qh = q + static_cast<std::size_t>(h) * hd;
    for (std::size_t t = 0; t < nt; ++t) scores[t] = dot(qh, k + t * hd, head_dim) * inv_sqrt;
    softmax_and_mix(
        scores, head_dim, [&](std::size_t t) { return v + t * hd; }, out + static_cast<std::size_t>(h) * hd,
        probs ? probs + static_cast<std::size_t>(h) * nt : nullptr);
  }
}

}  // namespace kvc::reference
