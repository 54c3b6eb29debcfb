#include "frontend/model_file.h"

#include <cctype>
#include <cstring>
#include <fstream>

#include "frontend/gguf.h"
#include "frontend/hf_config.h"
#include "frontend/llama2c.h"
#include "support/diagnostics.h"

namespace kvc::frontend {

ModelFileInfo read_model_info(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(SourceLocation{path, 0, 0}, "", "cannot open model file");
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) return read_gguf_info(path);

  // HF config.json: a JSON object, i.e. '{' then '"' or '}' after optional
  // whitespace. Checking the byte after '{' too keeps a llama2.c checkpoint
  // whose dim happens to have 0x7B ('{') as its low byte (dim = 123 + 256k)
  // from being taken for JSON: its next bytes are dim's high bytes.
  in.clear();
  in.seekg(0);
  auto next_non_space = [&in] {
    int ch = 0;
    while ((ch = in.get()) != EOF && std::isspace(ch)) {
    }
    return ch;
  };
  if (next_non_space() == '{') {
    const int after = next_non_space();
    if (after == '"' || after == '}') return read_hf_config(path);
    // Malformed JSON or a llama2.c file: a valid checkpoint wins, anything
    // else gets the JSON reader's error, which is the likelier intent.
    try {
      return read_llama2c_info(path);
    } catch (const Error&) {
      return read_hf_config(path);
    }
  }
  return read_llama2c_info(path);
}

}  // namespace kvc::frontend
