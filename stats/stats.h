#pragma once
// Calibration statistics: what `kvc calibrate` measures on a real model so that the
// search passes (kvtuner, prefixkv, cake, xkv, legalize) can run offline, without
// the model. docs/algorithms.md §10 says which pass reads which statistic.
//
// A CalibrationStats is metadata (the model shape it was measured on and how it was
// measured) plus named fp32 tensors. Every tensor kvc writes is listed below with
// its shape; L = layers, H = kv_heads, d = head_dim, D = kv_heads * head_dim,
// N = sequences, FK = |key formats|, FV = |value formats| (precision pair sides,
// ir/precision.h: KIVI's at 2, 3, 4, 8 bits and, from `kvc calibrate`, the rotated
// and codebook ones), R = |keep ratios|,
// F = prefix_points. "P" marks per-sequence values kept so passes can average or
// take quantiles themselves.
//
// Quantities are measured per sequence on its tokens' post-RoPE keys K, values V and
// queries Q (the model's cache only ever sees post-RoPE keys). The first `prompt`
// tokens of each sequence play the prompt, the remaining `decode` tokens the decoded
// continuation; "decode queries" are the queries of those positions, each attending
// causally (to every token up to and including itself). A "relative output error"
// is ||o - o^|| / ||o|| of one query head's attention output, where o attends over
// the fp16-rounded keys and values (what an uncompressed cache stores) and o^ over
// the compressed ones, averaged over the decode queries and the query heads of a KV
// head.
//
// B. Tensor distributions
//   key_channel_min, key_channel_max,
//   key_channel_mean, key_channel_var   [L][H][d]  over all tokens of all sequences
//   key_outlier_ratio                   [L][H]     max channel range / median channel range
//   value_outlier_ratio                 [L][H]     same for the value channels
//   value_token_range_mean, _p50, _p99, _max [L][H]  per-token range (max - min over the
//                                                  head's d channels), over all tokens
//   value_token_absmax_mean, _max       [L][H]     per-token max |v|
// C. Quantization sensitivity (KVTuner), per key format x value format
//   Keys of the prompt's whole blocks of `quant_token_group` tokens are encoded in the
//   key format (KIVI: per channel), values in the value format (KIVI: per token with
//   groups of `quant_channel_group` channels), with the reference block encoder
//   (backends/reference/quantize.h, rotation included), and decoded back; the rest
//   (decode tokens, a partial last block) stay fp16 like a cache's residual tail.
//   quant_output_error     [N][L][H][FK][FV]  P: relative output error, [.. key fmt][value fmt]
//   quant_output_error_mean, _p90 [L][H][FK][FV]  over sequences
//   quant_key_error   [L][H][FK]  mean over sequences of ||K - K^|| / ||K||
//   quant_value_error [L][H][FV]  the same for values
// D. Retention (kept prompt tokens; decode tokens are always kept)
//   retention_output_error [N][L][H][P=3][R]  P: relative output error of each policy
//     (0 StreamingLLM: `sink` first + most recent; 1 H2O: the newest half of the budget
//     + the highest accumulated prefill attention; 2 SnapKV: the newest
//     `snapkv_window` + the highest scores of those window queries, max-pooled over
//     `snapkv_pool` neighbours) at keep = max(1, round(ratio * prompt)) prompt tokens
//   retention_output_error_mean, _p90 [L][H][3][R]
//   prefix_curve           [N][L][F]  P: PrefixKV F_l(k): share of the head-averaged
//     prefill attention mass (column sums over all prompt queries) held by the top k
//     prompt tokens, at k = ceil(prompt * i / F), i = 1..F (monotone, ends at 1)
//   prefix_curve_mean      [L][F]
//   cake_entropy, cake_variance [N][L][H]  P: CAKE H (summed row entropy) and V (summed
//     per-key variance across the window queries) of the last `cake_window` prompt
//     queries over the non-window prompt keys, summed over the KV head's query heads
//   cake_entropy_mean, cake_variance_mean [L][H]
// E. Low rank (xKV): for groups of s = 1..max_group adjacent layers, starting at layer l,
//   the Gram matrix of the concatenated keys [tokens][s*D] over all tokens of all
//   sequences, and its eigenvalues (= squared singular values), descending:
//   key_spectrum_g<s>      [L-s+1][s*D]     (clamped at 0)
//   key_rank_error_g<s>    [L-s+1][s*D+1]   relative Frobenius error of the best rank-r
//     approximation, sqrt(sum_{i>=r} lambda_i / sum lambda), r = 0..s*D
// F. End-to-end error probes (optional; `kvc calibrate --spec S`, or `kvc sweep` when
//   absent; calibration/error_probes.h measures them, passes/cost_model.h reads them).
//   Each is the mean KL(baseline || plan) over the calibration sequences' decoded
//   positions of a UNIFORM plan (every layer alike), run through the whole model:
//   e2e_quant_kl                [Q][3]      rows (key side, value side, KL), every token
//                                           kept; sides as ir::side_code (KIVI: the bits)
//   e2e_keep_ratios             [R]         kept fractions of the context (ascending)
//   e2e_retention_kl            [3][R]      fp16 K/V, StreamingLLM/H2O/SnapKV keeping
//                                           ratio * context tokens
//   e2e_keep_ratios_quantized   [Rq]        kept fractions on quantized layers (>= the
//                                           fp16 tail, < 1)
//   e2e_retention_quantized_kl  [Q][3][Rq]  the same policies on top of row q's pair,
//                                           minus that pair's own KL (clamped at 0); NaN
//                                           rows: not measured for that pair
//   e2e_rank_kl                 [K][2]      rows (rank per KV head, KL), fp16, per-layer
//                                           prefill bases
//   They are not in expected_tensor_shapes (older files lack them);
//   passes::has_end_to_end_calibration checks their shapes.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/plan.h"
#include "ir/precision.h"

namespace kvc::calibration {

// How a stats file was measured (the JSON header's "calibration" object).
struct StatsMeta {
  ir::ModelShape model;          // name, layers, q_heads, kv_heads, head_dim, rope_theta
  std::string source;            // SequenceSource::describe(): "sampled ...", "tokens:PATH" or "text:PATH"
  int sequences = 0;
  int length = 0;                // tokens per sequence
  int prompt = 0;                // of those, the prompt
  int decode = 0;                // and the decoded continuation
  std::uint64_t seed = 0;
  std::vector<ir::SideFormat> key_formats;    // measured key formats (pair sides)
  std::vector<ir::SideFormat> value_formats;  // measured value formats
  int quant_token_group = 32;    // per-channel key group (tokens)
  int quant_channel_group = 32;  // per-token value group (channels)
  std::uint32_t rotation_seed = 1;  // sign flips of the rotated formats measured
  std::vector<double> keep_ratios;
  int sink = 4;                  // StreamingLLM sink tokens
  int snapkv_window = 8;
  int snapkv_pool = 7;
  int cake_window = 32;
  int prefix_points = 64;
  int max_group = 4;             // xKV: largest group of adjacent layers
  bool operator==(const StatsMeta&) const = default;
};

struct StatsTensor {
  std::vector<std::int64_t> shape;
  std::vector<float> data;  // row-major, product(shape) elements
  bool operator==(const StatsTensor&) const = default;
};

struct CalibrationStats {
  StatsMeta meta;
  std::map<std::string, StatsTensor> tensors;

  // The tensor `name`; throws kvc::Error when it is absent or its shape differs.
  const StatsTensor& tensor(const std::string& name, const std::vector<std::int64_t>& shape) const;
  bool operator==(const CalibrationStats&) const = default;
};

// KIVI's sides at each of `bits`.
std::vector<ir::SideFormat> kivi_formats(const std::vector<int>& bits);

// The shapes the class comment lists, for these metadata (name -> shape).
std::map<std::string, std::vector<std::int64_t>> expected_tensor_shapes(const StatsMeta& meta);

// Throws kvc::Error unless every expected tensor is present with its shape and the
// metadata are self-consistent.
void validate_stats(const CalibrationStats& stats, const std::string& origin);

// Throws kvc::Error ("stats file X was measured on ... but the model is ...") unless
// the stats were measured on a model of this shape (layers, heads, head_dim; the
// name and rope_theta are not compared: a converted file may rename the model).
void check_stats_match_model(const CalibrationStats& stats, const ir::ModelShape& model, const std::string& origin);

}  // namespace kvc::calibration
