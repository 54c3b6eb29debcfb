#pragma once
/* The calling convention every decode-attention kernel implements: the reference
 * kernels (backends/reference), the JIT kernels and the AOT kernels (backends/llvm).
 * C-compatible: AOT kernels are called by host programs through it.
 *
 * One call computes attention for ONE KV head and the g query heads that share it
 * (GQA group), for one new query token, over the tokens that KV head holds:
 *   main blocks (each B tokens, layout in ir/layout.h) in token order, then the
 *   fp16 tail, oldest first. Scores are q.k / sqrt(head_dim), softmax over all held
 *   tokens, out = sum_t p_t * v_t.
 */
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvc_attend_args {
  const uint8_t* const* blocks; /* n_blocks pointers to main blocks, oldest first */
  int64_t n_blocks;
  const uint16_t* tail_k; /* [n_tail][head_dim] fp16, post-RoPE keys, oldest first */
  const uint16_t* tail_v; /* [n_tail][head_dim] fp16 */
  int64_t n_tail;
  const float* q;     /* [g][head_dim] post-RoPE queries of this KV head's group */
  const float* basis; /* low rank: [head_dim][rank] fp32 key basis, else NULL */
  float* out;         /* [g][head_dim] attention output */
  float* probs;       /* optional: [g][n_blocks*B + n_tail] softmax weights, or NULL */
} kvc_attend_args;

typedef void (*kvc_attend_fn)(const kvc_attend_args* args);

/* Quantize-on-append: one call encodes ONE main block of one KV head (B tokens,
 * ir/layout.h "Main block layout": K section then V section) exactly as the
 * reference encoder does (backends/reference/quantize.h, encode_block): the same
 * bytes for the same inputs. B, key_dims and head_dim are those of the layer the
 * encoder was generated for. Inputs must be finite with |x| <= 65504 (what the
 * runtime accepts), so every scale and minimum is a finite fp16 number. */
typedef struct kvc_append_args {
  const float* k; /* [B][key_dims] keys (post-RoPE), or their low-rank coefficients, oldest first */
  const float* v; /* [B][head_dim] values, oldest first */
  uint8_t* block; /* out: the block's bytes (ir::block_bytes of the layer's plan) */
} kvc_append_args;

typedef void (*kvc_append_fn)(const kvc_append_args* args);

#ifdef __cplusplus
}
#endif
