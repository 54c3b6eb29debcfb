#pragma once
// Text to token ids and back, the SentencePiece-style BPE that llama2.c and
// llama.cpp's "llama" vocabulary use: a vocabulary of pieces with merge scores.
//
// Encoding (llama2.c's run.c): a non-empty text gets one space prepended (the
// dummy prefix); it starts as one token per UTF-8 character, and a character with
// no piece falls back to one byte token per byte (pieces "<0x00>".."<0xFF>"); then
// the adjacent pair whose concatenation is a piece with the highest score is
// merged (the leftmost on ties) until no pair is a piece.
// Decoding: pieces concatenated, byte tokens as their byte. decode() is encode()'s
// inverse: it drops the dummy prefix again; piece() is the raw text of one token,
// for streaming (the first piece of a generation keeps its leading space).
//
// Vocabulary sources:
//   llama2.c tokenizer file: int32 max_token_length, then per token fp32 score,
//     int32 byte length, the bytes. Its size is the model's vocabulary.
//   GGUF "tokenizer.ggml.tokens"/"scores" of tokenizer.ggml.model = "llama", whose
//     pieces write a space as U+2581 (converted to ' ' at load).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kvc::frontend {
class GgufFile;
}

namespace kvc::model {

class Tokenizer {
 public:
  // A llama2.c tokenizer file with `vocab` tokens (the model's vocabulary size).
  // Throws kvc::Error naming the file and the offset at fault.
  static Tokenizer load_llama2c(const std::string& path, int vocab);
  // The vocabulary a GGUF file carries; kvc::Error naming the key when it has none
  // or one of another tokenizer model.
  static Tokenizer from_gguf(const frontend::GgufFile& file);
  static bool gguf_has_vocabulary(const frontend::GgufFile& file);
  // The tokenizer of a model file: `explicit_path` when given; else a GGUF's own
  // vocabulary; else tok<vocab>.bin or tokenizer.bin in the model's folder.
  static Tokenizer for_model(const std::string& model_path, int vocab, const std::string& explicit_path = "");

  // Token ids of `text` (BOS first when `bos`). Throws kvc::Error when a byte has no
  // byte token in the vocabulary.
  std::vector<int> encode(std::string_view text, bool bos) const;
  // The text of `ids` without the dummy prefix (BOS and EOS skipped).
  std::string decode(const std::vector<int>& ids) const;
  // One token's text: its piece, or the byte of a byte token.
  std::string piece(int id) const;

  int vocab_size() const { return static_cast<int>(pieces_.size()); }
  int bos() const { return bos_; }
  int eos() const { return eos_; }
  const std::string& source() const { return source_; }

 private:
  void index();  // builds lookup_ and byte_token_ from pieces_

  std::string source_;  // the file the vocabulary came from
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> lookup_;      // piece -> first id with it
  std::array<int, 256> byte_token_{};                 // -1 = no "<0xXX>" piece
  std::vector<std::int16_t> byte_of_;                 // per id: its byte, or -1
  int bos_ = 1, eos_ = 2;
};

}  // namespace kvc::model
