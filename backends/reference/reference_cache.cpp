#include "backends/reference/reference_cache.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "backends/kernel_abi.h"
#include "backends/reference/attention.h"
#include "backends/reference/eviction.h"
#include "backends/reference/lowrank_basis.h"
#include "backends/reference/quantize.h"
#include "backends/reference/retention_scores.h"
#include "ir/layout.h"
#include "support/diagnostics.h"
#include "support/half.h"

namespace kvc::reference {

namespace {

constexpr float kHalfMax = 65504.0f;

std::string layer_name(int layer) { return "layer " + std::to_string(layer); }

bool is_window_selection(ir::RetentionPolicy p) {
  return p == ir::RetentionPolicy::SnapKV || p == ir::RetentionPolicy::CAKE;
}

// Mirrors ir/layout.cpp: the first layer of a CrossLayer group counts the group's basis.
bool layer_owns_basis(const ir::Module& m, int layer) {
  const ir::LowRank& lr = m.layers[static_cast<std::size_t>(layer)].lowrank;
  if (lr.rank == 0) return false;
  if (lr.sharing != ir::BasisSharing::CrossLayer) return true;
  for (int i = 0; i < layer; ++i) {
    const ir::LowRank& o = m.layers[static_cast<std::size_t>(i)].lowrank;
    if (o.sharing == ir::BasisSharing::CrossLayer && o.basis_group == lr.basis_group) return false;
  }
  return true;
}

}  // namespace

ReferenceLayerCache::ReferenceLayerCache(const ir::Module& module, int layer) {
  if (layer < 0 || layer >= static_cast<int>(module.layers.size()))
    throw Error("reference cache: " + layer_name(layer) + " out of range (module has " +
                std::to_string(module.layers.size()) + " layer plans)");
  const ir::ModelShape& shape = module.model;
  if (shape.kv_heads <= 0 || shape.q_heads <= 0 || shape.head_dim <= 0)
    throw Error("reference cache: q_heads, kv_heads and head_dim must be positive");
  if (shape.q_heads % shape.kv_heads != 0)
    throw Error("reference cache: q_heads " + std::to_string(shape.q_heads) + " is not a multiple of kv_heads " +
                std::to_string(shape.kv_heads));
  if (module.workload.context <= 0) throw Error("reference cache: workload.context must be positive");
  plan_ = module.layers[static_cast<std::size_t>(layer)];
  q_heads_ = shape.q_heads;
  kv_heads_ = shape.kv_heads;
  head_dim_ = shape.head_dim;
  group_ = q_heads_ / kv_heads_;

  const std::string where = "reference cache: " + layer_name(layer) + ": ";
  if (plan_.lowrank.rank < 0 || plan_.lowrank.rank > head_dim_)
    throw Error(where + "rank " + std::to_string(plan_.lowrank.rank) + " outside [0, head_dim]");
  if (plan_.residual < 0) throw Error(where + "negative residual");
  const ir::Retention& r = plan_.retention;
  if (r.budget < 0 || r.sink < 0 || r.window < 0 || r.pool < 0 || !(r.gamma >= 0.0) || !std::isfinite(r.gamma))
    throw Error(where + "retention budget, sink, window, pool and gamma must be non-negative");
  block_ = ir::token_block(plan_);
  tail_cap_ = ir::tail_capacity(plan_);
  key_dims_ = ir::key_dims(plan_, head_dim_);
  check_format(plan_.key, key_dims_, block_, (where + "key").c_str());
  check_format(plan_.value, head_dim_, block_, (where + "value").c_str());

  capacity_ = ir::main_block_capacity(plan_, module.workload.context);
  block_bytes_ = ir::block_bytes(plan_, head_dim_);
  sink_ = r.policy == ir::RetentionPolicy::SnapKV ? 0 : r.sink;
  const bool lowrank = plan_.lowrank.rank > 0;
  basis_counted_ = lowrank && plan_.lowrank.source == ir::BasisSource::Prefill && layer_owns_basis(module, layer);
  stages_ = (lowrank && plan_.lowrank.source == ir::BasisSource::Prefill) || is_window_selection(r.policy);
  staging_ = stages_;

  const std::size_t hd = static_cast<std::size_t>(head_dim_), c = static_cast<std::size_t>(tail_cap_);
  heads_.resize(static_cast<std::size_t>(kv_heads_));
  for (Head& head : heads_) {
    head.block_pool.assign(static_cast<std::size_t>(capacity_ * block_bytes_), 0);
    for (std::int64_t s = capacity_ - 1; s >= 0; --s) head.free_slots.push_back(s);
    head.tail_k.assign(c * hd, 0);
    head.tail_v.assign(c * hd, 0);
    if (ir::keeps_scores(plan_)) {
      head.slot_scores.assign(static_cast<std::size_t>(capacity_ * block_), 0.0f);
      head.tail_scores.assign(c, 0.0f);
    }
    if (basis_counted_) head.basis.assign(hd * static_cast<std::size_t>(plan_.lowrank.rank), 0.0f);
  }
}

void ReferenceLayerCache::check_token(const float* k, const float* v) const {
  const std::size_t n = static_cast<std::size_t>(kv_heads_) * static_cast<std::size_t>(head_dim_);
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(k[i]) || std::fabs(k[i]) > kHalfMax || !std::isfinite(v[i]) || std::fabs(v[i]) > kHalfMax)
      throw Error("reference cache: key/value element " + std::to_string(i) + " of token " + std::to_string(seen_) +
                  " is not finite or outside the fp16 range");
  }
}

void ReferenceLayerCache::append(const float* k, const float* v, std::int64_t n_tokens) {
  if (n_tokens < 0) throw Error("reference cache: negative token count");
  if (n_tokens > 0 && (!k || !v)) throw Error("reference cache: append of null keys or values");
  const std::size_t row = static_cast<std::size_t>(kv_heads_) * static_cast<std::size_t>(head_dim_);
  std::vector<std::uint16_t> k16(row), v16(row);
  for (std::int64_t t = 0; t < n_tokens; ++t) {
    const float* kt = k + static_cast<std::size_t>(t) * row;
    const float* vt = v + static_cast<std::size_t>(t) * row;
    check_token(kt, vt);
    for (std::size_t i = 0; i < row; ++i) {
      k16[i] = float_to_half(kt[i]);
      v16[i] = float_to_half(vt[i]);
    }
    if (staging_) {
      staged_k_.insert(staged_k_.end(), k16.begin(), k16.end());
      staged_v_.insert(staged_v_.end(), v16.begin(), v16.end());
      ++seen_;
    } else {
      enter_token(k16.data(), v16.data());
    }
  }
}

float ReferenceLayerCache::initial_score(int h) const {
  // CAKE keeps its prefill indicator as the starting score; H2O starts from zero.
  if (selecting_ && !heads_[static_cast<std::size_t>(h)].slot_scores.empty() &&
      plan_.retention.policy == ir::RetentionPolicy::CAKE)
    return static_cast<float>(heads_[static_cast<std::size_t>(h)].prefill_scores[static_cast<std::size_t>(seen_)]);
  return 0.0f;
}

void ReferenceLayerCache::enter_token(const std::uint16_t* k, const std::uint16_t* v) {
  const std::size_t hd = static_cast<std::size_t>(head_dim_), b = static_cast<std::size_t>(block_);
  if (tail_cap_ == 0) {
    // Nothing is compressed: the token is a 1-token fp16 block.
    std::vector<float> kf(hd), vf(hd);
    for (int h = 0; h < kv_heads_; ++h) {
      for (std::size_t d = 0; d < hd; ++d) {
        kf[d] = half_to_float(k[static_cast<std::size_t>(h) * hd + d]);
        vf[d] = half_to_float(v[static_cast<std::size_t>(h) * hd + d]);
      }
      const float score = initial_score(h);
      place_block(h, kf.data(), vf.data(), seen_, &score);
    }
    ++seen_;
    return;
  }
  if (n_tail_ == tail_cap_) {
    std::vector<float> kf(b * hd), vf(b * hd);
    for (int h = 0; h < kv_heads_; ++h) {
      Head& head = heads_[static_cast<std::size_t>(h)];
      for (std::size_t i = 0; i < b * hd; ++i) {
        kf[i] = half_to_float(head.tail_k[i]);
        vf[i] = half_to_float(head.tail_v[i]);
      }
      place_block(h, kf.data(), vf.data(), seen_ - n_tail_, head.tail_scores.empty() ? nullptr : head.tail_scores.data());
      // The tail keeps its order: drop its oldest B tokens.
      std::copy(head.tail_k.begin() + static_cast<std::ptrdiff_t>(b * hd), head.tail_k.end(), head.tail_k.begin());
      std::copy(head.tail_v.begin() + static_cast<std::ptrdiff_t>(b * hd), head.tail_v.end(), head.tail_v.begin());
      if (!head.tail_scores.empty())
        std::copy(head.tail_scores.begin() + static_cast<std::ptrdiff_t>(b), head.tail_scores.end(),
                  head.tail_scores.begin());
    }
    n_tail_ -= block_;
  }
  const std::size_t at = static_cast<std::size_t>(n_tail_);
  for (int h = 0; h < kv_heads_; ++h) {
    Head& head = heads_[static_cast<std::size_t>(h)];
    std::copy(k + static_cast<std::size_t>(h) * hd, k + static_cast<std::size_t>(h + 1) * hd,
              head.tail_k.begin() + static_cast<std::ptrdiff_t>(at * hd));
    std::copy(v + static_cast<std::size_t>(h) * hd, v + static_cast<std::size_t>(h + 1) * hd,
              head.tail_v.begin() + static_cast<std::ptrdiff_t>(at * hd));
    if (!head.tail_scores.empty()) head.tail_scores[at] = initial_score(h);
  }
  ++n_tail_;
  ++seen_;
}

double ReferenceLayerCache::block_score(const Head& head, std::size_t candidate, const float* incoming_scores) const {
  const bool incoming = candidate == head.held.size();
  double s = 0.0;
  for (int t = 0; t < block_; ++t) {
    if (incoming) {
      s += incoming_scores ? incoming_scores[t] : 0.0f;
    } else {
      const std::size_t i = static_cast<std::size_t>(head.held[candidate].slot * block_ + t);
      s += head.slot_scores.empty() ? 0.0 : head.slot_scores[i];
    }
  }
  return s;
}

std::size_t ReferenceLayerCache::choose_victim(const Head& head, std::int64_t incoming_pos,
                                               const float* incoming_scores) const {
  const std::size_t n = head.held.size();
  EvictionContext ctx{plan_.retention.policy, sink_,   plan_.retention.window, block_, seen_, selecting_,
                      protect_from_,          head.prefill_scores};
  return choose_eviction_victim(
      ctx, n, [&](std::size_t i) { return i == n ? incoming_pos : head.held[i].first_pos; },
      [&](std::size_t i) { return block_score(head, i, incoming_scores); });
}

void ReferenceLayerCache::place_block(int h, const float* k, const float* v, std::int64_t first_pos,
                                      const float* scores) {
  Head& head = heads_[static_cast<std::size_t>(h)];
  const std::size_t hd = static_cast<std::size_t>(head_dim_), b = static_cast<std::size_t>(block_);
  std::vector<float> coeff;
  const float* keys = k;
  const int rank = plan_.lowrank.rank;
  if (rank > 0) {
    if (!head.basis_ready)
      throw Error("reference cache: low-rank plan has no basis for KV head " + std::to_string(h) +
                  " (set_basis, or end_prefill for a prefill basis, before tokens are compressed)");
    const std::size_t rk = static_cast<std::size_t>(rank);
    coeff.resize(b * rk);
    for (std::size_t t = 0; t < b; ++t)
      for (std::size_t r = 0; r < rk; ++r) {
        double s = 0.0;
        for (std::size_t d = 0; d < hd; ++d) s += static_cast<double>(head.basis[d * rk + r]) * k[t * hd + d];
        coeff[t * rk + r] = static_cast<float>(s);
      }
    keys = coeff.data();
  }

  std::int64_t slot = 0;
  if (!head.free_slots.empty()) {
    slot = head.free_slots.back();
    head.free_slots.pop_back();
  } else {
    if (plan_.retention.policy == ir::RetentionPolicy::Full)
      throw Error("reference cache: more tokens than workload.context (" + std::to_string(seen_ + 1) +
                  " tokens, full retention keeps " + std::to_string(capacity_) + " blocks)");
    const std::size_t victim = choose_victim(head, first_pos, scores);
    if (victim == head.held.size()) return;  // the incoming block itself is dropped
    slot = head.held[victim].slot;
    head.held.erase(head.held.begin() + static_cast<std::ptrdiff_t>(victim));
  }
  encode_block(plan_, head_dim_, keys, v, head.block_pool.data() + slot * block_bytes_);
  if (!head.slot_scores.empty())
    for (std::size_t t = 0; t < b; ++t)
      head.slot_scores[static_cast<std::size_t>(slot) * b + t] = scores ? scores[t] : 0.0f;
  head.held.push_back({slot, first_pos});
}

std::vector<float> ReferenceLayerCache::staged_keys(int kv_head) const {
  head_at(kv_head);
  if (!staging_) throw Error("reference cache: staged_keys outside prefill staging");
  const std::size_t hd = static_cast<std::size_t>(head_dim_);
  const std::size_t row = static_cast<std::size_t>(kv_heads_) * hd;
  std::vector<float> keys(static_cast<std::size_t>(seen_) * hd);
  for (std::int64_t t = 0; t < seen_; ++t)
    for (std::size_t d = 0; d < hd; ++d)
      keys[static_cast<std::size_t>(t) * hd + d] =
          half_to_float(staged_k_[static_cast<std::size_t>(t) * row + static_cast<std::size_t>(kv_head) * hd + d]);
  return keys;
}

void ReferenceLayerCache::end_prefill(std::span<const float> last_queries) {
  if (!stages_) return;
  if (!staging_) throw Error("reference cache: end_prefill called twice");
  const std::int64_t prompt = seen_;
  const std::size_t hd = static_cast<std::size_t>(head_dim_);
  const std::size_t row = static_cast<std::size_t>(kv_heads_) * hd;
  const bool select = is_window_selection(plan_.retention.policy);
  std::int64_t n_q = 0;
  if (select) {
    const std::size_t q_row = static_cast<std::size_t>(q_heads_) * hd;
    if (last_queries.size() % q_row != 0)
      throw Error("reference cache: end_prefill queries are not a whole number of [q_heads][head_dim] rows");
    n_q = static_cast<std::int64_t>(last_queries.size() / q_row);
    if (prompt > 0 && (n_q < 1 || n_q > prompt))
      throw Error("reference cache: " + std::string(ir::to_string(plan_.retention.policy)) +
                  " needs between 1 and " + std::to_string(prompt) + " window queries at end_prefill, got " +
                  std::to_string(n_q));
  }

  for (int h = 0; h < kv_heads_; ++h) {
    Head& head = heads_[static_cast<std::size_t>(h)];
    const bool need_basis = plan_.lowrank.rank > 0 && !head.basis_ready;
    if (!need_basis && !(select && prompt > 0)) continue;
    const std::vector<float> keys = staged_keys(h);
    if (need_basis) {
      if (!basis_counted_)
        throw Error("reference cache: KV head " + std::to_string(h) +
                    " of a cross-layer group member needs the group's basis (set_basis) before end_prefill");
      head.basis = principal_key_basis(keys.data(), prompt, head_dim_, plan_.lowrank.rank);
      head.basis_ready = true;
    }
    if (select && prompt > 0) {
      WindowQueries w;
      w.q = last_queries.data() + static_cast<std::size_t>(h) * static_cast<std::size_t>(group_) * hd;
      w.n = static_cast<int>(n_q);
      w.heads = group_;
      w.row_stride = static_cast<std::int64_t>(q_heads_) * head_dim_;
      head.prefill_scores = plan_.retention.policy == ir::RetentionPolicy::SnapKV
                                ? snapkv_token_scores(keys.data(), prompt, head_dim_, w, plan_.retention.pool)
                                : cake_token_scores(keys.data(), prompt, head_dim_, w, plan_.retention.gamma, plan_.retention.pool);
    }
  }

  // Replay the prompt through the partition (and, for SnapKV/CAKE, the selection).
  std::vector<std::uint16_t> staged_k, staged_v;
  staged_k.swap(staged_k_);
  staged_v.swap(staged_v_);
  staging_ = false;
  selecting_ = select && prompt > 0;
  protect_from_ = prompt - n_q;
  seen_ = 0;
  for (std::int64_t t = 0; t < prompt; ++t)
    enter_token(staged_k.data() + static_cast<std::size_t>(t) * row, staged_v.data() + static_cast<std::size_t>(t) * row);
  selecting_ = false;
  for (Head& head : heads_) std::vector<double>().swap(head.prefill_scores);
}

void ReferenceLayerCache::set_basis(int kv_head, std::span<const float> basis) {
  if (plan_.lowrank.rank == 0) throw Error("reference cache: set_basis on a plan without low rank");
  if (kv_head < 0 || kv_head >= kv_heads_) throw Error("reference cache: KV head " + std::to_string(kv_head) + " out of range");
  const std::size_t want = static_cast<std::size_t>(head_dim_) * static_cast<std::size_t>(plan_.lowrank.rank);
  if (basis.size() != want)
    throw Error("reference cache: basis has " + std::to_string(basis.size()) + " values, want head_dim*rank = " +
                std::to_string(want));
  for (float x : basis)
    if (!std::isfinite(x)) throw Error("reference cache: basis is not finite");
  Head& head = heads_[static_cast<std::size_t>(kv_head)];
  if (!head.held.empty()) throw Error("reference cache: set_basis after tokens were compressed with another basis");
  head.basis.assign(basis.begin(), basis.end());
  head.basis_ready = true;
}

void ReferenceLayerCache::attend(const float* q, float* out) {
  if (staging_) throw Error("reference cache: attend before end_prefill (the prompt is still staged)");
  if (!q || !out) throw Error("reference cache: attend with null query or output");
  const std::size_t hd = static_cast<std::size_t>(head_dim_), g = static_cast<std::size_t>(group_);
  const bool scores = ir::keeps_scores(plan_);
  for (int h = 0; h < kv_heads_; ++h) {
    Head& head = heads_[static_cast<std::size_t>(h)];
    const std::vector<const std::uint8_t*> blocks = block_pointers(h);
    const std::size_t n_main = blocks.size() * static_cast<std::size_t>(block_);
    const std::size_t n = n_main + static_cast<std::size_t>(n_tail_);
    std::vector<float> probs(scores ? g * n : 0);
    kvc_attend_args args{};
    args.blocks = blocks.data();
    args.n_blocks = static_cast<std::int64_t>(blocks.size());
    args.tail_k = head.tail_k.data();
    args.tail_v = head.tail_v.data();
    args.n_tail = n_tail_;
    args.q = q + static_cast<std::size_t>(h) * g * hd;
    args.basis = head.basis_ready ? head.basis.data() : nullptr;
    args.out = out + static_cast<std::size_t>(h) * g * hd;
    args.probs = scores ? probs.data() : nullptr;
    reference_attend(plan_, head_dim_, group_, &args);
    if (!scores) continue;
    // H2O adds this query's attention to each token's score; CAKE replaces the
    // score by it, average-pooled over the held order.
    const bool accumulate = plan_.retention.policy == ir::RetentionPolicy::H2O;
    const std::vector<double> p = decode_attention_scores(probs, g, n, accumulate ? 1 : plan_.retention.pool);
    auto update = [&](float& slot, std::size_t t) {
      slot = accumulate ? slot + static_cast<float>(p[t]) : static_cast<float>(p[t]);
    };
    for (std::size_t i = 0; i < head.held.size(); ++i)
      for (std::size_t t = 0; t < static_cast<std::size_t>(block_); ++t)
        update(head.slot_scores[static_cast<std::size_t>(head.held[i].slot * block_) + t],
               i * static_cast<std::size_t>(block_) + t);
    for (std::size_t t = 0; t < static_cast<std::size_t>(n_tail_); ++t) update(head.tail_scores[t], n_main + t);
  }
}

std::int64_t ReferenceLayerCache::bytes_allocated() const {
  std::int64_t bytes = 0;
  for (const Head& head : heads_) {
    bytes += static_cast<std::int64_t>(head.block_pool.size());
    bytes += static_cast<std::int64_t>(head.tail_k.size() + head.tail_v.size()) * 2;
    bytes += static_cast<std::int64_t>(head.slot_scores.size() + head.tail_scores.size()) * 4;
    if (basis_counted_) bytes += static_cast<std::int64_t>(head.basis.size()) * 4;
  }
  return bytes;
}

const ReferenceLayerCache::Head& ReferenceLayerCache::head_at(int kv_head) const {
  if (kv_head < 0 || kv_head >= kv_heads_) throw Error("reference cache: KV head " + std::to_string(kv_head) + " out of range");
  return heads_[static_cast<std::size_t>(kv_head)];
}

std::int64_t ReferenceLayerCache::held_blocks(int kv_head) const {
  return static_cast<std::int64_t>(head_at(kv_head).held.size());
}

std::vector<std::int64_t> ReferenceLayerCache::block_positions(int kv_head) const {
  std::vector<std::int64_t> pos;
  for (const HeldBlock& b : head_at(kv_head).held) pos.push_back(b.first_pos);
  return pos;
}

std::vector<const std::uint8_t*> ReferenceLayerCache::block_pointers(int kv_head) const {
  const Head& head = head_at(kv_head);
  std::vector<const std::uint8_t*> ptrs;
  for (const HeldBlock& b : head.held) ptrs.push_back(head.block_pool.data() + b.slot * block_bytes_);
  return ptrs;
}

const std::uint16_t* ReferenceLayerCache::tail_k(int kv_head) const {
  return head_at(kv_head).tail_k.data();
}
const std::uint16_t* ReferenceLayerCache::tail_v(int kv_head) const {
  return head_at(kv_head).tail_v.data();
}
const std::vector<float>& ReferenceLayerCache::basis(int kv_head) const {
  static const std::vector<float> none;
  const Head& head = head_at(kv_head);
  return head.basis_ready ? head.basis : none;
}

std::vector<float> ReferenceLayerCache::token_scores(int kv_head) const {
  const Head& head = head_at(kv_head);
  std::vector<float> s;
  if (head.slot_scores.empty()) return s;
  for (const HeldBlock& b : head.held)
    for (int t = 0; t < block_; ++t) s.push_back(head.slot_scores[static_cast<std::size_t>(b.slot * block_ + t)]);
  for (std::int64_t t = 0; t < n_tail_; ++t) s.push_back(head.tail_scores[static_cast<std::size_t>(t)]);
  return s;
}

}  // namespace kvc::reference
