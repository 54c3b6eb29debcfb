#pragma once
// The `kvc` subcommands. Each registers itself on the CLI11 app and returns the
// exit status: 0 success, 2 bad input (a kvc::Error, printed as
// file:line:col: error: field: message), 1 anything unexpected.
#include <CLI/CLI.hpp>
#include <functional>

namespace kvc::cli {

using CommandRunner = std::function<int()>;

// Adds the subcommand to `app` and returns what runs it once options are parsed.
CommandRunner add_compile_command(CLI::App& app);

// Runs `body`, turning a kvc::Error into its one-line message and exit status 2.
int run_reporting_errors(const std::function<int()>& body);

}  // namespace kvc::cli
