#include "model/tiny_gguf.h"

#include <random>

namespace kvc::testing {

GgufWriter tiny_llama_gguf(const std::string& arch) {
  constexpr int dim = 8, hidden = 16, layers = 2, heads = 2, kv_heads = 1, vocab = 32, head_dim = dim / heads;
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  auto random = [&](std::size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
  };
  const std::vector<float> ones(dim, 1.0f);
  GgufWriter w;
  w.add_string("general.architecture", arch);
  w.add_string("general.name", "tiny");
  w.add_u32(arch + ".context_length", 64);
  w.add_u32(arch + ".embedding_length", dim);
  w.add_u32(arch + ".feed_forward_length", hidden);
  w.add_u32(arch + ".block_count", layers);
  w.add_u32(arch + ".attention.head_count", heads);
  w.add_u32(arch + ".attention.head_count_kv", kv_heads);
  w.add_f32(arch + ".rope.freq_base", 10000.0f);
  w.add_f32(arch + ".attention.layer_norm_rms_epsilon", 1e-5f);
  std::vector<std::string> tokens;
  for (int i = 0; i < vocab; ++i) tokens.push_back("t" + std::to_string(i));
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  const auto F32 = GgufTensorType::F32;
  const std::int64_t kvd = kv_heads * head_dim;
  w.add_tensor("token_embd.weight", {dim, vocab}, F32, random(dim * vocab).data());
  for (int l = 0; l < layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    w.add_tensor(b + "attn_norm.weight", {dim}, F32, ones.data());
    w.add_tensor(b + "attn_q.weight", {dim, dim}, F32, random(dim * dim).data());
    w.add_tensor(b + "attn_k.weight", {dim, kvd}, F32, random(dim * kvd).data());
    w.add_tensor(b + "attn_v.weight", {dim, kvd}, F32, random(dim * kvd).data());
    w.add_tensor(b + "attn_output.weight", {dim, dim}, F32, random(dim * dim).data());
    w.add_tensor(b + "ffn_norm.weight", {dim}, F32, ones.data());
    w.add_tensor(b + "ffn_gate.weight", {dim, hidden}, F32, random(dim * hidden).data());
    w.add_tensor(b + "ffn_down.weight", {hidden, dim}, F32, random(dim * hidden).data());
    w.add_tensor(b + "ffn_up.weight", {dim, hidden}, F32, random(dim * hidden).data());
  }
  w.add_tensor("output_norm.weight", {dim}, F32, ones.data());
  return w;
}

}  // namespace kvc::testing
