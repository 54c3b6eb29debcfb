#pragma once
// HF transformers `config.json`: the attention shape only (no weights).
#include <string>

#include "frontend/model_file.h"

namespace kvc::frontend {

// Reads num_hidden_layers, num_attention_heads, num_key_value_heads (default: the
// attention heads), head_dim (default hidden_size / heads), rope_theta (default
// 10000), max_position_embeddings, hidden_size, intermediate_size, vocab_size and
// torch_dtype. Throws kvc::Error with file:line:column and the key at fault.
ModelFileInfo read_hf_config(const std::string& path);

}  // namespace kvc::frontend
