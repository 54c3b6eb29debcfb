#include "runtime/layer_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "backends/reference/eviction.h"
#include "backends/reference/lowrank_basis.h"
#include "backends/reference/quantize.h"
#include "backends/reference/retention_scores.h"
#include "ir/layout.h"
#include "runtime/status_error.h"
#include "support/half.h"

namespace kvc::runtime {

namespace {

constexpr float kHalfMax = 65504.0f;

std::size_t sz(std::int64_t x) { return static_cast<std::size_t>(x); }

bool is_window_selection(ir::RetentionPolicy p) {
  return p == ir::RetentionPolicy::SnapKV || p == ir::RetentionPolicy::CAKE;
}

void check_values(const float* x, std::size_t n, const char* what, std::int64_t row) {
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i]) || std::fabs(x[i]) > kHalfMax)
      fail(KVC_ERROR_INVALID_ARGUMENT, std::string(what) + " element " + std::to_string(i % sz(row)) + " of token " +
                                           std::to_string(i / sz(row)) + " is not finite or outside the fp16 range");
}

}  // namespace

LayerStore::LayerStore(const ir::Module& module, int layer)
    : layer_(layer) {
  const ir::ModelShape& shape = module.model;
  const std::string where = "layer " + std::to_string(layer) + ": ";
  plan_ = module.layers[sz(layer)];
  q_heads_ = shape.q_heads;
  kv_heads_ = shape.kv_heads;
  head_dim_ = shape.head_dim;
  group_ = q_heads_ / kv_heads_;
  context_ = module.workload.context;
  batch_ = module.workload.batch;
  if (plan_.lowrank.rank < 0 || plan_.lowrank.rank > head_dim_)
    fail(KVC_ERROR_PLAN, where + "rank " + std::to_string(plan_.lowrank.rank) + " outside [0, head_dim]");
  if (plan_.lowrank.rank > 0 && plan_.lowrank.sharing == ir::BasisSharing::None)
    fail(KVC_ERROR_PLAN, where + "low rank without basis sharing (per_layer or cross_layer)");
  if (plan_.residual < 0) fail(KVC_ERROR_PLAN, where + "negative residual");
  const ir::Retention& r = plan_.retention;
  if (r.budget < 0 || r.sink < 0 || r.window < 0 || r.pool < 0 || !(r.gamma >= 0.0) || !std::isfinite(r.gamma))
    fail(KVC_ERROR_PLAN, where + "retention budget, sink, window, pool and gamma must be non-negative");
  block_ = ir::token_block(plan_);
  tail_cap_ = ir::tail_capacity(plan_);
  key_dims_ = ir::key_dims(plan_, head_dim_);
  try {
    reference::check_format(plan_.key, key_dims_, block_, (where + "key").c_str());
    reference::check_format(plan_.value, head_dim_, block_, (where + "value").c_str());
  } catch (const Error& e) {
    fail(KVC_ERROR_PLAN, e.message());
  }
  capacity_ = ir::main_block_capacity(plan_, context_);
  block_bytes_ = ir::block_bytes(plan_, head_dim_);
  scores_ = ir::keeps_scores(plan_);
  window_selection_ = is_window_selection(r.policy);
  sink_ = r.policy == ir::RetentionPolicy::SnapKV ? 0 : r.sink;
  const bool prefill_basis = plan_.lowrank.rank > 0 && plan_.lowrank.source == ir::BasisSource::Prefill;
  stages_ = prefill_basis || window_selection_;

  const std::int64_t heads = batch_ * kv_heads_;
  pool_ = std::make_unique<BlockPool>(capacity_ * heads, block_bytes_);
  if (scores_) {
    block_scores_.assign(sz(pool_->slots() * block_), 0.0f);
    tail_scores_.assign(sz(heads * tail_cap_), 0.0f);
  }
  tail_k_.assign(sz(heads * tail_cap_ * head_dim_), 0);
  tail_v_.assign(tail_k_.size(), 0);
  slots_.resize(sz(batch_));
  kernel_ = make_reference_kernel(plan_, head_dim_, group_);
}

bool LayerStore::cross_layer_prefill() const {
  return plan_.lowrank.rank > 0 && plan_.lowrank.sharing == ir::BasisSharing::CrossLayer &&
         plan_.lowrank.source == ir::BasisSource::Prefill;
}

void LayerStore::set_basis_owner(LayerStore* owner) {
  basis_owner_ = owner;
  if (owner != this || plan_.lowrank.rank == 0) return;
  // Only the owner allocates (and so counts) the basis: per sequence slot for a
  // prefill basis, once for the batch for a calibrated one.
  const std::int64_t per_head = static_cast<std::int64_t>(head_dim_) * plan_.lowrank.rank;
  const std::int64_t n = plan_.lowrank.source == ir::BasisSource::Calibrated ? kv_heads_ : batch_ * kv_heads_;
  basis_.assign(sz(n * per_head), 0.0f);
  basis_ready_.assign(sz(n), 0);
}

void LayerStore::reset_kernel() { kernel_ = make_reference_kernel(plan_, head_dim_, group_); }

// --- storage addressing ---------------------------------------------------------

std::uint16_t* LayerStore::tail_k(int slot, int h) {
  return tail_k_.data() + sz((static_cast<std::int64_t>(slot) * kv_heads_ + h) * tail_cap_ * head_dim_);
}
std::uint16_t* LayerStore::tail_v(int slot, int h) {
  return tail_v_.data() + sz((static_cast<std::int64_t>(slot) * kv_heads_ + h) * tail_cap_ * head_dim_);
}
float* LayerStore::tail_scores(int slot, int h) {
  return tail_scores_.data() + sz((static_cast<std::int64_t>(slot) * kv_heads_ + h) * tail_cap_);
}
float* LayerStore::block_scores(std::int64_t pool_slot) { return block_scores_.data() + sz(pool_slot * block_); }

float* LayerStore::basis_storage(int slot, int h) {
  LayerStore& o = *basis_owner_;
  const std::int64_t per_head = static_cast<std::int64_t>(o.head_dim_) * o.plan_.lowrank.rank;
  const std::int64_t index = o.plan_.lowrank.source == ir::BasisSource::Calibrated
                                 ? h
                                 : static_cast<std::int64_t>(slot) * o.kv_heads_ + h;
  return o.basis_.data() + sz(index * per_head);
}

bool LayerStore::basis_ready(int slot, int h) const {
  const LayerStore& o = *basis_owner_;
  if (o.basis_ready_.empty()) return false;
  const std::int64_t index = o.plan_.lowrank.source == ir::BasisSource::Calibrated
                                 ? h
                                 : static_cast<std::int64_t>(slot) * o.kv_heads_ + h;
  return o.basis_ready_[sz(index)] != 0;
}

void LayerStore::set_basis_ready(int slot, int h, bool ready) {
  LayerStore& o = *basis_owner_;
  const std::int64_t index = o.plan_.lowrank.source == ir::BasisSource::Calibrated
                                 ? h
                                 : static_cast<std::int64_t>(slot) * o.kv_heads_ + h;
  o.basis_ready_[sz(index)] = ready ? 1 : 0;
}

const float* LayerStore::basis(int slot, int h) const {
  if (!basis_ready(slot, h)) return nullptr;
  return const_cast<LayerStore*>(this)->basis_storage(slot, h);
}

// --- slots ------------------------------------------------------------------------

void LayerStore::open_slot(int slot) {
  SlotState& s = slots_[sz(slot)];
  s = SlotState{};
  s.staging = stages_;
  s.heads.resize(sz(kv_heads_));
  if (plan_.lowrank.rank > 0 && plan_.lowrank.source == ir::BasisSource::Prefill && owns_basis())
    for (int h = 0; h < kv_heads_; ++h) set_basis_ready(slot, h, false);
}

void LayerStore::close_slot(int slot) {
  SlotState& s = slots_[sz(slot)];
  for (HeadState& head : s.heads)
    for (const Held& b : head.held) pool_->release(b.slot);
  s = SlotState{};
}

void LayerStore::copy_slot(int from, int to) {
  const SlotState& src = slots_[sz(from)];
  SlotState copy = src;
  for (int h = 0; h < kv_heads_; ++h) {
    for (Held& b : copy.heads[sz(h)].held) {
      const std::int64_t fresh = pool_->acquire();
      std::memcpy(pool_->data(fresh), pool_->data(b.slot), sz(block_bytes_));
      if (scores_) std::copy_n(block_scores(b.slot), block_, block_scores(fresh));
      b.slot = fresh;
    }
    std::copy_n(tail_k(from, h), tail_cap_ * head_dim_, tail_k(to, h));
    std::copy_n(tail_v(from, h), tail_cap_ * head_dim_, tail_v(to, h));
    if (scores_) std::copy_n(tail_scores(from, h), tail_cap_, tail_scores(to, h));
    if (owns_basis() && plan_.lowrank.rank > 0 && plan_.lowrank.source == ir::BasisSource::Prefill) {
      const bool ready = basis_ready(from, h);
      std::copy_n(basis_storage(from, h), head_dim_ * plan_.lowrank.rank, basis_storage(to, h));
      set_basis_ready(to, h, ready);
    }
  }
  slots_[sz(to)] = std::move(copy);
}

std::int64_t LayerStore::held_blocks(int slot, int kv_head) const {
  return static_cast<std::int64_t>(slots_[sz(slot)].heads[sz(kv_head)].held.size());
}

std::vector<std::int64_t> LayerStore::block_positions(int slot, int kv_head) const {
  std::vector<std::int64_t> pos;
  for (const Held& b : slots_[sz(slot)].heads[sz(kv_head)].held) pos.push_back(b.first_pos);
  return pos;
}

const std::uint8_t* LayerStore::block_data(int slot, int kv_head, std::size_t i) const {
  const SlotState& s = slots_[sz(slot)];
  if (kv_head < 0 || sz(kv_head) >= s.heads.size()) fail(KVC_ERROR_INVALID_ARGUMENT, "KV head out of range");
  const std::vector<Held>& held = s.heads[sz(kv_head)].held;
  if (i >= held.size()) fail(KVC_ERROR_INVALID_ARGUMENT, "block " + std::to_string(i) + " is not held");
  return pool_->data(held[i].slot);
}

// --- append -----------------------------------------------------------------------

void LayerStore::check_append(int slot, const float* k, const float* v, std::int64_t n) const {
  const SlotState& s = slots_[sz(slot)];
  const std::string where = "layer " + std::to_string(layer_) + ": ";
  if (n < 0) fail(KVC_ERROR_INVALID_ARGUMENT, where + "negative token count " + std::to_string(n));
  if (n > 0 && (!k || !v)) fail(KVC_ERROR_INVALID_ARGUMENT, where + "append of null keys or values");
  if (s.waiting_group)
    fail(KVC_ERROR_STATE, where + "append after end_prefill while the cross-layer group is still in prefill");
  if (n > context_ - s.seen)
    fail(KVC_ERROR_CAPACITY, where + "appending " + std::to_string(n) + " tokens to a sequence holding " +
                                 std::to_string(s.seen) + " would pass the plan's context of " +
                                 std::to_string(context_) + " tokens");
  if (plan_.lowrank.rank > 0 && !s.staging && n > 0)
    for (int h = 0; h < kv_heads_; ++h)
      if (!basis_ready(slot, h))
        fail(KVC_ERROR_STATE, where + "low-rank keys need the calibrated basis of KV head " + std::to_string(h) +
                                  " (kvc_set_calibrated_basis) before tokens are appended");
  const std::int64_t row = static_cast<std::int64_t>(kv_heads_) * head_dim_;
  check_values(k, sz(n * row), "key", row);
  check_values(v, sz(n * row), "value", row);
}

void LayerStore::append(int slot, const float* k, const float* v, std::int64_t n) {
  SlotState& s = slots_[sz(slot)];
  const std::size_t row = sz(static_cast<std::int64_t>(kv_heads_) * head_dim_);
  std::vector<std::uint16_t> k16(row), v16(row);
  for (std::int64_t t = 0; t < n; ++t) {
    const float* kt = k + sz(t) * row;
    const float* vt = v + sz(t) * row;
    for (std::size_t i = 0; i < row; ++i) {
      k16[i] = float_to_half(kt[i]);
      v16[i] = float_to_half(vt[i]);
    }
    if (s.staging) {
      s.staged_k.insert(s.staged_k.end(), k16.begin(), k16.end());
      s.staged_v.insert(s.staged_v.end(), v16.begin(), v16.end());
      ++s.seen;
    } else {
      enter_token(slot, k16.data(), v16.data());
    }
  }
}

float LayerStore::initial_score(int slot, int h) const {
  // CAKE starts a prompt token from its prefill indicator; H2O from zero.
  const SlotState& s = slots_[sz(slot)];
  if (s.selecting && scores_ && plan_.retention.policy == ir::RetentionPolicy::CAKE)
    return static_cast<float>(s.heads[sz(h)].prefill_scores[sz(s.seen)]);
  return 0.0f;
}

void LayerStore::enter_token(int slot, const std::uint16_t* k, const std::uint16_t* v) {
  SlotState& s = slots_[sz(slot)];
  const std::size_t hd = sz(head_dim_), b = sz(block_), c = sz(tail_cap_);
  if (tail_cap_ == 0) {
    // Nothing is compressed: the token is a 1-token fp16 block.
    std::vector<float> kf(hd), vf(hd);
    for (int h = 0; h < kv_heads_; ++h) {
      for (std::size_t d = 0; d < hd; ++d) {
        kf[d] = half_to_float(k[sz(h) * hd + d]);
        vf[d] = half_to_float(v[sz(h) * hd + d]);
      }
      const float score = initial_score(slot, h);
      place_block(slot, h, kf.data(), vf.data(), s.seen, &score);
    }
    ++s.seen;
    return;
  }
  if (s.n_tail == tail_cap_) {
    std::vector<float> kf(b * hd), vf(b * hd);
    for (int h = 0; h < kv_heads_; ++h) {
      std::uint16_t* tk = tail_k(slot, h);
      std::uint16_t* tv = tail_v(slot, h);
      for (std::size_t i = 0; i < b * hd; ++i) {
        kf[i] = half_to_float(tk[i]);
        vf[i] = half_to_float(tv[i]);
      }
      place_block(slot, h, kf.data(), vf.data(), s.seen - s.n_tail, scores_ ? tail_scores(slot, h) : nullptr);
      // The tail keeps its order: drop its oldest B tokens.
      std::copy(tk + b * hd, tk + c * hd, tk);
      std::copy(tv + b * hd, tv + c * hd, tv);
      if (scores_) std::copy(tail_scores(slot, h) + b, tail_scores(slot, h) + c, tail_scores(slot, h));
    }
    s.n_tail -= block_;
  }
  const std::size_t at = sz(s.n_tail);
  for (int h = 0; h < kv_heads_; ++h) {
    std::copy_n(k + sz(h) * hd, hd, tail_k(slot, h) + at * hd);
    std::copy_n(v + sz(h) * hd, hd, tail_v(slot, h) + at * hd);
    if (scores_) tail_scores(slot, h)[at] = initial_score(slot, h);
  }
  ++s.n_tail;
  ++s.seen;
}

double LayerStore::block_score(const HeadState& head, std::size_t candidate, const float* incoming_scores) const {
  const bool incoming = candidate == head.held.size();
  double s = 0.0;
  for (int t = 0; t < block_; ++t) {
    if (incoming)
      s += incoming_scores ? incoming_scores[t] : 0.0f;
    else
      s += scores_ ? block_scores_[sz(head.held[candidate].slot * block_ + t)] : 0.0;
  }
  return s;
}

std::size_t LayerStore::choose_victim(int slot, int h, std::int64_t incoming_pos,
                                      const float* incoming_scores) const {
  const SlotState& st = slots_[sz(slot)];
  const HeadState& head = st.heads[sz(h)];
  const std::size_t n = head.held.size();
  reference::EvictionContext ctx{plan_.retention.policy, sink_,           plan_.retention.window, block_, st.seen,
                                 st.selecting,           st.protect_from, head.prefill_scores};
  return reference::choose_eviction_victim(
      ctx, n, [&](std::size_t i) { return i == n ? incoming_pos : head.held[i].first_pos; },
      [&](std::size_t i) { return block_score(head, i, incoming_scores); });
}

void LayerStore::place_block(int slot, int h, const float* k, const float* v, std::int64_t first_pos,
                             const float* scores) {
  HeadState& head = slots_[sz(slot)].heads[sz(h)];
  const std::size_t hd = sz(head_dim_), b = sz(block_);
  std::vector<float> coeff;
  const float* keys = k;
  const int rank = plan_.lowrank.rank;
  if (rank > 0) {
    const float* u = basis(slot, h);
    if (!u) fail(KVC_ERROR_INTERNAL, "layer " + std::to_string(layer_) + ": no basis for KV head " + std::to_string(h));
    const std::size_t rk = sz(rank);
    coeff.resize(b * rk);
    for (std::size_t t = 0; t < b; ++t)
      for (std::size_t r = 0; r < rk; ++r) {
        double s = 0.0;
        for (std::size_t d = 0; d < hd; ++d) s += static_cast<double>(u[d * rk + r]) * k[t * hd + d];
        coeff[t * rk + r] = static_cast<float>(s);
      }
    keys = coeff.data();
  }

  std::int64_t pool_slot = 0;
  if (static_cast<std::int64_t>(head.held.size()) < capacity_) {
    pool_slot = pool_->acquire();
  } else {
    // check_append keeps Full plans within the context, so they never get here.
    if (plan_.retention.policy == ir::RetentionPolicy::Full)
      fail(KVC_ERROR_INTERNAL, "layer " + std::to_string(layer_) + ": full retention ran out of blocks");
    const std::size_t victim = choose_victim(slot, h, first_pos, scores);
    if (victim == head.held.size()) return;  // the incoming block itself is dropped
    pool_slot = head.held[victim].slot;
    head.held.erase(head.held.begin() + static_cast<std::ptrdiff_t>(victim));
  }
  if (append_) {
    const kvc_append_args args{keys, v, pool_->data(pool_slot)};
    append_(&args);
  } else {
    reference::encode_block(plan_, head_dim_, keys, v, pool_->data(pool_slot));
  }
  if (scores_)
    for (std::size_t t = 0; t < b; ++t) block_scores(pool_slot)[t] = scores ? scores[t] : 0.0f;
  head.held.push_back({pool_slot, first_pos});
}

// --- end of prefill -----------------------------------------------------------------

void LayerStore::check_end_prefill(int slot, const float* window, std::int64_t n_q) const {
  const SlotState& s = slots_[sz(slot)];
  const std::string where = "layer " + std::to_string(layer_) + ": ";
  if (!stages_) return;
  if (!s.staging || s.waiting_group) fail(KVC_ERROR_STATE, where + "end_prefill called twice");
  if (!window_selection_) return;
  if (n_q < 0) fail(KVC_ERROR_INVALID_ARGUMENT, where + "negative window query count");
  // An empty prompt has no queries either: a positive count there could only
  // describe a buffer nobody meant, and the finiteness check below would read it.
  if (s.seen == 0 && n_q > 0)
    fail(KVC_ERROR_INVALID_ARGUMENT, where + "an empty prompt takes no window queries at end_prefill, got " +
                                         std::to_string(n_q));
  if (s.seen > 0 && (n_q < 1 || n_q > s.seen))
    fail(KVC_ERROR_INVALID_ARGUMENT, where + ir::to_string(plan_.retention.policy) + " needs between 1 and " +
                                         std::to_string(s.seen) + " window queries at end_prefill, got " +
                                         std::to_string(n_q));
  if (n_q > 0 && !window) fail(KVC_ERROR_INVALID_ARGUMENT, where + "window queries are null");
  const std::int64_t row = static_cast<std::int64_t>(q_heads_) * head_dim_;
  for (std::int64_t i = 0; i < n_q * row; ++i)
    if (!std::isfinite(window[i])) fail(KVC_ERROR_INVALID_ARGUMENT, where + "window queries are not finite");
}

bool LayerStore::begin_end_prefill(int slot, const float* window, std::int64_t n_q) {
  SlotState& s = slots_[sz(slot)];
  if (!stages_) return false;
  if (window_selection_ && s.seen > 0)
    s.window.assign(window, window + n_q * static_cast<std::int64_t>(q_heads_) * head_dim_);
  s.waiting_group = true;
  return cross_layer_prefill();
}

std::vector<float> LayerStore::staged_keys(int slot, int h) const {
  const SlotState& s = slots_[sz(slot)];
  const std::size_t hd = sz(head_dim_), row = sz(static_cast<std::int64_t>(kv_heads_) * head_dim_);
  std::vector<float> keys(sz(s.seen) * hd);
  for (std::int64_t t = 0; t < s.seen; ++t)
    for (std::size_t d = 0; d < hd; ++d)
      keys[sz(t) * hd + d] = half_to_float(s.staged_k[sz(t) * row + sz(h) * hd + d]);
  return keys;
}

void LayerStore::compute_group_basis(int slot, const std::vector<LayerStore*>& group) {
  for (int h = 0; h < kv_heads_; ++h) {
    std::vector<float> keys;
    std::int64_t n = 0;
    for (const LayerStore* member : group) {
      const std::vector<float> k = member->staged_keys(slot, h);
      keys.insert(keys.end(), k.begin(), k.end());
      n += member->slots_[sz(slot)].seen;
    }
    const std::vector<float> u = reference::principal_key_basis(keys.data(), n, head_dim_, plan_.lowrank.rank);
    std::copy(u.begin(), u.end(), basis_storage(slot, h));
    set_basis_ready(slot, h, true);
  }
}

void LayerStore::finish_prefill(int slot) {
  SlotState& s = slots_[sz(slot)];
  const std::int64_t prompt = s.seen;
  const std::size_t row = sz(static_cast<std::int64_t>(kv_heads_) * head_dim_);
  const std::int64_t n_q =
      window_selection_ ? static_cast<std::int64_t>(s.window.size()) / (static_cast<std::int64_t>(q_heads_) * head_dim_)
                        : 0;
  const bool select = window_selection_ && prompt > 0;
  for (int h = 0; h < kv_heads_; ++h) {
    const bool need_basis = plan_.lowrank.rank > 0 && !basis_ready(slot, h);
    if (!need_basis && !select) continue;
    const std::vector<float> keys = staged_keys(slot, h);
    if (need_basis) {
      // A per-layer prefill basis (cross-layer ones were computed for the group).
      std::vector<float> u = reference::principal_key_basis(keys.data(), prompt, head_dim_, plan_.lowrank.rank);
      std::copy(u.begin(), u.end(), basis_storage(slot, h));
      set_basis_ready(slot, h, true);
    }
    if (select) {
      reference::WindowQueries w;
      w.q = s.window.data() + sz(h) * sz(group_) * sz(head_dim_);
      w.n = static_cast<int>(n_q);
      w.heads = group_;
      w.row_stride = static_cast<std::int64_t>(q_heads_) * head_dim_;
      s.heads[sz(h)].prefill_scores =
          plan_.retention.policy == ir::RetentionPolicy::SnapKV
              ? reference::snapkv_token_scores(keys.data(), prompt, head_dim_, w, plan_.retention.pool)
              : reference::cake_token_scores(keys.data(), prompt, head_dim_, w, plan_.retention.gamma, plan_.retention.pool);
    }
  }

  // Replay the prompt through the partition (and, for SnapKV/CAKE, the selection).
  std::vector<std::uint16_t> staged_k, staged_v;
  staged_k.swap(s.staged_k);
  staged_v.swap(s.staged_v);
  std::vector<float>().swap(s.window);
  s.staging = false;
  s.waiting_group = false;
  s.selecting = select;
  s.protect_from = prompt - n_q;
  s.seen = 0;
  for (std::int64_t t = 0; t < prompt; ++t) enter_token(slot, staged_k.data() + sz(t) * row, staged_v.data() + sz(t) * row);
  s.selecting = false;
  for (HeadState& head : s.heads) std::vector<double>().swap(head.prefill_scores);
}

// --- attention --------------------------------------------------------------------

void LayerStore::check_attend(int slot) const {
  const SlotState& s = slots_[sz(slot)];
  if (s.staging)
    fail(KVC_ERROR_STATE, "layer " + std::to_string(layer_) + ": attend before end_prefill" +
                              (s.waiting_group ? " of every layer of its cross-layer group" : "") +
                              " (the prompt is still staged)");
  // Attention over no keys has no value; the kernels would return zeros and hide
  // a missing append (a decode step appends its token before it attends).
  if (s.seen == 0)
    fail(KVC_ERROR_STATE, "layer " + std::to_string(layer_) + ": attend to a sequence holding no tokens (append first)");
}

void LayerStore::attend_head(int slot, int h, const float* q, float* out) {
  SlotState& s = slots_[sz(slot)];
  HeadState& head = s.heads[sz(h)];
  const std::size_t g = sz(group_);
  std::vector<const std::uint8_t*> blocks;
  blocks.reserve(head.held.size());
  for (const Held& b : head.held) blocks.push_back(pool_->data(b.slot));
  const std::size_t n_main = blocks.size() * sz(block_);
  const std::size_t n = n_main + sz(s.n_tail);
  std::vector<float> probs(scores_ ? g * n : 0);
  kvc_attend_args args{};
  args.blocks = blocks.data();
  args.n_blocks = static_cast<std::int64_t>(blocks.size());
  args.tail_k = tail_cap_ > 0 ? tail_k(slot, h) : nullptr;
  args.tail_v = tail_cap_ > 0 ? tail_v(slot, h) : nullptr;
  args.n_tail = s.n_tail;
  args.q = q;
  args.basis = plan_.lowrank.rank > 0 ? basis(slot, h) : nullptr;
  args.out = out;
  args.probs = scores_ ? probs.data() : nullptr;
  kernel_->attend(args);
  if (!scores_) return;
  // H2O adds this query's attention to each token's score; CAKE replaces the
  // score by it, average-pooled over the held order (as the reference cache).
  const bool accumulate = plan_.retention.policy == ir::RetentionPolicy::H2O;
  const std::vector<double> p = reference::decode_attention_scores(probs, g, n, accumulate ? 1 : plan_.retention.pool);
  auto update = [&](float& score, std::size_t t) {
    score = accumulate ? score + static_cast<float>(p[t]) : static_cast<float>(p[t]);
  };
  for (std::size_t i = 0; i < head.held.size(); ++i)
    for (std::size_t t = 0; t < sz(block_); ++t) update(block_scores(head.held[i].slot)[t], i * sz(block_) + t);
  float* ts = tail_scores(slot, h);
  for (std::size_t t = 0; t < sz(s.n_tail); ++t) update(ts[t], n_main + t);
}

// --- calibrated basis ---------------------------------------------------------------

void LayerStore::set_calibrated_basis(int kv_head, const float* u) {
  const std::size_t n = sz(static_cast<std::int64_t>(head_dim_) * plan_.lowrank.rank);
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(u[i])) fail(KVC_ERROR_INVALID_ARGUMENT, "calibrated basis is not finite");
  std::copy_n(u, n, basis_storage(0, kv_head));
  set_basis_ready(0, kv_head, true);
}

// --- bytes ------------------------------------------------------------------------

std::int64_t LayerStore::shared_basis_bytes() const {
  if (!owns_basis() || plan_.lowrank.rank == 0 || plan_.lowrank.source != ir::BasisSource::Calibrated) return 0;
  return static_cast<std::int64_t>(basis_.size()) * 4;
}

std::int64_t LayerStore::bytes_allocated() const {
  return pool_->bytes() + static_cast<std::int64_t>(block_scores_.size() + tail_scores_.size()) * 4 +
         static_cast<std::int64_t>(tail_k_.size() + tail_v_.size()) * 2 + static_cast<std::int64_t>(basis_.size()) * 4;
}

std::int64_t LayerStore::bytes_per_slot() const {
  if (batch_ == 0) return 0;
  return (bytes_allocated() - shared_basis_bytes()) / batch_;
}

std::int64_t LayerStore::bytes_used(int slot) const {
  const SlotState& s = slots_[sz(slot)];
  std::int64_t held = 0;
  for (const HeadState& head : s.heads) held += static_cast<std::int64_t>(head.held.size());
  std::int64_t bytes = held * block_bytes_ + static_cast<std::int64_t>(kv_heads_) * s.n_tail * head_dim_ * 4;
  if (scores_) bytes += (held * block_ + static_cast<std::int64_t>(kv_heads_) * s.n_tail) * 4;
  if (owns_basis() && plan_.lowrank.rank > 0 && plan_.lowrank.source == ir::BasisSource::Prefill)
    for (int h = 0; h < kv_heads_; ++h)
      if (basis_ready(slot, h)) bytes += static_cast<std::int64_t>(head_dim_) * plan_.lowrank.rank * 4;
  return bytes;
}

std::int64_t LayerStore::staging_bytes(int slot) const {
  const SlotState& s = slots_[sz(slot)];
  return static_cast<std::int64_t>(s.staged_k.size() + s.staged_v.size()) * 2 +
         static_cast<std::int64_t>(s.window.size()) * 4;
}

}  // namespace kvc::runtime
