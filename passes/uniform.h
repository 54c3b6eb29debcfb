#pragma once
// `uniform`: one format for every layer.
//
//   uniform<K4V2>  every layer at 4-bit keys, 2-bit values (KIVI layout, the spec's
//                  group and residual); uniform<fp16> keeps everything uncompressed.
//   uniform        with no argument: the most precise uniform plan that fits the
//                  budget, choosing bits first (from search.precision.candidates, or
//                  fp16, K8V8, K8V4, K4V4, K4V2, K2V2), then, if even the smallest
//                  format does not fit, the number of tokens every layer keeps (the
//                  spec's retention policy, StreamingLLM by default).
#include <optional>
#include <string>

#include "ir/precision.h"
#include "passes/pass.h"

namespace kvc::passes {

// A precision pair such as K4V2, K4V2cr or fp16 (= K16V16): ir/precision.h.
using ir::PrecisionPair;
using ir::parse_precision_pair;

// Sets every layer of `m` to `pair` (ir::key_format / ir::value_format with the
// options' group and rotation seed, residual from the options) and full retention.
void apply_uniform_precision(ir::Module& m, PrecisionPair pair, const frontend::PrecisionSearch& options);

// The pooling kernels the methods' own code uses when the spec names none:
// SnapKV max-pools over 7 neighbours (its LongBench setting), CAKE average-pools
// over 5 (at prefill and at every decode re-score).
inline constexpr int kSnapKVPool = 7;
inline constexpr int kCakePool = 5;

// The retention of one layer keeping `tokens` tokens under `policy`, with the spec's
// sink, window, pool and gamma (sink and window come out of the token budget).
ir::Retention retention_for(ir::RetentionPolicy policy, std::int64_t tokens, const frontend::RetentionSearch& options);
// The policy the spec's search.retention.method names (StreamingLLM unless h2o, snapkv or cake).
ir::RetentionPolicy spec_retention_policy(const frontend::RetentionSearch& options);

// Sets every layer to keep `tokens` tokens with the policy the spec names
// (StreamingLLM unless it names h2o, snapkv or cake).
void apply_uniform_retention(ir::Module& m, std::int64_t tokens, const frontend::RetentionSearch& options);

// The largest per-layer token budget (>= the layers' tail capacity) at which `m`
// fits `budget_bytes`, or nullopt if even the smallest does not.
std::optional<std::int64_t> largest_fitting_retention(const ir::Module& m, std::int64_t budget_bytes,
                                                       const frontend::RetentionSearch& options);

class UniformPass final : public Pass {
 public:
  explicit UniformPass(std::string argument) : argument_(std::move(argument)) {}
  std::string_view name() const override { return "uniform"; }
  void run(ir::Module& module, PassContext& ctx) override;

 private:
  std::string argument_;
};

}  // namespace kvc::passes
