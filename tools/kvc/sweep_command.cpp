// `kvc sweep --model M --spec S --budgets 0.5,0.25,0.15,0.1 [--stats F] [--json]`:
// every method's plan at every budget, measured (sweep/sweep.h). This file only
// parses options and prints.
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <nlohmann/json.hpp>

#include "calibration/calibrate.h"
#include "stats/stats_file.h"
#include "frontend/spec.h"
#include "model/model.h"
#include "sweep/sweep.h"
#include "sequence_source_options.h"
#include "search_commands.h"
#include "support/diagnostics.h"

namespace kvc::cli {
namespace {

struct SweepCommandOptions {
  std::string model, spec, stats, budgets = "0.5,0.25,0.15,0.1", methods;
  int calibration_sequences = 8;
  int calibration_length = 256;
  bool json = false;
  sweep::SweepOptions run;
  calibration::SequenceSource calibration_source;
};

std::vector<double> parse_budgets(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || end != item.c_str() + item.size() || !(v > 0 && v <= 1))
      throw Error({}, "--budgets", "'" + item + "' is not a fraction of the fp16 cache in (0, 1]");
    out.push_back(v);
  }
  if (out.empty()) throw Error({}, "--budgets", "no budget given");
  return out;
}

std::vector<std::string> parse_methods(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    bool known = false;
    for (const auto& m : sweep::sweep_methods()) known |= m == item;
    if (!known) throw Error({}, "--methods", "'" + item + "' is not a sweep method");
    out.push_back(item);
  }
  return out;
}

int sweep(SweepCommandOptions& o) {
  o.run.budgets = parse_budgets(o.budgets);
  if (!o.methods.empty()) o.run.methods = parse_methods(o.methods);
  const frontend::Spec spec = frontend::load_spec(o.spec);
  const model::Model model = model::Model::load(o.model);
  calibration::CalibrationStats stats;
  if (!o.stats.empty()) {
    stats = calibration::read_stats_file(o.stats);
  } else {
    std::cerr << "kvc sweep: no --stats: calibrating in-process (" << o.calibration_sequences << " x "
              << o.calibration_length << " tokens)\n";
    calibration::CalibrateOptions c;
    c.sequences = o.calibration_sequences;
    c.length = o.calibration_length;
    c.threads = o.run.threads;
    c.source = o.calibration_source;
    stats = calibration::calibrate(model, c);
  }
  o.run.progress = &std::cerr;
  const sweep::SweepResult r = sweep::run_sweep(model, spec, stats, o.run);
  if (o.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& row : r.rows)
      rows.push_back({{"budget", row.budget},
                      {"method", row.method},
                      {"bytes", row.bytes},
                      {"kl_mean", row.kl_mean},
                      {"top1_agreement", row.top1_agreement},
                      {"predicted_error", row.predicted_error}});
    nlohmann::json j{{"model", o.model},     {"spec", o.spec},   {"sequences", o.run.sequences},
                     {"length", o.run.length}, {"rows", rows},   {"spearman", r.spearman},
                     {"notes", r.notes}};
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("| budget | method | bytes | KL mean | top-1 | predicted error |\n|---|---|---|---|---|---|\n");
  for (const auto& row : r.rows)
    std::printf("| %.0f%% | %s | %lld | %.4f | %.3f | %.4g |\n", 100 * row.budget, row.method.c_str(),
                static_cast<long long>(row.bytes), row.kl_mean, row.top1_agreement, row.predicted_error);
  std::printf("\nSpearman rank correlation of predicted error vs measured KL: %.3f (%zu plans)\n", r.spearman,
              r.rows.size());
  for (const auto& note : r.notes) std::printf("note: %s\n", note.c_str());
  return 0;
}

}  // namespace

CommandRunner add_sweep_command(CLI::App& app) {
  auto o = std::make_shared<SweepCommandOptions>();
  CLI::App* sub = app.add_subcommand("sweep", "Measure every search method's plan at several budgets (KL, top-1, predicted error)");
  sub->add_option("--model", o->model, "llama2.c or GGUF model")->required()->check(CLI::ExistingFile);
  sub->add_option("--spec", o->spec, "the spec whose model, search options and formats the plans use")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--budgets", o->budgets, "fractions of the fp16 cache, comma-separated")->capture_default_str();
  sub->add_option("--stats", o->stats, "calibration stats (kvc calibrate); calibrates in-process when absent")
      ->check(CLI::ExistingFile);
  sub->add_option("--methods", o->methods, "subset of kivi,streamingllm,h2o,snapkv,kvtuner,prefixkv,cake,xkv,joint");
  sub->add_option("--sequences", o->run.sequences, "evaluation sequences")->capture_default_str()->check(CLI::Range(1, 4096));
  sub->add_option("--length", o->run.length, "tokens per evaluation sequence")->capture_default_str()->check(CLI::Range(8, 1 << 20));
  sub->add_option("--seed", o->run.seed, "seed of the first evaluation sequence")->capture_default_str();
  sub->add_option("--calibration-sequences", o->calibration_sequences, "in-process calibration sequences")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  sub->add_option("--calibration-length", o->calibration_length, "in-process calibration tokens per sequence")
      ->capture_default_str()->check(CLI::Range(16, 1 << 20));
  add_sequence_source_options(sub, o->run.source, "", "evaluation sequences");
  add_sequence_source_options(sub, o->calibration_source, "calibration-",
                              "in-process calibration sequences (without --stats)");
  sub->add_option("--threads", o->run.threads, "0 = all cores")->capture_default_str()->check(CLI::Range(0, 1024));
  sub->add_flag("--json", o->json, "rows and spearman as JSON");
  return [o] { return sweep(*o); };
}

}  // namespace kvc::cli
