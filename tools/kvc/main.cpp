// kvc: a compiler for KV-cache compression plans and kernels.
#include <CLI/CLI.hpp>
#include <iostream>
#include <map>

#include "backend_commands.h"
#include "calibration_commands.h"
#include "commands.h"
#include "model_commands.h"
#include "search_commands.h"

int main(int argc, char** argv) {
  CLI::App app{
      "kvc compiles a KV-cache compression spec (YAML) into a per-layer plan: bits for keys and values,\n"
      "tokens kept and rank, under one memory budget; and into decode-attention kernels for that plan."};
  app.name("kvc");
  app.require_subcommand(1);
  std::map<CLI::App*, kvc::cli::CommandRunner> runners;
  auto add = [&](kvc::cli::CommandRunner run, const char* name) { runners[app.get_subcommand(name)] = std::move(run); };
  add(kvc::cli::add_compile_command(app), "compile");
  add(kvc::cli::add_calibrate_command(app), "calibrate");
  add(kvc::cli::add_eval_command(app), "eval");
  add(kvc::cli::add_sweep_command(app), "sweep");
  add(kvc::cli::add_explain_command(app), "explain");
  add(kvc::cli::add_bench_command(app), "bench");
  add(kvc::cli::add_generate_command(app), "generate");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    // Usage errors are bad input, like a bad spec: status 2 (help and version exit 0).
    return rc == 0 ? 0 : 2;
  }
  for (auto* sub : app.get_subcommands())
    if (auto it = runners.find(sub); it != runners.end()) return kvc::cli::run_reporting_errors(it->second);
  return 2;
}
