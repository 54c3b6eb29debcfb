#include "frontend/llama2c.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "support/diagnostics.h"

namespace kvc::frontend {
namespace {

[[noreturn]] void fail_at(const std::string& path, std::int64_t offset, const std::string& message) {
  throw Error(SourceLocation{path, 0, 0}, "offset " + std::to_string(offset), message);
}

// Multiplies/adds element counts; a header with absurd fields must give an
// error, not a wrapped count that happens to match some file size.
std::int64_t checked_mul(const std::string& path, std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) fail_at(path, 0, "header fields imply a tensor size that overflows 64 bits");
  return r;
}
std::int64_t checked_add(const std::string& path, std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) fail_at(path, 0, "header fields imply a file size that overflows 64 bits");
  return r;
}

struct TensorSizes {
  std::int64_t embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis, wcls;
  std::int64_t total() const {
    return embedding + rms_att + wq + wk + wv + wo + rms_ffn + w1 + w2 + w3 + rms_final + 2 * freq_cis + wcls;
  }
};

// Element counts of every tensor in run.c order. Each count is checked, so the
// sum cannot overflow either (each term is at most int64 max / 16 after the
// final checked sum below).
TensorSizes tensor_sizes(const std::string& path, const Llama2cHeader& h) {
  const std::int64_t L = h.layers, dim = h.dim, hid = h.hidden, kvd = h.kv_dim();
  TensorSizes s{};
  s.embedding = checked_mul(path, h.vocab, dim);
  s.rms_att = checked_mul(path, L, dim);
  s.wq = checked_mul(path, L, checked_mul(path, dim, dim));
  s.wk = checked_mul(path, L, checked_mul(path, kvd, dim));
  s.wv = s.wk;
  s.wo = s.wq;
  s.rms_ffn = s.rms_att;
  s.w1 = checked_mul(path, L, checked_mul(path, hid, dim));
  s.w2 = s.w1;
  s.w3 = s.w1;
  s.rms_final = dim;
  s.freq_cis = checked_mul(path, h.seq_len, h.head_dim() / 2);
  s.wcls = h.shared_classifier ? 0 : s.embedding;
  std::int64_t sum = 0;
  for (std::int64_t n : {s.embedding, s.rms_att, s.wq, s.wk, s.wv, s.wo, s.rms_ffn, s.w1, s.w2, s.w3, s.rms_final,
                         s.freq_cis, s.freq_cis, s.wcls})
    sum = checked_add(path, sum, n);
  checked_mul(path, sum, 4);
  return s;
}

std::int64_t file_size_of(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(SourceLocation{path, 0, 0}, "", "cannot read model file: " + ec.message());
  return static_cast<std::int64_t>(size);
}

Llama2cHeader parse_header(const std::string& path, std::ifstream& in, std::int64_t file_size) {
  if (file_size < kLlama2cHeaderBytes)
    fail_at(path, file_size,
            "file ends inside the llama2.c header (expected 7 int32 = 28 bytes, the file has " +
                std::to_string(file_size) + ")");
  std::int32_t f[7];
  in.read(reinterpret_cast<char*>(f), sizeof f);
  if (!in) fail_at(path, 0, "cannot read the llama2.c header");
  if (std::memcmp(f, "ak42", 4) == 0)
    fail_at(path, 0, "llama2.c export version " + std::to_string(f[1]) +
                         " (magic \"ak42\") is not supported; re-export in the legacy format (version 0)");

  static const char* const kNames[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                                        "seq_len"};
  for (int i = 0; i < 7; ++i) {
    if (i == 5) {
      if (f[i] == 0 || f[i] == INT32_MIN)
        fail_at(path, 4 * i, std::string("header field ") + kNames[i] + " is " + std::to_string(f[i]) +
                                 ", expected a nonzero vocabulary size (negative = separate classifier)");
    } else if (f[i] <= 0) {
      fail_at(path, 4 * i,
              std::string("header field ") + kNames[i] + " is " + std::to_string(f[i]) + ", expected a positive value");
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
    fail_at(path, 12, "n_heads " + std::to_string(h.heads) + " does not divide dim " + std::to_string(h.dim));
  if (h.head_dim() % 2 != 0)
    fail_at(path, 12, "head size " + std::to_string(h.head_dim()) + " is odd; RoPE rotates pairs of channels");
  if (h.kv_heads > h.heads || h.heads % h.kv_heads != 0)
    fail_at(path, 16, "n_kv_heads " + std::to_string(h.kv_heads) + " must divide n_heads " + std::to_string(h.heads));
  return h;
}

}  // namespace

Llama2cHeader read_llama2c_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(SourceLocation{path, 0, 0}, "", "cannot open model file");
  const std::int64_t file_size = file_size_of(path);
  Llama2cHeader h = parse_header(path, in, file_size);
  const std::int64_t expected = kLlama2cHeaderBytes + 4 * tensor_sizes(path, h).total();
  if (expected != file_size) {
    fail_at(path, std::min(expected, file_size),
            "llama2.c header (dim " + std::to_string(h.dim) + ", hidden " + std::to_string(h.hidden) + ", layers " +
                std::to_string(h.layers) + ", heads " + std::to_string(h.heads) + ", kv heads " +
                std::to_string(h.kv_heads) + ", vocab " + std::to_string(h.shared_classifier ? h.vocab : -h.vocab) +
                ", seq_len " + std::to_string(h.seq_len) + ") implies a file of " + std::to_string(expected) +
                " bytes, the file has " + std::to_string(file_size) +
                (expected > file_size ? " (truncated?)" : " (trailing data or corrupt header)"));
  }
  return h;
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
  Llama2cCheckpoint ck;
  ck.header = read_llama2c_header(path);  // validates the size against the header
  const TensorSizes s = tensor_sizes(path, ck.header);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(SourceLocation{path, 0, 0}, "", "cannot open model file");
  in.seekg(kLlama2cHeaderBytes);
  std::int64_t offset = kLlama2cHeaderBytes;
  auto read_tensor = [&](std::vector<float>& out, std::int64_t count) {
    out.resize(static_cast<std::size_t>(count));
    in.read(reinterpret_cast<char*>(out.data()), count * 4);
    if (!in) fail_at(path, offset, "cannot read " + std::to_string(count * 4) + " bytes of tensor data");
    offset += count * 4;
  };
  auto skip = [&](std::int64_t count) {
    offset += count * 4;
    in.seekg(offset);
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
  skip(2 * s.freq_cis);  // RoPE tables: recomputed by the forward pass
  if (!ck.header.shared_classifier) read_tensor(ck.wcls, s.wcls);
  return ck;
}

}  // namespace kvc::frontend
