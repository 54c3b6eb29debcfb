#pragma once
// The YAML spec (schema version 1) as kvc reads it; see specs/README.md for the
// schema a user writes. load_spec() validates everything it reads and throws
// kvc::Error naming file:line:column and the field path for the first problem.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/plan.h"
#include "support/diagnostics.h"

namespace kvc::frontend {

// search.precision: which pass picks K/V bits, and the format options it uses.
struct PrecisionSearch {
  std::string method = "uniform";     // none (fp16) | uniform | kvtuner
  std::vector<std::string> candidates;  // precision pairs (ir/precision.h: K8V8, K4V2cr), validated; empty = the pass's ladder
  int group = 32;                       // 8, 16, 32, 64 or 128; values use value_group(group, head_dim) (spec_limits.h)
  int residual = 128;                   // fp16 residual window, tokens; a multiple of group
  std::uint32_t seed = 1;               // sign flips of rotated formats (the `r` of K4trV4tr)
  // Format families the searches combine when `candidates` is empty (ir/precision.h
  // family names: kivi, t, tr, cr, ...): every key family x value family at 8, 4, 3
  // and 2 bits. Empty = KIVI's seven pairs.
  std::vector<std::string> formats;
};

// search.retention: which pass picks kept tokens per layer, and the runtime policy.
struct RetentionSearch {
  std::string method = "none";  // none | streamingllm | h2o | snapkv | cake | prefixkv
  int sink = 4;
  int window = 32;
  int pool = 0;        // pooling kernel (odd); 0 = the method's own: SnapKV max-pool 7, CAKE average-pool 5
  double gamma = 0.0;  // CAKE variance weight
};

// search.lowrank: which pass picks key ranks.
struct LowRankSearch {
  std::string method = "none";  // none | xkv | shadowkv
  int group_layers = 1;         // xKV: adjacent layers per shared basis
  double energy = 0.0;          // target spectral energy (0 = let the budget decide)
  std::string basis = "prefill";  // prefill | calibrated
};

struct SearchOptions {
  PrecisionSearch precision;
  RetentionSearch retention;
  LowRankSearch lowrank;
  bool joint = false;
  std::string pipeline;  // explicit pass pipeline ("uniform,estimate,legalize"); empty = default
};

struct TargetOptions {
  std::string backend = "llvm-jit";  // llvm-jit | llvm-aot | reference
  std::string cpu = "native";
  int threads = 1;
};

struct Spec {
  std::string path;            // the spec file as given
  int version = 1;
  ir::ModelShape model;        // inline or read from model.from
  std::string model_from;      // resolved path of model.from ("" when inline)
  std::int64_t model_context = 0;  // max context of the model when the file says (0 = unknown)
  ir::Workload workload;
  std::int64_t budget_bytes = 0;   // resolved: budget.bytes, or budget.ratio * fp16 bytes
  std::optional<double> budget_ratio;
  std::string calibration_stats;  // resolved path, "" when absent
  SearchOptions search;
  TargetOptions target;

  // Where each field was written: "budget.bytes" -> file:line:col (leaf fields at
  // their value, sections and list items at their key or item). Later stages use
  // it to point at the field their error is about; location_of() falls back to the
  // closest enclosing field that was written, then to the file alone.
  std::map<std::string, SourceLocation> locations;
  SourceLocation location_of(const std::string& field) const;

  // The IR module the pipeline starts from: shape, workload, budget and one
  // uncompressed LayerPlan per layer.
  ir::Module to_module() const;
};

// Reads and validates a spec file. Relative paths inside it (model.from,
// calibration.stats) are resolved against the spec's folder. Shape fields written
// beside model.from must agree with the file; name and cache_dtype override it.
// The budget is checked against ir::smallest_plan (frontend/spec_limits.h).
Spec load_spec(const std::string& path);
// Same, from text already in memory; `path` is used in messages and to resolve paths.
Spec parse_spec(const std::string& text, const std::string& path);

}  // namespace kvc::frontend
