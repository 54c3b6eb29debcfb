#pragma once
// What `kvc compile` shows about a plan: a per-layer table for people and one
// JSON object for programs (its fields are documented in README.md; they are
// stable: new fields may be added, none renamed or removed).
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "backends/llvm/kernel_jit.h"
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

// The kernel part of the --time-passes report, in the style of the pass timing
// report: each JIT-compiled kernel's compile time (its share of the one batch all
// kernels are built in), the JIT's setup (target machine, LLJIT) and the total.
struct KernelCompileTiming {
  std::vector<const llvm_backend::CompiledKernel*> kernels;
  double setup_seconds = 0;    // creating the JIT
  double compile_seconds = 0;  // building, optimising and linking every kernel
  int layers = 0;
};
void print_kernel_compile_report(std::ostream& out, const KernelCompileTiming& t);

}  // namespace kvc::cli
