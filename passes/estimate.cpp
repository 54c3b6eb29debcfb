#include "passes/estimate.h"

namespace kvc::passes {

Estimate estimate_module(const ir::Module& m) {
  Estimate e;
  e.layers.reserve(m.layers.size());
  for (int i = 0; i < static_cast<int>(m.layers.size()); ++i) {
    e.layers.push_back(ir::layer_bytes(m, i));
    e.total += e.layers.back().total();
  }
  e.fp16 = ir::fp16_bytes(m);
  e.valid = true;
  return e;
}

}  // namespace kvc::passes
