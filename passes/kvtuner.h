#pragma once
// `kvtuner`: per-layer K/V precision pairs under the byte budget (KVTuner,
// docs/algorithms.md §3), with the error of each pair from the calibration stats.
//
//   1. candidates: search.precision.candidates, or K8V8, K8V4, K4V8, K4V4, K4V2,
//      K2V4, K2V2;
//   2. intra-layer Pareto pruning on (bytes, predicted error);
//   3. inter-layer clustering: layers with the same pruned set, then by
//      sensitivity (KVTuner's e_o), sorted and split where it jumps by > 1.5x;
//      every layer of a cluster takes one pair;
//   4. a greedy search over clusters: start most precise, downgrade the cluster
//      that loses least predicted error per byte saved until the plan fits, then
//      spend what is left on the best upgrades;
//   5. the exact per-layer multiple-choice knapsack (knapsack.h).
// Both results go to ctx.notes; the one with less predicted error is applied.
// Retention is not this pass's knob: every layer keeps the same number of tokens
// (the spec's policy), the setting at which the best precision assignment has the
// least predicted error (keep everything when that fits).
#include "passes/pass.h"

namespace kvc::passes {

class KVTunerPass final : public Pass {
 public:
  std::string_view name() const override { return "kvtuner"; }
  void run(ir::Module& module, PassContext& ctx) override;
};

}  // namespace kvc::passes
