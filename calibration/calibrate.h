#pragma once
// `kvc calibrate`: runs the model over calibration sequences and measures what the
// search passes need (stats/stats.h), so they can run without the model.
//
// Each sequence goes through the model as ONE prefill (full fp32 cache); its
// post-RoPE keys, values and queries per layer are all the statistics need. Of its
// `length` tokens the first `prompt` play the prompt and the rest the decoded
// continuation (sequence_statistics.cpp). Sequences are measured in parallel and
// combined in order: the same inputs give the same file for any thread count.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "calibration/sequence_statistics.h"
#include "stats/stats.h"
#include "calibration/token_sequences.h"
#include "model/model.h"

namespace kvc::calibration {

// KIVI's, unrotated per-token, rotated per-token and rotated codebook: "kivi", "t", "tr", "cr".
std::vector<std::string> default_calibration_families();

struct CalibrateOptions {
  int sequences = 16;
  int length = 512;
  int decode = 0;              // decoded continuation; 0 = min(64, length / 4)
  std::uint64_t seed = 0;
  SequenceSource source;       // sampled unless it names a file (token_sequences.h)
  int threads = 0;             // 0 = std::thread::hardware_concurrency()
  std::ostream* progress = nullptr;  // one line per finished sequence when set
  // Format families whose key and value formats are measured (every key format with
  // every value format), each at 2, 3, 4 and 8 bits (the codebook at 2, 3, 4).
  std::vector<std::string> formats = default_calibration_families();
  // Further sides to measure (a spec's candidates), added once each.
  std::vector<ir::SideFormat> extra_key_formats, extra_value_formats;
};

// The metadata (settings and model shape) a run with these options records.
StatsMeta calibration_meta(const model::Model& model, const CalibrateOptions& options);

CalibrationStats calibrate(const model::Model& model, const CalibrateOptions& options);

// Activations of one sequence run as a prefill through the full cache.
SequenceActivations record_activations(const model::Model& model, const std::vector<int>& tokens);

// The model's attention shape in IR terms (what stats and plans are checked against).
ir::ModelShape model_shape(const model::Model& model);

}  // namespace kvc::calibration
