#include "frontend/spec_limits.h"

#include <algorithm>

#include "ir/layout.h"

namespace kvc::frontend {

int value_group(int group, int head_dim) { return std::min(group, head_dim); }

}  // namespace kvc::frontend

namespace kvc::ir {

Module smallest_plan(const Module& m, int group) {
  Module out = m;
  for (LayerPlan& p : out.layers) {
    p.key = QuantFormat{2, QuantAxis::PerChannel, group};
    p.value = QuantFormat{2, QuantAxis::PerToken, frontend::value_group(group, m.model.head_dim)};
    p.residual = group;
    p.lowrank = LowRank{};
    // The tail is never evicted, so keeping only the tail is the least a layer can keep.
    const int tail = tail_capacity(p);
    p.retention = Retention{};
    p.retention.policy = RetentionPolicy::StreamingLLM;
    p.retention.budget = tail;
    p.retention.window = tail;
  }
  return out;
}

}  // namespace kvc::ir
