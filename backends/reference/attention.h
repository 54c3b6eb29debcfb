#pragma once
// Reference decode attention: the semantics of kvc_attend_fn (backends/kernel_abi.h).
//
// For one KV head and its g query heads, over the held tokens in order (main
// blocks oldest first, B = ir::token_block(plan) tokens each, then the fp16 tail):
//   k_t, v_t  = the dequantized stored key / value (x^ of backends/reference/quantize.h)
//               rotated formats (backends/reference/rotation.h): block keys and values
//               are held rotated, k_t = R^T k^_t and v_t = R^T v^_t. The query is
//               rotated once (R q, so score_t = (R q) . k^_t / sqrt(head_dim)) and the
//               blocks' weighted value sum is un-rotated once per query head, both in
//               double, before the tail's fp16 values (never rotated) are added.
//   score_t   = q . k_t / sqrt(head_dim)
//               low rank: block keys are coefficients c (rank dims) of the key in the
//               basis U [head_dim][rank] (k ~= U c), so score_t = (U^T q) . c / sqrt(head_dim);
//               the query is projected once per call. Tail keys are full fp16 keys.
//   p_t       = exp(score_t - max) / sum exp(score - max)   (two passes)
//   out       = sum_t p_t v_t
// Numerics: dot products, the softmax and the output sum are accumulated in
// double and rounded to float once, so the reference's own rounding is far below
// any format's error and kernels are compared against the formats, not against
// the reference's arithmetic. With no held token the output is all zeros.
#include <cstdint>

#include "backends/kernel_abi.h"
#include "ir/plan.h"

namespace kvc::reference {

// Throws kvc::Error on inconsistent arguments (null pointers for non-empty parts,
// negative counts, a low-rank plan without a basis when blocks are held).
void reference_attend(const ir::LayerPlan& plan, int head_dim, int group_size_g, const kvc_attend_args* args);

// Softmax attention of g queries q [g][head_dim] over n plain keys k [n][head_dim]
// and values v [n][head_dim], same numerics as reference_attend. out [g][head_dim];
// probs [g][n] when not null.
void exact_attention(const float* q, const float* k, const float* v, std::int64_t n, int head_dim, int g,
                     float* out, float* probs = nullptr);

}  // namespace kvc::reference
