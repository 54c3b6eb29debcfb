#pragma once
// A tiny random llama-shaped GGUF (dim 8, hidden 16, 2 layers, 2 query heads,
// 1 KV head, vocab 32, context 64): a few KB, so tests can corrupt every byte.
#include <string>

#include "model/gguf_writer.h"

namespace kvc::testing {

GgufWriter tiny_llama_gguf(const std::string& arch = "llama");

}  // namespace kvc::testing
