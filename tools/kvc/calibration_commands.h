#pragma once
// `kvc calibrate` and `kvc eval` (library: calibration/). Registered by main.cpp
// like the other subcommands (commands.h).
#include "commands.h"

namespace kvc::cli {

CommandRunner add_calibrate_command(CLI::App& app);
CommandRunner add_eval_command(CLI::App& app);

}  // namespace kvc::cli
