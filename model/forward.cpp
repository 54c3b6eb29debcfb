#include "model/forward.h"

#include <cmath>

#include "model/attention.h"
#include "model/matvec.h"
#include "support/diagnostics.h"

namespace kvc::model {
namespace {

void rmsnorm(float* out, const float* x, const float* weight, int n, float eps) {
  float ss = 0.0f;
  for (int i = 0; i < n; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int i = 0; i < n; ++i) out[i] = weight[i] * (inv * x[i]);
}

}  // namespace

ForwardPass::ForwardPass(const Model& model, KVCacheInterface& cache) : model_(model), cache_(cache) {
  const ModelConfig& c = model.config;
  x_.resize(c.dim);
  xb_.resize(std::max(c.dim, c.q_dim()));
  q_.resize(c.q_dim());
  k_.resize(c.kv_dim());
  v_.resize(c.kv_dim());
  att_.resize(c.q_dim());
  h1_.resize(c.hidden);
  h3_.resize(c.hidden);
  logits_.resize(c.vocab);
}

void ForwardPass::begin_sequence() { cache_.begin_sequence(); }

void ForwardPass::check_token(int token, int pos) const {
  const ModelConfig& c = model_.config;
  if (token < 0 || token >= c.vocab)
    throw Error("forward pass: token id " + std::to_string(token) + " outside the vocabulary [0, " +
                std::to_string(c.vocab) + ")");
  if (pos < 0 || (c.context > 0 && pos >= c.context))
    throw Error("forward pass: position " + std::to_string(pos) + " outside the model's context of " +
                std::to_string(c.context));
}

void ForwardPass::embed(int token, float* x) const {
  const int dim = model_.config.dim;
  const float* row = model_.token_embedding.data() + static_cast<std::ptrdiff_t>(token) * dim;
  std::copy(row, row + dim, x);
}

void ForwardPass::classify(const float* x, float* logits) {
  const ModelConfig& c = model_.config;
  rmsnorm(xb_.data(), x, model_.final_norm.data(), c.dim, c.norm_eps);
  matvec(logits, model_.classifier_weights(), xb_.data(), c.vocab, c.dim);
}

// x += W2 (silu(W1 xn) * W3 xn), xn = rmsnorm(x).
void ForwardPass::ffn(const LayerWeights& w, float* x) {
  const ModelConfig& c = model_.config;
  rmsnorm(xb_.data(), x, w.ffn_norm.data(), c.dim, c.norm_eps);
  matvec(h1_.data(), w.w1.data(), xb_.data(), c.hidden, c.dim);
  matvec(h3_.data(), w.w3.data(), xb_.data(), c.hidden, c.dim);
  for (int i = 0; i < c.hidden; ++i) {
    const float g = h1_[i];
    h1_[i] = g / (1.0f + std::exp(-g)) * h3_[i];
  }
  matvec(xb_.data(), w.w2.data(), h1_.data(), c.dim, c.hidden);
  for (int i = 0; i < c.dim; ++i) x[i] += xb_[i];
}

const std::vector<float>& ForwardPass::forward(int token, int pos) {
  check_token(token, pos);
  const ModelConfig& c = model_.config;
  float* x = x_.data();
  embed(token, x);
  angles_.compute(pos, c.head_dim, c.rope_theta);
  for (int l = 0; l < c.layers; ++l) {
    const LayerWeights& w = model_.layers[l];
    rmsnorm(xb_.data(), x, w.attn_norm.data(), c.dim, c.norm_eps);
    matvec(q_.data(), w.wq.data(), xb_.data(), c.q_dim(), c.dim);
    matvec(k_.data(), w.wk.data(), xb_.data(), c.kv_dim(), c.dim);
    matvec(v_.data(), w.wv.data(), xb_.data(), c.kv_dim(), c.dim);
    apply_rope(q_.data(), c.q_heads, c.head_dim, c.rope, angles_);
    apply_rope(k_.data(), c.kv_heads, c.head_dim, c.rope, angles_);
    cache_.append(l, k_.data(), v_.data(), 1);
    cache_.attend(l, q_.data(), att_.data());
    matvec(xb_.data(), w.wo.data(), att_.data(), c.dim, c.q_dim());
    for (int i = 0; i < c.dim; ++i) x[i] += xb_[i];
    ffn(w, x);
  }
  classify(x, logits_.data());
  return logits_;
}

std::vector<float> ForwardPass::prefill(const std::vector<int>& tokens) {
  const ModelConfig& c = model_.config;
  const int n = static_cast<int>(tokens.size());
  if (n == 0) throw Error("forward pass: prefill of an empty prompt");
  for (int p = 0; p < n; ++p) check_token(tokens[p], p);
  begin_sequence();
  const CacheShape shape = cache_shape(c);
  const std::size_t dim = c.dim, qd = c.q_dim(), kvd = c.kv_dim();
  // Activations of the whole prompt, one row per position.
  std::vector<float> xs(n * dim), qs(n * qd), ks(n * kvd), vs(n * kvd);
  std::vector<RopeAngles> angles(n);
  for (int p = 0; p < n; ++p) {
    embed(tokens[p], xs.data() + p * dim);
    angles[p].compute(p, c.head_dim, c.rope_theta);
  }
  if (scores_.size() < static_cast<std::size_t>(n)) scores_.resize(n);
  for (int l = 0; l < c.layers; ++l) {
    const LayerWeights& w = model_.layers[l];
    for (int p = 0; p < n; ++p) {
      float* q = qs.data() + p * qd;
      float* k = ks.data() + p * kvd;
      rmsnorm(xb_.data(), xs.data() + p * dim, w.attn_norm.data(), c.dim, c.norm_eps);
      matvec(q, w.wq.data(), xb_.data(), c.q_dim(), c.dim);
      matvec(k, w.wk.data(), xb_.data(), c.kv_dim(), c.dim);
      matvec(vs.data() + p * kvd, w.wv.data(), xb_.data(), c.kv_dim(), c.dim);
      apply_rope(q, c.q_heads, c.head_dim, c.rope, angles[p]);
      apply_rope(k, c.kv_heads, c.head_dim, c.rope, angles[p]);
    }
    for (int p = 0; p < n; ++p) {
      float* x = xs.data() + p * dim;
      // Causal: position p sees positions 0..p of the prompt, in full precision.
      attend_exact(shape, qs.data() + p * qd, ks.data(), vs.data(), p + 1, att_.data(), scores_.data());
      matvec(xb_.data(), w.wo.data(), att_.data(), c.dim, c.q_dim());
      for (int i = 0; i < c.dim; ++i) x[i] += xb_[i];
      ffn(w, x);
    }
    cache_.append(l, ks.data(), vs.data(), n);
    cache_.end_prefill(l, qs.data(), n);
  }
  std::vector<float> logits(static_cast<std::size_t>(n) * c.vocab);
  for (int p = 0; p < n; ++p) classify(xs.data() + p * dim, logits.data() + static_cast<std::size_t>(p) * c.vocab);
  return logits;
}

}  // namespace kvc::model
