#pragma once
// `xkv`: keys stored low rank in bases shared by groups of adjacent layers (xKV,
// docs/algorithms.md §6), with the rank of each group from the calibrated spectra.
//
// Groups: consecutive runs of `s` layers (the last one may be shorter), s from the
// argument group=N, else search.lowrank.group_layers when > 1, else xKV's default 4
// (at most the stats' max_group). Every layer of a group is LowRank CrossLayer with
// the group's basis_group id and one rank (ir/verifier.h). A group whose rank would
// be head_dim stores full keys instead (a basis would only add bytes).
//
// Rank of a group at per-KV-head rank r: its key energy is read from
// key_rank_error_g<s> (the spectrum of the group's keys concatenated across heads
// and layers) at the rank holding the same number of coefficients, s * kv_heads * r:
// energy(r) = 1 - error^2. (kvc's basis is per KV head and shared by stacking the
// group's tokens; the concatenated spectrum is the measured proxy.)
//   * energy target (search.lowrank.energy or energy=X > 0): each group gets the
//     smallest rank whose energy reaches it;
//   * otherwise the budget decides: one energy level for all groups, bisected to the
//     highest whose plan fits, then single groups raised (lowest energy first) while
//     bytes remain.
// The knobs xkv does not tune stay uniform: one precision pair (fp16 or the spec's /
// cost model's candidates) and one retention setting (keep everything, or a
// block-aligned token budget with the spec's policy, or each of StreamingLLM, H2O
// and SnapKV when the spec names none); of all settings that fit, the one with the
// lowest predicted error (passes/cost_model.h) wins and ctx.notes says which.
//
// Argument (optional, comma-separated): group=N, energy=X (0 < X <= 1), a precision
// pair (K4V2, fp16) to fix the precision.
#include <optional>
#include <string>
#include <vector>

#include "ir/precision.h"
#include "stats/stats.h"
#include "passes/pass.h"

namespace kvc::passes {

struct XKVOptions {
  std::optional<int> group;
  std::optional<double> energy;
  std::optional<ir::PrecisionPair> precision;
};
XKVOptions parse_xkv_argument(const std::string& argument);

struct XKVGroup {
  int first = 0;  // layer
  int size = 1;   // adjacent layers
  int rank = 0;   // per KV head; head_dim = full keys (no basis)
};

// Consecutive groups of `size` layers covering `layers`.
std::vector<XKVGroup> adjacent_groups(int layers, int size);

// Share of the group's key energy kept at per-KV-head rank `rank` (1 at head_dim).
double group_key_energy(const calibration::CalibrationStats& stats, const XKVGroup& group, int rank);

// The smallest rank in 1..head_dim whose energy reaches `energy`.
int rank_for_energy(const calibration::CalibrationStats& stats, const XKVGroup& group, double energy);

class XKVPass final : public Pass {
 public:
  explicit XKVPass(const std::string& argument) : options_(parse_xkv_argument(argument)) {}
  std::string_view name() const override { return "xkv"; }
  void run(ir::Module& module, PassContext& ctx) override;

 private:
  XKVOptions options_;
};

}  // namespace kvc::passes
