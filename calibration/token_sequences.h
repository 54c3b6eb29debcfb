#pragma once
// Where calibration and evaluation sequences come from. By default they are the
// model's own samples at temperature 1: sequence i starts with BOS and is drawn by
// model::generate_sequence with seed `seed + i`. A token file or a UTF-8 text file
// (tokenized with the model's tokenizer) gives real data instead.
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/tokenizer.h"

namespace kvc::calibration {

// The sequences of a run: sampled unless one file is named.
struct SequenceSource {
  std::string token_file;      // read_token_file
  std::string text_file;       // read_text_file
  std::string tokenizer_file;  // with text_file: "" = the model's (model::Tokenizer::for_model)
  bool from_file() const { return !token_file.empty() || !text_file.empty(); }
  // What the stats file records as its source: "sampled ...", "tokens:PATH" or "text:PATH".
  std::string describe() const;
  // describe()'s inverse (the tokenizer is then the model's own).
  static SequenceSource from_description(const std::string& description);
};

// The `count` sequences of `length` tokens a file source gives ({} when it names no
// file: the caller samples). kvc::Error when both files are named.
std::vector<std::vector<int>> read_source_sequences(const model::Model& model, const SequenceSource& source, int count,
                                                    int length);

// `count` sequences of `length` tokens sampled from the model (full fp32 cache).
std::vector<std::vector<int>> sample_sequences(const model::Model& model, int count, int length, std::uint64_t seed);

// A token file: one sequence per line, token ids separated by spaces or commas;
// blank lines and lines starting with '#' are skipped. Takes the first `length`
// tokens of each of the first `count` sequences. Throws kvc::Error (file, line) for
// a non-integer, an id outside [0, vocab), too few tokens or too few sequences.
std::vector<std::vector<int>> read_token_file(const std::string& path, int count, int length, int vocab);

// A UTF-8 text file: its documents are its paragraphs (separated by blank lines; a
// paragraph's line breaks are kept as '\n'), or its lines when it has no blank
// line. Each document is encoded with a leading BOS; the documents' tokens are
// concatenated in order and cut into consecutive sequences of `length` tokens, of
// which the first `count` are returned. kvc::Error naming the file when it holds
// too few tokens or a byte the tokenizer cannot encode.
std::vector<std::vector<int>> read_text_file(const std::string& path, const model::Tokenizer& tokenizer, int count,
                                             int length);
// The token stream of read_text_file before it is cut.
std::vector<int> tokenize_text_file(const std::string& path, const model::Tokenizer& tokenizer);

}  // namespace kvc::calibration
