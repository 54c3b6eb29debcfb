#include "backends/llvm/partial_merge.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "support/diagnostics.h"

namespace kvc::llvm_backend {

std::size_t partial_state_floats(int g, int head_dim) {
  return static_cast<std::size_t>(g) * (static_cast<std::size_t>(head_dim) + 2);
}

void merge_partials(int g, int head_dim, const float* const* states, int n, float* out) {
  const std::size_t d = static_cast<std::size_t>(head_dim);
  for (int h = 0; h < g; ++h) {
    float big = -std::numeric_limits<float>::infinity();
    for (int i = 0; i < n; ++i)
      if (states[i][g + h] > 0) big = std::max(big, states[i][h]);
    float* o = out + static_cast<std::size_t>(h) * d;
    std::fill(o, o + d, 0.0f);
    double sum = 0;
    for (int i = 0; i < n; ++i) {
      const float l = states[i][g + h];
      if (!(l > 0)) continue;
      const float w = std::exp(states[i][h] - big);
      sum += static_cast<double>(w) * l;
      const float* acc = states[i] + 2 * g + static_cast<std::size_t>(h) * d;
      for (std::size_t c = 0; c < d; ++c) o[c] += w * acc[c];
    }
    if (sum > 0)
      for (std::size_t c = 0; c < d; ++c) o[c] = static_cast<float>(o[c] / sum);
  }
}

void attend_split(const CompiledKernel& kernel, const kvc_attend_args& args, int parts, kvc::ThreadPool& pool) {
  if (args.probs) throw Error("attend_split: softmax weights (probs) need a single call; use kernel.attend");
  if (parts < 1) throw Error("attend_split: parts must be at least 1");
  const int g = kernel.spec.g, d = kernel.spec.head_dim;
  const std::size_t per = partial_state_floats(g, d);
  // Reused across calls by the calling thread; workers get its address, never their own copy.
  thread_local std::vector<float> states;
  states.resize(per * static_cast<std::size_t>(parts));
  float* const base = states.data();
  pool.parallel_for(parts, [&](std::int64_t item) {
    const int i = static_cast<int>(item);
    const std::int64_t b0 = args.n_blocks * i / parts, b1 = args.n_blocks * (i + 1) / parts;
    kernel.partial(&args, b0, b1, i == parts - 1 ? 1 : 0, base + per * static_cast<std::size_t>(i));
  });
  std::vector<const float*> ptrs;
  for (int i = 0; i < parts; ++i) ptrs.push_back(base + per * static_cast<std::size_t>(i));
  merge_partials(g, d, ptrs.data(), parts, args.out);
}

}  // namespace kvc::llvm_backend
