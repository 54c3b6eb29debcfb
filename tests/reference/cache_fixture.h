#pragma once
// Shared helpers of the reference tests: one-layer modules and random K/V/Q.
#include <cstdint>
#include <random>
#include <vector>

#include "ir/plan.h"

namespace kvc::reference::testing {

inline ir::Module one_layer_module(int q_heads, int kv_heads, int head_dim, std::int64_t context,
                                   const ir::LayerPlan& plan) {
  ir::ModelShape shape;
  shape.name = "test";
  shape.layers = 1;
  shape.q_heads = q_heads;
  shape.kv_heads = kv_heads;
  shape.head_dim = head_dim;
  ir::Workload w;
  w.context = context;
  ir::Module m = ir::make_uncompressed_module(shape, w, 0);
  m.layers[0] = plan;
  m.layers[0].index = 0;
  return m;
}

inline std::vector<float> random_vector(std::size_t n, std::mt19937& rng, float sigma = 1.0f) {
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> x(n);
  for (auto& v : x) v = normal(rng);
  return x;
}

inline ir::LayerPlan quant_plan(int kbits, int vbits, int group, int residual) {
  ir::LayerPlan p;
  p.key = {kbits, ir::QuantAxis::PerChannel, group};
  p.value = {vbits, ir::QuantAxis::PerToken, group};
  p.residual = residual;
  return p;
}

}  // namespace kvc::reference::testing
