#include "frontend/llama2c.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "frontend/binary_file.h"
#include "support/diagnostics.h"

namespace kvc::frontend {
namespace {

std::int64_t legacy_file_bytes(const std::string& path, const Llama2cHeader& h) {
  const Llama2cTensorSizes s = llama2c_tensor_sizes(path, h);
  std::int64_t sum = 0;
  for (std::int64_t n : {s.embedding, s.rms_att, s.wq, s.wk, s.wv, s.wo, s.rms_ffn, s.w1, s.w2, s.w3, s.rms_final,
                         s.freq_cis, s.freq_cis, s.wcls})
    sum = checked_add(path, 0, sum, n);
  return checked_add(path, 0, kLlama2cHeaderBytes, checked_mul(path, 0, sum, 4));
}

Llama2cHeader read_legacy_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(SourceLocation{path, 0, 0}, "", "cannot open model file");
  const std::int64_t file_size = file_size_of(path);
  if (file_size < kLlama2cHeaderBytes)
    fail_at_offset(path, file_size,
                   "file ends inside the llama2.c header (expected 7 int32 = 28 bytes, the file has " +
                       std::to_string(file_size) + ")");
  std::int32_t f[7];
  in.read(reinterpret_cast<char*>(f), sizeof f);
  if (!in) fail_at_offset(path, 0, "cannot read the llama2.c header");
  Llama2cHeader h = llama2c_shape_from_fields(path, f, 0);
  const std::int64_t expected = legacy_file_bytes(path, h);
  if (expected != file_size) fail_llama2c_size(path, h, expected, file_size);
  return h;
}

}  // namespace

Llama2cHeader llama2c_shape_from_fields(const std::string& path, const std::int32_t f[7], std::int64_t offset) {
  static const char* const kNames[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                                        "seq_len"};
  for (int i = 0; i < 7; ++i) {
    if (i == 5) {
      if (f[i] == 0 || f[i] == INT32_MIN)
        fail_at_offset(path, offset + 4 * i,
                       std::string("header field ") + kNames[i] + " is " + std::to_string(f[i]) +
                           ", expected a nonzero vocabulary size (negative = separate classifier)");
    } else if (f[i] <= 0) {
      fail_at_offset(path, offset + 4 * i,
                     std::string("header field ") + kNames[i] + " is " + std::to_string(f[i]) +
                         ", expected a positive value");
    }
  }
  Llama2cHeader h;
  h.dim = f[0];
  h.hidden = f[1];
  h.layers = f[2];
  h.heads = f[3];
  h.kv_heads = f[4];
  h.shared_classifier = f[5] > 0;
  h.vocab = f[5] > 0 ? f[5] : -f[5];
  h.seq_len = f[6];
  if (h.dim % h.heads != 0)
    fail_at_offset(path, offset + 12,
                   "n_heads " + std::to_string(h.heads) + " does not divide dim " + std::to_string(h.dim));
  if (h.head_dim() % 2 != 0)
    fail_at_offset(path, offset + 12,
                   "head size " + std::to_string(h.head_dim()) + " is odd; RoPE rotates pairs of channels");
  if (h.kv_heads > h.heads || h.heads % h.kv_heads != 0)
    fail_at_offset(path, offset + 16,
                   "n_kv_heads " + std::to_string(h.kv_heads) + " must divide n_heads " + std::to_string(h.heads));
  return h;
}

Llama2cTensorSizes llama2c_tensor_sizes(const std::string& path, const Llama2cHeader& h) {
  const std::int64_t L = h.layers, dim = h.dim, hid = h.hidden, kvd = h.kv_dim();
  auto mul = [&](std::int64_t a, std::int64_t b) { return checked_mul(path, 0, a, b); };
  Llama2cTensorSizes s{};
  s.embedding = mul(h.vocab, dim);
  s.rms_att = mul(L, dim);
  s.wq = mul(L, mul(dim, dim));
  s.wk = mul(L, mul(kvd, dim));
  s.wv = s.wk;
  s.wo = s.wq;
  s.rms_ffn = s.rms_att;
  s.w1 = mul(L, mul(hid, dim));
  s.w2 = s.w1;
  s.w3 = s.w1;
  s.rms_final = dim;
  s.freq_cis = h.version == 0 ? mul(h.seq_len, h.head_dim() / 2) : 0;  // only the legacy layout stores them
  s.wcls = h.shared_classifier ? 0 : s.embedding;
  return s;
}

void fail_llama2c_size(const std::string& path, const Llama2cHeader& h, std::int64_t expected,
                       std::int64_t file_size) {
  fail_at_offset(path, std::min(expected, file_size),
                 "llama2.c " + std::string(h.version == 0 ? "" : "version " + std::to_string(h.version) + " ") +
                     "header (dim " + std::to_string(h.dim) + ", hidden " + std::to_string(h.hidden) + ", layers " +
                     std::to_string(h.layers) + ", heads " + std::to_string(h.heads) + ", kv heads " +
                     std::to_string(h.kv_heads) + ", vocab " +
                     std::to_string(h.shared_classifier ? h.vocab : -h.vocab) + ", seq_len " +
                     std::to_string(h.seq_len) +
                     (h.version == 2 ? ", group size " + std::to_string(h.group_size) : std::string()) +
                     ") implies a file of " + std::to_string(expected) + " bytes, the file has " +
                     std::to_string(file_size) +
                     (expected > file_size ? " (truncated?)" : " (trailing data or corrupt header)"));
}

Llama2cHeader read_llama2c_header(const std::string& path) {
  return has_llama2c_magic(path) ? read_llama2c_versioned_header(path) : read_legacy_header(path);
}

ModelFileInfo read_llama2c_info(const std::string& path) {
  const Llama2cHeader h = read_llama2c_header(path);
  ModelFileInfo info;
  info.format = "llama2c";
  info.shape.name = std::filesystem::path(path).stem().string();
  info.shape.layers = h.layers;
  info.shape.q_heads = h.heads;
  info.shape.kv_heads = h.kv_heads;
  info.shape.head_dim = h.head_dim();
  info.shape.rope_theta = 10000.0;  // run.c hard-codes it
  info.shape.cache_dtype = ir::DType::F16;
  info.context = h.seq_len;
  info.dim = h.dim;
  info.hidden = h.hidden;
  info.vocab = h.vocab;
  return info;
}

Llama2cCheckpoint read_llama2c_checkpoint(const std::string& path) {
  if (has_llama2c_magic(path)) return read_llama2c_versioned_checkpoint(path);
  Llama2cCheckpoint ck;
  ck.header = read_legacy_header(path);  // validates the size against the header
  const Llama2cTensorSizes s = llama2c_tensor_sizes(path, ck.header);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(SourceLocation{path, 0, 0}, "", "cannot open model file");
  in.seekg(kLlama2cHeaderBytes);
  std::int64_t offset = kLlama2cHeaderBytes;
  auto read_tensor = [&](std::vector<float>& out, std::int64_t count) {
    out.resize(static_cast<std::size_t>(count));
    in.read(reinterpret_cast<char*>(out.data()), count * 4);
    if (!in) fail_at_offset(path, offset, "cannot read " + std::to_string(count * 4) + " bytes of tensor data");
    offset += count * 4;
  };
  read_tensor(ck.token_embedding, s.embedding);
  read_tensor(ck.rms_att, s.rms_att);
  read_tensor(ck.wq, s.wq);
  read_tensor(ck.wk, s.wk);
  read_tensor(ck.wv, s.wv);
  read_tensor(ck.wo, s.wo);
  read_tensor(ck.rms_ffn, s.rms_ffn);
  read_tensor(ck.w1, s.w1);
  read_tensor(ck.w2, s.w2);
  read_tensor(ck.w3, s.w3);
  read_tensor(ck.rms_final, s.rms_final);
  offset += 2 * s.freq_cis * 4;  // RoPE tables: recomputed by the forward pass
  in.seekg(offset);
  if (!ck.header.shared_classifier) read_tensor(ck.wcls, s.wcls);
  return ck;
}

}  // namespace kvc::frontend
