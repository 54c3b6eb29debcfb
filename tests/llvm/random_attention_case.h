#pragma once
// A randomized decode-attention call for one KV head: a plan, encoded main
// blocks (through the reference encoder), an fp16 tail, queries and a basis.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backends/kernel_abi.h"
#include "ir/kernel_spec.h"
#include "ir/plan.h"

namespace kvc::testing {

struct AttentionCase {
  ir::Module module;  // one layer, one KV head
  int head_dim = 0;
  int g = 1;
  std::vector<std::vector<std::uint8_t>> block_bytes;
  std::vector<const std::uint8_t*> blocks;
  std::vector<std::uint16_t> tail_k, tail_v;
  std::vector<float> q, basis;
  std::int64_t n_tail = 0;

  const ir::LayerPlan& plan() const { return module.layers[0]; }
  std::int64_t tokens() const;
  // Arguments with out / probs pointing at the given buffers (probs may be null).
  kvc_attend_args args(float* out, float* probs) const;
  std::string describe() const;
};

// Case number `index` of a sweep: key and value bits cycle through all 25
// pairs of {16, 8, 4, 3, 2}; head_dim, g, axes, groups, rank, block and tail
// counts are drawn from `rng`.
AttentionCase random_attention_case(int index, std::mt19937& rng);

}  // namespace kvc::testing
