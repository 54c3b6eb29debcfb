#pragma once
// `kvc sweep`: every method's plan at every budget, measured on a real model.
//
// For each budget (a fraction of the fp16 cache of one `length`-token sequence)
// the sweep builds the plans of three method families, all within the budget:
//   quantization  kivi: uniform KIVI-style quantization (the `uniform` pass: the
//                 most precise uniform pair of the spec's candidates that fits; only
//                 when even the smallest (K2V2) does not fit, every layer keeps the
//                 same number of tokens, StreamingLLM, to fill the budget)
//                 kvtuner: per-layer K/V bits, every layer keeping the same number of
//                 tokens (the spec's policy, StreamingLLM) when bits alone do not fit
//                 xkv: per-group key rank (cross-layer bases) plus the uniform
//                 precision and retention setting it needs
//   retention     streamingllm, h2o, snapkv: uniform eviction ONLY, at the same
//                 bytes: keys and values fp16, every layer keeps the most tokens that
//                 fit with that policy
//                 prefixkv, cake: per-layer token budgets, eviction only (run as
//                 prefixkv<fp16>, cake<fp16>: H2O and CAKE policies)
//   joint         every knob of every layer (passes/joint.h)
// Each single-knob pass is compared with the uniform baseline of its family
// (uniform_baseline_of): kvtuner -> kivi, xkv -> kivi, prefixkv -> h2o (the policy
// it keeps tokens with), cake -> snapkv (both select from the observation window's
// attention). The search passes run through the pass registry by name (a pass not
// registered is skipped with a note); the sweep
// measures each with calibration::evaluate_plan (KL(full || plan), top-1 agreement)
// and predicts its error with passes::predict_plan_error; the Spearman rank
// correlation of predicted error against measured KL over all rows says how well
// the cost model ranks plans.
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "stats/stats.h"
#include "calibration/token_sequences.h"
#include "frontend/spec.h"
#include "ir/plan.h"
#include "model/model.h"

namespace kvc::sweep {

struct SweepOptions {
  std::vector<double> budgets = {0.5, 0.25, 0.15, 0.1};
  std::vector<std::string> methods;  // empty = sweep_methods()
  int sequences = 4;
  int length = 256;
  std::uint64_t seed = 1000;  // eval sequences (calibration's default seed is 0: keep them apart)
  calibration::SequenceSource source;  // the eval sequences' file (sampled with `seed` when none)
  int threads = 0;
  std::ostream* progress = nullptr;
};

struct SweepRow {
  double budget = 0;
  std::string method;
  std::int64_t bytes = 0;  // plan bytes per sequence (ir::total_bytes at `length` tokens)
  double kl_mean = 0;
  double top1_agreement = 0;
  double predicted_error = 0;
};

struct SweepResult {
  std::vector<SweepRow> rows;
  double spearman = 0;  // predicted_error vs kl_mean over all rows
  std::vector<std::string> notes;  // skipped methods and why
};

// Every method in the order the table lists them.
const std::vector<std::string>& sweep_methods();
// The uniform method a single-knob method must beat ("" for baselines and joint).
std::string uniform_baseline_of(const std::string& method);

// The plan `method` makes for `spec`'s model at `budget` x the fp16 cache of one
// `length`-token sequence; nullopt (with the reason in *why) when it cannot.
std::optional<ir::Module> build_sweep_plan(const std::string& method, const frontend::Spec& spec,
                                           const calibration::CalibrationStats& stats, double budget, int length,
                                           std::string* why);

SweepResult run_sweep(const model::Model& model, const frontend::Spec& spec,
                      const calibration::CalibrationStats& stats, const SweepOptions& options);

// Spearman rank correlation (average ranks for ties); 0 when fewer than 2 values or no spread.
double spearman_correlation(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace kvc::sweep
