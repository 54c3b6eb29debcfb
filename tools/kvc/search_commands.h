#pragma once
// `kvc sweep` and `kvc explain` (libraries: search/, passes/cost_model.h).
// Registered by main.cpp like the other subcommands (commands.h).
#include "commands.h"

namespace kvc::cli {

CommandRunner add_sweep_command(CLI::App& app);
CommandRunner add_explain_command(CLI::App& app);

}  // namespace kvc::cli
