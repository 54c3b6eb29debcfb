#pragma once
// Reference decode attention for kernels with the int8-dot option
// (ir::KernelSpec::int8_dot): the definition those kernels are tested against.
//
// Identical to reference_attend (backends/reference/attention.h) except for the
// scores of main-block keys, which are stored per channel as codes c_ct with fp16
// scale s_c and min m_c. For each main block and query head:
//   qs_c   = q_c * (1.0f / sqrtf(head_dim))            (float product)
//   x_c    = qs_c * s_c                                (float product)
//   amax   = max_c |x_c|;  inv = 127.0f / amax (0 when amax == 0);  step = amax / 127.0f
//   qi_c   = clamp(nearbyint(x_c * inv), -127, 127)    (int8, round half to even)
//   score_t = step * sum_c qi_c c_ct + sum_c qs_c m_c
// The integer sum is exact; every float step above is what the kernel computes,
// rounded the same way, so kernel and reference pick the same qi_c. Tail keys and
// all values are exact, as in reference_attend; softmax and output in double.
#include "backends/kernel_abi.h"
#include "ir/plan.h"

namespace kvc::reference {

// Throws kvc::Error on inconsistent arguments (as reference_attend) and when the
// plan's keys do not admit int8 dot products (ir::supports_int8_dot).
void int8_dot_reference_attend(const ir::LayerPlan& plan, int head_dim, int group_size_g,
                               const kvc_attend_args* args);

}  // namespace kvc::reference
