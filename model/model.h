#pragma once
// A llama-family decoder's weights in fp32 and its shape, loaded from a llama2.c
// checkpoint or a GGUF file (general.architecture = "llama").
//
// RoPE convention. Both formats store wq/wk so that RoPE rotates ADJACENT pairs
// (2i, 2i+1) of each head with frequency theta^(-2i/head_dim):
//   * llama2.c's run.c does exactly that (its export keeps Meta's original layout);
//   * llama.cpp runs LLM_ARCH_LLAMA with LLAMA_ROPE_TYPE_NORM (adjacent pairs). Its
//     HF converter permutes the rows of q_proj/k_proj to undo HF's rotate_half
//     layout (pairs (i, i + head_dim/2), "NeoX" style), i.e. back to Meta's layout.
// So a GGUF written from a llama2.c checkpoint carries the weights unchanged, and
// the same forward pass runs both. RopeStyle::HalfSplit exists for architectures
// llama.cpp runs NeoX-style; tests check that it equals AdjacentPairs after the
// converter's row permutation.
#include <cstdint>
#include <string>
#include <vector>

namespace kvc::model {

enum class RopeStyle : std::uint8_t {
  AdjacentPairs,  // (2i, 2i+1): llama2.c, GGUF llama
  HalfSplit,      // (i, i + head_dim/2): HF rotate_half, llama.cpp NeoX
};

struct ModelConfig {
  int dim = 0;       // residual width
  int hidden = 0;    // FFN width
  int layers = 0;
  int q_heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  int vocab = 0;
  std::int64_t context = 0;  // max positions (0 = the file does not say)
  float rope_theta = 10000.0f;
  float norm_eps = 1e-5f;
  RopeStyle rope = RopeStyle::AdjacentPairs;

  int q_dim() const { return q_heads * head_dim; }
  int kv_dim() const { return kv_heads * head_dim; }
};

// Matrices are row-major [out][in] (GGUF ne = {in, out}).
struct LayerWeights {
  std::vector<float> attn_norm;  // [dim]
  std::vector<float> wq;         // [q_dim][dim]
  std::vector<float> wk;         // [kv_dim][dim]
  std::vector<float> wv;         // [kv_dim][dim]
  std::vector<float> wo;         // [dim][q_dim]
  std::vector<float> ffn_norm;   // [dim]
  std::vector<float> w1;         // [hidden][dim]  gate
  std::vector<float> w2;         // [dim][hidden]  down
  std::vector<float> w3;         // [hidden][dim]  up
};

class Model {
 public:
  // Recognises the format by content (GGUF magic, else llama2.c). Throws
  // kvc::Error naming the file and the offset, key or tensor at fault.
  static Model load(const std::string& path);

  ModelConfig config;
  std::string name;
  std::string path;  // the file it was loaded from ("" when built in memory)
  std::vector<float> token_embedding;  // [vocab][dim]
  std::vector<LayerWeights> layers;
  std::vector<float> final_norm;       // [dim]
  std::vector<float> classifier;       // [vocab][dim]; empty = tied to token_embedding

  const float* classifier_weights() const { return classifier.empty() ? token_embedding.data() : classifier.data(); }
  // Checks every tensor's size against config (throws kvc::Error).
  void validate() const;
};

}  // namespace kvc::model
