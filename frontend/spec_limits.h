#pragma once
// The floor under every byte budget: the smallest cache plan kvc can build for a
// model and workload. The spec frontend rejects budgets below it, and passes that
// legalize a plan under a budget can start from it.
#include "ir/plan.h"

namespace kvc::frontend {

// The value group a plan uses for heads of `head_dim` channels when the spec asks
// for `group`: values are grouped per token along channels, so a group cannot be
// wider than the head. Heads narrower than the group (stories260K: head_dim 8,
// group 32) quantize each value token as one group of head_dim channels, with its
// own fp16 scale and min.
int value_group(int group, int head_dim);

}  // namespace kvc::frontend

namespace kvc::ir {

// `m` with every layer at K2V2: keys per channel in groups of `group` tokens,
// values per token in groups of value_group(group, head_dim) channels, residual
// `group`, and StreamingLLM retention keeping exactly the fp16 tail (budget = tail
// capacity, no sink). Nothing smaller is expressible, so total_bytes() of this
// module is the least budget the workload can run under.
Module smallest_plan(const Module& m, int group);

}  // namespace kvc::ir
