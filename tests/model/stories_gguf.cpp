#include "model/stories_gguf.h"

#include <filesystem>

#include "frontend/llama2c.h"

namespace kvc::testing {

GgufWriter gguf_writer_from_llama2c(const std::string& llama2c_path, const StoriesGgufOptions& options) {
  const frontend::Llama2cCheckpoint ck = frontend::read_llama2c_checkpoint(llama2c_path);
  const frontend::Llama2cHeader& h = ck.header;
  const std::int64_t dim = h.dim, hid = h.hidden, kvd = h.kv_dim(), vocab = h.vocab;
  const GgufTensorType mt = options.matrix_type;
  // llama.cpp's converter falls back to F16 for a tensor whose rows are not a
  // whole number of Q8_0 blocks (stories260K's ffn_down rows hold 172 values).
  auto type_for_rows = [mt](std::int64_t row_length) {
    return mt == GgufTensorType::Q8_0 && row_length % 32 != 0 ? GgufTensorType::F16 : mt;
  };

  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("general.name", std::filesystem::path(llama2c_path).stem().string());
  w.add_u32("general.alignment", 32);
  // LLAMA_FTYPE: 0 all F32, 1 mostly F16, 7 mostly Q8_0, 32 mostly BF16.
  w.add_u32("general.file_type", mt == GgufTensorType::F32 ? 0 : mt == GgufTensorType::F16 ? 1
                                                                : mt == GgufTensorType::Q8_0 ? 7 : 32);
  w.add_u32("llama.context_length", static_cast<std::uint32_t>(h.seq_len));
  w.add_u32("llama.embedding_length", static_cast<std::uint32_t>(h.dim));
  w.add_u32("llama.feed_forward_length", static_cast<std::uint32_t>(h.hidden));
  w.add_u32("llama.block_count", static_cast<std::uint32_t>(h.layers));
  w.add_u32("llama.attention.head_count", static_cast<std::uint32_t>(h.heads));
  w.add_u32("llama.attention.head_count_kv", static_cast<std::uint32_t>(h.kv_heads));
  w.add_u32("llama.rope.dimension_count", static_cast<std::uint32_t>(h.head_dim()));
  w.add_f32("llama.rope.freq_base", 10000.0f);
  w.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.add_string("tokenizer.ggml.model", "llama");
  std::vector<std::string> tokens;
  std::vector<float> scores;
  for (int i = 0; i < h.vocab; ++i) {
    tokens.push_back("<tok" + std::to_string(i) + ">");
    scores.push_back(static_cast<float>(-i));
  }
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_f32_array("tokenizer.ggml.scores", scores);
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);
  w.add_bool("tokenizer.ggml.add_bos_token", true);

  w.add_tensor("token_embd.weight", {dim, vocab}, mt, ck.token_embedding.data());
  for (int l = 0; l < h.layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    w.add_tensor(b + "attn_norm.weight", {dim}, GgufTensorType::F32, ck.rms_att.data() + l * dim);
    w.add_tensor(b + "attn_q.weight", {dim, dim}, mt, ck.wq.data() + l * dim * dim);
    w.add_tensor(b + "attn_k.weight", {dim, kvd}, mt, ck.wk.data() + l * kvd * dim);
    w.add_tensor(b + "attn_v.weight", {dim, kvd}, mt, ck.wv.data() + l * kvd * dim);
    w.add_tensor(b + "attn_output.weight", {dim, dim}, mt, ck.wo.data() + l * dim * dim);
    w.add_tensor(b + "ffn_norm.weight", {dim}, GgufTensorType::F32, ck.rms_ffn.data() + l * dim);
    w.add_tensor(b + "ffn_gate.weight", {dim, hid}, mt, ck.w1.data() + l * hid * dim);
    w.add_tensor(b + "ffn_down.weight", {hid, dim}, type_for_rows(hid), ck.w2.data() + l * dim * hid);
    w.add_tensor(b + "ffn_up.weight", {dim, hid}, mt, ck.w3.data() + l * hid * dim);
  }
  w.add_tensor("output_norm.weight", {dim}, GgufTensorType::F32, ck.rms_final.data());
  if (!ck.wcls.empty())
    w.add_tensor("output.weight", {dim, vocab}, mt, ck.wcls.data());
  else if (options.separate_classifier)
    w.add_tensor("output.weight", {dim, vocab}, mt, ck.token_embedding.data());
  return w;
}

void write_gguf_from_llama2c(const std::string& llama2c_path, const std::string& gguf_path,
                             const StoriesGgufOptions& options) {
  gguf_writer_from_llama2c(llama2c_path, options).write(gguf_path);
}

}  // namespace kvc::testing
