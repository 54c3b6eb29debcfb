#pragma once
// `prefixkv`: per-layer token budgets from one global retention level (PrefixKV,
// docs/algorithms.md §4).
//
// Each layer l has a prefix importance curve F_l(x): the share of its prefill
// attention mass held by its top x-fraction of prompt tokens (prefix_curve_mean,
// stats/stats.h). For a level p, layer l keeps k_l(p) = the smallest number
// of tokens with F_l(k / context) >= p: every layer keeps the same share of its own
// attention mass, so layers with concentrated attention give up more tokens. A
// binary search finds the highest p whose plan fits module.budget_bytes.
//
// Policy of the kept tokens: H2O (accumulated attention + the spec's sink and recent
// window). PrefixKV ranks tokens by their column sums of prefill attention over all
// queries, which is exactly H2O's accumulated score, and the curve F_l measures the
// mass those top tokens hold; a window-query policy (SnapKV) would keep a different
// set than the one the level was computed for. `prefixkv<snapkv>` and
// `prefixkv<streamingllm>` choose another policy anyway.
//
// Precision is not this pass's knob: every layer gets the same (K bits, V bits),
// the candidate (fp16 or search.precision.candidates / the cost model's ladder) whose
// fitting allocation has the lowest predicted error (passes/cost_model.h). Bytes of
// a layer change only per token block, so budgets are block-aligned.
//
// Argument (optional, comma-separated, any order): a precision pair (K4V2, fp16)
// fixes the precision; h2o | snapkv | streamingllm | cake sets the policy.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ir/precision.h"
#include "stats/stats.h"
#include "passes/pass.h"

namespace kvc::passes {

// Layer l's curve: F_l at fractions i / F of the prompt, i = 1..F (prefix_curve_mean).
std::vector<std::vector<double>> prefix_importance_curves(const calibration::CalibrationStats& stats);

// The fewest of `context` tokens whose top-mass share reaches `level` on `curve`
// (linear between the curve's points, F(0) = 0); `context` when the curve never does.
std::int64_t tokens_for_level(const std::vector<double>& curve, double level, std::int64_t context);

struct PrefixKVOptions {
  std::optional<ir::PrecisionPair> precision;  // nullopt = choose
  ir::RetentionPolicy policy = ir::RetentionPolicy::H2O;
};
PrefixKVOptions parse_prefixkv_argument(const std::string& argument);

struct PrefixKVAllocation {
  double level = 0;                  // the global retention level p
  std::vector<std::int64_t> tokens;  // per layer, as planned (context = keep everything)
  std::int64_t bytes = 0;
};

// The highest level whose plan (every layer at `key_bits`/`value_bits` and `policy`)
// fits `m.budget_bytes`, or nullopt when even level 0 (each layer at its smallest
// legal budget) does not fit. Writes the plan into `m` when it fits.
std::optional<PrefixKVAllocation> allocate_prefix_retention(ir::Module& m, const std::vector<std::vector<double>>& curves,
                                                            ir::PrecisionPair precision, ir::RetentionPolicy policy,
                                                            const frontend::SearchOptions& options);

class PrefixKVPass final : public Pass {
 public:
  explicit PrefixKVPass(const std::string& argument) : options_(parse_prefixkv_argument(argument)) {}
  std::string_view name() const override { return "prefixkv"; }
  void run(ir::Module& module, PassContext& ctx) override;

 private:
  PrefixKVOptions options_;
};

}  // namespace kvc::passes
