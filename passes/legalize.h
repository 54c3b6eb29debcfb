#pragma once
// `legalize`: the plan must fit the budget. If it does not, fail with kvc::Error
// (field "budget") saying by how many bytes, and which layers are over their
// even share of the budget and by how much.
#include "passes/pass.h"

namespace kvc::passes {

class LegalizePass final : public Pass {
 public:
  std::string_view name() const override { return "legalize"; }
  void run(ir::Module& module, PassContext& ctx) override;
};

}  // namespace kvc::passes
