// `kvc calibrate --model M -o STATS`: measure a model's KV statistics for the passes.
#include <chrono>
#include <iostream>

#include "calibration/calibrate.h"
#include "calibration/stats_file.h"
#include "calibration_commands.h"
#include "model/model.h"

namespace kvc::cli {
namespace {

struct CalibrateCommandOptions {
  std::string model;
  std::string output;
  calibration::CalibrateOptions run;
};

int calibrate(CalibrateCommandOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  const model::Model m = model::Model::load(o.model);
  o.run.progress = &std::cerr;
  const calibration::CalibrationStats stats = calibration::calibrate(m, o.run);
  calibration::write_stats_file(o.output, stats);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "kvc calibrate: wrote " << o.output << " (" << stats.meta.sequences << " sequences x "
            << stats.meta.length << " tokens, " << stats.tensors.size() << " tensors) in " << s << " s\n";
  return 0;
}

}  // namespace

CommandRunner add_calibrate_command(CLI::App& app) {
  auto o = std::make_shared<CalibrateCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate",
      "Run a model over calibration sequences and record per-layer, per-KV-head statistics (quantization and "
      "retention errors, attention entropy, prefix importance, key spectra) for the search passes");
  cmd->add_option("--model", o->model, "llama2.c checkpoint or GGUF file")->required();
  cmd->add_option("-o,--output", o->output, "The stats file to write (format: calibration/stats_file.h)")->required();
  cmd->add_option("--sequences", o->run.sequences, "Calibration sequences")->capture_default_str();
  cmd->add_option("--length", o->run.length, "Tokens per sequence")->capture_default_str();
  cmd->add_option("--seed", o->run.seed, "Sequence i is sampled (temperature 1) with seed + i")->capture_default_str();
  cmd->add_option("--tokens", o->run.token_file,
                  "Read sequences from this file instead of sampling: one sequence of token ids per line");
  cmd->add_option("--decode", o->run.decode,
                  "Tokens at the end of each sequence treated as decoded (default min(64, length/4))");
  cmd->add_option("--threads", o->run.threads, "Worker threads (default: all cores)");
  return [o] { return calibrate(*o); };
}

}  // namespace kvc::cli
