#pragma once
// The plan a model-running command (`kvc eval`, `kvc generate`) uses: an IR text
// file (--plan), or a spec compiled with its pipeline or the default one (--spec).
#include <string>

#include "ir/plan.h"

namespace kvc::cli {

ir::Module module_from_spec(const std::string& spec_path);
// Exactly one of the two paths is non-empty.
ir::Module load_plan_or_spec(const std::string& plan_path, const std::string& spec_path);

}  // namespace kvc::cli
