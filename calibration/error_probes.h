#pragma once
// End-to-end error probes: the measurements that calibrate the cost model's knob
// prices in KL (passes/cost_model.h, "End-to-end calibration").
//
// Each probe is a UNIFORM plan of one knob (every layer alike), run through the
// model on the calibration sequences (the stats' seed and length, so they stay
// disjoint from `kvc sweep`'s evaluation sequences) and its mean KL(baseline || plan)
// recorded:
//   quant      every precision pair a search may choose (the default KVTuner seven,
//              the uniform ladder, `options.precision.candidates`), and for the spec's
//              format families every pair of them (key family x value family, 8, 4, 3
//              and 2 bits each), keeping every token;
//   retention  StreamingLLM, H2O and SnapKV at kept fractions 1/32 .. 3/4 of the
//              context, fp16 keys and values (eviction in prefill AND decode, errors
//              compounding through the layers: what the per-layer stats cannot see);
//   retention on quantized layers: the same policies and fractions (clamped to at
//              least the fp16 tail, below the context) on top of every probed pair but
//              the format families' (their rows are NaN: not measured)
//              (block eviction above an fp16 tail), each stored minus that pair's own
//              KL: eviction and quantization interact, so their combination is measured;
//   rank       keys at head_dim/4, /2 and 3/4 (per-layer prefill bases), fp16;
//   per-layer retention: ONE layer evicting (StreamingLLM, H2O, SnapKV at kept
//              fractions 1/16, 1/4, 1/2), every other layer fp16 keeping everything:
//              how a uniform eviction's damage splits across layers (L x 9 probes).
// All probes share one pass per sequence over the baseline (calibration::evaluate_plans).
#include <cstdint>
#include <iosfwd>

#include "stats/stats.h"
#include "calibration/token_sequences.h"
#include "frontend/spec.h"
#include "model/model.h"

namespace kvc::calibration {

struct ErrorProbeOptions {
  int sequences = 0;  // 0 = the stats' sequences
  // The calibration sequences' file, when the stats were measured on one (their
  // meta.source says which); sampled stats need none.
  calibration::SequenceSource source;
  int threads = 0;
  std::ostream* progress = nullptr;
};

// The kept fractions the retention probes use.
const std::vector<double>& probe_keep_ratios();
// The kept fractions the per-layer retention probes use.
const std::vector<double>& layer_probe_keep_ratios();

// Measures the probes and stores them in `stats` as the e2e_* tensors (replacing
// any there). `search` gives the group, residual and retention parameters (sink,
// window, pool) the probe plans use: those the plans to be priced will use.
void measure_error_probes(const model::Model& model, const frontend::SearchOptions& search,
                          calibration::CalibrationStats& stats, const ErrorProbeOptions& options = {});

}  // namespace kvc::calibration
