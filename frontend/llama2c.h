#pragma once
// llama2.c checkpoints, in the two layouts its export.py writes.
//
// Legacy (version 0, what run.c reads): a header of 7 int32
// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len) and then
// fp32 tensors in run.c order:
//   token_embedding[vocab][dim], rms_att[L][dim], wq[L][dim][dim],
//   wk[L][kv_dim][dim], wv[L][kv_dim][dim], wo[L][dim][dim], rms_ffn[L][dim],
//   w1[L][hidden][dim], w2[L][dim][hidden], w3[L][hidden][dim], rms_final[dim],
//   freq_cis_real[seq][head_dim/2], freq_cis_imag[seq][head_dim/2] (unused),
//   wcls[vocab][dim] only when the header's vocab_size is negative.
// Versioned (magic "ak42", llama2c_versioned.cpp): a 256-byte header (uint32 magic,
// int32 version, the same 7 int32 with a positive vocab_size, uint8
// shared_classifier, and for version 2 an int32 group size; zero padding), then
//   rms_att[L][dim], rms_ffn[L][dim], rms_final[dim] as fp32, then
//   token_embedding, wq, wk, wv, wo, w1, w2, w3 (each for every layer in turn) and
//   wcls when not shared: version 1 as fp32; version 2 (runq.c's int8 export) each
//   tensor of each layer as int8 codes followed by one fp32 scale per group of
//   `group_size` consecutive codes (weight = code x scale). Weights are
//   dequantized to fp32 at load; the forward pass never sees the int8 codes.
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
  int version = 0;             // 0 = legacy; 1 = fp32, 2 = int8 ("ak42" header)
  int group_size = 0;          // version 2: codes per fp32 scale
  int head_dim() const { return dim / heads; }
  int kv_dim() const { return kv_heads * head_dim(); }
};

inline constexpr std::int64_t kLlama2cHeaderBytes = 7 * 4;
inline constexpr std::int64_t kLlama2cVersionedHeaderBytes = 256;

// Element counts of every tensor (all layers), the same in both layouts.
struct Llama2cTensorSizes {
  std::int64_t embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis, wcls;
};

// A whole checkpoint in memory. Each field is one tensor, row-major, all layers
// stacked ([L][rows][cols] for per-layer matrices).
struct Llama2cCheckpoint {
  Llama2cHeader header;
  std::vector<float> token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final;
  std::vector<float> wcls;  // empty when shared_classifier
};

// Reads and validates the header (either layout, told apart by the magic) and
// checks that the file size matches it. Throws kvc::Error naming the file and the
// byte offset at fault.
Llama2cHeader read_llama2c_header(const std::string& path);
ModelFileInfo read_llama2c_info(const std::string& path);
Llama2cCheckpoint read_llama2c_checkpoint(const std::string& path);

// Shared by both layouts: the 7 shape fields (at `offset` in the file) checked
// and turned into a header; the tensor sizes they imply, every product checked.
Llama2cHeader llama2c_shape_from_fields(const std::string& path, const std::int32_t fields[7], std::int64_t offset);
Llama2cTensorSizes llama2c_tensor_sizes(const std::string& path, const Llama2cHeader& h);
// "llama2.c header (dim 64, ...) implies a file of N bytes, the file has M ...".
[[noreturn]] void fail_llama2c_size(const std::string& path, const Llama2cHeader& h, std::int64_t expected,
                                    std::int64_t file_size);

// The versioned layout (llama2c_versioned.cpp); called by the functions above when
// the file starts with "ak42".
bool has_llama2c_magic(const std::string& path);
Llama2cHeader read_llama2c_versioned_header(const std::string& path);
Llama2cCheckpoint read_llama2c_versioned_checkpoint(const std::string& path);

}  // namespace kvc::frontend
