#pragma once
// `cake`: per-layer token budgets in proportion to each layer's attention
// preference (CAKE, docs/algorithms.md §5), with CAKE's eviction indicator as the policy.
//
// Preference P_l = H_l^(1/tau1) * V_l^(1/tau2), H_l and V_l the layer's calibrated
// attention entropy and temporal variance (cake_entropy_mean, cake_variance_mean,
// summed over its KV heads). Layers whose attention is spread out (high H) or
// shifts between queries (high V) need more tokens. The tokens above each layer's
// smallest legal budget (its fp16 tail, ir/layout.h) are split in proportion to P_l;
// a layer's share is capped at the whole context and what a capped layer cannot use
// goes to the others in the same proportion (CAKE's adjust_budgets), found by
// bisecting the proportionality constant against the byte budget. This is the
// static ("offline estimation") form of CAKE: the original recomputes P_l per prompt
// and cascades at prefill; here P_l comes from the calibration averages.
//
// Each layer's policy is RetentionPolicy::CAKE (mean + gamma * variance of the
// observation window's attention, average-pooled; at decode the current query's
// attention, pooled the same way) with the spec's window, pool and gamma, or the CAKE
// code's defaults (pool 5, gamma = 200) when the spec leaves them at 0.
//
// Precision is not this pass's knob: every layer gets the same (K bits, V bits), the
// candidate whose fitting allocation has the lowest predicted error (cost_model.h).
//
// The temperatures: CAKE tunes (tau1, tau2) per model and budget (its model2tau.json:
// 0.4 .. 2.3 on Llama/Mistral/Qwen). When the argument leaves one unset, the pass tunes
// it the same way, on the calibration: every tau in kTauGrid, keeping the allocation
// with the lowest predicted error (with single-layer retention probes in the stats the
// cost model knows which layers eviction hurts most; see cost_model.h).
//
// Argument (optional, comma-separated): a precision pair (K4V2, fp16),
// tau1=X, tau2=X (fix a temperature; tau1=1,tau2=1 is CAKE's fallback), gamma=X.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ir/precision.h"
#include "stats/stats.h"
#include "passes/pass.h"

namespace kvc::passes {

struct CakeOptions {
  std::optional<ir::PrecisionPair> precision;  // nullopt = choose
  std::optional<double> tau1;  // nullopt = tuned over kTauGrid
  std::optional<double> tau2;
  std::optional<double> gamma;  // nullopt = the spec's, or 200 when that is 0
};
CakeOptions parse_cake_argument(const std::string& argument);

// The temperatures tried for an unset tau1 / tau2 (CAKE's published range and beyond).
inline constexpr double kTauGrid[] = {0.25, 0.5, 1.0, 2.0, 4.0};

// P_l per layer. Throws kvc::Error for non-finite or negative statistics or taus <= 0.
std::vector<double> cake_layer_preferences(const calibration::CalibrationStats& stats, double tau1, double tau2);

struct CakeAllocation {
  std::vector<std::int64_t> tokens;  // per layer (context = keep everything)
  std::int64_t bytes = 0;
};

// Splits the budget over the layers of `m` (every layer at `precision`, CAKE policy
// with `gamma`) in proportion to `preferences`; nullopt when even each layer's
// smallest legal budget does not fit. Writes the plan into `m` when it fits.
std::optional<CakeAllocation> allocate_cake_retention(ir::Module& m, const std::vector<double>& preferences,
                                                      ir::PrecisionPair precision, double gamma,
                                                      const frontend::SearchOptions& options);

class CakePass final : public Pass {
 public:
  explicit CakePass(const std::string& argument) : options_(parse_cake_argument(argument)) {}
  std::string_view name() const override { return "cake"; }
  void run(ir::Module& module, PassContext& ctx) override;

 private:
  CakeOptions options_;
};

}  // namespace kvc::passes
