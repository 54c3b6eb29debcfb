// The README's stories260K sweep (scripts/sweep-table.sh, reduced to
// what runs in about a minute and a half on two cores): stories260K calibrated on 4 x 512
// tokens (seeds 0-3, with the end-to-end probes), every method planned at 50%, 25%,
// 15% and 10% of the fp16 cache and measured on 2 other sequences x 512 tokens.
//
// Asserted: at every budget `joint` has the lowest measured KL of all methods;
// `kvtuner` beats uniform KIVI quantization and `cake` uniform SnapKV; predicted
// error ranks the plans like measured KL (Spearman >= 0.8).
// Reported, not asserted: prefixkv vs uniform H2O and xkv vs KIVI. On this model
// they do not win at every budget, for measured reasons docs/benchmarks.md gives
// (PrefixKV's attention-mass curves give layer 0 the fewest tokens while layer 0 is
// the most sensitive to eviction; no per-head key rank of an 8-wide head beats KIVI
// at 50% and 10%).
#include <gtest/gtest.h>

#include <iostream>
#include <map>

#include "calibration/calibrate.h"
#include "calibration/error_probes.h"
#include "frontend/spec.h"
#include "model/model.h"
#include "sweep/sweep.h"
#include "test_support/test_data.h"

namespace kvc::sweep {
namespace {

// What both models' sweeps must show: four budgets, every method planned at each,
// `joint` lowest, kvtuner and cake ahead of their uniform baselines, and predicted
// error ranking measured KL. prefixkv and xkv against theirs are printed only.
void expect_sweep_acceptance(const SweepResult& r) {
  std::map<double, std::map<std::string, double>> kl;
  for (const auto& row : r.rows) kl[row.budget][row.method] = row.kl_mean;
  ASSERT_EQ(kl.size(), 4u);
  for (const auto& [budget, methods] : kl) {
    ASSERT_EQ(methods.size(), sweep_methods().size()) << "a method made no plan at " << budget;
    for (const auto& [method, value] : methods)
      if (method != "joint") EXPECT_LE(methods.at("joint"), value) << "joint vs " << method << " at " << budget;
    EXPECT_LT(methods.at("kvtuner"), methods.at("kivi")) << "kvtuner vs kivi at " << budget;
    EXPECT_LT(methods.at("cake"), methods.at("snapkv")) << "cake vs snapkv at " << budget;
    for (const std::string method : {"prefixkv", "xkv"}) {
      const std::string baseline = uniform_baseline_of(method);
      std::cout << "budget " << budget << ": " << method << " " << methods.at(method) << " vs " << baseline << " "
                << methods.at(baseline) << (methods.at(method) < methods.at(baseline) ? " (beats it)\n" : " (does not)\n");
    }
  }
  EXPECT_GE(r.spearman, 0.8);
}

TEST(SweepAcceptance, JointIsLowestKvtunerAndCakeBeatTheirBaselinesAndPredictionRanksMeasuredKL) {
  std::string path;
  KVC_REQUIRE_MODEL_FILE(path, "stories260K.bin");
  const model::Model model = model::Model::load(path);
  const frontend::Spec spec = frontend::load_spec(testing::source_dir() + "/specs/stories260K-search.yaml");
  calibration::CalibrateOptions c;
  c.sequences = 4;
  c.length = 512;
  const calibration::CalibrationStats stats = calibration::calibrate(model, c);  // probes: run_sweep measures them
  SweepOptions o;
  o.sequences = 2;
  o.length = 512;
  const SweepResult r = run_sweep(model, spec, stats, o);

  expect_sweep_acceptance(r);
}

// The README's stories3M sweep (scripts/stories3m_results.sh), reduced: calibrated on
// the first 4 x 512 tokens of data/text/calibration.txt (probes on 2 of them),
// measured on 2 x 512 held-out tokens of data/text/heldout.txt. Asserted: `joint`
// lowest at every budget, prediction ranks measured KL (Spearman >= 0.8), and the
// single-knob methods the README reports as beating their baselines at every budget.
TEST(SweepAcceptance, Stories3MOnTextJointIsLowestAndPredictionRanksMeasuredKL) {
  std::string path;
  KVC_REQUIRE_MODEL_FILE(path, "stories3M-q80.bin");
  const model::Model model = model::Model::load(path);
  const frontend::Spec spec = frontend::load_spec(testing::source_dir() + "/specs/stories3M.yaml");
  calibration::CalibrateOptions c;
  c.sequences = 4;
  c.length = 512;
  c.source.text_file = testing::source_dir() + "/data/text/calibration.txt";
  calibration::CalibrationStats stats = calibration::calibrate(model, c);
  calibration::ErrorProbeOptions probes;
  probes.sequences = 2;
  probes.source = c.source;
  calibration::measure_error_probes(model, spec.search, stats, probes);
  SweepOptions o;
  o.sequences = 2;
  o.length = 512;
  o.source.text_file = testing::source_dir() + "/data/text/heldout.txt";
  const SweepResult r = run_sweep(model, spec, stats, o);

  expect_sweep_acceptance(r);
}

}  // namespace
}  // namespace kvc::sweep
