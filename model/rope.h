#pragma once
// Rotary position embedding of one token's heads, in place.
#include <vector>

#include "model/model.h"

namespace kvc::model {

// cos/sin of position `pos` for each of the head_dim/2 frequency pairs:
// angle_i = pos * theta^(-2i/head_dim), computed in fp32 as llama2.c does.
struct RopeAngles {
  std::vector<float> cos, sin;
  void compute(int pos, int head_dim, float theta);
};

// Rotates x [heads][head_dim]. AdjacentPairs rotates (2i, 2i+1) by angle i;
// HalfSplit rotates (i, i + head_dim/2) by angle i.
void apply_rope(float* x, int heads, int head_dim, RopeStyle style, const RopeAngles& angles);

}  // namespace kvc::model
