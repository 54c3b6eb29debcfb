// The llama2.c tokenizer file (model/tokenizer.h Tokenizer::load_llama2c). The
// reader needs the model's vocabulary size, which the file does not hold: the
// input's first two bytes (little-endian, at least 1) give it and the rest is the
// file. A vocabulary it loads must encode and decode text without a finding;
// encode may refuse text a vocabulary without byte tokens cannot spell.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_support.h"
#include "model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const int vocab = std::max(1, data[0] | (data[1] << 8));
  const std::string path = kvc::fuzz::write_input(data + 2, size - 2, "tokenizer.bin");
  kvc::model::Tokenizer tokenizer;
  if (!kvc::fuzz::run_reader(path, [&] { tokenizer = kvc::model::Tokenizer::load_llama2c(path, vocab); })) return 0;
  for (int id = 0; id < tokenizer.vocab_size(); ++id) tokenizer.piece(id);
  std::vector<int> ids;
  // Refusing to spell a byte is a kvc::Error about the text, not the file.
  if (kvc::fuzz::run_reader("", [&] { ids = tokenizer.encode("Once upon a time, \xc3\xa4 <0x41>\n", true); }))
    tokenizer.decode(ids);
  return 0;
}
