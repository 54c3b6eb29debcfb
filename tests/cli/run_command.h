#pragma once
// Runs a command line through the shell and captures what it printed.
#include <string>

namespace kvc::testing {

struct CommandResult {
  int status = -1;  // exit status
  std::string out;  // stdout
  std::string err;  // stderr
};

CommandResult run_command(const std::string& command_line);
std::string shell_quote(const std::string& s);

}  // namespace kvc::testing
