#pragma once
// llama2.c checkpoints (Karpathy's run.c "legacy" export): a header of 7 int32
// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len) and then
// fp32 tensors in run.c order:
//   token_embedding[vocab][dim], rms_att[L][dim], wq[L][dim][dim],
//   wk[L][kv_dim][dim], wv[L][kv_dim][dim], wo[L][dim][dim], rms_ffn[L][dim],
//   w1[L][hidden][dim], w2[L][dim][hidden], w3[L][hidden][dim], rms_final[dim],
//   freq_cis_real[seq][head_dim/2], freq_cis_imag[seq][head_dim/2] (unused),
//   wcls[vocab][dim] only when the header's vocab_size is negative.
// Matrices are row-major [out][in]. RoPE rotates pairs (2i, 2i+1) of each head.
// The file size must match the header exactly: a mismatch is how truncated or
// corrupt checkpoints are caught.
#include <cstdint>
#include <string>
#include <vector>

#include "frontend/model_file.h"

namespace kvc::frontend {

struct Llama2cHeader {
  int dim = 0;
  int hidden = 0;
  int layers = 0;
  int heads = 0;
  int kv_heads = 0;
  int vocab = 0;               // absolute value of the header field
  bool shared_classifier = true;  // header vocab_size > 0: the classifier is the token embedding
  int seq_len = 0;
  int head_dim() const { return dim / heads; }
  int kv_dim() const { return kv_heads * head_dim(); }
};

inline constexpr std::int64_t kLlama2cHeaderBytes = 7 * 4;

// A whole checkpoint in memory. Each field is one tensor, row-major, all layers
// stacked ([L][rows][cols] for per-layer matrices).
struct Llama2cCheckpoint {
  Llama2cHeader header;
  std::vector<float> token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final;
  std::vector<float> wcls;  // empty when shared_classifier
};

// Reads and validates the header and checks that the file size matches it.
// Throws kvc::Error naming the file and the byte offset at fault.
Llama2cHeader read_llama2c_header(const std::string& path);
ModelFileInfo read_llama2c_info(const std::string& path);
Llama2cCheckpoint read_llama2c_checkpoint(const std::string& path);

}  // namespace kvc::frontend
