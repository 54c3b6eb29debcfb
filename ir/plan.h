#pragma once
// The plan IR: what kvc computes, kept apart from how (kernels, schedules).
//
// A Module holds the model's attention shape, the workload, the byte budget and
// one LayerPlan per decoder layer. A LayerPlan says exactly how that layer's KV
// cache is stored:
//
//   * precision  - K and V separately: bits (16 = uncompressed fp16; 8/4/3/2 =
//                  codes), the axis a quantization group runs along, the group
//                  size, how codes map back to numbers (KIVI's min/scale, one
//                  symmetric scale, or a Lloyd-Max codebook) and whether the
//                  vectors are rotated (randomized Hadamard) before they are coded;
//   * residual   - how many of the newest tokens stay in fp16 before they are
//                  quantized (see ir/layout.h for the exact token partition);
//   * retention  - how many tokens the layer keeps and which (policy + parameters);
//   * low rank   - the rank keys are stored at and which layers share a basis.
//
// The meaning of every field is defined by the reference kernels in
// backends/reference and the byte model in ir/layout.h; the verifier
// (ir/verifier.h) says which combinations are legal.
#include <cstdint>
#include <string>
#include <vector>

namespace kvc::ir {

enum class DType : std::uint8_t { F32, F16, BF16 };

// Which way a quantization group runs.
//   PerChannel: one group = `group` consecutive tokens of one channel (KIVI keys).
//   PerToken:   one group = `group` consecutive channels of one token (KIVI values).
enum class QuantAxis : std::uint8_t { PerChannel, PerToken };

enum class RetentionPolicy : std::uint8_t {
  Full,          // keep every token
  StreamingLLM,  // `sink` first tokens + the most recent ones
  H2O,           // heavy hitters by accumulated attention + the most recent `window`
  SnapKV,        // chosen once at the end of prefill from the last `window` queries, pooled
  CAKE,          // mean + gamma * variance of attention over the last `window` queries
};

enum class BasisSharing : std::uint8_t {
  None,        // keys stored at full head_dim (rank must be 0)
  PerLayer,    // this layer has its own basis
  CrossLayer,  // one basis shared by the adjacent layers with the same `basis_group`
};

enum class BasisSource : std::uint8_t {
  Prefill,     // truncated SVD of each sequence's keys at the end of its prefill (xKV, ShadowKV)
  Calibrated,  // fixed from calibration statistics and shipped with the plan
};

// How a group's codes map back to numbers (exact formulas: backends/reference/quantize.h).
//   MinMax:    fp16 scale and minimum per group, x^ = q * s + m (KIVI, asymmetric).
//   Symmetric: one fp16 scale per group, x^ = (q - (2^bits - 1) / 2) * s: every
//              level is used and they sit symmetrically around 0.
//   LloydMax:  one fp16 scale per group (the group's RMS), x^ = level[q] * s with
//              the Lloyd-Max levels of a unit Gaussian (2, 3 or 4 bits): the
//              distortion-optimal scalar code for the near-Gaussian coordinates of
//              a rotated vector.
enum class QuantScheme : std::uint8_t { MinMax, Symmetric, LloydMax };

// What is applied to each token's head vector before it is coded.
//   Hadamard: x -> H D x / sqrt(n) per block of n channels (n = the largest power
//             of two dividing the coded dims), D = diag(+-1) drawn from `seed`
//             (backends/reference/rotation.h). Orthogonal, so scores and outputs
//             are unchanged in exact arithmetic; it spreads outlier channels over
//             the block so one scale per token fits every coordinate.
enum class Rotation : std::uint8_t { None, Hadamard };

struct QuantFormat {
  int bits = 16;  // 16, 8, 4, 3 or 2
  QuantAxis axis = QuantAxis::PerChannel;
  int group = 32;  // tokens (PerChannel) or channels (PerToken) per scale (and min)
  QuantScheme scheme = QuantScheme::MinMax;
  Rotation rotation = Rotation::None;
  std::uint32_t seed = 0;  // Hadamard's sign flips (0 without rotation)
  bool operator==(const QuantFormat&) const = default;
};

struct Retention {
  RetentionPolicy policy = RetentionPolicy::Full;
  std::int64_t budget = 0;  // tokens kept per sequence (including sink and window); 0 with Full
  int sink = 0;             // StreamingLLM / H2O: leading tokens always kept
  int window = 0;           // recent tokens always kept (StreamingLLM, H2O) or observation window (SnapKV, CAKE)
  int pool = 0;             // SnapKV: max-pool, CAKE: average-pool kernel over neighbouring positions (odd; 1 = none)
  double gamma = 0.0;       // CAKE: weight of the variance term
  bool operator==(const Retention&) const = default;
};

struct LowRank {
  int rank = 0;  // 0 = keys at full head_dim
  BasisSharing sharing = BasisSharing::None;
  int basis_group = -1;  // CrossLayer: id shared by the layers of one group (adjacent layers)
  BasisSource source = BasisSource::Prefill;
  bool operator==(const LowRank&) const = default;
};

struct LayerPlan {
  int index = 0;
  QuantFormat key{16, QuantAxis::PerChannel, 32};
  QuantFormat value{16, QuantAxis::PerToken, 32};
  int residual = 0;  // fp16 window of newest tokens (see ir/layout.h)
  Retention retention;
  LowRank lowrank;
  bool operator==(const LayerPlan&) const = default;
};

struct ModelShape {
  std::string name;
  int layers = 0;
  int q_heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  double rope_theta = 10000.0;
  DType cache_dtype = DType::F16;  // what the uncompressed cache would hold
  bool operator==(const ModelShape&) const = default;
};

struct Workload {
  std::int64_t context = 0;   // tokens each sequence's cache must hold at most (prompt + generated)
  std::int64_t batch = 1;     // sequences held at once
  std::int64_t generate = 0;  // of those, tokens decoded one at a time after the prompt
  bool operator==(const Workload&) const = default;
};

struct Module {
  ModelShape model;
  Workload workload;
  std::int64_t budget_bytes = 0;  // the whole KV cache for the batch
  std::vector<LayerPlan> layers;  // layers[i].index == i
  bool operator==(const Module&) const = default;
};

// Names used by the text form, the spec and reports.
const char* to_string(DType);
const char* to_string(QuantAxis);
const char* to_string(QuantScheme);
const char* to_string(Rotation);
const char* to_string(RetentionPolicy);
const char* to_string(BasisSharing);
const char* to_string(BasisSource);
int dtype_bytes(DType);

// A module with `layers` uncompressed layer plans (all fp16, keep everything).
Module make_uncompressed_module(const ModelShape& model, const Workload& workload, std::int64_t budget_bytes);

}  // namespace kvc::ir
