#pragma once
// Small plan IR modules for the runtime tests.
#include <cstdint>
#include <vector>

#include "ir/plan.h"

namespace kvc::testing {

inline ir::Module runtime_module(int head_dim, int kv_heads, int group_size_g, std::int64_t context,
                                 std::int64_t batch, const std::vector<ir::LayerPlan>& layers) {
  ir::Module m;
  m.model.name = "runtime-test";
  m.model.layers = static_cast<int>(layers.size());
  m.model.kv_heads = kv_heads;
  m.model.q_heads = kv_heads * group_size_g;
  m.model.head_dim = head_dim;
  m.workload.context = context;
  m.workload.batch = batch;
  m.budget_bytes = 1 << 30;
  m.layers = layers;
  for (std::size_t i = 0; i < m.layers.size(); ++i) m.layers[i].index = static_cast<int>(i);
  return m;
}

inline ir::LayerPlan kivi_layer(int k_bits, int v_bits, int group, int residual) {
  ir::LayerPlan p;
  p.key = {k_bits, ir::QuantAxis::PerChannel, group};
  p.value = {v_bits, ir::QuantAxis::PerToken, 32};
  p.residual = residual;
  return p;
}

// `p` keeping `budget` tokens by `policy`, with the test suites' sink/window/pool/gamma.
inline ir::LayerPlan with_retention(ir::LayerPlan p, ir::RetentionPolicy policy, std::int64_t budget) {
  using ir::RetentionPolicy;
  p.retention.policy = policy;
  p.retention.budget = budget;
  switch (policy) {
    case RetentionPolicy::StreamingLLM: p.retention.sink = 4; p.retention.window = 16; break;
    case RetentionPolicy::H2O: p.retention.sink = 2; p.retention.window = 16; break;
    case RetentionPolicy::SnapKV: p.retention.window = 8; p.retention.pool = 3; break;
    case RetentionPolicy::CAKE: p.retention.window = 8; p.retention.pool = 5; p.retention.gamma = 2.0; break;
    case RetentionPolicy::Full: p.retention.budget = 0; break;
  }
  return p;
}

inline ir::LayerPlan with_rank(ir::LayerPlan p, int rank, ir::BasisSharing sharing, ir::BasisSource source,
                               int group = -1) {
  p.lowrank = {rank, sharing, group, source};
  return p;
}

}  // namespace kvc::testing
