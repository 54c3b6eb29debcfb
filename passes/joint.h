#pragma once
// `joint`: one optimizer over every knob of every layer under the single byte
// budget: (K bits, V bits, retention policy and kept tokens, key rank) per layer,
// solved exactly as a multiple-choice knapsack by dynamic programming over bytes
// (knapsack.h) on the cost model's tables (cost_model.h).
//
// Its candidate space contains every single-knob pass's choices, so its predicted
// error is never worse than theirs:
//   pairs     fp16, search.precision.candidates (or kvtuner's default seven) and the
//             uniform ladder (K8V8, K8V4, K4V4, K4V2, K2V2);
//   retention keep everything, or StreamingLLM, H2O or SnapKV at every keep level
//             (every token block for short contexts, 32 levels otherwise; CAKE is
//             predicted like SnapKV but also stores scores, so it is dominated);
//   rank      full head_dim, or every rank below it (head_dim <= 16), or multiples
//             of head_dim/4. Ranks are per layer (a PerLayer basis): cross-layer
//             shared bases (xKV groups) are not in the space.
#include "passes/pass.h"
#include "passes/cost_model.h"

namespace kvc::passes {

// The candidate space `joint` searches for `m` under `options`.
CandidateSpace joint_candidate_space(const ir::Module& m, const frontend::SearchOptions& options);

class JointPass final : public Pass {
 public:
  std::string_view name() const override { return "joint"; }
  void run(ir::Module& module, PassContext& ctx) override;
};

}  // namespace kvc::passes
