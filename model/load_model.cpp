// Model::load: llama2.c checkpoints and GGUF llama files into fp32 weights.
#include <cstring>
#include <fstream>

#include "frontend/gguf.h"
#include "frontend/llama2c.h"
#include "model/model.h"
#include "support/diagnostics.h"

namespace kvc::model {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& field, const std::string& message) {
  throw Error(SourceLocation{path, 0, 0}, field, message);
}

// Slice `i` of a tensor stacked over layers.
std::vector<float> layer_slice(const std::vector<float>& all, int layer, std::size_t per_layer) {
  auto begin = all.begin() + static_cast<std::ptrdiff_t>(per_layer * static_cast<std::size_t>(layer));
  return std::vector<float>(begin, begin + static_cast<std::ptrdiff_t>(per_layer));
}

Model load_llama2c(const std::string& path) {
  frontend::Llama2cCheckpoint ck = frontend::read_llama2c_checkpoint(path);
  const frontend::Llama2cHeader& h = ck.header;
  const frontend::ModelFileInfo info = frontend::read_llama2c_info(path);
  Model m;
  m.name = info.shape.name;
  ModelConfig& c = m.config;
  c.dim = h.dim;
  c.hidden = h.hidden;
  c.layers = h.layers;
  c.q_heads = h.heads;
  c.kv_heads = h.kv_heads;
  c.head_dim = h.head_dim();
  c.vocab = h.vocab;
  c.context = h.seq_len;
  c.rope_theta = 10000.0f;
  c.norm_eps = 1e-5f;
  c.rope = RopeStyle::AdjacentPairs;
  const std::size_t dim = c.dim, kvd = c.kv_dim(), hid = c.hidden;
  m.layers.resize(c.layers);
  for (int l = 0; l < c.layers; ++l) {
    LayerWeights& w = m.layers[l];
    w.attn_norm = layer_slice(ck.rms_att, l, dim);
    w.wq = layer_slice(ck.wq, l, dim * dim);
    w.wk = layer_slice(ck.wk, l, kvd * dim);
    w.wv = layer_slice(ck.wv, l, kvd * dim);
    w.wo = layer_slice(ck.wo, l, dim * dim);
    w.ffn_norm = layer_slice(ck.rms_ffn, l, dim);
    w.w1 = layer_slice(ck.w1, l, hid * dim);
    w.w2 = layer_slice(ck.w2, l, dim * hid);
    w.w3 = layer_slice(ck.w3, l, hid * dim);
  }
  m.token_embedding = std::move(ck.token_embedding);
  m.final_norm = std::move(ck.rms_final);
  m.classifier = std::move(ck.wcls);
  return m;
}

std::string shape_string(const std::vector<std::int64_t>& ne) {
  std::string s = "[";
  for (std::size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// A tensor that must exist with exactly the shape `ne` (fastest-first).
std::vector<float> gguf_tensor(const frontend::GgufFile& g, const std::string& name, std::vector<std::int64_t> ne) {
  const frontend::GgufTensorInfo* t = g.find_tensor(name);
  if (!t) fail(g.path(), "tensor '" + name + "'", "missing (expected shape " + shape_string(ne) + ")");
  if (t->ne != ne)
    fail(g.path(), "tensor '" + name + "'",
         "has shape " + shape_string(t->ne) + ", expected " + shape_string(ne) + " (GGUF dims are fastest-first)");
  return g.read_tensor_f32(*t);
}

Model load_gguf(const std::string& path) {
  const frontend::GgufFile g = frontend::GgufFile::open(path);
  const frontend::ModelFileInfo info = frontend::gguf_model_info(g);
  const std::string arch = g.get_string("general.architecture");
  if (arch != "llama")
    fail(path, "key 'general.architecture'",
         "the forward pass runs llama GGUF files; this one is '" + arch + "'");
  Model m;
  m.name = info.shape.name;
  ModelConfig& c = m.config;
  c.dim = info.dim;
  c.hidden = info.hidden;
  c.layers = info.shape.layers;
  c.q_heads = info.shape.q_heads;
  c.kv_heads = info.shape.kv_heads;
  c.head_dim = info.shape.head_dim;
  c.context = info.context;
  c.rope_theta = static_cast<float>(info.shape.rope_theta);
  c.norm_eps = static_cast<float>(g.get_float("llama.attention.layer_norm_rms_epsilon", 1e-5));
  if (!(c.norm_eps > 0.0f))
    fail(path, "key 'llama.attention.layer_norm_rms_epsilon'", "expected a positive number");
  c.rope = RopeStyle::AdjacentPairs;  // LLAMA_ROPE_TYPE_NORM; see model.h
  if (c.hidden <= 0) fail(path, "key 'llama.feed_forward_length'", "missing or zero (the FFN needs its width)");
  if (c.head_dim % 2 != 0) fail(path, "key 'llama.attention.key_length'", "head_dim is odd; RoPE rotates pairs");
  const std::int64_t rope_dims = g.get_int("llama.rope.dimension_count", c.head_dim);
  if (rope_dims != c.head_dim)
    fail(path, "key 'llama.rope.dimension_count'",
         std::to_string(rope_dims) + " (partial rotary) is not supported; expected head_dim " +
             std::to_string(c.head_dim));

  const frontend::GgufTensorInfo* emb = g.find_tensor("token_embd.weight");
  if (!emb) fail(path, "tensor 'token_embd.weight'", "missing");
  if (emb->ne.size() != 2 || emb->ne[1] > INT32_MAX)
    fail(path, "tensor 'token_embd.weight'", "has shape " + shape_string(emb->ne) + ", expected [dim, vocab]");
  c.vocab = static_cast<int>(emb->ne[1]);
  const std::int64_t dim = c.dim, qd = c.q_dim(), kvd = c.kv_dim(), hid = c.hidden, vocab = c.vocab;
  m.token_embedding = gguf_tensor(g, "token_embd.weight", {dim, vocab});
  // Layers are added as their tensors are found: a corrupt block_count must
  // fail at the first missing tensor, not allocate millions of empty layers.
  for (int l = 0; l < c.layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerWeights& w = m.layers.emplace_back();
    w.attn_norm = gguf_tensor(g, b + "attn_norm.weight", {dim});
    w.wq = gguf_tensor(g, b + "attn_q.weight", {dim, qd});
    w.wk = gguf_tensor(g, b + "attn_k.weight", {dim, kvd});
    w.wv = gguf_tensor(g, b + "attn_v.weight", {dim, kvd});
    w.wo = gguf_tensor(g, b + "attn_output.weight", {qd, dim});
    w.ffn_norm = gguf_tensor(g, b + "ffn_norm.weight", {dim});
    w.w1 = gguf_tensor(g, b + "ffn_gate.weight", {dim, hid});
    w.w2 = gguf_tensor(g, b + "ffn_down.weight", {hid, dim});
    w.w3 = gguf_tensor(g, b + "ffn_up.weight", {dim, hid});
  }
  m.final_norm = gguf_tensor(g, "output_norm.weight", {dim});
  if (g.find_tensor("output.weight")) m.classifier = gguf_tensor(g, "output.weight", {dim, vocab});
  return m;
}

void check_size(const std::vector<float>& v, std::size_t expected, const char* what, int layer) {
  if (v.size() != expected)
    throw Error(std::string("model tensor ") + what + (layer >= 0 ? " of layer " + std::to_string(layer) : "") +
                " holds " + std::to_string(v.size()) + " values, expected " + std::to_string(expected));
}

}  // namespace

Model Model::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(SourceLocation{path, 0, 0}, "", "cannot open model file");
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  const bool is_gguf = in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  in.close();
  Model m = is_gguf ? load_gguf(path) : load_llama2c(path);
  m.path = path;
  m.validate();
  return m;
}

void Model::validate() const {
  const ModelConfig& c = config;
  if (c.dim <= 0 || c.hidden <= 0 || c.layers <= 0 || c.q_heads <= 0 || c.kv_heads <= 0 || c.head_dim <= 0 ||
      c.vocab <= 0 || c.q_heads % c.kv_heads != 0 || c.head_dim % 2 != 0)
    throw Error("model '" + name + "': inconsistent shape");
  const std::size_t dim = c.dim, qd = c.q_dim(), kvd = c.kv_dim(), hid = c.hidden, vocab = c.vocab;
  check_size(token_embedding, vocab * dim, "token_embedding", -1);
  check_size(final_norm, dim, "final_norm", -1);
  if (!classifier.empty()) check_size(classifier, vocab * dim, "classifier", -1);
  if (layers.size() != static_cast<std::size_t>(c.layers)) throw Error("model '" + name + "': wrong layer count");
  for (int l = 0; l < c.layers; ++l) {
    const LayerWeights& w = layers[l];
    check_size(w.attn_norm, dim, "attn_norm", l);
    check_size(w.wq, qd * dim, "wq", l);
    check_size(w.wk, kvd * dim, "wk", l);
    check_size(w.wv, kvd * dim, "wv", l);
    check_size(w.wo, dim * qd, "wo", l);
    check_size(w.ffn_norm, dim, "ffn_norm", l);
    check_size(w.w1, hid * dim, "w1", l);
    check_size(w.w2, dim * hid, "w2", l);
    check_size(w.w3, hid * dim, "w3", l);
  }
}

}  // namespace kvc::model
