#pragma once
// The block-eviction rule of every retention policy (reference_cache.h documents it
// policy by policy). The reference cache and the runtime store both call this one
// function, so the two cannot drift apart: they differ only in where blocks, scores
// and positions are kept.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "ir/plan.h"

namespace kvc::reference {

// Where a layer's cache stands when a flush finds every block slot used.
struct EvictionContext {
  ir::RetentionPolicy policy = ir::RetentionPolicy::StreamingLLM;
  int sink = 0;                   // leading tokens no eviction may drop
  int window = 0;                 // H2O/CAKE at decode: the newest `window` tokens stay
  int block = 1;                  // tokens per block (B)
  std::int64_t seen = 0;          // tokens seen so far
  bool selecting = false;         // SnapKV/CAKE prefill selection (replay) in progress
  std::int64_t protect_from = 0;  // while selecting: first position of the observation window
  std::span<const double> prefill_scores;  // while selecting: score by prompt position
};

// Candidates are blocks 0..n_held-1 (held, oldest first) and n_held (the incoming
// one). `first_pos(i)` is candidate i's first token position and `decode_score(i)`
// its accumulated score (H2O/CAKE at decode). Returns the candidate to drop.
std::size_t choose_eviction_victim(const EvictionContext& ctx, std::size_t n_held,
                                   const std::function<std::int64_t(std::size_t)>& first_pos,
                                   const std::function<double(std::size_t)>& decode_score);

}  // namespace kvc::reference
