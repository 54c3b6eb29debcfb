#pragma once
/* Partial decode attention over a range of main blocks: the piece that lets
 * several threads share one KV head. Each generated kernel NAME has a twin
 * NAME_partial with this signature (JIT and AOT alike).
 *
 * state receives g * (head_dim + 2) floats: m[g] (running max of the scaled
 * scores), l[g] (sum of exp(score - m)), then acc[g][head_dim] (sum of
 * exp(score - m) * v). Blocks [b0, b1) of args->blocks are read, plus the fp16
 * tail when with_tail != 0. args->out and args->probs are not touched; a merge
 * (kvc::llvm_backend::merge_partials) turns one or more states into out.
 */
#include <stdint.h>

#include "backends/kernel_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*kvc_attend_partial_fn)(const kvc_attend_args* args, int64_t b0, int64_t b1, int32_t with_tail,
                                      float* state);

#ifdef __cplusplus
}
#endif
