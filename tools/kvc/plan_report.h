#pragma once
// What `kvc compile` shows about a plan: a per-layer table for people and one
// JSON object for programs (its fields are documented in README.md; they are
// stable: new fields may be added, none renamed or removed).
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "passes/pass.h"

namespace kvc::cli {

struct PlanSummary {
  const ir::Module* module = nullptr;
  const passes::PassContext* ctx = nullptr;
  std::string spec_path;
  std::string pipeline;
};

void print_plan_table(std::ostream& out, const PlanSummary& s);
nlohmann::ordered_json plan_json(const PlanSummary& s);

}  // namespace kvc::cli
