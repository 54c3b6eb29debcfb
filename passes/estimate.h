#pragma once
// `estimate`: exact bytes per layer and in total (ir/layout.h's byte model, which
// the reference cache and the runtime allocate by), into PassContext::estimate.
#include "passes/pass.h"

namespace kvc::passes {

Estimate estimate_module(const ir::Module& m);

class EstimatePass final : public Pass {
 public:
  std::string_view name() const override { return "estimate"; }
  void run(ir::Module& module, PassContext& ctx) override { ctx.estimate = estimate_module(module); }
};

}  // namespace kvc::passes
