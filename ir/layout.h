#pragma once
// The storage model of a LayerPlan: which tokens are compressed, how a block of
// them is laid out, and how many bytes a plan takes. This file is the single
// source of truth for bytes: the `estimate` pass, the reference cache and the
// runtime store all call these functions, so their numbers agree exactly.
//
// Token partition of one (sequence, layer, KV head)
// -------------------------------------------------
//   B = token_block(plan): the group size of whichever of K or V is quantized
//       per channel (both must then agree), otherwise 1. Tokens are compressed B
//       at a time, so that a per-channel group always holds B whole tokens.
//   C = tail_capacity(plan): the fp16 tail (the residual window). 0 when the layer
//       compresses nothing (K and V at 16 bits and no low rank); else max(R, B).
//   A new token enters the tail. If the tail already holds C tokens, its oldest B
//   tokens are first flushed: keys projected onto the basis (low rank), then K and
//   V quantized, and written as one main block. With C = 0 tokens go straight to
//   main blocks of one fp16 token. So the tail always holds the newest tokens and
//   keys and values are always partitioned the same way.
//   Retention evicts whole main blocks (a per-channel group cannot lose one token);
//   the tail is never evicted.
//
// Capacity, for N = workload.context tokens per sequence
// ------------------------------------------------------
//   kept   = N for Full retention, else min(retention.budget, N)
//   blocks = ceil(max(kept - C, 0) / B) main blocks per (sequence, layer, KV head)
//   The store allocates exactly `blocks` main blocks plus the C-token tail.
//
// Main block layout (one KV head, B tokens; K section then V section)
// ------------------------------------------------------------------
//   dims = rank for low-rank keys, else head_dim (values always head_dim).
//   bits 16    : fp16 [B][dims], token-major.
//   PerChannel : fp16 scale[dims], fp16 min[dims], then for each channel c the B
//                codes of that channel packed (B*bits/8 bytes): [dims][B*bits/8].
//   PerToken   : for each token t: fp16 scale[dims/G], fp16 min[dims/G] (MinMax
//                only: Symmetric and LloydMax store no min), then the dims codes
//                packed (dims*bits/8 bytes).
//   Packing: codes form a little-endian bit stream: code i occupies bits
//   [i*bits, (i+1)*bits) counting from bit 0 of byte 0. 3-bit codes cross bytes.
//   Codes of a rotated format (QuantFormat::rotation) are those of the rotated
//   vectors; rotation changes no byte count. The quantizers' formulas are in
//   backends/reference/quantize.h (KIVI asymmetric MinMax, Symmetric, LloydMax).
//
// Side data
// ---------
//   Tail: fp16 K [C][head_dim] and fp16 V [C][head_dim] (K post-RoPE, full dims).
//   Scores (H2O, CAKE): one fp32 accumulated score per token slot (main + tail).
//   Basis (low rank): fp32 [head_dim][rank] per KV head; per sequence when computed
//   at prefill, once for the batch when calibrated; CrossLayer groups count one basis.
#include <cstdint>

#include "ir/plan.h"

namespace kvc::ir {

int token_block(const LayerPlan& plan);
int tail_capacity(const LayerPlan& plan);
int key_dims(const LayerPlan& plan, int head_dim);
std::int64_t kept_tokens(const LayerPlan& plan, std::int64_t context);
std::int64_t main_block_capacity(const LayerPlan& plan, std::int64_t context);

// Bytes of one group's stored parameters: scale and min (MinMax), or one scale.
int group_param_bytes(const QuantFormat& f);
// Bytes of one tensor section of a main block of `block` tokens with `dims` channels.
std::int64_t section_bytes(const QuantFormat& f, int dims, int block);
// Bytes of one main block (K + V) of one KV head.
std::int64_t block_bytes(const LayerPlan& plan, int head_dim);
std::int64_t tail_bytes(const LayerPlan& plan, int head_dim);
bool keeps_scores(const LayerPlan& plan);
std::int64_t basis_bytes_per_head(const LayerPlan& plan, int head_dim);

// Bytes of one layer for the whole batch, by kind.
struct LayerBytes {
  std::int64_t main = 0;    // compressed blocks
  std::int64_t tail = 0;    // fp16 residual window
  std::int64_t scores = 0;  // eviction scores
  std::int64_t basis = 0;   // low-rank bases (0 for a layer whose cross-layer basis another layer counts)
  std::int64_t total() const { return main + tail + scores + basis; }
};

// Bytes of one sequence's share of one layer: everything per sequence, without
// calibrated (batch-shared) bases.
std::int64_t layer_bytes_per_sequence(const Module& m, int layer);
LayerBytes layer_bytes(const Module& m, int layer);
std::int64_t total_bytes(const Module& m);
// The uncompressed fp16 cache for the same model and workload.
std::int64_t fp16_bytes(const Module& m);

}  // namespace kvc::ir
