#pragma once
// Writes a llama2.c checkpoint as a GGUF llama file, as llama.cpp would hold it:
// the llama.* shape keys, general.alignment, a placeholder tokenizer (the real
// one is not shipped with stories260K), 1-D norm weights in F32 and the matrices
// in the requested type. Weights are written unchanged: llama2.c and GGUF llama
// both rotate adjacent pairs (2i, 2i+1) in RoPE (see model/model.h), so no row
// permutation is needed.
#include <string>

#include "model/gguf_writer.h"

namespace kvc::testing {

struct StoriesGgufOptions {
  GgufTensorType matrix_type = GgufTensorType::F32;
  bool separate_classifier = false;  // also write output.weight (a copy of the embedding)
};

void write_gguf_from_llama2c(const std::string& llama2c_path, const std::string& gguf_path,
                             const StoriesGgufOptions& options = {});

// The GGUF writer loaded with the same content, for tests that alter it first.
GgufWriter gguf_writer_from_llama2c(const std::string& llama2c_path, const StoriesGgufOptions& options = {});

}  // namespace kvc::testing
