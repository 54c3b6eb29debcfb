#pragma once
// The error model every search pass plans with, and the cost tables it builds.
//
// One function predicts the error of ANY plan (predict_plan_error); the search
// passes (kvtuner, joint, prefixkv, cake, xkv), `kvc explain` and `kvc sweep` all
// report predicted error through it, so their numbers are comparable.
//
// Per layer, each knob contributes a relative attention-output error measured by
// `kvc calibrate` (stats/stats.h), averaged over the layer's KV heads:
//   quant      quant_output_error_mean[l][h][K bits][V bits]; 16 bits reads as 8
//              (the smallest measured error, ~0) when the other side is quantized.
//   retention  retention_output_error_mean[l][h][policy][ratio], linearly
//              interpolated in keep ratio between
//              the measured ratios, 0 at ratio 1 (keep everything), flat below the
//              smallest measured ratio. A plan keeping k of N tokens reads the
//              ratio r at which the stats dropped the same share of what the last
//              query sees: the stats keep every decode token, so
//              (1 - r) * prompt / (prompt + decode) = (N - k) / N. CAKE reads the SnapKV column (both select
//              from the prefill's observation-window attention).
//   rank       key_rank_error_g1[l][rank * kv_heads] (relative key error of the
//              best rank-(rank*kv_heads) approximation of the layer's keys) times
//              the layer's key-to-output gain, derived from the stats themselves:
//              mean over K bits of quant_output_error[K][8] / quant_key_error[K]
//              (how much relative output error one unit of relative key error makes
//              when values are nearly exact). Cross-layer bases read the same
//              per-layer curve (a lower bound; documented in the report).
// The three perturbations are independent, so their SQUARED relative output errors
// add: layer error = quant^2 + retention^2 + rank^2. KL between next-token
// distributions is quadratic in a small logit perturbation, and each layer's
// output perturbation feeds the logits, so the plan's predicted error is the sum of
// layer errors, each times the layer's weight (1 unless fitted, see ErrorModel).
//
// End-to-end calibration. The per-layer stats above measure each knob on one
// layer's attention output in isolation, with every decode token kept; real plans
// also evict decode tokens and their errors compound through the layers, so the
// proxy misranks knobs against each other (it under-predicts H2O/SnapKV eviction
// several-fold on stories260K). When the stats carry the e2e_* tensors (measured by
// calibration/error_probes.h: `kvc calibrate`, or `kvc sweep` on the calibration
// sequences), every knob is instead priced in measured KL units:
//   e2e_quant_kl      [Q][3]  rows (K bits, V bits, KL): every layer at that pair,
//                             keeping every token
//   e2e_keep_ratios   [R]     ascending kept fractions of the context
//   e2e_retention_kl  [3][R]  KL with every layer fp16 keeping ratio * context tokens,
//                             per policy (StreamingLLM, H2O, SnapKV; CAKE reads SnapKV)
//   e2e_keep_ratios_quantized [Rq], e2e_retention_quantized_kl [Q][3][Rq]
//                             for EVERY probed pair q (the rows of e2e_quant_kl):
//                             every layer at pair q keeping ratio * context tokens
//                             with that policy, minus pair q's own KL (>= 0). Layers
//                             with an fp16 tail (quantized or low rank) evict whole
//                             blocks, and eviction on top of quantization measures
//                             worse than the sum of the two alone: the combination
//                             itself is measured, so a uniform (pair, policy, keep)
//                             plan is predicted from measured KL of that combination
//                             (interpolated in keep only)
//   e2e_rank_kl       [K][2]  rows (rank, KL): every layer's keys at that rank
//   e2e_layer_keep_ratios [Rl], e2e_layer_retention_kl [L][3][Rl] (optional): KL
//                             with ONE layer evicting (fp16, that policy and kept
//                             fraction), every other layer keeping everything
// KL saturates (a cache that has lost everything cannot be worse than a constant
// distribution), so one layer's share of a uniform plan's KL is not that KL / layers.
// Every measured KL is first unsaturated: u(KL) = -C ln(1 - KL / C), C = 1.25 x the
// largest KL any probe measured (the e2e ceiling); damages u add over layers and knobs.
// A layer's share of a uniform setting's damage is its squared proxy error (above)
// over the sum of all layers' for quantization, the single-layer probes' shares for
// retention (below), 1 / layers for rank:
//   quant      u(KL_q) * share_l                          (KL_q: its pair's probe)
//   retention  (u(KL_q + KL_added) - u(KL_q)) * rshare_l   (KL_added: the retention
//              probe row of its pair and policy at its kept fraction; fp16 layers read
//              e2e_retention_kl with KL_q = 0; an unprobed pair reads the worst row)
//   rank       u(KL_rank) / layers
//   rshare_l = u(KL_l) / sum over layers of u(KL_l'), KL_l the single-layer probe of
//   its policy at its kept fraction (interpolated), or 1 / layers without those probes:
//   early layers of stories260K lose ~10x more than late ones to the same eviction.
//   layer error = weight * (quant + retention + rank); plan error = sum over layers.
// So the plan error is in unsaturated KL units ("damage"): a monotone function of the
// predicted KL (KL = C (1 - exp(-error / C)) for a uniform plan), which ranks plans
// the same way.
// Retention curves are linear in the kept fraction between probes, 0 at 1, and
// grow as 1/ratio below the smallest probe (unmeasured: never cheap); rank curves likewise in
// rank / head_dim; an unprobed pair is its proxy times the probed pairs' geometric
// mean KL / proxy.
#include <cstdint>
#include <string>
#include <optional>
#include <vector>

#include "stats/stats.h"
#include "frontend/spec.h"
#include "ir/plan.h"
#include "ir/precision.h"

namespace kvc::passes {

// Free constants of the model. Defaults are the derived ones (equal layer weights).
struct ErrorModel {
  std::vector<double> layer_weight;  // empty = 1 for every layer
  double weight(int layer) const {
    return layer < static_cast<int>(layer_weight.size()) ? layer_weight[layer] : 1.0;
  }
};

// One layer's predicted error, by knob (relative output errors, not squared; KL
// contributions with end-to-end calibration) and combined (sum of squares, or of the
// KL contributions, times the layer weight).
struct LayerErrorBreakdown {
  double quant = 0;
  double retention = 0;
  double rank = 0;
  double weight = 1;
  double total = 0;  // weight * (quant^2 + retention^2 + rank^2)
};

struct PlanErrorPrediction {
  double total = 0;
  std::vector<LayerErrorBreakdown> layers;
};

// Throws kvc::Error when the stats lack a tensor the model reads or were measured
// on another model shape than `plan`.
PlanErrorPrediction predict_plan_error(const ir::Module& plan, const calibration::CalibrationStats& stats,
                                       const ErrorModel& model = {});

// Whether the stats carry the end-to-end e2e_* tensors (throws kvc::Error when they
// are present with the wrong shapes).
bool has_end_to_end_calibration(const calibration::CalibrationStats& stats);

// The knob-level primitives (layer l, averaged over KV heads).
double predicted_quant_error(const calibration::CalibrationStats& stats, int layer, const ir::PrecisionPair& pair);
double predicted_retention_error(const calibration::CalibrationStats& stats, int layer, ir::RetentionPolicy policy,
                                 double keep_ratio);
double predicted_rank_error(const calibration::CalibrationStats& stats, int layer, int rank);
// The mean-over-bits quant output error of the layer: its sensitivity (KVTuner's e_o).
double layer_sensitivity(const calibration::CalibrationStats& stats, int layer);

// ---------------------------------------------------------------------------
// Cost tables: per layer, every candidate setting with its bytes and error.

// One layer's setting of every knob.
struct LayerChoice {
  ir::PrecisionPair pair;  // fp16 by default
  ir::RetentionPolicy policy = ir::RetentionPolicy::Full;
  std::int64_t keep = 0;  // tokens kept (0 with Full)
  int rank = 0;           // per KV head, 0 = full head_dim
  bool operator==(const LayerChoice&) const = default;
};
std::string describe(const LayerChoice& choice);  // "K4V2 snapkv keep 96 rank 4", "K4V2cr"

// The LayerPlan a choice makes for `layer` of `m`, with the spec's group, residual,
// retention parameters (sink, window, pool, gamma) and basis source.
ir::LayerPlan make_layer_plan(const ir::Module& m, int layer, const LayerChoice& choice,
                              const frontend::SearchOptions& options);

// What a search may choose from, for every layer alike.
struct CandidateSpace {
  std::vector<ir::PrecisionPair> pairs;            // fp16 is K16V16
  std::vector<ir::RetentionPolicy> policies;       // Full is always a candidate (keep = 0)
  std::vector<std::int64_t> keeps;                 // token budgets tried with each policy
  std::vector<int> ranks;                          // 0 = full head_dim is always tried
  // Per layer, the pairs worth tabulating (prune_pairs); empty = prune `pairs` anew.
  std::vector<std::vector<ir::PrecisionPair>> layer_pairs;
};

// Per layer, the pairs of `space.pairs` that no other pair dominates there (same
// token block and tail, no larger blocks at any rank, no larger error keeping
// everything, and with end-to-end prices no larger KL and eviction curve): the
// others' entries can never be on the layer's frontier, at any retention or rank, so
// tabulating only these keeps the exact optimum. Pairs a head cannot store are dropped.
std::vector<std::vector<ir::PrecisionPair>> prune_pairs(const ir::Module& m, const calibration::CalibrationStats& stats,
                                                        const frontend::SearchOptions& options,
                                                        const CandidateSpace& space, const ErrorModel& model = {});

// The precision pairs of search.precision.candidates; without them every pair of
// search.precision.formats' families (key x value) at 8, 4, 3 and 2 bits; without
// those K8V8, K8V4, K4V8, K4V4, K4V2, K2V4, K2V2.
std::vector<ir::PrecisionPair> precision_candidates(const frontend::PrecisionSearch& options);
// The uniform precisions a pass that tunes another knob tries: `fixed` alone when its
// argument names one, else fp16 and then every candidate (each once).
std::vector<ir::PrecisionPair> uniform_precisions_to_try(const std::optional<ir::PrecisionPair>& fixed,
                                                         const frontend::PrecisionSearch& options);
// Token budgets worth trying: every whole token block above the tail for short
// contexts (bytes only change per block, error falls with tokens), at most
// `max_levels` evenly spread block-aligned budgets otherwise; each a legal budget
// for `plan_template` (>= its tail capacity, <= context).
std::vector<std::int64_t> keep_levels(const ir::Module& m, const ir::LayerPlan& plan_template, int max_levels = 64);

struct CostEntry {
  LayerChoice choice;
  std::int64_t bytes = 0;  // ir::layer_bytes(...).total() of the plan the choice makes
  double error = 0;        // that layer's weighted predicted error
};

// Every candidate of `space` for every layer (bytes from ir/layout.h, error from
// predict_plan_error's layer model).
std::vector<std::vector<CostEntry>> build_cost_tables(const ir::Module& m, const calibration::CalibrationStats& stats,
                                                      const frontend::SearchOptions& options,
                                                      const CandidateSpace& space, const ErrorModel& model = {});

// Keeps only entries on the (bytes ascending, error strictly descending) frontier.
std::vector<CostEntry> pareto_frontier(std::vector<CostEntry> entries);

// Applies one choice per layer to `m`.
void apply_choices(ir::Module& m, const std::vector<LayerChoice>& choices, const frontend::SearchOptions& options);

}  // namespace kvc::passes
