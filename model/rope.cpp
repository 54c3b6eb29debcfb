#include "model/rope.h"

#include <cmath>

namespace kvc::model {

void RopeAngles::compute(int pos, int head_dim, float theta) {
  const int pairs = head_dim / 2;
  cos.resize(pairs);
  sin.resize(pairs);
  for (int i = 0; i < pairs; ++i) {
    // Same expression as run.c: freq = 1 / theta^((2i) / head_dim).
    const float freq = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(head_dim));
    const float angle = static_cast<float>(pos) * freq;
    cos[i] = std::cos(angle);
    sin[i] = std::sin(angle);
  }
}

void apply_rope(float* x, int heads, int head_dim, RopeStyle style, const RopeAngles& a) {
  const int pairs = head_dim / 2;
  for (int h = 0; h < heads; ++h) {
    float* xh = x + h * head_dim;
    for (int i = 0; i < pairs; ++i) {
      const int j0 = style == RopeStyle::AdjacentPairs ? 2 * i : i;
      const int j1 = style == RopeStyle::AdjacentPairs ? 2 * i + 1 : i + pairs;
      const float x0 = xh[j0], x1 = xh[j1];
      xh[j0] = x0 * a.cos[i] - x1 * a.sin[i];
      xh[j1] = x0 * a.sin[i] + x1 * a.cos[i];
    }
  }
}

}  // namespace kvc::model
