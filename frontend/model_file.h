#pragma once
// Reading a model's attention shape from a file named by `model.from:` in a spec
// or by `--model` on the command line. The format is recognised by content:
// GGUF (magic "GGUF"), HF config.json (a JSON object), else a llama2.c checkpoint.
#include <cstdint>
#include <string>

#include "ir/plan.h"

namespace kvc::frontend {

struct ModelFileInfo {
  std::string format;          // "gguf" | "hf-config" | "llama2c"
  ir::ModelShape shape;        // name, layers, q_heads, kv_heads, head_dim, rope_theta (cache_dtype fp16)
  std::int64_t context = 0;    // max positions the model was trained for (0 = file does not say)
  int dim = 0;                 // model width
  int hidden = 0;              // FFN width
  int vocab = 0;
};

// Throws kvc::Error naming the file and the offset or key at fault.
ModelFileInfo read_model_info(const std::string& path);

}  // namespace kvc::frontend
