#pragma once
// Reference decode attention for kernels with the int8-dot option
// (ir::KernelSpec::int8_dot): the definition those kernels are tested against.
//
// Identical to reference_attend (backends/reference/attention.h) except for main
// blocks, whose keys and values are each read as integer dot products where
// their format admits it (ir::int8_dot_keys, ir::int8_dot_values).
//
// Keys, stored per channel as codes c_ct with fp16 scale s_c and min m_c. For
// each main block and query head:
//   qs_c   = q_c * (1.0f / sqrtf(head_dim))            (float product)
//   x_c    = qs_c * s_c                                (float product)
//   amax   = max_c |x_c|;  inv = 127.0f / amax (0 when amax == 0);  step = amax / 127.0f
//   qi_c   = clamp(nearbyint(x_c * inv), -127, 127)    (int8, round half to even)
//   score_t = step * sum_c qi_c c_ct + sum_c qs_c m_c
// The integer sum is exact; every float step above is what the kernel computes,
// rounded the same way, so kernel and reference pick the same qi_c. (Keys that do
// not admit it are dotted exactly, as in reference_attend.)
//
// Values, stored per token t as codes c_td with fp16 scale s_tg and min m_tg per
// group g of channels. For each main block and query head, with f_t the block's
// scores as floats:
//   M      = max_t f_t;  r_t = expf(f_t - M)           (a block-local softmax)
//   W      = 255, or 127 for 8-bit codes (vpdpbusd's signed operand then holds the weights)
// and per value group g:
//   A      = max_t s_tg;  inv = W / A (0 when A == 0);  step = A / W
//            (A bounds every weight r_t s_t, as r_t <= 1, and does not depend on
//            the query: one step per block and group serves every head)
//   w_tg   = s_tg * inv                                (float product, per block, not per head)
//   u_t    = clamp(nearbyint(r_t * w_tg), 0, W)        (float product, round half to even)
//   a_t    = r_t * s_tg
//   z      = (2^bits - 1) / 2                          (the middle code)
//   V_d    = step * sum_t u_t c_td + sum_t r_t m_tg + z * (sum_t a_t - step * sum_t u_t)
// the block's value sum for channel d of group g: sum_t (step u_t)(c_td - z) +
// sum_t r_t (m_tg + s_tg z), so the weights' rounding error multiplies codes
// centred on the middle one (half the error of raw codes) at no cost per code.
// The block adds e^(M - top) V_d / L to the output, L the softmax denominator
// over all tokens (e^(score - top) summed in double). Tail values are exact.
//
// Kernel and reference scores differ in their last bits (summation order), so a
// weight whose r_t * w_tg lies within 1e-4 (relative, at least 1e-4 absolute) of a
// .5 tie may round the other way in a kernel. `allowance`, when not null,
// receives per output element [g][head_dim] the most such flips can move it:
// sum over near-tie tokens of step * |c_td - z| * e^(M - top) / L. Tests compare
// kernels with |kernel - reference| <= tolerance + allowance.
#include "backends/kernel_abi.h"
#include "ir/plan.h"

namespace kvc::reference {

// Throws kvc::Error on inconsistent arguments (as reference_attend) and when
// neither the plan's keys nor its values admit int8 dot products (ir::supports_int8_dot).
void int8_dot_reference_attend(const ir::LayerPlan& plan, int head_dim, int group_size_g,
                               const kvc_attend_args* args, float* allowance = nullptr);

}  // namespace kvc::reference
