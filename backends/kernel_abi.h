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

#ifdef __cplusplus
}
#endif
