#pragma once
// Subcommands that run the kernels a plan compiles to (library: bench/), and what
// they share with `kvc compile`. Registered by main.cpp like the others (commands.h).
#include "commands.h"
#include "frontend/spec.h"
#include "ir/plan.h"

namespace kvc::cli {

// `kvc bench spec.yaml`: decode-attention speed of the standard formats and the
// spec's own plan's formats, for the spec's model shape.
CommandRunner add_bench_command(CLI::App& app);

// The spec's plan as `kvc compile` makes it: the spec's pipeline (or the default
// one) run on its module. Errors about spec fields point at the spec.
ir::Module compile_spec_plan(const frontend::Spec& spec);

}  // namespace kvc::cli
