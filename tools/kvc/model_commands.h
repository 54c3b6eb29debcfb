#pragma once
// `kvc generate` (library: model/, runtime/). Registered by main.cpp like the other
// subcommands (commands.h).
#include "commands.h"

namespace kvc::cli {

CommandRunner add_generate_command(CLI::App& app);

}  // namespace kvc::cli
