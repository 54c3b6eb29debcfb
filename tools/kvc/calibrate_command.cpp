// `kvc calibrate --model M -o STATS`: measure a model's KV statistics for the passes.
#include <algorithm>
#include <chrono>
#include <iostream>

#include "calibration/calibrate.h"
#include "stats/stats_file.h"
#include "ir/precision.h"
#include "frontend/spec.h"
#include "calibration/error_probes.h"
#include "support/diagnostics.h"
#include "calibration_commands.h"
#include "sequence_source_options.h"
#include "model/model.h"

namespace kvc::cli {
namespace {

struct CalibrateCommandOptions {
  std::string model;
  std::string output;
  calibration::CalibrateOptions run;
  std::string spec;         // search options (group, residual, sink, window, pool) of the probe plans
  bool probes = true;       // measure the end-to-end error probes (calibration/error_probes.h)
  // Each probe is a whole evaluation, so the probes see the first 4 sequences unless
  // told otherwise: at 16 x 512 all of them would take several minutes.
  int probe_sequences = 4;
};

int calibrate(CalibrateCommandOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  const model::Model m = model::Model::load(o.model);
  o.run.progress = &std::cerr;
  const frontend::SearchOptions search = o.spec.empty() ? frontend::SearchOptions{} : frontend::load_spec(o.spec).search;
  // Whatever the spec's searches may choose is measured too.
  for (const std::string& family : search.precision.formats)
    if (std::find(o.run.formats.begin(), o.run.formats.end(), family) == o.run.formats.end())
      o.run.formats.push_back(family);
  for (const std::string& c : search.precision.candidates)
    if (const auto pair = ir::parse_precision_pair(c)) {
      o.run.extra_key_formats.push_back(pair->key);
      o.run.extra_value_formats.push_back(pair->value);
    }
  calibration::CalibrationStats stats = calibration::calibrate(m, o.run);
  if (o.probes) {
    calibration::ErrorProbeOptions probes;
    probes.sequences = std::min(o.probe_sequences, stats.meta.sequences);
    probes.threads = o.run.threads;
    probes.source = o.run.source;
    probes.progress = &std::cerr;
    calibration::measure_error_probes(m, search, stats, probes);
  }
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
  cmd->add_option("-o,--output", o->output, "The stats file to write (format: stats/stats_file.h)")->required();
  cmd->add_option("--sequences", o->run.sequences, "Calibration sequences")->capture_default_str();
  cmd->add_option("--length", o->run.length, "Tokens per sequence")->capture_default_str();
  cmd->add_option("--seed", o->run.seed, "Sequence i is sampled (temperature 1) with seed + i")->capture_default_str();
  add_sequence_source_options(cmd, o->run.source, "", "calibration sequences");
  cmd->add_option("--decode", o->run.decode,
                  "Tokens at the end of each sequence treated as decoded (default min(64, length/4))");
  cmd->add_option("--threads", o->run.threads, "Worker threads (default: all cores)");
  cmd->add_option("--formats", o->run.formats,
                  "Format families whose every key format x value format is measured, at 2, 3, 4 and 8 bits "
                  "(ir/precision.h: kivi, t, tr, cr, a, r, ...; the spec's formats and candidates are added)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--spec", o->spec,
                  "Take the probe plans' group, residual and retention parameters from this spec's search: "
                  "(default: the spec defaults)");
  cmd->add_flag("!--no-probes", o->probes,
                "Skip the end-to-end error probes (e2e_* tensors: uniform plans' measured KL on the calibration "
                "sequences, which calibrate the cost model; passes/cost_model.h)");
  cmd->add_option("--probe-sequences", o->probe_sequences, "Calibration sequences the probes run (the first N)")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  return [o] { return calibrate(*o); };
}

}  // namespace kvc::cli
