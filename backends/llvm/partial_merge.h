#pragma once
// Combining partial softmax states (backends/llvm/partial_abi.h) into an output,
// and splitting one KV head's blocks across a thread pool.
#include <cstddef>

#include "backends/llvm/kernel_jit.h"
#include "support/thread_pool.h"

namespace kvc::llvm_backend {

// Floats one partial state holds: m[g], l[g], acc[g][head_dim].
std::size_t partial_state_floats(int g, int head_dim);

// out[g][head_dim] from n states: with M = max m_i, out = sum_i e^(m_i - M) acc_i /
// sum_i e^(m_i - M) l_i. States with no token (l = 0) contribute nothing; all empty -> zeros.
void merge_partials(int g, int head_dim, const float* const* states, int n, float* out);

// One attention call whose main blocks are split into `parts` contiguous ranges
// computed by the pool's threads (the last range also takes the tail), then merged.
// args->probs must be null (softmax weights need the global max; use kernel.attend).
void attend_split(const CompiledKernel& kernel, const kvc_attend_args& args, int parts, kvc::ThreadPool& pool);

}  // namespace kvc::llvm_backend
