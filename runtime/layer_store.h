#pragma once
// The store of ONE layer for the whole batch: a block pool shared by the batch's
// sequences, and per sequence slot (0 .. batch-1) and KV head the fp16 tail,
// eviction scores, the list of held blocks and (when this layer owns it) the
// low-rank basis. All of it is allocated when the runtime is created, so its size
// is exactly ir::layer_bytes for the plan's batch.
//
// Token by token it does what backends/reference/reference_cache.h specifies
// (partition, prefill staging and replay, every retention rule, score updates);
// the only differences are where bytes live (a shared pool instead of one pool per
// head; each head still holds at most main_block_capacity blocks) and that a
// cross-layer prefill basis is computed here from all layers of the group
// (Store::end_prefill drives that).
//
// Not thread-safe per slot: the Store serialises calls on one sequence. Different
// slots may be used from different threads at once (the pool is locked).
#include <cstdint>
#include <memory>
#include <vector>

#include "backends/kernel_abi.h"
#include "ir/plan.h"
#include "runtime/attend_kernel.h"
#include "runtime/block_pool.h"

namespace kvc::runtime {

class LayerStore {
 public:
  // Throws StatusError(KVC_ERROR_PLAN) when the layer's plan cannot be stored.
  LayerStore(const ir::Module& module, int layer);

  // The layer whose storage holds this layer's basis (itself unless it is a
  // non-first member of a cross-layer group). Set once by the Store.
  void set_basis_owner(LayerStore* owner);
  bool owns_basis() const { return basis_owner_ == this; }
  bool cross_layer_prefill() const;
  bool stages() const { return stages_; }

  // --- per sequence slot ------------------------------------------------------
  void open_slot(int slot);             // an empty sequence
  void close_slot(int slot);            // gives its blocks back
  void copy_slot(int from, int to);     // fork: plain copy into fresh blocks
  // Checks a whole append before any of it is stored (StatusError).
  void check_append(int slot, const float* k, const float* v, std::int64_t n) const;
  void append(int slot, const float* k, const float* v, std::int64_t n);
  // Checks and records the window queries; returns true when the layer still has to
  // wait for the other layers of its cross-layer group before it can finish.
  void check_end_prefill(int slot, const float* window, std::int64_t n_q) const;
  bool begin_end_prefill(int slot, const float* window, std::int64_t n_q);
  // Bases of this (owner) layer's slot from the staged keys of `group` (in layer order).
  void compute_group_basis(int slot, const std::vector<LayerStore*>& group);
  // Scores the prompt, replays it through the partition and leaves staging.
  void finish_prefill(int slot);
  bool staging(int slot) const { return slots_[static_cast<std::size_t>(slot)].staging; }
  bool waiting_for_group(int slot) const { return slots_[static_cast<std::size_t>(slot)].waiting_group; }

  // One KV head of one slot: q [g][head_dim] -> out [g][head_dim]; updates scores.
  void attend_head(int slot, int kv_head, const float* q, float* out);
  void check_attend(int slot) const;

  // --- layer-wide -------------------------------------------------------------
  void set_calibrated_basis(int kv_head, const float* basis);
  void set_kernel(std::unique_ptr<AttendKernel> kernel) { kernel_ = std::move(kernel); }
  void reset_kernel();
  // A generated encoder for this layer's blocks (kvc_append_fn); null = the reference encoder.
  void set_append_encoder(kvc_append_fn encoder) { append_ = encoder; }

  const ir::LayerPlan& plan() const { return plan_; }
  int kv_heads() const { return kv_heads_; }
  int group_size() const { return group_; }
  std::int64_t blocks_used() const { return pool_->used(); }
  std::int64_t blocks_total() const { return pool_->slots(); }
  std::int64_t held_blocks(int slot, int kv_head) const;
  std::vector<std::int64_t> block_positions(int slot, int kv_head) const;
  // Bytes of held block i (oldest first) of (slot, kv_head), for inspection.
  const std::uint8_t* block_data(int slot, int kv_head, std::size_t i) const;
  std::int64_t block_bytes() const { return block_bytes_; }
  std::int64_t tokens_seen(int slot) const { return slots_[static_cast<std::size_t>(slot)].seen; }
  std::int64_t tail_tokens(int slot) const { return slots_[static_cast<std::size_t>(slot)].n_tail; }
  std::int64_t staging_bytes(int slot) const;

  // Bytes this layer has allocated for the batch (main + tail + scores + owned bases).
  std::int64_t bytes_allocated() const;
  // One slot's share (everything per sequence, without a batch-shared calibrated basis).
  std::int64_t bytes_per_slot() const;
  // Bytes of calibrated bases this layer owns (shared by the batch).
  std::int64_t shared_basis_bytes() const;
  // What slot `slot` occupies now: held blocks, used tail tokens, their scores, its ready bases.
  std::int64_t bytes_used(int slot) const;

 private:
  struct Held {
    std::int64_t slot = 0;       // pool slot
    std::int64_t first_pos = 0;  // position of the block's first token in the sequence
  };
  struct HeadState {
    std::vector<Held> held;             // oldest first
    std::vector<double> prefill_scores;  // SnapKV/CAKE replay only
  };
  struct SlotState {
    bool staging = false, selecting = false, waiting_group = false;
    std::int64_t seen = 0, n_tail = 0, protect_from = 0;
    std::vector<std::uint16_t> staged_k, staged_v;  // [n][kv_heads][head_dim]
    std::vector<float> window;                      // [n_q][q_heads][head_dim], while waiting for the group
    std::vector<HeadState> heads;
  };

  std::uint16_t* tail_k(int slot, int h);
  std::uint16_t* tail_v(int slot, int h);
  float* tail_scores(int slot, int h);
  float* block_scores(std::int64_t pool_slot);
  // This layer's basis of (slot, h), in the owner's storage; null when not ready.
  const float* basis(int slot, int h) const;
  float* basis_storage(int slot, int h);
  bool basis_ready(int slot, int h) const;
  void set_basis_ready(int slot, int h, bool ready);
  std::vector<float> staged_keys(int slot, int h) const;

  float initial_score(int slot, int h) const;
  void enter_token(int slot, const std::uint16_t* k, const std::uint16_t* v);
  void place_block(int slot, int h, const float* k, const float* v, std::int64_t first_pos, const float* scores);
  std::size_t choose_victim(int slot, int h, std::int64_t incoming_pos, const float* incoming_scores) const;
  double block_score(const HeadState& head, std::size_t candidate, const float* incoming_scores) const;

  ir::LayerPlan plan_;
  int layer_ = 0;
  int q_heads_ = 0, kv_heads_ = 0, head_dim_ = 0, group_ = 1;
  int block_ = 1, tail_cap_ = 0, key_dims_ = 0, sink_ = 0;
  std::int64_t context_ = 0, capacity_ = 0, block_bytes_ = 0, batch_ = 0;
  bool scores_ = false, stages_ = false, window_selection_ = false;
  bool counts_basis_ = false;  // owner of a basis this layer's bytes include

  std::unique_ptr<BlockPool> pool_;
  std::vector<float> block_scores_;              // [pool slot][B]
  std::vector<std::uint16_t> tail_k_, tail_v_;   // [batch][kv_heads][C][head_dim]
  std::vector<float> tail_scores_;               // [batch][kv_heads][C]
  std::vector<float> basis_;                     // owner: Prefill [batch][kv_heads][hd*rank]; Calibrated [kv_heads][..]
  std::vector<char> basis_ready_;                // owner: per (slot, head) or per head
  LayerStore* basis_owner_ = this;
  std::vector<SlotState> slots_;
  std::unique_ptr<AttendKernel> kernel_;
  kvc_append_fn append_ = nullptr;
};

}  // namespace kvc::runtime
