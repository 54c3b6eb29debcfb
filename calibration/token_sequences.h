#pragma once
// Where calibration and evaluation sequences come from. No tokenizer ships with the
// test model, so by default sequences are the model's own samples at temperature 1:
// sequence i starts with BOS and is drawn by model::generate_sequence with seed
// `seed + i`. A token file gives real data instead.
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace kvc::calibration {

// `count` sequences of `length` tokens sampled from the model (full fp32 cache).
std::vector<std::vector<int>> sample_sequences(const model::Model& model, int count, int length, std::uint64_t seed);

// A token file: one sequence per line, token ids separated by spaces or commas;
// blank lines and lines starting with '#' are skipped. Takes the first `length`
// tokens of each of the first `count` sequences. Throws kvc::Error (file, line) for
// a non-integer, an id outside [0, vocab), too few tokens or too few sequences.
std::vector<std::vector<int>> read_token_file(const std::string& path, int count, int length, int vocab);

}  // namespace kvc::calibration
