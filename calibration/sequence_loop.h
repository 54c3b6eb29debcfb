#pragma once
// The loop `kvc calibrate` and `kvc eval` share: one sequence per worker at a time,
// sequence i either sampled from the model (seed + i) or line i of a token file.
#include <cstdint>
#include <functional>
#include <vector>

#include "model/model.h"

namespace kvc::calibration {

// Sequence i: line i of `from_file` when a token file was read, else the model's own
// sample at temperature 1 with seed `seed + i` (sampling per sequence keeps the
// sequences independent of the thread count).
std::vector<int> sequence_tokens(const model::Model& model, const std::vector<std::vector<int>>& from_file,
                                 std::uint64_t seed, int i, int length);

// Runs body(i) for every i in [0, n) on min(n, threads) workers (threads <= 0: every
// core). Once a body throws, no further sequence starts, and the first exception is
// rethrown when the running ones have finished. `finished(count)` runs after each
// sequence, never concurrently with itself (progress lines do not interleave).
void for_each_sequence(int n, int threads, const std::function<void(int i)>& body,
                       const std::function<void(int count)>& finished);

}  // namespace kvc::calibration
