#pragma once
// ReferenceLayerCache: the KV cache of ONE sequence in ONE layer (all its KV heads),
// stored exactly as ir/layout.h says, kept by the plan's retention policy and read
// by reference_attend. Plain and slow on purpose: it defines what the runtime store
// must do, token by token.
//
// Storage per KV head (bytes_allocated() sums these; it equals
// ir::layer_bytes_per_sequence for the same module and layer):
//   * main_block_capacity(plan, context) block slots of block_bytes(plan, head_dim),
//     allocated up front and reused when a block is evicted;
//   * the fp16 tail: K and V [C][head_dim];
//   * H2O and CAKE: one fp32 score per token slot (capacity*B block slots + C tail);
//   * low rank with BasisSource::Prefill, when this layer owns its basis (PerLayer,
//     or the first layer of a CrossLayer group): the fp32 basis [head_dim][rank].
//     Calibrated bases are shared by the batch and a CrossLayer basis by its group,
//     so this cache keeps a private copy of those (set_basis) and does not count it.
//
// Token partition (ir/layout.h): a new token enters the tail; if the tail already
// holds C tokens its oldest B are first flushed into a main block (keys projected
// onto the basis for low rank, then K and V encoded). With C == 0 every token goes
// straight to a 1-token fp16 block. Every stored element passes through fp16 first
// (the tail is fp16), so block codes are computed from fp16-rounded inputs.
//
// Prefill staging: when the plan needs something only the end of the prompt gives
// (a BasisSource::Prefill basis, or SnapKV / CAKE selection), appended tokens wait
// in an fp16 staging area [n][kv_heads][head_dim] until end_prefill(). That area is
// a transient workspace (freed by end_prefill, not counted by bytes_allocated);
// attend() before end_prefill() is an error. end_prefill() computes the bases, scores
// the prompt tokens, and then replays the prompt through the partition above.
//
// Retention: only whole main blocks are evicted, never the tail. When a flush finds
// all block slots used, one block among the held ones and the incoming one (the
// "candidates") is dropped:
//   StreamingLLM: the oldest candidate that holds none of the first `sink` tokens
//                 (if every candidate does, the incoming block).
//   H2O:          the candidate with the lowest score (sum of its tokens' scores;
//                 ties: the oldest) among those holding no sink token and no token of
//                 the newest `window` tokens seen; if none qualifies, the StreamingLLM
//                 rule. Scores: every attend() adds to each held token the attention
//                 probability it got, summed over the g query heads of its KV head.
//   SnapKV:       at end_prefill(last_queries), token scores from the window queries
//                 (retention_scores.h); blocks holding any of the last n_q prompt
//                 tokens are protected, and the replay keeps the highest-scored of the
//                 rest (ties: the older is dropped first). Afterwards FIFO: StreamingLLM
//                 with sink 0.
//   CAKE:         at end_prefill(last_queries), token scores mean + gamma * variance
//                 over the window queries, selected like SnapKV; afterwards every
//                 attend() REPLACES each held token's score by its current attention
//                 (summed over the group; CAKE's decode re-scoring has no variance
//                 term and the layout has one fp32 per token), and eviction is the H2O
//                 rule with those scores.
//   Full:         never evicts; a flush past capacity (more tokens than
//                 workload.context) is an error.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "ir/plan.h"

namespace kvc::reference {

class ReferenceLayerCache {
 public:
  // Throws kvc::Error when the module's shape or the layer's plan cannot be stored.
  ReferenceLayerCache(const ir::Module& module, int layer);

  // k, v: [n_tokens][kv_heads][head_dim]; keys post-RoPE. Values must be finite and
  // within the fp16 range.
  void append(const float* k, const float* v, std::int64_t n_tokens);
  // last_queries: [n_q][q_heads][head_dim], the last n_q prompt queries (the
  // observation window); required by SnapKV and CAKE, ignored otherwise. Allowed
  // once; a no-op for plans that do not stage.
  void end_prefill(std::span<const float> last_queries = {});
  // Calibrated or shared (CrossLayer) basis [head_dim][rank] of one KV head; must
  // come before any token of a low-rank plan is compressed.
  void set_basis(int kv_head, std::span<const float> basis);

  // q: [q_heads][head_dim] -> out: [q_heads][head_dim]. Query head h reads KV head
  // h / (q_heads / kv_heads).
  void attend(const float* q, float* out);

  // What the store holds (see the class comment).
  std::int64_t bytes_allocated() const;

  // Inspection, for tests and for comparing other implementations against this one.
  const ir::LayerPlan& plan() const { return plan_; }
  int kv_heads() const { return kv_heads_; }
  int q_heads() const { return q_heads_; }
  int head_dim() const { return head_dim_; }
  bool staging() const { return staging_; }
  std::int64_t tokens_seen() const { return seen_; }
  std::int64_t tail_tokens() const { return n_tail_; }
  std::int64_t block_capacity() const { return capacity_; }
  std::int64_t held_blocks(int kv_head) const;
  // Position (index in the appended token stream) of each held block's first token, oldest first.
  std::vector<std::int64_t> block_positions(int kv_head) const;
  // The held blocks of one KV head, oldest first, as kvc_attend_args wants them.
  std::vector<const std::uint8_t*> block_pointers(int kv_head) const;
  const std::uint16_t* tail_k(int kv_head) const;
  const std::uint16_t* tail_v(int kv_head) const;
  // [head_dim][rank], empty until known.
  const std::vector<float>& basis(int kv_head) const;
  // The staged prompt keys of one KV head, [tokens_seen][head_dim] (fp32 from fp16),
  // while staging; what a prefill basis is computed from.
  std::vector<float> staged_keys(int kv_head) const;
  // Per held token (blocks oldest first, then tail) its current score (H2O, CAKE).
  std::vector<float> token_scores(int kv_head) const;

 private:
  struct HeldBlock {
    std::int64_t slot = 0;
    std::int64_t first_pos = 0;
  };
  struct Head {
    std::vector<std::uint8_t> block_pool;  // capacity_ slots of block_bytes_
    std::vector<std::int64_t> free_slots;
    std::vector<HeldBlock> held;           // oldest first
    std::vector<std::uint16_t> tail_k, tail_v;  // [C][head_dim]
    std::vector<float> slot_scores;        // [capacity_][B], H2O/CAKE
    std::vector<float> tail_scores;        // [C]
    std::vector<float> basis;              // [head_dim][rank]
    bool basis_ready = false;
    std::vector<double> prefill_scores;    // SnapKV/CAKE replay only: score by prompt position
  };

  void check_token(const float* k, const float* v) const;
  // A token (fp16, [kv_heads][head_dim]) enters the partition.
  void enter_token(const std::uint16_t* k, const std::uint16_t* v);
  // Encodes B tokens (fp32 from fp16) of KV head h into a block slot, evicting when full.
  void place_block(int h, const float* k, const float* v, std::int64_t first_pos, const float* scores);
  // Index into head.held of the block to drop, or head.held.size() for the incoming one.
  std::size_t choose_victim(const Head& head, std::int64_t incoming_pos, const float* incoming_scores) const;
  double block_score(const Head& head, std::size_t candidate, const float* incoming_scores) const;
  float initial_score(int h) const;
  const Head& head_at(int kv_head) const;  // throws kvc::Error when out of range

  ir::LayerPlan plan_;
  int q_heads_ = 0, kv_heads_ = 0, head_dim_ = 0, group_ = 1;
  int block_ = 1;     // B
  int tail_cap_ = 0;  // C
  int key_dims_ = 0;
  std::int64_t capacity_ = 0;
  std::int64_t block_bytes_ = 0;
  int sink_ = 0;      // leading positions whose blocks the policy protects
  bool basis_counted_ = false;
  bool stages_ = false;          // the plan needs end_prefill
  bool staging_ = false;         // still before end_prefill
  bool selecting_ = false;       // replaying the prompt under SnapKV/CAKE selection
  std::int64_t protect_from_ = 0;  // during selection: blocks reaching this position are kept
  std::int64_t seen_ = 0;
  std::int64_t n_tail_ = 0;
  std::vector<std::uint16_t> staged_k_, staged_v_;
  std::vector<Head> heads_;
};

}  // namespace kvc::reference
