#pragma once
// `kvc calibrate`: runs the model over calibration sequences and measures what the
// search passes need (calibration/stats.h), so they can run without the model.
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
#include "calibration/stats.h"
#include "calibration/token_sequences.h"
#include "model/model.h"

namespace kvc::calibration {

struct CalibrateOptions {
  int sequences = 16;
  int length = 512;
  int decode = 0;              // decoded continuation; 0 = min(64, length / 4)
  std::uint64_t seed = 0;
  SequenceSource source;       // sampled unless it names a file (token_sequences.h)
  int threads = 0;             // 0 = std::thread::hardware_concurrency()
  std::ostream* progress = nullptr;  // one line per finished sequence when set
};

// The metadata (settings and model shape) a run with these options records.
StatsMeta calibration_meta(const model::Model& model, const CalibrateOptions& options);

CalibrationStats calibrate(const model::Model& model, const CalibrateOptions& options);

// Activations of one sequence run as a prefill through the full cache.
SequenceActivations record_activations(const model::Model& model, const std::vector<int>& tokens);

// The model's attention shape in IR terms (what stats and plans are checked against).
ir::ModelShape model_shape(const model::Model& model);

}  // namespace kvc::calibration
